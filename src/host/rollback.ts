// Host layer `rollback`: removes exactly what apply added, from the host's state file.
// Files we created are deleted; /etc/kernel/cmdline loses only the parameters we
// appended (the user's own, even the same ones typed earlier, stay); any other file we
// changed gets its backup back. Then the boot loader (and initramfs) are refreshed once.

import { type HostAccess, isMissing } from '../access/host.ts';
import { TargetError } from '../core/errors.ts';
import { HOST_COMMAND } from '../knowledge/packages.ts';
import { KERNEL_GUARD_HOOK, KERNEL_GUARD_STATE } from '../linux/kernel-guard/script.ts';
import { parseGuardRecord } from '../linux/kernel-guard/state.ts';
import { PATHS } from '../linux/paths.ts';
import { type HostState, LOCK_FILE, lock, readState, STATE_FILE } from './apply.ts';
import { parseParams } from './boot/kernel-params.ts';
import { releasePinCommands } from './guard/plan.ts';
import { GRUB_DROPIN, MODPROBE_CONF } from './plan.ts';
import { INITRAMFS_MODULES, withoutInitramfsDriver } from './sriov/files.ts';

const KERNEL_CMDLINE = '/etc/kernel/cmdline';

export interface RollbackResult {
  /** Files removed or rewritten. */
  changed: string[];
  /** Commands run to refresh the boot loader and initramfs. */
  refreshed: string[];
  /** Parameters or modules of ours the running system still has: a reboot drops them. */
  rebootNeeded: boolean;
}

export async function rollbackHost(host: HostAccess): Promise<RollbackResult> {
  const existing = await readState(host);
  if (Object.keys(existing.files).length === 0 && (existing.packages ?? []).length === 0)
    return { changed: [], refreshed: [], rebootNeeded: false };
  await lock(host, 'igpu-split host rollback');
  try {
    const state = await readState(host);
    const changed: string[] = [];
    // The guard's pin goes before the guard: the host boots its newest kernel again.
    const released = state.files[KERNEL_GUARD_HOOK] ? await releaseGuardPin(host) : [];
    for (const [path, record] of Object.entries(state.files)) {
      if (path === KERNEL_CMDLINE) {
        const line = (await host.readFile(path)).toString().trim();
        await host.writeFileAtomic(path, `${withoutOurs(line, state.params)}\n`);
      } else if (path === INITRAMFS_MODULES && !record.created) {
        // The user's file: only our marked line goes (their later edits stay).
        const content = (await host.readFile(path)).toString();
        await host.writeFileAtomic(path, withoutInitramfsDriver(content));
      } else if (record.created) {
        await host.remove(path);
      } else if (record.backup) {
        await host.writeFileAtomic(path, await host.readFile(record.backup));
      }
      changed.push(path);
    }
    const refresh: string[] = [...released];
    if (state.files[KERNEL_CMDLINE]) refresh.push(HOST_COMMAND.proxmoxBootToolRefresh);
    if (state.files[GRUB_DROPIN]) refresh.push(HOST_COMMAND.updateGrub);
    // Packages go before the initramfs is rebuilt: the rebuild must not pick up their i915 again.
    const purged = await purgePackages(host, state.packages ?? []);
    if (state.files[MODPROBE_CONF] || state.files[INITRAMFS_MODULES] || purged.length > 0)
      refresh.push(HOST_COMMAND.updateInitramfsAll);
    for (const command of refresh) {
      const result = await host.run(command, { timeoutMs: 300_000 });
      if (result.code !== 0) {
        throw new TargetError(`${command} failed (exit ${result.code}) after the files were restored`, {
          target: host.target,
          fix: `run ${command} on the host by hand before rebooting`,
        });
      }
    }
    const running = await readLive(host, '/proc/cmdline');
    const modules = await readLive(host, '/proc/modules');
    const live = new Set(parseParams(running ?? '').map((p) => p.raw));
    // What cannot be read cannot be shown gone: a reboot is then said to be needed.
    const rebootNeeded =
      (running === undefined && state.params.length > 0) ||
      (modules === undefined && state.modules.length > 0) ||
      state.params.some((p) => live.has(p)) ||
      state.modules.some((m) => new RegExp(`^${m} `, 'm').test(modules ?? ''));
    await host.remove(STATE_FILE);
    return { changed, refreshed: refresh, rebootNeeded };
  } finally {
    await host.remove(LOCK_FILE);
  }
}

/**
 * The commands that release the guard's pin (run with the refreshes, first), and its record
 * removed: after rollback nothing of the guard is left.
 */
async function releaseGuardPin(host: HostAccess): Promise<string[]> {
  const [record, pinned, nextBootPin] = await Promise.all([
    readLive(host, KERNEL_GUARD_STATE),
    readLive(host, PATHS.kernelPin),
    readLive(host, PATHS.kernelNextBootPin),
  ]);
  const firstLine = (text: string | undefined) => text?.split('\n')[0]?.trim() || undefined;
  const commands = releasePinCommands(record === undefined ? undefined : parseGuardRecord(record), {
    pinned: firstLine(pinned),
    nextBootPin: firstLine(nextBootPin),
  });
  await host.remove(KERNEL_GUARD_STATE);
  return commands;
}

/** Purges the packages we installed (dkms removes the module it built with its package). */
async function purgePackages(host: HostAccess, packages: string[]): Promise<string[]> {
  if (packages.length === 0) return [];
  // Debian policy §5.6.1: package names are lower case letters, digits, + - and . (a state file edited by hand is not run).
  const odd = packages.find((name) => !/^[a-z0-9][a-z0-9+.-]+$/.test(name));
  if (odd !== undefined)
    throw new TargetError(`${STATE_FILE} lists "${odd}" as a package, which is no Debian package name`, {
      target: host.target,
      fix: `repair ${STATE_FILE} (its packages list), then run host rollback again`,
    });
  const result = await host.run(`DEBIAN_FRONTEND=noninteractive apt-get purge -y -q ${packages.join(' ')}`, {
    timeoutMs: 600_000,
  });
  if (result.code !== 0)
    throw new TargetError(`apt-get purge ${packages.join(' ')} failed (exit ${result.code})`, {
      target: host.target,
      fix: `remove them by hand (apt-get purge ${packages.join(' ')}), then run host rollback again`,
    });
  return packages;
}

/** Drops the last occurrence of each of our parameters: apply appended them at the end. */
function withoutOurs(line: string, ours: HostState['params']): string {
  const words = parseParams(line).map((p) => p.raw);
  for (const param of ours) {
    const at = words.lastIndexOf(param);
    if (at >= 0) words.splice(at, 1);
  }
  return words.join(' ');
}

/** A file of the running system, or undefined where the host has none (a captured tree without /proc). */
async function readLive(host: HostAccess, path: string): Promise<string | undefined> {
  try {
    return (await host.readFile(path)).toString();
  } catch (error) {
    // expected: a missing file (isMissing) — unknown; the rest is thrown.
    if (isMissing(error)) return undefined;
    throw error;
  }
}
