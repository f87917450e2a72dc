// A fake Proxmox kernel package for the boot-chain roots: built with the root's own dpkg-deb
// from the root's real kernel (its vmlinuz, config and a few of its modules) under a newer
// release name, installed with the root's dpkg -i, so its postinst runs the root's real
// /etc/kernel/postinst.d hooks (dkms, initramfs-tools, zz-update-grub, the zz-proxmox-boot
// stand-in) the way a kernel upgrade on a Proxmox host does.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ChrootHost } from './chroot-host.ts';

/**
 * A root made a GRUB host as grub-pc's postinst leaves one (Debian's /etc/default/grub and a
 * grub.cfg: zz-update-grub does nothing without one): its chroot (with /proc), a `run` whose
 * command must succeed, and the root's real kernel.
 */
export async function grubHost(
  root: string,
): Promise<{ host: ChrootHost; run: (command: string) => Promise<string>; real: string }> {
  await copyFile(join(root, 'usr/share/grub/default/grub'), join(root, 'etc/default/grub'));
  const host = await new ChrootHost(root, { proc: true }).open();
  const run = async (command: string) => {
    const result = await host.run(command);
    assert.equal(result.code, 0, `${command}: ${result.stdout}${result.stderr}`);
    return result.stdout;
  };
  await run('update-grub');
  return { host, run, real: await realKernel(root) };
}

/**
 * The kernel the root came with: the release in /lib/modules that has a /boot/vmlinuz (a
 * capture's placeholder module folders have none) and is not one of ours (-pve).
 */
export async function realKernel(root: string): Promise<string> {
  const found = (await readdir(join(root, 'usr/lib/modules'))).filter(
    (name) => !name.endsWith('-pve') && existsSync(join(root, 'boot', `vmlinuz-${name}`)),
  );
  if (found.length !== 1) throw new Error(`expected one real kernel in ${root}, found ${found.join(', ')}`);
  return found[0] as string;
}

/**
 * The release of the fake kernel: the real one's upstream version with the patch level raised
 * by `step`, then `-<abi>-pve`, e.g. 6.12.95+deb12-amd64 → 6.12.96-1-pve. Why so:
 * - Proxmox names its kernels `<upstream>-<abi>-pve` (6.8.12-4-pve; pve-kernel's KVNAME), and
 *   proxmox-boot-tool's keep-list picks kernels by the `-pve` suffix;
 * - a higher patch level sorts it after the real kernel in every version sort that matters
 *   here (grub-mkconfig's version_sort is `sort -V`, proxmox-boot-tool's `sort -V`, dkms's),
 *   so it is the new kernel an upgrade brings, grub's first entry;
 * - the same major.minor keeps it inside the i915-sriov-dkms ranges the real kernel is in,
 *   and makes the real kernel's headers a plausible `build` for it (dkms then really builds).
 */
export function fakeKernelVersion(real: string, step = 1, abi = 1): string {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(real);
  if (!match) throw new Error(`not a kernel release: ${real}`);
  return `${match[1]}.${match[2]}.${Number(match[3]) + step}-${abi}-pve`;
}

export const kernelPackage = (kver: string) => `proxmox-kernel-${kver}`;

// The modules a host check would look for: GVT-g (kvmgt, i915) and passthrough (vfio, vfio-pci,
// vfio_iommu_type1), with what they depend on (the real kernel's modules.dep), so depmod and
// modinfo on the fake kernel answer as on the real one.
const WANTED = [
  'drivers/gpu/drm/i915/i915',
  'drivers/gpu/drm/i915/kvmgt',
  'drivers/vfio/vfio',
  'drivers/vfio/pci/vfio-pci',
  'drivers/vfio/vfio_iommu_type1',
];

/** The wanted modules' files, with their dependencies, from the kernel's modules.dep. */
async function moduleClosure(modulesDir: string): Promise<string[]> {
  const deps = new Map<string, string[]>();
  for (const line of (await readFile(join(modulesDir, 'modules.dep'), 'utf8')).split('\n')) {
    const [file, rest = ''] = line.split(':');
    if (file) deps.set(file, rest.trim().split(/\s+/).filter(Boolean));
  }
  const wanted = WANTED.map((module) => {
    const file = [...deps.keys()].find((path) => path.replace(/\.ko(\.\w+)?$/, '') === `kernel/${module}`);
    if (!file) throw new Error(`${module} is not in ${modulesDir}/modules.dep`);
    return file;
  });
  const closure = new Set<string>();
  const visit = (file: string) => {
    if (closure.has(file)) return;
    closure.add(file);
    for (const dep of deps.get(file) ?? []) visit(dep);
  };
  wanted.forEach(visit);
  return [...closure].sort();
}

/**
 * The postinst of Proxmox's kernel package (proxmox/pve-kernel debian/proxmox-kernel.postinst.in
 * @6e44995, perl) with @@KVNAME@@ filled in, restated: nothing but `configure` does anything,
 * nor anything under the Proxmox installer; depmod, then every /etc/kernel/postinst.d hook via
 * `run-parts --verbose --exit-on-error --arg=<kver> --arg=/boot/vmlinuz-<kver>`, and a hook that
 * fails makes it die ("Failed to process /etc/kernel/postinst.d"), which fails the configure step.
 * It exports no DEB_MAINT_PARAMS (the hooks see none).
 */
