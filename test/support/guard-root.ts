// A small root to run the kernel guard in, fast: this machine's /usr bind-mounted read-only
// (so the real sh, sed, grep, sort and date run it), empty /etc, /boot, /var, /lib/modules
// and /usr/src of its own, and stand-ins first on PATH for what a Debian test machine lacks
// or must not touch: modinfo (answers from files under /test/modinfo), proxmox-boot-tool (writes
// the pin files as proxmox-kernel-helper does, logs each call to /test/calls, and fails with
// "No space left on device" while /test/boot-full exists) and dpkg-query. Everything runs in a
// mount namespace of its own (unshare -m) under chroot, so the machine's own /boot and /etc
// are never seen or touched. The boot-chain tier runs the same guard against the real tools.

import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const MODINFO = `#!/bin/sh
# modinfo -k KERNEL -F FIELD MODULE: /test/modinfo/KERNEL/MODULE holds the module's parm lines.
kernel= field= module=
while [ $# -gt 0 ]; do
  case $1 in -k) kernel=$2; shift 2 ;; -F) field=$2; shift 2 ;; *) module=$1; shift ;; esac
done
file=/test/modinfo/$kernel/$module
[ -f "$file" ] || { echo "modinfo: ERROR: Module $module not found." >&2; exit 1; }
case $field in parm) cat "$file" ;; name) echo "$module" ;; esac
`;

// The pin files and their first-line reading: proxmox-kernel-helper src/bin/proxmox-boot-tool
// pin_kernel / unpin_kernel @ 7007b33c (unpin without --next-boot removes both files).
const PROXMOX_BOOT_TOOL = `#!/bin/sh
echo "proxmox-boot-tool $*" >> /test/calls
if [ -e /test/boot-full ]; then echo "update-grub: /boot/grub/grub.cfg.new: No space left on device" >&2; exit 1; fi
case "$1 $2" in
  'kernel pin')
    [ -e "/boot/vmlinuz-$3" ] || { echo "E: no kernel image found in /boot for '$3', not setting default." >&2; exit 1; }
    if [ "\${4:-}" = --next-boot ]; then echo "$3" > /etc/kernel/next-boot-pin; else echo "$3" > /etc/kernel/proxmox-boot-pin; fi ;;
  'kernel unpin')
    rm -f /etc/kernel/next-boot-pin
    [ "\${3:-}" = --next-boot ] || rm -f /etc/kernel/proxmox-boot-pin ;;
  'refresh ') ;;
  *) echo "stand-in: $*" >&2; exit 2 ;;
esac
`;

const DPKG_QUERY = `#!/bin/sh
# dpkg-query -S /boot/vmlinuz-K: the package that ships it, as Proxmox names it.
[ "$1" = -S ] || exit 2
echo "proxmox-kernel-\${2#/boot/vmlinuz-}-signed: $2"
`;

export interface GuardRoot {
  root: string;
  /** Writes a file under the root (parents made). */
  write(path: string, content: string, mode?: number): Promise<void>;
  read(path: string): Promise<string | undefined>;
  remove(path: string): Promise<void>;
  /** A kernel in /boot and /lib/modules, with what the guard looks for when `good`. */
  kernel(
    release: string,
    parts: { headers?: boolean; dkms?: boolean; parms?: string[]; modules?: string[] },
  ): Promise<void>;
  /** Runs the guard (/guard in the root) with these arguments. */
  run(
    args: string[],
    env?: Record<string, string>,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Runs another script of the root (a hook where run-parts finds it). */
  runScript(
    path: string,
    args: string[],
    env?: Record<string, string>,
  ): Promise<{ code: number; stdout: string; stderr: string }>;
  /** The stand-in commands run so far, one per line. */
  calls(): Promise<string[]>;
  dispose(): Promise<void>;
}

export async function guardRoot(script: string, conf: string | undefined): Promise<GuardRoot> {
  const root = await mkdtemp(join(tmpdir(), 'igpu-guard-'));
  for (const dir of [
    'usr',
    'dev',
    'etc/kernel',
    'boot',
    'var/lib',
    'tmp',
    'lib/modules',
    'src',
    'test/modinfo',
    'shims',
  ])
    await mkdir(join(root, dir), { recursive: true });
  for (const [link, target] of [
    ['bin', 'usr/bin'],
    ['sbin', 'usr/sbin'],
    ['lib64', 'usr/lib64'],
    ['lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu'],
  ] as const)
    await symlink(target, join(root, link));
  const write = async (path: string, content: string, mode = 0o644) => {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
    await chmod(join(root, path), mode);
  };
  await write('/shims/modinfo', MODINFO, 0o755);
  await write('/shims/proxmox-boot-tool', PROXMOX_BOOT_TOOL, 0o755);
  await write('/shims/dpkg-query', DPKG_QUERY, 0o755);
  // dkms installed: the guard asks only that it is there (what it built is read from files).
  await write('/shims/dkms', '#!/bin/sh\nexit 0\n', 0o755);
  await write('/guard', script, 0o755);
  if (conf !== undefined) await write('/etc/igpu-split/kernel-guard.conf', conf);
  await write('/test/calls', '');
  const read = async (path: string) => {
    try {
      return await readFile(join(root, path), 'utf8');
    } catch {
      return undefined;
    }
  };
  const runScript: GuardRoot['runScript'] = (path, args, env = {}) => {
    // /usr/src of the root goes over the bound /usr's; all of it only in this namespace.
    const mounts = [
      'mount --bind /usr "$0/usr"',
      'mount -o remount,bind,ro "$0/usr"',
      'mount --bind "$0/src" "$0/usr/src"',
      'mount --rbind /dev "$0/dev"',
      'exec chroot "$0" /usr/bin/env -i PATH=/shims:/usr/sbin:/usr/bin:/sbin:/bin "$@"',
    ].join(' && ');
    const vars = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    return new Promise((resolve) => {
      execFile(
        'unshare',
        ['-m', '--propagation', 'private', 'sh', '-c', mounts, root, ...vars, '/bin/sh', path, ...args],
        (error, stdout, stderr) => {
          const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
          resolve({ code, stdout, stderr });
        },
      );
    });
  };
  return {
    root,
    write,
    read,
    remove: (path) => rm(join(root, path), { recursive: true, force: true }),
    async kernel(release, parts) {
      await write(`/boot/vmlinuz-${release}`, 'not a kernel\n');
      await mkdir(join(root, 'lib/modules', release), { recursive: true });
      if (parts.headers)
        await mkdir(join(root, 'lib/modules', release, 'build/include'), { recursive: true });
      if (parts.dkms) await write(`/lib/modules/${release}/updates/dkms/i915.ko`, '');
      if (parts.parms)
        await write(`/test/modinfo/${release}/i915`, parts.parms.map((p) => `${p}:x (uint)\n`).join(''));
      for (const module of parts.modules ?? []) await write(`/test/modinfo/${release}/${module}`, '');
    },
    run: (args, env = {}) => runScript('/guard', args, env),
    runScript,
    async calls() {
      return ((await read('/test/calls')) ?? '').split('\n').filter(Boolean);
    },
    dispose: () => rm(root, { recursive: true, force: true }),
  };
}
