// The boot-chain tier's Debian roots, one per suite (bookworm, the base of Proxmox VE 8;
// trixie, of Proxmox VE 9): each made once with debootstrap (grub tools, initramfs-tools,
// dkms, a kernel and its headers) and cached in the git-ignored .cache/ folder; each test
// works on its own copy. In CI they must be buildable (.ci/run installs debootstrap);
// elsewhere a machine without debootstrap skips these tests and says why.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const CACHE = fileURLToPath(new URL('../../.cache/bootchain/', import.meta.url));

export type Suite = 'bookworm' | 'trixie';
export const SUITES: readonly Suite[] = ['bookworm', 'trixie'];

// systemd brings systemd-tmpfiles (the SR-IOV VF count); dkms builds the stand-in i915.
// Package names as Debian's bookworm index spells them (dists/bookworm/main/binary-amd64/Packages).
const PACKAGES = [
  'grub2-common',
  'grub-pc-bin',
  'initramfs-tools',
  'kmod',
  'systemd-boot',
  'systemd',
  'dkms',
  // initramfs.conf says COMPRESS=zstd (Proxmox hosts have zstd); without it mkinitramfs falls back to a slower gzip.
  'zstd',
];
// The kernel and its headers come from bookworm-backports (linux-image-amd64 6.12.95-1~bpo12+1
// in dists/bookworm-backports/main/binary-amd64/Packages, read 2026-11-30): the full flavour
// ships i915 (the cloud flavour has no DRM drivers), and 6.12 lies inside the kernel ranges of
// real i915-sriov-dkms releases (src/knowledge/i915-sriov-dkms.ts), where bookworm's 6.1 lies
// in none.
const BACKPORTS = ['linux-image-amd64', 'linux-headers-amd64'];

// trixie (Debian 13.8, dists/trixie/Release of 2026-11-21), read 2026-12-01 from
// dists/trixie/main/binary-amd64/Packages, binary-all/Packages and Contents-amd64:
// - the same package names as bookworm's list hold (grub2-common 2.12-9+deb13u4, which ships
//   /etc/kernel/postinst.d/zz-update-grub; initramfs-tools 0.148.4; kmod 34.2-2; systemd and
//   systemd-boot 257.13-1~deb13u1; dkms 3.2.2-1~deb13u1; zstd 1.5.7+dfsg-1), but bootctl moved:
//   Contents-amd64 names usr/bin/bootctl in systemd-boot-tools (bookworm: in systemd-boot).
//   systemd-boot depends on systemd-boot-tools and on `systemd-boot-efi-signed | systemd-boot-efi`;
//   debootstrap takes the first of alternatives (a virtual package here: it stops with
//   "dependency problems"), so systemd-boot-efi and systemd-boot-tools are listed.
// - dkms 3.2.2 depends on kmod, dpkg-dev, make | build-essential and patch, and only
//   recommends gcc (apt installs recommends by default, so a Proxmox host has it);
//   debootstrap installs no recommends, so gcc is listed.
// - the kernel comes from trixie main itself: linux-image-amd64 and linux-headers-amd64
//   6.12.117-1 (linux-image-6.12.117+deb13-amd64; its headers depend on gcc-14).
const TRIXIE_PACKAGES = [...PACKAGES, 'systemd-boot-tools', 'systemd-boot-efi', 'gcc'];
const TRIXIE_KERNEL = ['linux-image-amd64', 'linux-headers-amd64'];

interface SuiteRoot {
  /** What debootstrap installs. */
  packages: string[];
  /** The kernel and headers, installed afterwards by the root's own apt. */
  kernel: string[];
  /** The extra apt source the kernel comes from (`apt-get -t`), if not the suite itself. */
  kernelFrom?: string;
  /** What names the cached root: a changed list builds a new one. */
  key: string;
}

