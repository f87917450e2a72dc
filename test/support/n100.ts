// An N100 host before any SR-IOV work, made from the n100-sriov capture: stock i915 (no
// sriov_totalvfs, no VFs), no SR-IOV parameters, kernel 6.8.12-4-pve installed with its
// headers, no driver package. Tests of the SR-IOV host plan, apply and rollback start here.

import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturePath } from './fixtures.ts';

export const N100_KERNEL = '6.8.12-4-pve';

export async function n100BeforeTree(): Promise<{ root: string; remove: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), 'igpu-n100-'));
  await cp(fixturePath('n100-sriov'), root, { recursive: true, verbatimSymlinks: true });
  const devices = join(root, 'sys/bus/pci/devices');
  for (const entry of await readdir(devices))
    if (/^0000:00:02\.[1-7]$/.test(entry)) await rm(join(devices, entry), { recursive: true });
  for (const file of ['sriov_totalvfs', 'sriov_numvfs'])
    await rm(join(devices, '0000:00:02.0', file), { force: true });
  await rm(join(root, 'sys/module/i915/parameters/max_vfs'), { force: true });
  await writeFile(
    join(root, 'proc/cmdline'),
    `BOOT_IMAGE=/boot/vmlinuz-${N100_KERNEL} root=/dev/mapper/pve-root ro quiet\n`,
  );
  await writeFile(
    join(root, 'etc/default/grub'),
    'GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n',
  );
  await mkdir(join(root, 'proc/sys/kernel/random'), { recursive: true });
  await writeFile(join(root, 'proc/sys/kernel/random/boot_id'), '0d7c7c7e-0000-4000-8000-000000000001\n');
  await mkdir(join(root, 'etc/kernel'), { recursive: true });
  const modules = join(root, 'lib/modules', N100_KERNEL);
  await mkdir(join(modules, 'build'), { recursive: true });
  await writeFile(join(modules, 'modules.dep'), '');
  await writeFile(join(modules, 'build/Makefile'), '');
  await mkdir(join(root, 'var/lib/dpkg'), { recursive: true });
  await writeFile(join(root, 'var/lib/dpkg/status'), dpkgStatus({ 'proxmox-kernel-helper': '8.1.0' }));
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}

/** A dpkg status file with these packages fully installed. */
export function dpkgStatus(packages: Record<string, string>): string {
  return Object.entries(packages)
    .map(([name, version]) => `Package: ${name}\nStatus: install ok installed\nVersion: ${version}\n`)
    .join('\n');
}
