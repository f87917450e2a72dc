// The demo's N100 host: a captured tree that answers the commands the SR-IOV host plan
// runs the way a Proxmox VE host with network access would — a stand-in, listed in the
// README's Stand-ins table. apt-get installs the driver package by writing what the real
// package and dkms leave (dpkg status, /usr/src/i915-sriov-dkms-<release>/dkms.conf with
// the release's real BUILD_EXCLUSIVE_KERNEL, i915.ko under updates/dkms for each kernel it
// matches); the i915 build itself is not emulated. wget writes a placeholder: the demo
// never downloads. A reboot boots what the files say: the GRUB command line, and the VFs
// the tmpfiles line asks for, which the Proxmox simulator then lists too (`onVfs`).

import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CommandHandler, DirectoryHost } from '../access/directory-host.ts';
import type { CommandResult } from '../access/host.ts';
import { exists } from '../core/files.ts';
import { GRUB_CMDLINE_SCRIPT } from '../host/boot/grub-defaults.ts';
import { SRIOV_TMPFILES } from '../host/sriov/files.ts';
import { buildsFor, DKMS_PACKAGE, knownRelease, releaseOfPackageFile } from '../knowledge/i915-sriov-dkms.ts';
import { HOST_COMMAND } from '../knowledge/packages.ts';
import { parseDpkgStatus } from '../linux/parse/dpkg.ts';
import { BOOT_ID } from '../linux/reboot.ts';

const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string, code = 100): CommandResult => ({ code, stdout: '', stderr });

export interface SriovHostOptions {
  /** The Proxmox node name (for `onVfs`). */
  node: string;
  /** Called after a reboot with the VFs the host now has. */
  onVfs?: (node: string, vfs: number) => Promise<void> | void;
  /** apt-get update fails like a host on the enterprise repository without a subscription. */
  enterpriseRepoWithoutSubscription?: boolean;
}

