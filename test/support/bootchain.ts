// The boot-chain tier's Debian bookworm root: made once with debootstrap (grub tools,
// initramfs-tools, a kernel) and cached in the git-ignored .cache/ folder; each test
// works on its own copy. In CI it must be buildable (.ci/run installs debootstrap);
// elsewhere a machine without debootstrap skips these tests and says why.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

const CACHE = fileURLToPath(new URL('../../.cache/bootchain/', import.meta.url));
const ROOT = join(CACHE, 'bookworm');
const PACKAGES = ['grub2-common', 'grub-pc-bin', 'initramfs-tools', 'linux-image-cloud-amd64', 'kmod'];

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
  await rm(ROOT, { recursive: true, force: true });
  await rename(partial, ROOT);
}

/** A fresh copy of the Debian root with a captured host's files laid over it. */
export async function bootchainHost(
  fixtureTree: string,
): Promise<{ root: string; remove: () => Promise<void> }> {
  await ensureRoot();
  const root = await mkdtemp(join(CACHE, 'host-'));
  execFileSync('cp', ['-a', `${ROOT}/.`, root]);
  execFileSync('cp', ['-a', `${fixtureTree}/.`, root]);
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}

/** The `linux` lines grub-mkconfig wrote. */
export function linuxLines(grubCfg: string): string[] {
  return grubCfg
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('linux\t') || line.startsWith('linux '));
}