const SUITE_ROOTS: Record<Suite, SuiteRoot> = {
  // The key is the one the single-suite code used, so the bookworm root already cached stays in use.
  bookworm: {
    packages: PACKAGES,
    kernel: BACKPORTS,
    kernelFrom: 'bookworm-backports',
    key: [...PACKAGES, 'bookworm-backports:', ...BACKPORTS].join(','),
  },
  trixie: {
    packages: TRIXIE_PACKAGES,
    kernel: TRIXIE_KERNEL,
    key: [...TRIXIE_PACKAGES, 'trixie:', ...TRIXIE_KERNEL].join(','),
  },
};

/** The cached root of a suite: named after its contents. */
function cachedRoot(suite: Suite): string {
  const hash = createHash('sha256').update(SUITE_ROOTS[suite].key).digest('hex').slice(0, 8);
  return join(CACHE, `${suite}-${hash}`);
}

export const ESP = '/boot/efi';

// grub-probe asks the kernel which block device holds /; a chroot on a directory has
// none, so this stand-in answers for a plain ext4 root on /dev/sda1 and every real
// grub-mkconfig script runs unchanged.
const GRUB_PROBE = `#!/bin/sh
target=device
for arg in "$@"; do case "$arg" in --target=*) target="\${arg#--target=}" ;; esac; done
case "$target" in
  device) echo /dev/sda1 ;;
  fs) echo ext2 ;;
  fs_uuid) echo 0b5e1f6a-1d2c-4e5f-8a9b-0c1d2e3f4a5b ;;
  partmap) echo msdos ;;
  drive) echo '(hd0,msdos1)' ;;
  compatibility_hint) echo hd0,msdos1 ;;
esac
`;

// proxmox-boot-tool comes with Proxmox, not Debian: the stand-in (proxmox-boot-tool.sh beside
// this file, which names what it was read from) does refresh, kernel pin/unpin/list, and is
// also the zz-proxmox-boot kernel hook that applies the pin on each kernel's configure. It is
// put into each copy, not the cache, so a change to it needs no new root.
const PROXMOX_BOOT_TOOL = fileURLToPath(new URL('./proxmox-boot-tool.sh', import.meta.url));

export function bootchainAvailable(t: TestContext): boolean {
  const missing = !existsSync('/usr/sbin/debootstrap')
    ? 'debootstrap is missing (apt-get install debootstrap)'
    : process.getuid?.() !== 0
      ? 'debootstrap and chroot need root'
      : undefined;
  if (!missing) return true;
  if (process.env.CI) throw new Error(`CI must run the boot-chain tests: ${missing}`);
  t.skip(missing);
  return false;
}

