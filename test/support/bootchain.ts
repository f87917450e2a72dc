// The boot-chain tier's Debian bookworm root: made once with debootstrap (grub tools,
// initramfs-tools, a kernel) and cached in the git-ignored .cache/ folder; each test
// works on its own copy. In CI it must be buildable (.ci/run installs debootstrap);
// elsewhere a machine without debootstrap skips these tests and says why.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const CACHE = fileURLToPath(new URL('../../.cache/bootchain/', import.meta.url));
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
// The cache is named after its contents, so changing the package list builds a new root.
const ROOT = join(
  CACHE,
  `bookworm-${createHash('sha256')
    .update([...PACKAGES, 'bookworm-backports:', ...BACKPORTS].join(','))
    .digest('hex')
    .slice(0, 8)}`,
);
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

// proxmox-boot-tool comes with Proxmox, not Debian. For systemd-boot ESPs its refresh
// copies each kernel to the ESP and writes a Boot Loader Specification entry whose
// options are /etc/kernel/cmdline; this stand-in does that much, and the real bootctl
// then reads the entries.
const PROXMOX_BOOT_TOOL = `#!/bin/sh
[ "$1" = refresh ] || { echo "proxmox-boot-tool stand-in: only refresh" >&2; exit 2; }
read -r cmdline < /etc/kernel/cmdline
mkdir -p ${ESP}/loader/entries
for kernel in /boot/vmlinuz-*; do
  version=\${kernel#/boot/vmlinuz-}
  mkdir -p ${ESP}/EFI/proxmox/$version
  cp "$kernel" ${ESP}/EFI/proxmox/$version/vmlinuz-$version
  cp /boot/initrd.img-$version ${ESP}/EFI/proxmox/$version/initrd.img-$version
  printf 'title Proxmox Virtual Environment\\nversion %s\\nlinux /EFI/proxmox/%s/vmlinuz-%s\\ninitrd /EFI/proxmox/%s/initrd.img-%s\\noptions %s\\n' \\
    "$version" "$version" "$version" "$version" "$version" "$cmdline" > ${ESP}/loader/entries/proxmox-$version.conf
done
`;

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

async function ensureRoot(): Promise<void> {
  if (existsSync(join(ROOT, 'boot/grub'))) return;
  await mkdir(CACHE, { recursive: true });
  const partial = await mkdtemp(join(CACHE, 'building-'));
  execFileSync(
    'debootstrap',
    [
      '--variant=minbase',
      `--include=${PACKAGES.join(',')}`,
      'bookworm',
      partial,
      'http://deb.debian.org/debian',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20 * 60_000 },
  );
  await rename(join(partial, 'usr/sbin/grub-probe'), join(partial, 'usr/sbin/grub-probe.real'));
  await writeFile(join(partial, 'usr/sbin/grub-probe'), GRUB_PROBE);
  await chmod(join(partial, 'usr/sbin/grub-probe'), 0o755);
  await mkdir(join(partial, 'boot/grub'), { recursive: true });
  await installBackports(partial);
  await mkdir(join(partial, ESP.slice(1)), { recursive: true });
  await writeFile(join(partial, 'usr/sbin/proxmox-boot-tool'), PROXMOX_BOOT_TOOL);
  await chmod(join(partial, 'usr/sbin/proxmox-boot-tool'), 0o755);
  await rm(ROOT, { recursive: true, force: true });
  await rename(partial, ROOT);
  // Roots built from an older package list are of no more use.
  for (const name of await readdir(CACHE)) {
    if (name.startsWith('bookworm') && join(CACHE, name) !== ROOT)
      await rm(join(CACHE, name), { recursive: true });
  }
}

/** The kernel and headers from bookworm-backports, installed by the root's own apt (with /proc, as its hooks want). */
async function installBackports(root: string): Promise<void> {
  await writeFile(
    join(root, 'etc/apt/sources.list.d/backports.list'),
    'deb http://deb.debian.org/debian bookworm-backports main\n',
  );
  execFileSync('cp', ['/etc/resolv.conf', join(root, 'etc/resolv.conf')]);
  const apt = `apt-get update -qq && apt-get install -y -qq --no-install-recommends -t bookworm-backports ${BACKPORTS.join(' ')}`;
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

/** A fresh copy of the Debian root with a captured host's files laid over it. */
export async function bootchainHost(
  fixtureTree: string,
): Promise<{ root: string; remove: () => Promise<void> }> {
  await ensureRoot();
  const root = await mkdtemp(join(CACHE, 'host-'));
  execFileSync('cp', ['-a', `${ROOT}/.`, root]);
  // bookworm has merged /usr (/lib is a link to usr/lib): a capture's lib/ goes there.
  for (const entry of await readdir(fixtureTree)) {
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
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}

/** `bootctl list` of the root's ESP (bind-mounted onto itself: bootctl wants a mount point). */
export function bootctlList(root: string): string {
  const esp = join(root, ESP);
  return execFileSync('unshare', [
    '-m',
    'sh',
    '-c',
    `mount --bind "${esp}" "${esp}" && chroot "${root}" env SYSTEMD_RELAX_ESP_CHECKS=1 bootctl --esp-path=${ESP} --no-variables list`,
  ]).toString();
}

/** The `linux` lines grub-mkconfig wrote. */
export function linuxLines(grubCfg: string): string[] {
  return grubCfg
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('linux\t') || line.startsWith('linux '));
}