/** Words after the options of an apt-get command line (single-quoted words unquoted). */
function aptWords(command: string): string[] {
  return (command.match(/'[^']*'|\S+/g) ?? [])
    .map((w) => w.replace(/^'(.*)'$/, '$1'))
    .filter((w) => !w.startsWith('-') && !w.includes('=') && !['apt-get', 'install', 'purge'].includes(w));
}

async function statusOf(host: DirectoryHost): Promise<Map<string, string>> {
  const path = host.under('/var/lib/dpkg/status');
  return parseDpkgStatus((await exists(path)) ? await readFile(path, 'utf8') : '');
}

async function writeStatus(host: DirectoryHost, packages: Map<string, string>): Promise<void> {
  const text = [...packages]
    .map(([name, version]) => `Package: ${name}\nStatus: install ok installed\nVersion: ${version}\n`)
    .join('\n');
  await mkdir(host.under('/var/lib/dpkg'), { recursive: true });
  await writeFile(host.under('/var/lib/dpkg/status'), text);
}

async function kernels(host: DirectoryHost): Promise<string[]> {
  const dir = host.under('/lib/modules');
  return (await exists(dir)) ? readdir(dir) : [];
}

/** What installing the packages leaves behind (dkms builds for every kernel the release's range holds). */
async function install(host: DirectoryHost, words: string[]): Promise<CommandResult> {
  const packages = await statusOf(host);
  // proxmox-default-headers brings the headers of the default kernel (the demo: every installed one).
  if (words.includes('proxmox-default-headers'))
    for (const kernel of await kernels(host)) {
      await mkdir(host.under(`/lib/modules/${kernel}/build`), { recursive: true });
      await writeFile(host.under(`/lib/modules/${kernel}/build/Makefile`), '');
    }
  for (const word of words) {
    const release = releaseOfPackageFile(word);
    if (word.includes('/') && !release) return fail(`E: Unsupported file ${word} given on commandline`);
    if (!release) {
      packages.set(word, '1.0');
      continue;
    }
    const info = knownRelease(release);
    packages.set(DKMS_PACKAGE, release);
    const src = host.under(`/usr/src/${DKMS_PACKAGE}-${release}`);
    await mkdir(src, { recursive: true });
    await writeFile(
      join(src, 'dkms.conf'),
      `PACKAGE_NAME="${DKMS_PACKAGE}"\nPACKAGE_VERSION="${release}"\nBUILD_EXCLUSIVE_KERNEL="${info?.buildExclusiveKernel ?? '^$'}"\n`,
    );
    for (const kernel of await kernels(host)) {
      const headers = await exists(host.under(`/lib/modules/${kernel}/build/Makefile`));
      if (!info || !headers || !buildsFor(info.buildExclusiveKernel, kernel)) continue;
      const dkms = host.under(`/lib/modules/${kernel}/updates/dkms`);
      await mkdir(dkms, { recursive: true });
      await writeFile(join(dkms, 'i915.ko'), '');
    }
  }
  await writeStatus(host, packages);
  return ok(`Setting up ${words.map((w) => w.split('/').pop()).join(', ')} ...\n`);
}

async function purge(host: DirectoryHost, words: string[]): Promise<CommandResult> {
  const packages = await statusOf(host);
  for (const word of words) {
    const release = packages.get(word);
    packages.delete(word);
    if (word !== DKMS_PACKAGE || release === undefined) continue;
    await rm(host.under(`/usr/src/${DKMS_PACKAGE}-${release}`), { recursive: true, force: true });
    for (const kernel of await kernels(host))
      await rm(host.under(`/lib/modules/${kernel}/updates/dkms/i915.ko`), { force: true });
  }
  await writeStatus(host, packages);
  return ok();
}

/** The command line the GRUB files give, evaluated by this machine's /bin/sh as grub-mkconfig would. */
function grubCmdline(host: DirectoryHost): Promise<string> {
  return new Promise((resolve) => {
    const child = execFile('/bin/sh', ['-s', host.under('/etc')], (_error, stdout) => resolve(stdout.trim()));
    child.stdin?.end(GRUB_CMDLINE_SCRIPT);
  });
}

/** Boots what the files say: the new command line; with the DKMS i915 and max_vfs, the tmpfiles VFs. */
async function boot(host: DirectoryHost, options: SriovHostOptions): Promise<void> {
  const cmdline = await grubCmdline(host);
  const running = (await readFile(host.under('/proc/sys/kernel/osrelease'), 'utf8')).trim();
  await writeFile(host.under('/proc/cmdline'), `BOOT_IMAGE=/boot/vmlinuz-${running} ${cmdline}\n`);
  const pf = host.under('/sys/bus/pci/devices/0000:00:02.0');
  const devices = dirname(pf);
  for (const entry of await readdir(devices))
    if (/^0000:00:02\.[1-7]$/.test(entry)) await rm(join(devices, entry), { recursive: true });
  const maxVfs = Number(/(?:^|\s)i915\.max_vfs=(\d+)/.exec(cmdline)?.[1] ?? 0);
  const dkmsI915 = await exists(host.under(`/lib/modules/${running}/updates/dkms/i915.ko`));
  const params = host.under('/sys/module/i915/parameters');
  let vfs = 0;
  if (dkmsI915) {
    await writeFile(join(params, 'max_vfs'), `${maxVfs}\n`);
    await writeFile(join(pf, 'sriov_totalvfs'), `${maxVfs}\n`);
    const tmpfiles = host.under(SRIOV_TMPFILES);
    const wanted = (await exists(tmpfiles))
      ? Number(/sriov_numvfs\s+-\s+-\s+-\s+-\s+(\d+)/.exec(await readFile(tmpfiles, 'utf8'))?.[1] ?? 0)
      : 0;
    vfs = Math.min(wanted, maxVfs);
    await writeFile(join(pf, 'sriov_drivers_autoprobe'), vfs > 0 ? '0\n' : '1\n');
    await writeFile(join(pf, 'sriov_numvfs'), `${vfs}\n`);
    await makeVfs(pf, vfs);
  } else {
    await rm(join(params, 'max_vfs'), { force: true });
    await rm(join(pf, 'sriov_totalvfs'), { force: true });
    await rm(join(pf, 'sriov_numvfs'), { force: true });
  }
  await loadModules(host);
  await writeFile(host.under(BOOT_ID), `${randomUUID()}\n`);
  await options.onVfs?.(options.node, vfs);
}

/** systemd-modules-load: the modules modules-load.d names are loaded after the boot (/proc/modules). */
async function loadModules(host: DirectoryHost): Promise<void> {
  const dir = host.under('/etc/modules-load.d');
  const names: string[] = [];
  for (const file of (await exists(dir)) ? await readdir(dir) : [])
    for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
      const name = line.replace(/#.*/, '').trim();
      if (name) names.push(name);
    }
  const path = host.under('/proc/modules');
  const loaded = (await exists(path)) ? await readFile(path, 'utf8') : '';
  const have = new Set(loaded.split('\n').map((l) => l.split(' ')[0]));
  const added = names.filter((n) => !have.has(n)).map((n) => `${n} 16384 0 - Live 0x0000000000000000\n`);
  await writeFile(path, loaded + added.join(''));
}

/** VF folders as the kernel makes them: the PF's identity, a physfn link, no driver (autoprobe off). */
async function makeVfs(pf: string, count: number): Promise<void> {
  const read = (name: string) => readFile(join(pf, name), 'utf8');
  const [vendor, device, klass, subVendor, subDevice] = await Promise.all(
    ['vendor', 'device', 'class', 'subsystem_vendor', 'subsystem_device'].map(read),
  );
  for (let i = 1; i <= count; i++) {
    const vf = join(dirname(pf), `0000:00:02.${i}`);
    await mkdir(vf);
    await Promise.all([
      writeFile(join(vf, 'vendor'), vendor ?? ''),
      writeFile(join(vf, 'device'), device ?? ''),
      writeFile(join(vf, 'class'), klass ?? ''),
      writeFile(join(vf, 'subsystem_vendor'), subVendor ?? ''),
      writeFile(join(vf, 'subsystem_device'), subDevice ?? ''),
      symlink('../0000:00:02.0', join(vf, 'physfn')),
    ]);
  }
}

/** The command handler of an N100 host. */
export function sriovHost(options: SriovHostOptions): CommandHandler {
  return async (command, host, stdin) => {
    if (command === '/bin/sh -s /etc')
      return new Promise((resolve) => {
        const child = execFile('/bin/sh', ['-s', host.under('/etc')], (error, stdout, stderr) =>
          resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
        child.stdin?.end(stdin ?? '');
      });
    if ((Object.values(HOST_COMMAND) as string[]).includes(command)) return ok();
    const apt = command.replace(/^DEBIAN_FRONTEND=noninteractive /, '');
    if (apt.startsWith('apt-get update'))
      return options.enterpriseRepoWithoutSubscription
        ? {
            code: 100,
            stdout: '',
            stderr:
              "E: Failed to fetch https://enterprise.proxmox.com/debian/pve/dists/trixie/InRelease  401  Unauthorized [IP: 127.0.0.1 443]\nE: The repository 'https://enterprise.proxmox.com/debian/pve trixie InRelease' is not signed.\n",
          }
        : ok('Reading package lists... Done\n');
    if (apt.startsWith('apt-get install --simulate')) return ok('Inst dkms\n');
    if (apt.startsWith('apt-get install -y')) return install(host, aptWords(apt));
    if (apt.startsWith('apt-get purge')) return purge(host, aptWords(apt));
    const wget = /^wget -q -O '([^']+)' '([^']+)'$/.exec(command);
    if (wget) {
      await mkdir(dirname(host.under(wget[1] as string)), { recursive: true });
      await writeFile(host.under(wget[1] as string), `igpu-split demo: not downloaded from ${wget[2]}\n`);
      return ok();
    }
    const sum = /^sha256sum '([^']+)'$/.exec(command);
    if (sum) {
      const bytes = await readFile(host.under(sum[1] as string));
      return ok(`${createHash('sha256').update(bytes).digest('hex')}  ${sum[1]}\n`);
    }
    if (command === 'systemctl reboot') {
      await boot(host, options);
      return ok();
    }
    return { code: 127, stdout: '', stderr: `demo host: ${command}: not emulated` };
  };
}
