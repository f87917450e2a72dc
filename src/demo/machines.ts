// The demo lab's machines: captured trees copied into a temp folder, answering the few
// commands igpu-split runs the way the real machines change — update-grub and friends
// succeed, a reboot boots into the state the "after" capture shows (GVT-g live on a
// host; the new kernel with i915 on a guest) — and the talosctl stand-in of src/sim for
// the Talos node. Nothing leaves this machine.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CommandHandler, DirectoryHost } from '../access/directory-host.ts';
import type { CommandResult } from '../access/host.ts';
import { exists } from '../core/files.ts';
import type { Talosctl } from '../guest/talos/talosctl.ts';
import { HOST_COMMAND, UBUNTU_PACKAGE } from '../knowledge/packages.ts';
import { BOOT_ID } from '../linux/reboot.ts';
import { answerTalosctl } from '../sim/talosctl.ts';

const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });

/** `cp -a` (captured sysfs has links that point outside the capture, which fs.cp refuses). */
function overlay(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile('cp', ['-a', `${from}/.`, to], (error) => (error ? reject(error) : resolve())),
  );
}

/** Copies parts of the "after" capture over the machine: what it looks like once booted. */
async function boot(host: DirectoryHost, after: string, parts: string[]): Promise<void> {
  for (const part of parts) await overlay(join(after, part), host.under(part));
  await writeFile(
    host.under(BOOT_ID),
    `${randomUUID()}
`,
  );
}

/** Sources the GRUB files with this machine's /bin/sh, as apply asks the host's own shell to. */
function sourceGrub(host: DirectoryHost, script: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile('/bin/sh', ['-s', host.under('/etc')], (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(script);
  });
}

/** A Proxmox host: boot-loader tools succeed; a reboot makes `after`'s /proc and /sys live. */
export function proxmoxHost(after: string | undefined): CommandHandler {
  return async (command, host, stdin) => {
    if (command === '/bin/sh -s /etc') return sourceGrub(host, stdin ?? '');
    if ((Object.values(HOST_COMMAND) as string[]).includes(command)) return ok();
    if (command === 'systemctl reboot') {
      if (after) await boot(host, after, ['proc', 'sys']);
      else await writeFile(host.under(BOOT_ID), `${randomUUID()}\n`);
      return ok();
    }
    return { code: 127, stdout: '', stderr: `demo host: ${command}: not emulated` };
  };
}

/** An Ubuntu guest: apt-get installs `after`'s kernel and packages; the reboot boots it. */
export function ubuntuGuest(after: string): CommandHandler {
  // Kept on the machine's disk, so another process can drive the same machine.
  const marker = (host: DirectoryHost) => host.under('/var/lib/igpu-split-demo-installed');
  return async (command, host) => {
    if (command === 'echo "$EUID"') return ok('0\n');
    if (command.includes('apt-get install') && command.includes(UBUNTU_PACKAGE.kernel)) {
      await overlay(join(after, 'lib'), host.under('lib'));
      await overlay(join(after, 'var'), host.under('var'));
      await writeFile(marker(host), '');
      return ok('Setting up linux-generic (6.8.0-88.89) ...\n');
    }
    // The SR-IOV guest's steps are `&&` chains of file moves, the download, dpkg -i and the
    // boot refresh: the "after" tree the apt step laid down holds what dpkg and dkms leave.
    // Rollback's removal of the kernel guard is one `rm -f` when no update-grub follows.
    if (!command.includes('apt-get') && (command.includes(' && ') || command.startsWith('rm ')))
      return chain(host, command.split(' && '));
    if (command === 'systemctl reboot') {
      if (await exists(marker(host))) await boot(host, after, ['proc', 'sys', 'dev']);
      else await writeFile(host.under(BOOT_ID), `${randomUUID()}\n`);
      return ok();
    }
    return { code: 127, stdout: '', stderr: `demo guest: ${command}: not emulated` };
  };
}

/** One `&&` chain of the commands the guest's SR-IOV steps run, each answered on the tree. */
async function chain(host: DirectoryHost, commands: string[]): Promise<CommandResult> {
  for (const command of commands) {
    const [verb, ...args] = command.split(' ').filter((w) => w !== '-f' && w !== '-p' && w !== '-q');
    const path = (at: number) => host.under((args[at] ?? '').replace(/^'(.*)'$/, '$1'));
    if (verb === 'mkdir') await mkdir(path(0), { recursive: true });
    else if (verb === 'cp') await copyFile(path(0), path(1));
    else if (verb === 'mv') await rename(path(0), path(1));
    else if (verb === 'rm') for (const at of args.keys()) await rm(path(at), { force: true });
    else if (verb === 'chmod') await chmod(path(1), Number.parseInt(args[0] ?? '644', 8));
    // The demo never downloads: a placeholder stands for the release package.
    else if (verb === 'wget' && args[0] === '-O')
      await writeFile(path(1), 'igpu-split demo: not downloaded\n');
    else if (!['dpkg', 'update-grub', 'update-initramfs'].includes(verb ?? ''))
      return { code: 127, stdout: '', stderr: `demo guest: ${command}: not emulated` };
  }
  return ok();
}

/** The Talos release the demo node runs. */
export const DEMO_TALOS_VERSION = 'v1.10.9';

/** The demo's Talos node's address (its lab entry's `talos.node`). */
export const DEMO_TALOS_NODE = '10.0.0.6';

/** talosctl for the demo's Talos node, in this process (the playground runs the same as a program). */
export function talosNode(stateFile: string): Talosctl {
  return (args) => answerTalosctl({ address: DEMO_TALOS_NODE, version: DEMO_TALOS_VERSION, stateFile }, args);
}
