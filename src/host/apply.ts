// Host layer `apply`: carries out a plan's file and command steps on one host, safely.
//
// - One run per host at a time: a lock file created exclusively under /var/lib/igpu-split.
// - Every file we change is backed up first (root-only, under /var/lib/igpu-split/backups/<run>/),
//   then written atomically (temp, fsync, rename, keeping mode and owner).
// - Before the boot loader is refreshed, the result is checked the way its consumer reads
//   it: the GRUB files are sourced by the host's /bin/sh exactly as grub-mkconfig does,
//   /etc/kernel/cmdline must still be one line. A failed check or command restores every
//   file from its backup and stops.
// - A state file records what is ours (files we created, parameters and modules we added),
//   so later runs and rollback touch only that.
// - Reboots are not done here: the plan's reboot step is reported; the engine drains first.

import type { z } from 'zod';
import { type HostAccess, HostError, isMissing } from '../access/host.ts';
import { RefusedError, TargetError } from '../core/errors.ts';
import { clip } from '../core/text.ts';
import { DKMS_PACKAGE } from '../knowledge/i915-sriov-dkms.ts';
import { GRUB_CMDLINE_SCRIPT } from './boot/grub-defaults.ts';
import { planParams } from './boot/kernel-params.ts';
import type { HostPlan, HostStep } from './plan.ts';
import { GRUB_DROPIN } from './plan.ts';
import { checkDriverBuilt, installDriver } from './sriov/install.ts';
import type { DriverInstall } from './sriov/plan.ts';
import type { HostStateSchema } from './state-schema.ts';

export const STATE_DIR = '/var/lib/igpu-split';
export const LOCK_FILE = `${STATE_DIR}/lock`;
export const STATE_FILE = `${STATE_DIR}/state.json`;

/**
 * The state file's format, its top-level `format` key. 1: what igpu-split wrote before the
 * key existed (d5cfd90 and earlier: `"version": 1`, no `format`); 2: the same record with
 * `format` instead of `version`. Every format up to ours is read; a newer one is refused.
 */
export const HOST_STATE_FORMAT = 2;

export type HostState = Omit<z.output<typeof HostStateSchema>, 'format' | 'version'> & {
  format: typeof HOST_STATE_FORMAT;
};

export interface ApplyOptions {
  /** Allow steps that override a value the user set. */
  force?: boolean;
  /** Names this run's backup folder; defaults to the current time. */
  runId?: string;
  /** Resuming an interrupted run: the host lock it left is taken over (only one naming `lockOwner`). */
  takeOverLock?: boolean;
  /** Who takes the lock (the lab's runs name themselves, so a resume takes over only its own). */
  lockOwner?: string;
  /** Reads a driver package the lab names as a file on this machine (tests give their own). */
  readLocal?: (path: string) => Promise<Buffer>;
}

export interface ApplyResult {
  /** Ids of the steps carried out. */
  done: string[];
  /** A step only the user can take (a reboot at the console): apply stopped before it. */
  manual?: { reason: string; commands: string[] };
  /** The reboot the plan needs, left to the caller (and its drain). */
  rebootNeeded: boolean;
  backupDir: string | undefined;
}

/** Why the plan may not be applied as it stands (exit 1), or undefined. */
export function hostPlanRefusal(plan: HostPlan, options: { force?: boolean } = {}): RefusedError | undefined {
  if (plan.unsupported)
    return new RefusedError(plan.unsupported, {
      target: plan.target,
      fix: 'see igpu-split doctor for what this host can do',
    });
  if (plan.problems.length > 0)
    return new RefusedError(`the plan has problems: ${plan.problems.join('; ')}`, {
      target: plan.target,
      fix: 'resolve them (igpu-split host plan lists them), then apply again',
    });
  if (plan.steps.some((s) => s.needsForce) && !options.force) {
    const overrides = plan.params.conflicts.map((c) => `${c.have} → ${c.want}`).join(', ');
    const kernel = plan.forceReasons ?? [];
    if (kernel.length > 0)
      return new RefusedError(
        `the host would reboot into a kernel that loses the split: ${kernel.join('; ')}`,
        {
          target: plan.target,
          fix: 'fix that first (the plan says how), or rerun with --force to reboot anyway',
        },
      );
    return new RefusedError(`the plan overrides values you set (${overrides})`, {
      target: plan.target,
      fix: 'rerun with --force to override them, or change them yourself',
    });
  }
  return undefined;
}

