// The demo lab's machines: captured trees copied into a temp folder, answering the few
// commands igpu-split runs the way the real machines change — update-grub and friends
// succeed, a reboot boots into the state the "after" capture shows (GVT-g live on a
// host; the new kernel with i915 on a guest) — and a talosctl that upgrades a node in
// memory. Nothing leaves this machine.

import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { CommandHandler, DirectoryHost } from '../access/directory-host.ts';
import type { CommandResult } from '../access/host.ts';
import type { Talosctl } from '../guest/talos/talosctl.ts';
import { HOST_COMMAND, UBUNTU_PACKAGE } from '../knowledge/packages.ts';
import { BOOT_ID } from '../linux/reboot.ts';

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
    if (command === 'systemctl reboot') {
      if (await exists(marker(host))) await boot(host, after, ['proc', 'sys', 'dev']);
      else await writeFile(host.under(BOOT_ID), `${randomUUID()}\n`);
      return ok();
    }
    return { code: 127, stdout: '', stderr: `demo guest: ${command}: not emulated` };
  };
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch (error) {
    // expected: ENOENT — the marker is not written yet
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return false;
  }
}

/** The Talos release the demo node runs. */
export const DEMO_TALOS_VERSION = 'v1.10.9';

/**
 * What `talosctl version --nodes <node>` prints: a client and a server block in the layout of
 * siderolabs/talos cmd/talosctl/cmd/talos/version.go and pkg/machinery/version/version.go
 * (versionTemplate) at v1.10.9; SHA, build date and Go version are the demo's own.
 */
export function talosctlVersionText(node: string, tag: string): string {
  const block = (t: string) =>
    `\tTag:         ${t}\n\tSHA:         demo\n\tBuilt:       \n\tGo version:  demo\n\tOS/Arch:     linux/amd64\n`;
  return `Client:\n${block(tag)}Server:\n\tNODE:        ${node}\n${block(tag)}\tEnabled:     RBAC\n`;
}

/** talosctl for one Talos node: no extensions until the upgrade, i915 and intel-ucode after. */
export function talosNode(stateFile: string): Talosctl {
  // The node's state lives in a file, so another process can drive the same node.
  return async (args) => {
    const upgraded = await exists(stateFile);
    const [verb] = args;
    if (verb === 'version') return ok(talosctlVersionText('10.0.0.6', DEMO_TALOS_VERSION));
    if (verb === 'upgrade') {
      await writeFile(stateFile, 'upgraded\n');
      return ok('watching nodes: [10.0.0.6]\n    * 10.0.0.6: post check passed\n');
    }
    if (verb === 'patch')
      return ok(
        'patched MachineConfigs.config.talos.dev/v1alpha1 at the node 10.0.0.6\nApplied configuration without a reboot\n',
      );
    if (verb === 'get' && args[1] === 'extensions') {
      const names = upgraded ? ['i915', 'intel-ucode'] : [];
      return ok(
        names
          .map(
            (name) =>
              `---\n${stringify({ node: '10.0.0.6', spec: { metadata: { name, version: '20250812' } } })}`,
          )
          .join(''),
      );
    }
    if (verb === 'ls')
      return ok(
        `NODE       NAME\n10.0.0.6   .\n${upgraded ? '10.0.0.6   by-path\n10.0.0.6   card0\n10.0.0.6   renderD128\n' : ''}`,
      );
    return { code: 1, stdout: '', stderr: `demo talosctl: ${args.join(' ')}: not emulated` };
  };
}
