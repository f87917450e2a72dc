// A real OpenSSH server per fake host, for integration tests, in a network namespace
// of its own (its own address, reached over a veth pair). It listens on two ports: one
// serves a captured tree as the host's root through a chroot (SFTP only, so /proc and
// /sys are the capture's; with `shell` or `system` also commands), the other is a plain
// session for running commands and writing files. Needs root, openssh-server and
// iproute2 (.ci/run installs them); outside CI a missing piece skips the test with the reason.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { GRUB_CMDLINE_SCRIPT } from '../../src/host/boot/grub-defaults.ts';

const SSHD = '/usr/sbin/sshd';
// sshd's ChrootDirectory must be root-owned all the way up and not writable by others,
// which rules out /tmp; /run is root's own.
const BASE = '/run/igpu-split-test';

export interface TestSshd {
  host: string;
  /** Port whose sessions see `tree` as / (SFTP only, or also commands with `shell`). */
  treePort: number;
  /** Port with an ordinary root session (commands, writes). */
  shellPort: number;
  identityFile: string;
  knownHostsFile: string;
  hostKeyPub: string;
  /** Scratch folder on the "host" for write tests. */
  scratch: string;
  /** The chroot: the fake host's / as files on this machine. */
  root: string;
  /** Runs a command in the sshd's own mount and network namespaces (e.g. to mount there). */
  inHost(command: string[]): void;
  stop(): Promise<void>;
}

/** Returns false (after t.skip) when this machine cannot run the test sshd outside CI. */
export function sshdAvailable(t: TestContext): boolean {
  const missing = !existsSync(SSHD)
    ? `${SSHD} is missing (apt-get install openssh-server)`
    : !existsSync('/usr/sbin/ip') && !existsSync('/usr/bin/ip') && !existsSync('/sbin/ip')
      ? 'ip is missing (apt-get install iproute2)'
      : process.getuid?.() !== 0
        ? 'the test sshd needs root for its chroot'
        : undefined;
  if (!missing) return true;
  if (process.env.CI) throw new Error(`CI must run the SSH integration tests: ${missing}`);
  t.skip(missing);
  return false;
}

/**
 * Each fake host lives in a network namespace of its own, reached over a veth pair:
 * 10.254.<P>.<4n+1> here, 10.254.<P>.<4n+2> inside, where P comes from this process's
 * pid (so test files running side by side get different subnets) and n counts hosts.
 * Traffic never leaves the machine. Namespaces of test processes that died are removed.
 */