export async function applyHostPlan(
  host: HostAccess,
  plan: HostPlan,
  options: ApplyOptions = {},
): Promise<ApplyResult> {
  const refused = hostPlanRefusal(plan, options);
  if (refused) throw refused;
  const { installs, work, manual } = stepsByKind(plan);
  // With a manual reboot ahead (MOK enrolment at the console), the reboot is the user's.
  const rebootNeeded = plan.reboot && manual === undefined;
  // An interrupted run may have written our files and stopped before refreshing the boot
  // loader: its state says so, and this run refreshes (the plan sees nothing left to write).
  const pending = (await readState(host)).refreshPending ?? [];
  if ([...work, ...pending, ...installs].length === 0)
    return { done: [], rebootNeeded, backupDir: undefined, ...withManual(manual) };

  await host.makeDir(STATE_DIR, 0o700);
  await lock(host, options.lockOwner ?? 'igpu-split host apply', options.takeOverLock === true);
  const runId = options.runId ?? new Date().toISOString().replace(/[:.]/g, '-');
  const backupDir = `${STATE_DIR}/backups/${runId}`;
  const originals = new Map<string, Buffer | undefined>();
  const done: string[] = [];
  const refreshed: string[] = [];
  try {
    // The driver first: if it cannot be installed or does not build for the kernel the host
    // boots next, nothing of the boot configuration has changed yet.
    await installDrivers(host, plan, installs, done, options.readLocal);
    const state = await readState(host);
    const before = structuredClone(state);
    const commands = [
      ...new Set([
        ...(state.refreshPending ?? []),
        ...work.filter((s) => s.command).map((s) => s.command as string),
      ]),
    ];
    try {
      // What is ours is recorded before each file is written (an intent log), so a run
      // killed between two writes still knows every file, parameter and pending refresh.
      state.refreshPending = commands;
      state.params = [
        ...new Set([...state.params, ...plan.params.add, ...plan.params.conflicts.map((c) => c.want)]),
      ];
      for (const step of work.filter((s) => s.write)) {
        await writeStep(host, step, backupDir, originals, state);
        done.push(step.id);
      }
      await checkResult(host, plan, state);
      await saveState(host, state);
      for (const command of commands) {
        const step = work.find((s) => s.command === command) ?? {
          id: `host/${host.target}/refresh`,
          command,
        };
        const result = await host.run(command, { timeoutMs: 300_000 });
        if (result.code !== 0) {
          throw new TargetError(
            `${step.command} failed (exit ${result.code}): ${lastLine(result.stderr || result.stdout)}`,
            {
              target: host.target,
              fix: 'the files were restored; fix the cause and apply again',
            },
          );
        }
        done.push(step.id);
        refreshed.push(step.command as string);
      }
      delete state.refreshPending;
    } catch (error) {
      // expected: any failure — the files are restored, then it is rethrown as a TargetError
      const restored = await restore(host, originals).then(
        () => true,
        // expected: anything — a restore that fails is reported below as "could not be restored", with the first error
        () => false,
      );
      // A refresh that already ran (update-grub before a failing update-initramfs) saw our
      // files: run it again so the boot configuration matches the restored ones.
      if (restored) {
        // expected: anything — best-effort on top of a failure already being reported, which says the files were restored
        for (const command of refreshed)
          await host.run(command, { timeoutMs: 300_000 }).catch(() => undefined);
        // Nothing of this run is left on the host: neither is it in the state.
        // expected: anything — best-effort; the failure being reported is the one that matters, and resume reads the state again
        await saveState(host, before).catch(() => undefined);
      }
      if (!restored) {
        // The connection itself is gone: nothing could be put back, nothing was refreshed
        // after the failure; the boot configuration still is the one before this run unless
        // a refresh had already run.
        throw new TargetError(
          `applying stopped and the files could not be restored: ${error instanceof Error ? error.message : String(error)}`,
          {
            target: host.target,
            fix: `the host keeps every original in ${backupDir}; once it is reachable, igpu-split apply --resume finishes the change (or host rollback undoes it)`,
            cause: error,
          },
        );
      }
      if (error instanceof TargetError) throw error;
      throw new TargetError(`applying stopped: ${error instanceof Error ? error.message : String(error)}`, {
        target: host.target,
        fix: 'the files were restored; make room or make the file system writable, then apply again',
        cause: error,
      });
    }
    await saveState(host, state);
    return {
      done,
      rebootNeeded,
      backupDir: originals.size > 0 ? backupDir : undefined,
      ...withManual(manual),
    };
  } finally {
    // expected: anything — over a connection that just died this fails too; the lock stays, and a resumed run takes it over.
    await host.remove(LOCK_FILE).catch(() => undefined);
  }
}