async function ensureRoot(suite: Suite): Promise<string> {
  const cached = cachedRoot(suite);
  const ready = () => existsSync(join(cached, 'boot/grub'));
  if (ready()) return cached;
  await mkdir(CACHE, { recursive: true });
  // One builder per root: the tier's test files start together on a fresh machine, and a
  // second build replacing the root would pull it from under the first one's copies.
  const lock = `${cached}.building`;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (error) {
      // expected: EEXIST — another test file is building this root
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    if (ready()) return cached;
    // A lock older than a build may take (a run killed while building) is taken over.
    const since = await stat(lock).then(
      (s) => s.mtimeMs,
      () => Date.now(),
    );
    if (Date.now() - since > 45 * 60_000) await rm(lock, { recursive: true, force: true });
    else await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  try {
    if (ready()) return cached;
    return await buildRoot(suite, cached);
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/** debootstrap, the grub-probe stand-in, the kernel: the root, renamed into the cache when whole. */
async function buildRoot(suite: Suite, cached: string): Promise<string> {
  const partial = await mkdtemp(join(CACHE, 'building-'));
  execFileSync(
    'debootstrap',
    [
      '--variant=minbase',
      `--include=${SUITE_ROOTS[suite].packages.join(',')}`,
      suite,
      partial,
      'http://deb.debian.org/debian',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20 * 60_000 },
  );
  await rename(join(partial, 'usr/sbin/grub-probe'), join(partial, 'usr/sbin/grub-probe.real'));
  await writeFile(join(partial, 'usr/sbin/grub-probe'), GRUB_PROBE);
  await chmod(join(partial, 'usr/sbin/grub-probe'), 0o755);
  await mkdir(join(partial, 'boot/grub'), { recursive: true });
  await installKernel(partial, SUITE_ROOTS[suite]);
  await mkdir(join(partial, ESP.slice(1)), { recursive: true });
  await rm(cached, { recursive: true, force: true });
  await rename(partial, cached);
  // Roots of this suite built from an older package list are of no more use (another
  // suite's root stays).
  for (const name of await readdir(CACHE)) {
    if (name.startsWith(`${suite}-`) && !name.endsWith('.building') && join(CACHE, name) !== cached)
      await rm(join(CACHE, name), { recursive: true });
  }
  return cached;
}

/** The kernel and headers (bookworm: from bookworm-backports), installed by the root's own apt (with /proc, as its hooks want). */
async function installKernel(root: string, { kernel, kernelFrom }: SuiteRoot): Promise<void> {
  if (kernelFrom)
    await writeFile(
      join(root, 'etc/apt/sources.list.d/backports.list'),
      `deb http://deb.debian.org/debian ${kernelFrom} main\n`,
    );
  execFileSync('cp', ['/etc/resolv.conf', join(root, 'etc/resolv.conf')]);
  const apt = `apt-get update -qq && apt-get install -y -qq --no-install-recommends ${kernelFrom ? `-t ${kernelFrom} ` : ''}${kernel.join(' ')}`;
  execFileSync(
    'unshare',
    [
      '-m',
      'sh',
      '-c',
      `mount -t proc proc "${root}/proc" && chroot "${root}" env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c '${apt}'`,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20 * 60_000 },
  );
  execFileSync('chroot', [root, 'apt-get', 'clean']);
}

/**
 * A fresh copy of a suite's Debian root (bookworm unless asked) with a captured host's files
 * laid over it (none with `undefined`), and the proxmox-boot-tool stand-in as the tool and as
 * the kernel hook /etc/kernel/postinst.d/zz-proxmox-boot, as proxmox-kernel-helper installs both.
 * `stock` is the cached root it was copied from, to read only: the real kernel's files as its
 * package installed them, whatever dkms did to the copy since (trixie's dkms moves the stock
 * i915 of a kernel away when it installs its own).
 */
export async function bootchainHost(
  fixtureTree: string | undefined,
  options: { suite?: Suite } = {},
): Promise<{ root: string; suite: Suite; stock: string; remove: () => Promise<void> }> {
  const suite = options.suite ?? 'bookworm';
  const cached = await ensureRoot(suite);
  const root = await mkdtemp(join(CACHE, `host-${suite}-`));
  execFileSync('cp', ['-a', `${cached}/.`, root]);
  const tool = await readFile(PROXMOX_BOOT_TOOL, 'utf8');
  for (const path of ['usr/sbin/proxmox-boot-tool', 'etc/kernel/postinst.d/zz-proxmox-boot']) {
    await writeFile(join(root, path), tool);
    await chmod(join(root, path), 0o755);
  }
  // bookworm and trixie have merged /usr (/lib is a link to usr/lib): a capture's lib/ goes there.
  for (const entry of fixtureTree ? await readdir(fixtureTree) : []) {
    const merged =
      ['lib', 'bin', 'sbin'].includes(entry) && (await lstat(join(root, entry))).isSymbolicLink();
    execFileSync('cp', [
      '-a',
      `${fixtureTree}/${entry}${merged ? '/.' : ''}`,
      merged ? join(root, 'usr', entry) : root,
    ]);
  }
  // MODULES=list: mkinitramfs packs the modules /etc/initramfs-tools/modules names (ours
  // among them) and what they depend on, not the whole driver tree of MODULES=most (Debian's
  // and Proxmox's default), which costs about 20 s of CPU per kernel on the full 6.12 kernel.
  // What the tests look for is in either; the size of a `most` initramfs is not tested.
  const conf = join(root, 'etc/initramfs-tools/initramfs.conf');
  await writeFile(conf, (await readFile(conf, 'utf8')).replace(/^MODULES=most$/m, 'MODULES=list'));
  return { root, suite, stock: cached, remove: () => rm(root, { recursive: true, force: true }) };
}

/**
 * `bootctl list` of the root's ESP (bind-mounted onto itself: bootctl wants a mount point),
 * with /proc: bootctl opens loader.conf again through /proc/self/fd and fails with "Function
 * not implemented" (systemd's answer when /proc is not mounted) once there is a loader.conf.
 */
export function bootctlList(root: string): string {
  const esp = join(root, ESP);
  return execFileSync('unshare', [
    '-m',
    'sh',
    '-c',
    `mount --bind "${esp}" "${esp}" && mount -t proc proc "${root}/proc" && chroot "${root}" env SYSTEMD_RELAX_ESP_CHECKS=1 bootctl --esp-path=${ESP} --no-variables list`,
  ]).toString();
}

/** The `linux` lines grub-mkconfig wrote. */
export function linuxLines(grubCfg: string): string[] {
  return grubCfg
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('linux\t') || line.startsWith('linux '));
}

interface MenuItem {
  title: string;
  id: string | undefined;
  linux: string | undefined;
  children: MenuItem[];
}

/** grub.cfg's menu: its menuentry and submenu blocks, nested, each with its `linux` line. */
export function grubMenu(grubCfg: string): MenuItem[] {
  const top: MenuItem[] = [];
  // One element per open `{`: the menu item it opened, or null for any other block (functions).
  const open: (MenuItem | null)[] = [];
  for (const raw of grubCfg.split('\n')) {
    const line = raw.trim();
    const item = /^(?:menuentry|submenu) '([^']*)'(?:.*\$menuentry_id_option '([^']*)')?.*\{$/.exec(line);
    if (item) {
      const entry: MenuItem = { title: item[1] ?? '', id: item[2], linux: undefined, children: [] };
      const parent = open.findLast((block) => block !== null);
      (parent ? parent.children : top).push(entry);
      open.push(entry);
    } else if (line.endsWith('{')) open.push(null);
    else if (line === '}') open.pop();
    else if (/^linux\s/.test(line)) {
      const entry = open.findLast((block) => block !== null);
      if (entry) entry.linux = line;
    }
  }
  return top;
}

/**
 * The kernel grub boots by default: grub.cfg's `set default="…"` (00_header writes
 * GRUB_DEFAULT there) resolved the way grub does, each `>`-separated part a number counted
 * from 0 or an entry's id or title, to the release in that entry's `linux /boot/vmlinuz-…`.
 */
export function grubDefaultKernel(grubCfg: string): string | undefined {
  const value = /^\s*set default="([^"$]*)"$/m.exec(grubCfg)?.[1] ?? '0';
  let items = grubMenu(grubCfg);
  let chosen: MenuItem | undefined;
  for (const part of value.split('>')) {
    chosen = /^\d+$/.test(part) ? items[Number(part)] : items.find((i) => i.id === part || i.title === part);
    if (!chosen) return undefined;
    items = chosen.children;
  }
  return /vmlinuz-(\S+)/.exec(chosen?.linux ?? '')?.[1];
}

/** The entry `bootctl list` marks as the default, by its id (the loader entry's file name). */
export function bootctlDefault(list: string): string | undefined {
  for (const block of list.split(/\n\s*\n/)) {
    if (/^\s*title: .*\(default\)/m.test(block)) return /^\s*id: (\S+)/m.exec(block)?.[1];
  }
  return undefined;
}
