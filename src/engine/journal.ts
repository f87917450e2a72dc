import { realpathSync, rmdirSync, rmSync } from 'node:fs';
import { link, lstat, mkdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { errnoText, hasErrno, UsageError } from '../core/errors.ts';
import { readSmallFile } from '../core/files.ts';
import { clip } from '../core/text.ts';
import { lockHolder, lockLine, stillRunning } from './lock-holder.ts';
import type { Stage } from './scheduler.ts';

/**
 * The journal file's format, its top-level `format` key. 1: what igpu-split wrote before
 * the key existed (no `format`; d5cfd90's has no `begun`, `startedAt` or `pid` either, read
 * as none); 2: the same lists with `format`. A reader takes every format up to its own and
 * refuses a newer one rather than guess what a newer igpu-split meant.
 */
export const JOURNAL_FORMAT = 2;

const list = <T extends z.ZodType>(item: T) => z.array(item).default([]);

/**
 * A change a stage could only write to files for the user to carry out (Talos without
 * talosctl): the stage is done, the lab waits for the user. An older journal has none; an
 * older igpu-split reading this one ignores the key (zod drops keys it does not know).
 */
const PendingSchema = z.object({
  /** The stage, as `<id>@<fingerprint>`. */
  stage: z.string(),
  /** What the step is for (`talos 10.0.0.6`). */
  target: z.string(),
  /** Why it was not carried out here (`talosctl is not installed`). */
  reason: z.string(),
  commands: z.array(z.string()),
  files: z.array(z.string()),
});
export type PendingStep = z.output<typeof PendingSchema>;

/** What a journal file holds: what an interrupted run hands to the next. */
const JournalSchema = z.object({
  format: z.int().min(1).optional(),
  /** When the run that wrote it began, and its process (a value of another kind is as none). */
  // expected: a value of another kind (zod's catch, not an error handler) — read as none.
  startedAt: z.string().optional().catch(undefined),
  // expected: a value of another kind (zod's catch) — read as none.
  pid: z.number().optional().catch(undefined),
  /** Stages done, as `<id>@<fingerprint>`. */
  stages: list(z.string()),
  /** Stages begun and not finished (a kill in the middle leaves them here), by title. */
  begun: list(z.string()),
  /** Facts about nodes: `cordoned-before:<node>`, `drained:<node>`. */
  marks: list(z.string()),
  /** VMs our runs stopped and have not started again. */
  stopped: list(z.number()),
  /** Stages that ended waiting for a manual step (`pending-manual`), with its commands and files. */
  pending: list(PendingSchema),
});
type JournalState = z.output<typeof JournalSchema>;

/**
 * The journal and lock live next to the lab file, in .igpu-split/. The journal file exists
 * only once a run has begun a change: a run that stops before that (refused, declined,
 * interrupted at the question) leaves no journal and no lock, and the next run needs no
 * --resume.
 */
export class Journal {
  readonly dir: string;
  private stages = new Set<string>();
  private begun = new Set<string>();
  private marks = new Set<string>();
  private stopped = new Set<number>();
  private waiting = new Map<string, PendingStep>();
  private resumedRun = false;
  /** The journal file is this run's to write and remove (it loaded it, or starts afresh). */
  private owned = false;
  private startedAt = new Date().toISOString();
  /** The process of the run that began the journal: a resume keeps it, so messages name one run. */
  private startedBy = process.pid;
  private saving: Promise<void> = Promise.resolve();
  private saves = 0;

  constructor(labFile: string) {
    // The lab file's real folder: a link to the lab file must find the same lock.
    let real = labFile;
    try {
      real = realpathSync(labFile);
    } catch {
      // expected: anything — the lab file is not there yet (tests make journals for lab files
      // they never write) or cannot be resolved: as given; loading it says why.
    }
    this.dir = join(real, '..', '.igpu-split');
  }

  get file(): string {
    return join(this.dir, 'journal.json');
  }

  private get lockFile(): string {
    return join(this.dir, 'lock');
  }

  /** When the run that began this journal started (a resume keeps it): the rollout's run id. */
  get runStartedAt(): string {
    return this.startedAt;
  }

  /** This run continues an interrupted one (apply --resume). */
  get resumed(): boolean {
    return this.resumedRun;
  }

  /** This run (or the one it continues) has begun changing the lab. */
  get changed(): boolean {
    // Marks (a node's cordon before the run) are facts for a stage begun, not changes.
    return this.stages.size + this.begun.size + this.stopped.size > 0;
  }

  /**
   * What an earlier, unfinished run left, in words — undefined when it changed nothing
   * (or there was none). Reads without taking the lock.
   */
  async earlierRun(lockPid?: number): Promise<string | undefined> {
    const state = await this.readState();
    if (!state || !hasChanges(state)) return undefined;
    const done = state.stages.map((key) => key.slice(0, key.lastIndexOf('@')));
    const parts = [
      done.length > 0 ? `finished ${done.join(', ')}` : 'finished no stage',
      ...(state.begun.length > 0 ? [`stopped in the middle of ${state.begun.join(', ')}`] : []),
      ...(state.stopped.length > 0 ? [`left VM ${state.stopped.join(', ')} stopped`] : []),
      ...drainedNodes(state),
    ];
    const when = state.startedAt ? `, started ${state.startedAt}` : '';
    return `an earlier apply (pid ${state.pid || lockPid || '?'}${when}) stopped without finishing: it ${parts.join('; ')}`;
  }

  /**
   * Why this run may not take the lab lock now, or undefined: another live apply holds it,
   * or an earlier one stopped half-way and this run is not its --resume. A lock whose
   * process is gone and whose run changed nothing is no obstacle.
   */
  async refusal(resume: boolean): Promise<UsageError | undefined> {
    // igpu-split writes its lock as a plain file: a link (maybe to nowhere) or a folder there
    // is someone else's, and neither to be read nor to be taken over.
    const kind = await this.guarded(this.lockFile, () => lstat(this.lockFile));
    if (kind && !kind.isFile())
      return new UsageError(
        `the lab lock ${this.lockFile} is ${kind.isSymbolicLink() ? 'a symbolic link' : kind.isDirectory() ? 'a folder' : 'not a regular file'}: igpu-split never makes one`,
        { fix: 'remove it (no igpu-split apply runs with it), then apply again' },
      );
    const text = await this.guarded(this.lockFile, () =>
      readSmallFile(this.lockFile, 4096).then((data) => data.toString('utf8')),
    );
    const held = text === undefined ? undefined : lockHolder(text);
    const pid = held?.pid ?? 0;
    // On another machine (a lab folder shared over NFS), whether the apply still runs cannot
    // be seen from here: it is held until someone who knows removes it.
    if (held?.host !== undefined && held.host !== hostname())
      return new UsageError(
        `another igpu-split apply on ${clip(held.host, 64)} (pid ${pid}) holds the lab lock ${this.lockFile}`,
        { fix: `wait for it to finish; if ${clip(held.host, 64)} no longer runs it, remove the lock` },
      );
    // Here, it is held while its process runs: not this very process (a run that failed
    // earlier in it), not after a reboot, not a pid that now belongs to another process
    // (its start time differs from the lock's).
    if (held !== undefined && pid !== process.pid && stillRunning(held))
      return new UsageError(`another igpu-split apply (pid ${pid}) holds the lab lock ${this.lockFile}`, {
        fix: 'wait for it to finish',
      });
    const earlier = resume ? undefined : await this.earlierRun(pid);
    if (earlier)
      return new UsageError(earlier, {
        fix: 'continue it with igpu-split apply --resume (its journal says what is done), or undo it all with igpu-split rollback --discard-journal',
      });
    return undefined;
  }

  /**
   * Takes the lab-wide lock, or fails with `refusal`'s reason. A stale lock is taken over
   * by renaming exactly that file away (only one process can), after looking once more
   * that its process is gone.
   */
  async lock(resume: boolean): Promise<void> {
    for (let tries = 0; tries < 3; tries++) {
      const refused = await this.refusal(resume);
      if (refused) throw refused;
      if (await this.createLock()) return;
      const stale = `${this.lockFile}.stale.${process.pid}`;
      // expected: ENOENT — the lock went away meanwhile (the next try sees); the rest is thrown.
      const seen = await readSmallFile(this.lockFile, 4096).then(String, ifCode('ENOENT'));
      if ((await this.refusal(resume)) || seen === undefined) continue;
      // expected: ENOENT — another run took the stale lock first; the rest is thrown.
      await rename(this.lockFile, stale).catch(ifCode('ENOENT'));
      // Someone else's fresh lock may have been moved instead: then it goes back.
      // expected: ENOENT — nothing was moved; the rest is thrown.
      const moved = await readSmallFile(stale, 4096).then(String, ifCode('ENOENT'));
      // (link, not rename: a lock a third run made meanwhile is never overwritten)
      // expected: EEXIST — a third run made a lock meanwhile, which stays; the rest is thrown.
      if (moved !== undefined && moved !== seen) await link(stale, this.lockFile).catch(ifCode('EEXIST'));
      await rm(stale, { force: true });
    }
    throw new UsageError(`another igpu-split apply took the lab lock ${this.lockFile}`, {
      fix: 'wait for it to finish',
    });
  }

  /**
   * Creates the lock with its content in one step — written aside, then linked into place —
   * so no other run ever reads it empty (and takes an empty lock for a stale one). False
   * when a lock is there already.
   */
  private async createLock(): Promise<boolean> {
    const text = lockLine(process.pid);
    const aside = `${this.lockFile}.${process.pid}.new`;
    try {
      // Again: a run that just let go of the lab removes the folder when it is empty.
      await this.guarded(this.dir, () => mkdir(this.dir, { recursive: true, mode: 0o700 }));
      await this.guarded(aside, () => writeFile(aside, text, { mode: 0o600 }));
      await link(aside, this.lockFile).catch(async (error: NodeJS.ErrnoException) => {
        // expected: EPERM, ENOTSUP, EOPNOTSUPP, ENOSYS — a file system without hard links (vfat,
        // some network mounts): create, then write; the rest is thrown.
        if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(error.code ?? '')) throw error;
        await writeFile(this.lockFile, text, { flag: 'wx', mode: 0o600 });
      });
      return true;
    } catch (error) {
      // expected: EEXIST — a lock is there already; our own refusals are thrown, the rest named.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      if (error instanceof UsageError) throw error;
      await this.guarded(this.lockFile, () => Promise.reject(error));
      return false;
    } finally {
      await rm(aside, { force: true });
    }
  }

  async unlock(): Promise<void> {
    await rm(this.lockFile, { force: true });
  }

  /**
   * Ends the run's hold on the lab: a run that finished, or changed nothing, leaves neither
   * journal nor lock; one that stopped half-way keeps both, for apply --resume.
   */
  async release(finished: boolean): Promise<void> {
    if (!finished && this.changed) return;
    await this.saving;
    // A journal this run could not read stays for the user to look at.
    if (this.owned) await this.finish();
    await this.unlock();
    // The folder goes too when nothing else is in it (rmdir refuses otherwise).
    // expected: ENOTEMPTY, EEXIST (something else is in it), ENOENT (gone); the rest is thrown.
    await rmdir(this.dir).catch(ifCode('ENOTEMPTY', 'EEXIST', 'ENOENT'));
  }

  /** `release` for an interrupt: synchronous, as the process ends right after. */
  releaseNow(): boolean {
    if (this.changed) return false;
    if (this.owned) rmSync(this.file, { force: true });
    rmSync(this.lockFile, { force: true });
    try {
      rmdirSync(this.dir);
    } catch {
      // expected: anything — the process ends right after an interrupt: a folder with something
      // else in it stays, and nothing may turn the interrupt into a crash.
    }
    return true;
  }

  /** Loads what an interrupted run finished (resume), or starts empty. */
  async start(resume: boolean): Promise<void> {
    this.resumedRun = resume;
    const state = resume ? await this.readState() : undefined;
    this.stages = new Set(state?.stages);
    this.begun = new Set(state?.begun);
    this.marks = new Set(state?.marks);
    this.stopped = new Set(state?.stopped);
    this.waiting = new Map((state?.pending ?? []).map((p) => [p.stage, p]));
    this.startedAt = state?.startedAt ?? new Date().toISOString();
    this.startedBy = state?.pid ?? process.pid;
    this.owned = true;
    // A journal an earlier run left with nothing changed says nothing; it goes.
    if (!resume) await rm(this.file, { force: true });
  }

  /**
   * A file operation on the journal folder: absence is undefined, anything else (a file
   * where the folder should be, a folder or a pipe where a file should be) one line.
   */
  private async guarded<T>(path: string, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (error) {
      // expected: ENOENT — absent; anything else is named in one line and thrown.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new UsageError(`cannot use ${path} (the apply journal and lock): ${errnoText(error)}`, {
        fix: 'move it out of the way; igpu-split keeps only its lock and journal there',
      });
    }
  }

  private async readState(): Promise<JournalState | undefined> {
    const text = await this.guarded(this.file, () =>
      readSmallFile(this.file, 1024 * 1024).then((data) => data.toString('utf8')),
    );
    if (text === undefined) return undefined;
    const damaged = new UsageError(`the apply journal ${this.file} is damaged`, {
      fix: 'run igpu-split plan to see where the lab stands (cordoned nodes, stopped VMs), remove the journal, then apply again',
    });
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      // expected: SyntaxError — not JSON: damaged.
      throw damaged;
    }
    const format = (raw as { format?: unknown } | null)?.format;
    if (typeof format === 'number' && format > JOURNAL_FORMAT)
      throw new UsageError(
        `the apply journal ${this.file} was written by a newer igpu-split ("format": ${format}; this one reads up to ${JOURNAL_FORMAT})`,
        { fix: 'continue or roll back with the igpu-split that wrote it (or a newer one)' },
      );
    const parsed = JournalSchema.safeParse(raw);
    if (!parsed.success) throw damaged;
    return parsed.data;
  }

  /** Done by an earlier run with the same content (the plan may have changed since). */
  has(stage: Pick<Stage, 'id' | 'fingerprint'>): boolean {
    return this.stages.has(`${stage.id}@${stage.fingerprint}`);
  }

  /** The ids of the stages done, whatever their content. */
  ids(): string[] {
    return [...this.stages].map((key) => key.slice(0, key.lastIndexOf('@')));
  }

  /** A stage is about to change something: from here on the run is resumable. */
  async begin(stage: Pick<Stage, 'title'>): Promise<void> {
    this.begun.add(stage.title);
    await this.save();
  }

  /** The stage's first change was refused outright: it has not begun after all. */
  async unbegin(stage: Pick<Stage, 'title'>): Promise<void> {
    this.begun.delete(stage.title);
    await this.save();
  }

  async record(stage: Pick<Stage, 'id' | 'fingerprint' | 'title'>): Promise<void> {
    this.stages.add(`${stage.id}@${stage.fingerprint}`);
    this.begun.delete(stage.title);
    await this.save();
  }

  /** A fact an interrupted run must hand to the next (`cordoned-before:<node>`, `drained:<node>`). */
  marked(key: string): boolean {
    return this.marks.has(key);
  }

  /** Every mark, in the order made (the HA states a turn set: `ha:<node>:<sid>=<state>`). */
  allMarks(): string[] {
    return [...this.marks];
  }

  async mark(key: string, on: boolean): Promise<void> {
    if (on) this.marks.add(key);
    else this.marks.delete(key);
    await this.save();
  }

  /** VMs this lab's runs stopped and have not started again (a kill in between leaves them). */
  stoppedVms(): number[] {
    return [...this.stopped];
  }

  async markStopped(vmid: number, stopped: boolean): Promise<void> {
    if (stopped) this.stopped.add(vmid);
    else this.stopped.delete(vmid);
    await this.save();
  }

  /** The stage ended waiting for a manual step (it counts as done: `record` follows). */
  async markPending(step: PendingStep): Promise<void> {
    this.waiting.set(step.stage, step);
    await this.save();
  }

  /** The manual steps of the given stages (this run's: an earlier plan's may be done since). */
  pending(stages: readonly Pick<Stage, 'id' | 'fingerprint'>[]): PendingStep[] {
    return stages.flatMap((s) => {
      const step = this.waiting.get(`${s.id}@${s.fingerprint}`);
      return step ? [step] : [];
    });
  }

  async finish(): Promise<void> {
    await rm(this.file, { force: true });
  }

  /** Saves one after another (hosts run in parallel), each through its own temp file. */
  private save(): Promise<void> {
    const next = this.saving.then(async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const temp = `${this.file}.${process.pid}.${++this.saves}.tmp`;
      const state: JournalState = {
        format: JOURNAL_FORMAT,
        startedAt: this.startedAt,
        pid: this.startedBy,
        stages: [...this.stages],
        begun: [...this.begun],
        marks: [...this.marks],
        stopped: [...this.stopped],
        pending: [...this.waiting.values()],
      };
      await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      await rename(temp, this.file);
    });
    // expected: anything — a failed save is reported to its caller through `next`; the chain
    // of later saves goes on.
    this.saving = next.catch(() => undefined);
    return next;
  }
}

/** The nodes a run drained and has not uncordoned yet, in words. */
function drainedNodes(state: JournalState): string[] {
  const nodes = state.marks.filter((m) => m.startsWith('drained:')).map((m) => m.slice('drained:'.length));
  return nodes.length > 0 ? [`left node ${nodes.join(', ')} drained`] : [];
}

function hasChanges(state: JournalState): boolean {
  return state.stages.length + state.begun.length + state.stopped.length > 0;
}

/** A rejection handler that takes the given errno codes for "nothing there" and throws the rest. */
function ifCode(...codes: string[]): (error: unknown) => undefined {
  return (error) => {
    if (hasErrno(error, ...codes)) return undefined;
    throw error;
  };
}