/** The plan's steps by what apply does with them: packages, files and commands, the user's own step. */
function stepsByKind(plan: HostPlan) {
  return {
    installs: plan.steps.filter((s) => s.install),
    work: plan.steps.filter(
      (s) => !s.install && !s.manual && (s.write || (s.command && !s.disturbs.includes('host-reboot'))),
    ),
    manual: plan.steps.find((s) => s.manual)?.manual,
  };
}

const withManual = (manual: ApplyResult['manual']) => (manual ? { manual } : {});

/** The driver packages, each recorded in the state before apt runs (an intent log): a run killed mid-install still knows what rollback removes. */
async function installDrivers(
  host: HostAccess,
  plan: HostPlan,
  installs: HostStep[],
  done: string[],
  readLocal: ApplyOptions['readLocal'],
): Promise<void> {
  for (const step of installs) {
    const install = step.install as DriverInstall;
    const intent = await readState(host);
    intent.packages = [
      ...new Set([
        ...(intent.packages ?? []),
        ...install.packages,
        ...(install.release ? [DKMS_PACKAGE] : []),
      ]),
    ];
    await saveState(host, intent);
    await installDriver(host, install, readLocal);
    done.push(step.id);
  }
  if (installs.length > 0 && plan.sriov) await checkDriverBuilt(host, plan.sriov);
}

/**
 * Takes the host's lock. `takeOver` is for a run that resumes an interrupted one of the
 * same lab (its journal says so): the lock that run left is removed first.
 */
/**
 * Takes the host's lock, naming its owner. With `takeOver` (a resumed lab run), a lock
 * the same owner left behind is removed first; anyone else's is never touched.
 */
export async function lock(host: HostAccess, owner = 'igpu-split', takeOver = false): Promise<void> {
  const holder = async () =>
    host
      .readFile(LOCK_FILE)
      .then((b) => b.toString().trim())
      // expected: any read failure — the holder is shown as unknown in the refusal
      .catch(() => 'unknown');
  const take = () =>
    host.createExclusive(LOCK_FILE, `${JSON.stringify({ since: new Date().toISOString(), owner })}\n`, 0o600);
  try {
    await take();
  } catch (error) {
    // expected: EEXIST — someone holds the lock; anything else (a lost connection, a read-only tree) is rethrown
    if (!(error instanceof HostError && error.code === 'EEXIST')) throw error;
    const held = await holder();
    const heldBy = (() => {
      try {
        return (JSON.parse(held) as { owner?: string }).owner;
      } catch (parseError) {
        // expected: SyntaxError — a lock written by hand or by an older version names no owner
        if (!(parseError instanceof SyntaxError)) throw parseError;
        return undefined;
      }
    })();
    if (takeOver && heldBy === owner) {
      await host.remove(LOCK_FILE);
      await take();
      return;
    }
    throw new TargetError(`another igpu-split run holds ${LOCK_FILE} (${held})`, {
      target: host.target,
      fix: `wait for it to finish; if none is running, remove ${LOCK_FILE} on the host`,
      cause: error,
    });
  }
}

export async function readState(host: HostAccess): Promise<HostState> {
  let text: string;
  try {
    text = (await host.readFile(STATE_FILE)).toString();
  } catch (error) {
    // expected: a missing file (isMissing) — no apply ran yet; the rest is thrown, named.
    if (!isMissing(error))
      throw new TargetError(`cannot read ${STATE_FILE}`, { target: host.target, cause: error });
    return { format: HOST_STATE_FORMAT, files: {}, params: [], modules: [], updatedAt: '' };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    // expected: SyntaxError — not JSON: thrown, named.
    throw new TargetError(`cannot read ${STATE_FILE}`, { target: host.target, cause: error });
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (typeof format === 'number' && format > HOST_STATE_FORMAT)
    throw new TargetError(
      `${STATE_FILE} was written by a newer igpu-split ("format": ${format}; this one reads up to ${HOST_STATE_FORMAT})`,
      {
        target: host.target,
        fix: 'apply or roll back this host with the igpu-split that wrote it (or a newer one)',
      },
    );
  // Loaded only when there is a state file to read: a first apply never loads zod.
  const { HostStateSchema } = await import('./state-schema.ts');
  const parsed = HostStateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new TargetError(
      `cannot read ${STATE_FILE}: damaged (${clip(issue?.path.join('.') || 'the whole file', 80)}: ${issue?.message ?? 'unreadable'})`,
      {
        target: host.target,
        fix: `repair it (the originals of the files it lists are under ${STATE_DIR}/backups), or remove it: then igpu-split no longer knows what it changed on this host`,
      },
    );
  }
  // Any earlier format is the same record: it is written back as ours (the format first,
  // for whoever opens the file).
  const { format: _format, version: _version, ...state } = parsed.data;
  return { format: HOST_STATE_FORMAT, ...state };
}