let hostCounter = 0;
async function hostNetwork(): Promise<{ namespace: string; address: string }> {
  for (const name of execFileSync('ip', ['netns', 'list']).toString().split('\n')) {
    const pid = /^igs-(\d+)-\d+/.exec(name)?.[1];
    if (pid && !alive(Number(pid))) execFileSync('ip', ['netns', 'del', name.split(' ')[0] as string]);
  }
  const n = hostCounter++;
  if (n >= 63) throw new Error('too many fake hosts in one test process');
  const subnet = `10.254.${(process.pid % 250) + 1}`;
  const namespace = `igs-${process.pid}-${n}`;
  const outside = `igs${process.pid % 100000}h${n}`.slice(0, 15);
  const ip = (...args: string[]) => execFileSync('ip', args);
  ip('netns', 'add', namespace);
  ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace);
  ip('addr', 'add', `${subnet}.${4 * n + 1}/30`, 'dev', outside);
  ip('link', 'set', outside, 'up');
  ip('-n', namespace, 'addr', 'add', `${subnet}.${4 * n + 2}/30`, 'dev', 'eth0');
  ip('-n', namespace, 'link', 'set', 'eth0', 'up');
  ip('-n', namespace, 'link', 'set', 'lo', 'up');
  return { namespace, address: `${subnet}.${4 * n + 2}` };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitForPort(
  host: string,
  port: number,
  child: ChildProcess,
  log: () => string,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`sshd exited with ${child.exitCode}: ${log()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`sshd did not listen on ${port}: ${log()}`);
}

export async function keygen(file: string): Promise<void> {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'igpu-split-test', '-f', file]);
}

/** Commands a fake Proxmox host answers with: each records its call and can be told to fail. */
const STAND_INS = ['update-grub', 'proxmox-boot-tool', 'update-initramfs'];
export const CALL_LOG = '/var/log/igpu-split-test-calls';

/**
 * Makes the chroot able to run commands: the machine's bash and dash with their
 * libraries, and recording stand-ins for the boot loader tools. A stand-in fails
 * (exit 1) while /etc/igpu-split-test-fail-<name> exists.
 */
async function addShell(root: string): Promise<void> {
  await copyBinaries(root, ['/bin/bash', '/bin/dash']);
  await symlink('dash', join(root, 'bin/sh'));
  await mkdir(join(root, 'usr/sbin'), { recursive: true });
  await mkdir(join(root, 'var/log'), { recursive: true });
  await mkdir(join(root, 'root'), { recursive: true, mode: 0o700 });
  await writeStandIns(root, 'usr/sbin');
}

/**
 * Recording stand-ins for the boot tools, in `dir` of the fake host. `systemctl reboot`
 * "boots" the host: a new boot id and the command line the boot loader configuration now
 * gives; /etc/igpu-split-test-no-reboot makes it never come back.
 */
async function writeStandIns(root: string, dir: string): Promise<void> {
  await mkdir(join(root, dir), { recursive: true });
  await mkdir(join(root, 'var/lib'), { recursive: true });
  await writeFile(join(root, 'var/lib/igpu-split-test-grub-cmdline'), GRUB_CMDLINE_SCRIPT);
  await writeFile(
    join(root, dir, 'systemctl'),
    [
      '#!/bin/sh',
      `echo "systemctl $*" >> ${CALL_LOG}`,
      '[ "$1" = reboot ] || exit 0',
      '[ -e /etc/igpu-split-test-no-reboot ] && exit 0',
      'if [ -e /etc/kernel/proxmox-boot-uuids ]; then read -r line < /etc/kernel/cmdline',
      'else line=$(/bin/sh /var/lib/igpu-split-test-grub-cmdline /etc); fi',
      `printf 'BOOT_IMAGE=/boot/vmlinuz-test ro %s\\n' "$line" > /proc/cmdline`,
      'echo "booted-$$" > /proc/sys/kernel/random/boot_id',
      // Modules configured to load at boot are loaded after it.
      'for f in /etc/modules-load.d/*.conf; do [ -e "$f" ] || continue; while read -r m; do case "$m" in ""|"#"*) ;; *) echo "$m 16384 0 - Live 0x0000000000000000" >> /proc/modules ;; esac; done < "$f"; done',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  for (const name of STAND_INS) {
    const script = `#!/bin/sh\necho "${name} $*" >> ${CALL_LOG}\n[ -e /etc/igpu-split-test-fail-${name} ] && { echo "${name}: simulated failure" >&2; exit 1; }\nexit 0\n`;
    await writeFile(join(root, dir, name), script, { mode: 0o755 });
  }
}

/**
 * A fuller fake host for peers that need a real system (Ansible needs python3 and
 * coreutils): the machine's /usr bind-mounted read-only, /bin, /lib as links into it,
 * device nodes, /tmp, and the stand-ins in /sbin (nothing in /usr/sbin shadows them).
 * Returns the mount to undo.
 */
async function addSystem(root: string): Promise<string> {
  const usr = join(root, 'usr');
  await mkdir(usr, { recursive: true });
  execFileSync('mount', ['--bind', '/usr', usr]);
  execFileSync('mount', ['-o', 'remount,bind,ro', usr]);
  // Safety: the bind mount must be read-only before anything could delete through it.
  const probe = await writeFile(join(usr, '.igpu-split-write-probe'), '').then(
    () => true,
    () => false,
  );
  if (probe) {
    execFileSync('umount', [usr]);
    throw new Error('could not make the /usr bind mount read-only');
  }
  for (const link of ['bin', 'lib', 'lib64']) await symlink(`usr/${link}`, join(root, link));
  await mkdir(join(root, 'dev'), { recursive: true });
  for (const [name, minor] of [
    ['null', 3],
    ['zero', 5],
    ['random', 8],
    ['urandom', 9],
  ] as const) {
    execFileSync('mknod', ['-m', '666', join(root, 'dev', name), 'c', '1', String(minor)]);
  }
  await mkdir(join(root, 'tmp'), { recursive: true, mode: 0o1777 });
  await chmod(join(root, 'tmp'), 0o1777);
  await mkdir(join(root, 'root'), { recursive: true, mode: 0o700 });
  await mkdir(join(root, 'var/lib'), { recursive: true });
  await mkdir(join(root, 'var/log'), { recursive: true });
  await writeStandIns(root, 'sbin');
  return usr;
}