export const postinst = (kver: string) => `#!/usr/bin/perl
use strict;
use warnings;

exit 0 unless $ARGV[0] =~ /configure/;
exit 0 if -e "/proxmox_install_mode";

my $kernel = "${kver}";
my $boot = "/boot";

system("depmod $kernel");

if (-d "/etc/kernel/postinst.d") {
  print STDERR "Examining /etc/kernel/postinst.d.\\n";
  system("run-parts --verbose --exit-on-error --arg=$kernel --arg=$boot/vmlinuz-$kernel /etc/kernel/postinst.d")
    && die "Failed to process /etc/kernel/postinst.d";
}

exit 0
`;

export interface DpkgResult {
  /** dpkg's exit code. */
  code: number;
  /** stdout and stderr, as a terminal shows them (the postinst's hooks write to both). */
  output: string;
}

/**
 * Build proxmox-kernel-<kver> from the root's real kernel and install it with `dpkg -i` (the
 * host must have /proc: `new ChrootHost(root, { proc: true })`). The kernel's files are read
 * from `stock` (bootchainHost's: the untouched cached root; the host's own root by default),
 * since dkms may have moved the stock i915 out of the host's copy. It ships /boot/vmlinuz-<kver>
 * and /boot/config-<kver> (copies of the real kernel's), /lib/modules/<kver>/ with the modules
 * of WANTED and their dependencies, modules.builtin, modules.builtin.modinfo and modules.order,
 * and with `headers` the `build` link to the real kernel's headers (on Proxmox the
 * proxmox-headers-<kver> package's; here in the one package), so dkms builds for it.
 */
export async function installFakeKernel(
  host: ChrootHost,
  options: { kver: string; headers: boolean; stock?: string },
): Promise<DpkgResult> {
  const { kver, headers } = options;
  const root = host.root;
  const stock = options.stock ?? root;
  const real = await realKernel(root);
  const realModules = join(stock, 'usr/lib/modules', real);
  const work = `/tmp/fake-kernel-${kver}`;
  const tree = join(root, work, 'pkg');
  await rm(join(root, work), { recursive: true, force: true });
  const modules = join(tree, 'lib/modules', kver);
  await mkdir(join(tree, 'DEBIAN'), { recursive: true });
  await mkdir(join(tree, 'boot'), { recursive: true });
  await cp(join(stock, 'boot', `vmlinuz-${real}`), join(tree, 'boot', `vmlinuz-${kver}`));
  await cp(join(stock, 'boot', `config-${real}`), join(tree, 'boot', `config-${kver}`));
  for (const file of await moduleClosure(realModules)) {
    await mkdir(dirname(join(modules, file)), { recursive: true });
    await cp(join(realModules, file), join(modules, file));
  }
  for (const file of ['modules.builtin', 'modules.builtin.modinfo', 'modules.order'])
    await cp(join(realModules, file), join(modules, file));
  if (headers) await symlink(await readlink(join(realModules, 'build')), join(modules, 'build'));
  await writeFile(
    join(tree, 'DEBIAN/control'),
    `Package: ${kernelPackage(kver)}
Version: ${kver.replace(/-pve$/, '')}
Architecture: amd64
Maintainer: igpu-split tests <tests@igpu-split.invalid>
Section: admin
Priority: optional
Description: igpu-split test stand-in for a Proxmox kernel ${kver}
 The root's real kernel image and a few of its modules under a newer release name.
`,
  );
  await writeFile(join(tree, 'DEBIAN/postinst'), postinst(kver), { mode: 0o755 });
  // No compression: the package lives for one install, and xz of a kernel image costs seconds.
  const build = await host.run(`dpkg-deb --root-owner-group -Znone --build ${work}/pkg ${work}/kernel.deb`);
  if (build.code !== 0) throw new Error(`dpkg-deb --build: ${build.stdout}${build.stderr}`);
  const install = await host.run(`dpkg -i ${work}/kernel.deb 2>&1`, { timeoutMs: 15 * 60_000 });
  await rm(join(root, work), { recursive: true, force: true });
  return { code: install.code, output: install.stdout + install.stderr };
}

/**
 * dpkg's status of a package: installed, half-configured, unpacked, … or not-installed
 * (dpkg-query's db:Status-Status; unknown packages count as not-installed).
 */
export async function dpkgStatus(host: ChrootHost, pkg: string): Promise<string> {
  const result = await host.run(`dpkg-query -W -f='\${db:Status-Status}' ${pkg}`);
  return result.code === 0 ? result.stdout.trim() : 'not-installed';
}

/**
 * The hooks a kernel's postinst would run, in their order: `run-parts --test` on
 * /etc/kernel/postinst.d inside the root, with the arguments the Proxmox postinst passes.
 */
export async function postinstHooks(host: ChrootHost, kver: string): Promise<string[]> {
  const result = await host.run(
    `run-parts --test --arg=${kver} --arg=/boot/vmlinuz-${kver} /etc/kernel/postinst.d`,
  );
  if (result.code !== 0) throw new Error(`run-parts --test: ${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace('/etc/kernel/postinst.d/', ''));
}

/** The hooks run-parts --verbose said it ran, in order ("run-parts: executing <hook> …" on stderr). */
export function hooksRun(output: string): string[] {
  return [...output.matchAll(/^run-parts: executing \/etc\/kernel\/postinst\.d\/(\S+)/gm)].map(
    (m) => m[1] as string,
  );
}
