// Applying the Ubuntu guest plan over SSH: install the kernel package (as root, through
// sudo when the login is not root), reboot into it (the cluster layer drains first),
// wait for a new boot, and read the facts again for verify. A failed install stops
// before the reboot and says what apt said; apt leaves dpkg consistent or tells
// `dpkg --configure -a`, which the error repeats.

import { readFile } from 'node:fs/promises';
import type { HostAccess } from '../../access/host.ts';
import { RefusedError, TargetError } from '../../core/errors.ts';
import { buildsFor, describeRange } from '../../knowledge/i915-sriov-dkms.ts';
import { rebootAndWait } from '../../linux/reboot.ts';
import { gatherUbuntuFacts, type UbuntuGuestFacts } from './gather.ts';
import { INSTALL_COMMAND, KERNEL_PACKAGE, type UbuntuPlan } from './plan.ts';
import { nextGuestKernel, type UbuntuStep } from './sriov.ts';

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
export async function isRoot(guest: HostAccess): Promise<boolean> {
  return (await guest.run('echo "$EUID"', { timeoutMs: 15_000 })).stdout.trim() === '0';
}

/** `command` as root: directly for root, else through `sudo -n` (never a password prompt). */
export function rootCommand(root: boolean, command: string): string {
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
  if (plan.attachment.kind === 'vf') return applyVfSteps(guest, plan, options);
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

/** What a failed command said that helps: apt's and dpkg's E:/W: lines, sudo's, sha256sum's, wget's. */
function saidBy(result: { stdout: string; stderr: string }): string {
  return `${result.stderr}\n${result.stdout}`
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => /^(E:|W:|sudo:|dpkg|sha256sum|wget|Error!|.*FAILED)/.test(line))
    .slice(0, 2)
    .join(' ');
}

/**
 * The VF steps one by one, each atomic: a file goes to a temporary name and is renamed, a
 * package is checked before dpkg sees it. A failure stops there, says which steps were done,
 * and the guest still boots its previous command line: the next plan starts at the step
 * that failed (`apply --resume`).
 */
async function applyVfSteps(
  guest: HostAccess,
  plan: UbuntuPlan,
  options: UbuntuApplyOptions,
): Promise<UbuntuApplyResult> {
  const root = plan.steps.length > 0 ? await isRoot(guest) : true;
  const done: string[] = [];
  let current = guest;
  let rebooted = false;
  const fail = (step: UbuntuStep, why: string, fix: string): never => {
    throw new TargetError(
      `${step.id.split('/').pop()} failed: ${why}; ${done.length > 0 ? `done before it: ${done.join(', ')}` : 'nothing was changed'}; the guest still boots its previous command line`,
      { target: guest.target, fix },
    );
  };
  const run = async (step: UbuntuStep, command: string, timeoutMs = 10 * 60_000) => {
    const result = await current.run(rootCommand(root, command), { timeoutMs });
    if (result.code !== 0) {
      const said = saidBy(result);
      fail(
        step,
        `exit ${result.code}${said ? `: ${said}` : ''}`,
        /sudo/.test(said)
          ? 'log in as root, or give this user passwordless sudo'
          : 'fix what it said on the guest (apt sources, network, disk space, the package checksum), then run apply --resume',
      );
    }
  };
  for (const step of plan.steps) {
    const action = step.action;
    if (!action) continue;
    options.progress?.(`${guest.target}: ${step.description}`);
    if (action.kind === 'run') await run(step, action.command, action.timeoutMs);
    else if (action.kind === 'upload') {
      // To /var/tmp as the login user, then moved into place as root: no half file is ever at `to`.
      const staged = `/var/tmp/igpu-split-${process.pid}-${action.to.split('/').pop()}`;
      await current.writeFileAtomic(staged, await readFile(action.from), { mode: 0o644 });
      await run(
        step,
        `mkdir -p ${action.to.slice(0, action.to.lastIndexOf('/'))} && mv -f ${staged} ${action.to} && ${action.command}`,
        30 * 60_000,
      );
    } else if (action.kind === 'write') {
      const staged = `/var/tmp/igpu-split-${process.pid}-${action.path.split('/').pop()}`;
      await current.writeFileAtomic(staged, action.content, { mode: 0o644 });
      // The rename makes the file whole with its mode set; update-grub then writes grub.cfg
      // (itself via a temp file). /etc/igpu-split is ours to make.
      const folder = action.path.slice(0, action.path.lastIndexOf('/'));
      const mode = (action.mode ?? 0o644).toString(8).padStart(4, '0');
      await run(
        step,
        [
          `mkdir -p ${folder}`,
          `cp ${staged} ${action.path}.new`,
          `chmod ${mode} ${action.path}.new`,
          `mv -f ${action.path}.new ${action.path}`,
          `rm -f ${staged}`,
          ...(action.command ? [action.command] : []),
        ].join(' && '),
      );
    } else if (action.kind === 'check-built') {
      const facts = await gatherUbuntuFacts(current);
      const next = nextGuestKernel(facts);
      if (!facts.sriov.dkmsI915.includes(next))
        fail(
          step,
          buildsFor(action.pattern, next)
            ? `dkms installed no i915 for ${next}, the kernel the guest boots next`
            : `the guest boots ${next} next, outside i915-sriov-dkms ${action.release}'s kernels ${describeRange(action.pattern)}`,
          buildsFor(action.pattern, next)
            ? `read /var/lib/dkms/i915-sriov-dkms/${action.release}/build/make.log on the guest (headers of ${next} installed?), then run apply --resume`
            : `name a release whose range holds ${next} in sriov.guestDriver, then plan again`,
        );
    } else {
      current = await rebootAndWait(current, {
        reconnect: options.reconnect,
        timeoutMs: options.rebootTimeoutMs ?? 600_000,
        pollMs: options.pollMs,
        beforeReboot: options.beforeReboot,
        command: rootCommand(root, 'systemctl reboot'),
        fix: 'check the VM console in Proxmox; once it is up, run igpu-split guest verify (every step before the reboot is done)',
      });
      rebooted = true;
    }
    done.push(step.id.split('/').pop() as string);
  }
  return { guest: current, facts: await gatherUbuntuFacts(current), installed: plan.install, rebooted };
}