/** Where a guest's stand-ins find the few coreutils they use (copied with their libraries). */
export const TEST_TOOLS = '/usr/lib/igpu-split-test/bin';

async function copyBinaries(root: string, binaries: string[], into?: string): Promise<void> {
  const libraries = execFileSync('ldd', binaries)
    .toString()
    .split('\n')
    .map((line) => /(\/\S+\.so[\S]*)/.exec(line)?.[1])
    .filter((path): path is string => path !== undefined);
  for (const file of binaries) {
    const target = into ? join(root, into, file.split('/').pop() as string) : join(root, file);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(file, target);
    await chmod(target, 0o755);
  }
  for (const file of new Set(libraries)) {
    await mkdir(join(root, dirname(file)), { recursive: true });
    await copyFile(file, join(root, file));
    // The dynamic loader is among them, and the kernel only runs it when it is executable.
    await chmod(join(root, file), 0o755);
  }
}

export interface SshdOptions {
  shell?: boolean;
  system?: boolean;
  /** cp, ln, mkdir, rm in TEST_TOOLS, for stand-ins that change the tree. */
  tools?: boolean;
  /** Extra or replacing stand-ins: name → script, written to /usr/sbin. */
  standIns?: Record<string, string>;
}

export async function startSshd(tree: string, options: SshdOptions = {}): Promise<TestSshd> {
  await mkdir(BASE, { recursive: true, mode: 0o755 });
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(BASE, 'host-'));
  await chmod(dir, 0o755);
  const root = join(dir, 'root');
  await cp(tree, root, { recursive: true, verbatimSymlinks: true });
  await chmod(root, 0o755);
  if (options.shell) await addShell(root);
  if (options.tools) await copyBinaries(root, ['/bin/cp', '/bin/ln', '/bin/mkdir', '/bin/rm'], TEST_TOOLS);
  for (const [name, script] of Object.entries(options.standIns ?? {})) {
    await mkdir(join(root, 'usr/sbin'), { recursive: true });
    await writeFile(join(root, 'usr/sbin', name), script, { mode: 0o755 });
  }
  const mount = options.system ? await addSystem(root) : undefined;
  const keys = join(dir, 'keys');
  const scratch = join(dir, 'scratch');
  await mkdir(keys, { mode: 0o700 });
  await mkdir(scratch);
  await keygen(join(keys, 'host_ed25519'));
  await keygen(join(keys, 'client_ed25519'));
  await writeFile(join(keys, 'authorized_keys'), await readFile(join(keys, 'client_ed25519.pub')));
  const net = await hostNetwork();
  const [treePort, shellPort] = [2201, 2202];
  const config = join(keys, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${treePort}`,
      `Port ${shellPort}`,
      `ListenAddress ${net.address}`,
      `HostKey ${join(keys, 'host_ed25519')}`,
      `PidFile ${join(keys, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(keys, 'authorized_keys')}`,
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'StrictModes no',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      `Match LocalPort ${treePort}`,
      `  ChrootDirectory ${root}`,
      ...(options.shell || options.system ? [] : ['  ForceCommand internal-sftp']),
      '',
    ].join('\n'),
  );
  const child = spawn('ip', ['netns', 'exec', net.namespace, SSHD, '-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  await waitForPort(net.address, treePort, child, () => stderr);
  await waitForPort(net.address, shellPort, child, () => stderr);
  const hostKeyPub = (await readFile(join(keys, 'host_ed25519.pub'), 'utf8')).trim();
  const [keyType, keyData] = hostKeyPub.split(' ');
  const knownHostsFile = join(keys, 'known_hosts');
  await writeFile(
    knownHostsFile,
    `[${net.address}]:${treePort} ${keyType} ${keyData}\n[${net.address}]:${shellPort} ${keyType} ${keyData}\n`,
  );
  return {
    host: net.address,
    treePort,
    shellPort,
    identityFile: join(keys, 'client_ed25519'),
    knownHostsFile,
    hostKeyPub,
    scratch,
    root,
    inHost(command: string[]) {
      execFileSync('nsenter', ['-t', String(child.pid), '-m', '-n', ...command]);
    },
    async stop() {
      child.kill('SIGTERM');
      if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
      execFileSync('ip', ['netns', 'del', net.namespace]);
      // Never delete through a mount: only remove the folder once /usr is unmounted.
      if (mount) execFileSync('umount', [mount]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