async function writeStep(
  host: HostAccess,
  step: HostStep,
  backupDir: string,
  originals: Map<string, Buffer | undefined>,
  state: HostState,
): Promise<void> {
  const { path, content, mode } = step.write as NonNullable<HostStep['write']>;
  const before = await host.readFile(path).catch((error: unknown) => {
    // expected: ENOENT, ENOTDIR (isMissing) — the file is new; anything else is rethrown
    if (isMissing(error)) return undefined;
    throw error;
  });
  originals.set(path, before);
  if (before !== undefined) {
    const backup = `${backupDir}${path}`;
    await host.makeDir(backup.slice(0, backup.lastIndexOf('/')), 0o700);
    await host.writeFileAtomic(backup, before, { mode: 0o600 });
    state.files[path] ??= { created: false, backup };
  } else {
    state.files[path] ??= { created: true };
  }
  if (path.startsWith('/etc/modules-load.d/')) {
    state.modules = content
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter(Boolean);
  }
  await saveState(host, state);
  if (content === '') {
    await host.remove(path);
    if (state.files[path]?.created) delete state.files[path];
  } else {
    await host.makeDir(path.slice(0, path.lastIndexOf('/')), 0o755);
    await host.writeFileAtomic(path, content, { mode });
  }
}

async function saveState(host: HostAccess, state: HostState): Promise<void> {
  state.updatedAt = new Date().toISOString();
  await host.writeFileAtomic(STATE_FILE, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/** Reads the result back the way its consumer will, before anything is refreshed. */
async function checkResult(host: HostAccess, plan: HostPlan, state: HostState): Promise<void> {
  const wanted = [...plan.params.add, ...plan.params.conflicts.map((c) => c.want)];
  if (wanted.length === 0) return;
  // GRUB when this run writes our drop-in, or an interrupted run of ours wrote it.
  const grub =
    plan.steps.some((s) => s.write?.path === GRUB_DROPIN) || state.files[GRUB_DROPIN] !== undefined;
  let line: string;
  if (grub) {
    const result = await host.run('/bin/sh -s /etc', { stdin: GRUB_CMDLINE_SCRIPT, timeoutMs: 30_000 });
    if (result.code !== 0) {
      throw new TargetError(`the GRUB defaults do not source cleanly: ${lastLine(result.stderr)}`, {
        target: host.target,
        fix: 'the files were restored; fix /etc/default/grub (or its grub.d files) so `sh -n` accepts them',
      });
    }
    line = result.stdout;
  } else {
    const text = (await host.readFile('/etc/kernel/cmdline')).toString();
    if (text.trimEnd().includes('\n')) {
      throw new TargetError('/etc/kernel/cmdline has more than one line', {
        target: host.target,
        fix: 'the file was restored; proxmox-boot-tool reads only one line: join them',
      });
    }
    line = text;
  }
  const missing = planParams(line, wanted);
  if (missing.add.length > 0 || missing.conflicts.length > 0) {
    throw new TargetError(
      `after writing, the boot configuration still lacks ${[...missing.add, ...missing.conflicts.map((c) => c.want)].join(' ')}`,
      {
        target: host.target,
        fix: 'the files were restored; another file overrides the kernel command line — see igpu-split host plan',
      },
    );
  }
}

async function restore(host: HostAccess, originals: Map<string, Buffer | undefined>): Promise<void> {
  for (const [path, content] of originals) {
    if (content === undefined) await host.remove(path);
    else await host.writeFileAtomic(path, content);
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
}
