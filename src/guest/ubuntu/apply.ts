// Applying the Ubuntu guest plan over SSH: install the kernel package (as root, through
// sudo when the login is not root), reboot into it (the cluster layer drains first),
// wait for a new boot, and read the facts again for verify. A failed install stops
// before the reboot and says what apt said; apt leaves dpkg consistent or tells
// `dpkg --configure -a`, which the error repeats.

import type { HostAccess } from '../../access/host.ts';
import { RefusedError, TargetError } from '../../core/errors.ts';
import { rebootAndWait } from '../../linux/reboot.ts';
import { gatherUbuntuFacts, type UbuntuGuestFacts } from './gather.ts';
import { INSTALL_COMMAND, KERNEL_PACKAGE, type UbuntuPlan } from './plan.ts';

export interface UbuntuApplyOptions {
  /** Opens a fresh connection to the guest (after its reboot). */
  reconnect: () => Promise<HostAccess>;
  rebootTimeoutMs?: number;
  pollMs?: number;
  installTimeoutMs?: number;
  /** Before the reboot: the cluster layer drains the node here. */
  beforeReboot?: () => Promise<void>;
  progress?: (line: string) => void;
}

export interface UbuntuApplyResult {
  /** The connection to use afterwards (a new one after a reboot). */
  guest: HostAccess;
  facts: UbuntuGuestFacts;
  installed: boolean;
  rebooted: boolean;
}

/** Logged in as root? (bash's EUID; a login shell without it counts as not root and uses sudo). */
async function isRoot(guest: HostAccess): Promise<boolean> {
  return (await guest.run('echo "$EUID"', { timeoutMs: 15_000 })).stdout.trim() === '0';
}

/** `command` as root: directly for root, else through `sudo -n` (never a password prompt). */
function rootCommand(root: boolean, command: string): string {
  return root ? command : `sudo -n sh -c '${command.replace(/'/g, `'\\''`)}'`;
}

export async function applyUbuntuPlan(
  guest: HostAccess,
  plan: UbuntuPlan,
  options: UbuntuApplyOptions,
): Promise<UbuntuApplyResult> {
  // A refused plan exits 1 wherever it is met (README, "Exit codes"), as `guest plan` does.
  if (plan.refused)
    throw new RefusedError(plan.refused, {
      target: guest.target,
      fix: 'use the Talos path for Talos nodes',
    });
  let current = guest;
  const root = plan.install || plan.reboot ? await isRoot(guest) : true;
  if (plan.install) {
    options.progress?.(`${guest.target}: installing ${KERNEL_PACKAGE}`);
    const result = await guest.run(rootCommand(root, INSTALL_COMMAND), {
      timeoutMs: options.installTimeoutMs ?? 30 * 60_000,
    });
    if (result.code !== 0) {
      const said = `${result.stderr}\n${result.stdout}`
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => /^(E:|W:|sudo:|dpkg)/.test(line))
        .slice(0, 2)
        .join(' ');
      throw new TargetError(
        `installing ${KERNEL_PACKAGE} failed (exit ${result.code})${said ? `: ${said}` : ''}; the guest was not rebooted`,
        {
          target: guest.target,
          fix: /sudo/.test(said)
            ? 'log in as root, or give this user passwordless sudo'
            : `fix apt on the guest (sources, network, disk space; \`dpkg --configure -a\` if apt says so), then run guest apply again`,
        },
      );
    }
  }
  if (plan.reboot) {
    options.progress?.(`${guest.target}: rebooting`);
    current = await rebootAndWait(guest, {
      reconnect: options.reconnect,
      timeoutMs: options.rebootTimeoutMs ?? 600_000,
      pollMs: options.pollMs,
      beforeReboot: options.beforeReboot,
      command: rootCommand(root, 'systemctl reboot'),
      fix: 'check the VM console in Proxmox; once it is up, run igpu-split guest verify (the install is done, only the check is left)',
    });
  }
  return {
    guest: current,
    facts: await gatherUbuntuFacts(current),
    installed: plan.install,
    rebooted: plan.reboot,
  };
}
