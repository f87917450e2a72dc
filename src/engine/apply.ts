// Applying the lab plan in the rolling order, host by host (or N at once): drain the
// Kubernetes nodes of the host's VMs → host changes → reboot → host verify → VM changes
// (stop, config, start) → guest changes (+ reboot) → uncordon; the mapping first and the
// cluster objects last. Each stage is journalled when it ends, so `apply --resume`
// continues after an interruption; a lab-wide lock keeps two applies apart.

import { createHash } from 'node:crypto';
import { readFileSync, realpathSync, rmdirSync, rmSync } from 'node:fs';
import { link, lstat, mkdir, rename, rm, rmdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { HostAccess } from '../access/host.ts';
import { applyClusterPlan, drainNode, uncordonNode, waitNodeReady } from '../cluster/apply.ts';
import type { Lab } from '../config/lab.ts';
import { bounded } from '../core/bounded.ts';
import { errnoText, IgpuSplitError, ManualStepError, TargetError, UsageError } from '../core/errors.ts';
import { readSmallFile } from '../core/files.ts';
import { clip } from '../core/text.ts';
import { applyTalosPlan } from '../guest/talos/plan.ts';
import { applyUbuntuPlan } from '../guest/ubuntu/apply.ts';
import { applyHostPlan, readState } from '../host/apply.ts';
import { gatherHostFacts } from '../host/gather.ts';
import { verifyHost } from '../host/verify.ts';
import { BOOT_ID, rebootAndWait } from '../linux/reboot.ts';
import { applyMappingPlan } from '../mapping/apply.ts';
import { applyVmPlan } from '../vm/apply.ts';
import { runAsStage, watchChanges } from './changes.ts';
import type { LabConnections } from './connections.ts';
import type { HostPart, LabPlan } from './plan.ts';

export interface Stage {
  id: string;
  /** `lab` (first), `host:<node>` (in host order), `lab-end` (last). */
  group: string;
  /** What the stage will do: a journal entry for a different plan does not count. */
  fingerprint: string;
  title: string;
  run(say: (line: string) => void): Promise<void>;
}

export interface ApplyOptions {
  consents?: string[];
  rebootTimeoutMs?: number;
  pollMs?: number;
  shutdownTimeoutSeconds?: number;
  forceStop?: boolean;
  drainTimeoutMs?: number;
}

/**
 * The stages of an apply, in order; stages of one group run in sequence. The journal
 * (started) says what an interrupted run left: stages done, nodes cordoned, VMs stopped.
 */
export function applyStages(
  lab: Lab,
  plan: LabPlan,
  labConnections: LabConnections,
  journal: Journal,
  options: ApplyOptions = {},
): Stage[] {
  // Every change a stage makes is reported, so the journal knows which stages began one.
  const connections = watchChanges(labConnections);
  const stages: Stage[] = [];
  if (plan.mapping.steps.length > 0) {
    stages.push({
      id: 'lab/mapping',
      group: 'lab',
      fingerprint: fingerprintOf(plan.mapping.steps.map((s) => s.id + (s.diff ?? ''))),
      title: `mapping ${plan.mapping.name}`,
      run: async (say) => {
        await applyMappingPlan(connections.proxmox, plan.mapping);
        say(`mapping ${plan.mapping.name} ${plan.mapping.create ? 'created' : 'updated'}`);
      },
    });
  }
  for (const part of plan.hosts) stages.push(...hostStages(lab, plan, part, connections, journal, options));
  if (plan.cluster.steps.length > 0) {
    stages.push({
      id: 'lab/cluster',
      group: 'lab-end',
      fingerprint: fingerprintOf(plan.cluster.steps.map((s) => s.id)),
      title: 'cluster objects and node labels',
      run: async (say) => void (await applyClusterPlan(connections.kube, plan.cluster, say)),
    });
  }
  return stages;
}

function hostStages(
  lab: Lab,
  plan: LabPlan,
  part: HostPart,
  connections: LabConnections,
  journal: Journal,
  options: ApplyOptions,
): Stage[] {
  const stages: Stage[] = [];
  const group = `host:${part.node}`;
  const id = (name: string) => `${part.node}/${name}`;
  const vmChanges = plan.vms.changes.filter((c) => part.vmids.includes(c.vmid));
  const guestWork = part.guests.filter(
    (g) => (g.ubuntu?.steps.length ?? 0) + (g.talos?.steps.length ?? 0) > 0,
  );
  const hostWork = (part.host?.steps.length ?? 0) > 0;
  // VMs an interrupted run stopped: those with a change are started by the VM stage;
  // the others (stopped after their change was made) get a stage of their own.
  const notChanged = part.vmids.filter((vmid) => !vmChanges.some((c) => c.vmid === vmid));
  const leftStopped = journal.stoppedVms().filter((vmid) => notChanged.includes(vmid));
  // A run interrupted between drain and uncordon left nodes cordoned: uncordon them even
  // when nothing else is left to do on this host.
  const done = journal.ids();
  const leftCordoned = done.includes(id('drain')) && !done.includes(id('uncordon'));
  if (
    !hostWork &&
    vmChanges.length === 0 &&
    guestWork.length === 0 &&
    !leftCordoned &&
    leftStopped.length === 0
  )
    return stages;
  const disturbing =
    part.host?.reboot === true || vmChanges.some((c) => c.wasRunning) || guestWork.length > 0 || leftCordoned;
  const nodes = lab.vms
    .filter((vm) => vm.host === part.node && vm.kubernetesNode)
    .map((vm) => vm.kubernetesNode as string)
    .filter((name) => plan.gpuNodes.some((n) => n.name === name));
  const present = async () => {
    const found: string[] = [];
    for (const name of nodes) if (await connections.kube.get('v1', 'Node', name)) found.push(name);
    return found;
  };
  // Nodes someone had cordoned before the first drain stay cordoned after the run; the
  // journal keeps that across an interruption.
  if (disturbing && nodes.length > 0) {
    stages.push({
      id: id('drain'),
      group,
      fingerprint: nodes.join(','),
      title: `drain ${nodes.join(', ')}`,
      run: async (say) => {
        for (const name of await present()) {
          if (!journal.marked(`drained:${name}`)) {
            const before = (await connections.kube.get('v1', 'Node', name))?.spec?.unschedulable === true;
            await journal.mark(`cordoned-before:${name}`, before);
            await journal.mark(`drained:${name}`, true);
          }
          await drainNode(connections.kube, name, {
            timeoutMs: options.drainTimeoutMs,
            pollMs: options.pollMs,
          });
          say(`drained ${name}`);
        }
      },
    });
  }
  if (hostWork && part.host) {
    const hostPlan = part.host;
    stages.push({
      id: id('host'),
      group,
      fingerprint: fingerprintOf(hostPlan.steps.map((s) => s.id + (s.diff ?? ''))),
      title: `host ${part.node}: ${hostPlan.steps.length} change(s)${hostPlan.reboot ? ', reboot' : ''}`,
      run: async (say) => {
        let host: HostAccess = await connections.host(part.node);
        try {
          // Resuming: a lock on the host is the one the interrupted run left.
          const result = await applyHostPlan(host, hostPlan, {
            force: false,
            // The host lock names this lab's runs: a resumed run takes over its own, never another's.
            lockOwner: `lab ${journal.dir}`,
            takeOverLock: journal.resumed,
          });
          say(`host ${part.node}: ${result.done.length} step(s) applied`);
          if (result.rebootNeeded) {
            // The reboot stops the host's VMs: the journal says they ran, so they run again
            // even if this run is interrupted before it starts them.
            for (const vmid of part.vmids)
              if ((await connections.proxmox.vmStatus(part.node, vmid)).status === 'running')
                await journal.markStopped(vmid, true);
            host = await rebootAndWait(host, {
              reconnect: () => connections.host(part.node),
              timeoutMs: options.rebootTimeoutMs ?? 900_000,
              pollMs: options.pollMs,
            });
            say(`host ${part.node}: rebooted`);
            // The VM stage starts the ones it changes.
            await startStoppedVms(part.node, notChanged, connections, journal, say);
          }
          const failed = verifyHost(await gatherHostFacts(host), await readState(host)).filter(
            (c) => c.status === 'fail',
          );
          if (failed.length > 0) {
            throw new TargetError(`host ${part.node} does not verify: ${failed[0]?.evidence}`, {
              target: host.target,
              fix: failed[0]?.fix ?? 'run igpu-split host verify',
            });
          }
        } finally {
          await host.close();
        }
      },
    });
  }
  if (vmChanges.length > 0) {
    stages.push({
      id: id('vms'),
      group,
      fingerprint: fingerprintOf(vmChanges.flatMap((c) => c.steps.map((s) => s.id + (s.diff ?? '')))),
      title: `VMs ${vmChanges.map((c) => c.vmid).join(', ')}: vGPU`,
      run: async (say) =>
        void (await applyVmPlan(
          connections.proxmox,
          { ...plan.vms, changes: vmChanges },
          {
            consents: options.consents,
            shutdownTimeoutSeconds: options.shutdownTimeoutSeconds,
            forceStop: options.forceStop,
            progress: say,
            stops: journal,
          },
        )),
    });
  }
  if (leftStopped.length > 0) {
    stages.push({
      id: id('start'),
      group,
      fingerprint: leftStopped.join(','),
      title: `start VMs ${leftStopped.join(', ')} (stopped by an interrupted run)`,
      run: (say) => startStoppedVms(part.node, leftStopped, connections, journal, say),
    });
  }
  for (const guest of guestWork) {
    stages.push({
      id: id(`guest/${guest.vm.vmid}`),
      group,
      fingerprint: fingerprintOf((guest.ubuntu?.steps ?? guest.talos?.steps ?? []).map((s) => s.id)),
      title: `guest of VM ${guest.vm.vmid} (${guest.vm.os})`,
      run: async (say) => {
        if (guest.ubuntu) {
          const access = await connections.guest(guest.vm);
          const result = await applyUbuntuPlan(access, guest.ubuntu, {
            reconnect: () => connections.guest(guest.vm),
            rebootTimeoutMs: options.rebootTimeoutMs,
            pollMs: options.pollMs,
            progress: say,
          });
          await result.guest.close();
        } else if (guest.talos) {
          const result = await applyTalosPlan(
            guest.talos,
            connections.talosctl,
            join(connections.talosOut, guest.talos.node),
            say,
          );
          if (!result.applied) {
            throw new ManualStepError(`talosctl is not installed: wrote ${result.files.join(', ')}`, {
              target: `talos ${guest.talos.node}`,
              fix: `run: ${result.commands.join(' && ')}; then igpu-split apply --resume`,
            });
          }
        }
      },
    });
  }
  if (disturbing && nodes.length > 0) {
    stages.push({
      id: id('uncordon'),
      group,
      fingerprint: nodes.join(','),
      title: `uncordon ${nodes.join(', ')}`,
      run: async (say) => {
        for (const name of await present()) {
          if (journal.marked(`cordoned-before:${name}`)) {
            say(`${name} was cordoned before this run: left so`);
            continue;
          }
          // The next host is drained only once this one's nodes serve again.
          await waitNodeReady(connections.kube, name, {
            timeoutMs: options.rebootTimeoutMs ?? 900_000,
            pollMs: options.pollMs,
          });
          await uncordonNode(connections.kube, name);
          await journal.mark(`drained:${name}`, false);
          say(`uncordoned ${name}`);
        }
      },
    });
  }
  return stages;
}

/**
 * Starts the given VMs that the journal says our runs stopped — by a host reboot or an
 * interrupted VM stage — whatever their onboot says, and clears the record.
 */
async function startStoppedVms(
  node: string,
  vmids: readonly number[],
  connections: LabConnections,
  journal: Journal,
  say: (line: string) => void,
) {
  for (const vmid of journal.stoppedVms().filter((v) => vmids.includes(v))) {
    if ((await connections.proxmox.vmStatus(node, vmid)).status !== 'running') {
      await connections.proxmox.waitTask(await connections.proxmox.vmPower(node, vmid, 'start'), 300_000);
      say(`VM ${vmid}: running again`);
    }
    await journal.markStopped(vmid, false);
  }
}

/** What a journal file holds: what an interrupted run hands to the next. */
interface JournalState {
  /** When the run that wrote it began, and its process. */
  startedAt?: string;
  pid?: number;
  /** Stages done, as `<id>@<fingerprint>`. */
  stages: string[];
  /** Stages begun and not finished (a kill in the middle leaves them here), by title. */
  begun: string[];
  /** Facts about nodes: `cordoned-before:<node>`, `drained:<node>`. */
  marks: string[];
  /** VMs our runs stopped and have not started again. */
  stopped: number[];
}

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
      // Not there yet (tests make journals for lab files they never write): as given.
    }
    this.dir = join(real, '..', '.igpu-split');
  }

  get file(): string {
    return join(this.dir, 'journal.json');
  }

  private get lockFile(): string {
    return join(this.dir, 'lock');
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
      const seen = await readSmallFile(this.lockFile, 4096).then(String, () => undefined);
      if ((await this.refusal(resume)) || seen === undefined) continue;
      await rename(this.lockFile, stale).catch(() => undefined);
      // Someone else's fresh lock may have been moved instead: then it goes back.
      const moved = await readSmallFile(stale, 4096).then(String, () => undefined);
      // (link, not rename: a lock a third run made meanwhile is never overwritten)
      if (moved !== undefined && moved !== seen) await link(stale, this.lockFile).catch(() => undefined);
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
        // A file system without hard links (vfat, some network mounts): create, then write.
        if (!['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'].includes(error.code ?? '')) throw error;
        await writeFile(this.lockFile, text, { flag: 'wx', mode: 0o600 });
      });
      return true;
    } catch (error) {
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
    await rmdir(this.dir).catch(() => undefined);
  }

  /** `release` for an interrupt: synchronous, as the process ends right after. */
  releaseNow(): boolean {
    if (this.changed) return false;
    if (this.owned) rmSync(this.file, { force: true });
    rmSync(this.lockFile, { force: true });
    try {
      rmdirSync(this.dir);
    } catch {
      // Something else is in it: it stays.
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
    let raw: Partial<Record<keyof JournalState, unknown>>;
    try {
      raw = JSON.parse(text);
    } catch {
      throw damaged;
    }
    const list = <T>(value: unknown, kind: 'string' | 'number'): T[] => {
      if (value === undefined) return [];
      if (!Array.isArray(value) || value.some((item) => typeof item !== kind)) throw damaged;
      return value as T[];
    };
    if (raw === null || typeof raw !== 'object') throw damaged;
    return {
      startedAt: typeof raw.startedAt === 'string' ? raw.startedAt : undefined,
      pid: typeof raw.pid === 'number' ? raw.pid : undefined,
      stages: list(raw.stages, 'string'),
      begun: list(raw.begun, 'string'),
      marks: list(raw.marks, 'string'),
      stopped: list(raw.stopped, 'number'),
    };
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

  async finish(): Promise<void> {
    await rm(this.file, { force: true });
  }

  /** Saves one after another (hosts run in parallel), each through its own temp file. */
  private save(): Promise<void> {
    const next = this.saving.then(async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const temp = `${this.file}.${process.pid}.${++this.saves}.tmp`;
      const state: JournalState = {
        startedAt: this.startedAt,
        pid: this.startedBy,
        stages: [...this.stages],
        begun: [...this.begun],
        marks: [...this.marks],
        stopped: [...this.stopped],
      };
      await writeFile(temp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
      await rename(temp, this.file);
    });
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

/** When a process started (field 22 of /proc/<pid>/stat, in clock ticks since boot), on Linux. */
function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** What a lock held by process `pid` of this machine says: `pid start host boot`, `-` for the unknown. */
export function lockLine(pid: number): string {
  return `${pid} ${processStart(pid) ?? '-'} ${hostname()} ${bootId() ?? '-'}\n`;
}

/** What a lock says: `pid start host boot`, `-` for what was unknown (older locks hold only the first two). */
function lockHolder(text: string): { pid: number; started?: string; host?: string; boot?: string } {
  const [pid, started, host, boot] = text
    .trim()
    .split(/\s+/)
    .map((field) => (field === '-' || field === '' ? undefined : field));
  const number = Number(pid);
  return { pid: Number.isInteger(number) && number > 0 ? number : 0, started, host, boot };
}

/** The lock's process runs on this machine, in this boot, started when the lock says. */
function stillRunning(held: ReturnType<typeof lockHolder>): boolean {
  const boot = bootId();
  if (held.pid <= 0 || (held.boot !== undefined && boot !== undefined && held.boot !== boot)) return false;
  if (!processAlive(held.pid)) return false;
  const started = processStart(held.pid);
  // A lock of an older igpu-split holds only the pid: its process must at least be one of ours.
  if (held.started === undefined) return commandLine(held.pid)?.includes('igpu-split') !== false;
  return started === undefined || started === held.started;
}

/** A process's command line (Linux /proc/<pid>/cmdline), or undefined where it cannot be read. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return undefined;
  }
}

/** This machine's boot (Linux: Documentation/admin-guide/sysctl/kernel.rst, "random"). */
function bootId(): string | undefined {
  try {
    return readFileSync(BOOT_ID, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Shared by the stages of one run: once one fails no other starts, and the run waits for those in flight. */
export class RunState {
  failed: unknown;
  private readonly running = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work);
    return work.finally(() => this.running.delete(work));
  }

  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}

/** Runs one stage unless the journal has it, and journals it when it ends. */
export async function runStage(
  stage: Stage,
  journal: Journal,
  say: (line: string) => void,
  state?: RunState,
): Promise<'done' | 'skipped'> {
  if (journal.has(stage)) return 'skipped';
  if (state?.failed !== undefined) {
    throw new IgpuSplitError(`${stage.title}: not started, another host failed`, {
      fix: 'fix that failure, then apply --resume',
    });
  }
  // The stage counts as begun (resumable) from its first change, not from its start.
  const work = runAsStage(
    () => journal.begin(stage),
    () => journal.unbegin(stage),
    () => stage.run(say),
  ).catch((error: unknown) => {
    // Whatever broke, it is reported as one line naming the stage.
    const reported =
      error instanceof IgpuSplitError
        ? error
        : new TargetError(`${stage.title}: ${(error as Error)?.message ?? String(error)}`, {
            target: stage.group.replace(/^host:/, ''),
            fix: 'fix the cause, then igpu-split apply --resume',
            cause: error,
          });
    if (state && state.failed === undefined) state.failed = reported;
    throw reported;
  });
  await (state ? state.track(work) : work);
  await journal.record(stage);
  return 'done';
}

/** The stages in run order: lab-wide first, then one group per host, then the lab-wide end. */
export function stageGroups(stages: readonly Stage[]): { group: string; stages: Stage[] }[] {
  const names = [...new Set(stages.map((s) => s.group))];
  const order = [
    ...names.filter((n) => n === 'lab'),
    ...names.filter((n) => n.startsWith('host:')),
    ...names.filter((n) => n === 'lab-end'),
  ];
  return order.map((group) => ({ group, stages: stages.filter((s) => s.group === group) }));
}

/**
 * Runs the stages: the lab-wide ones alone, host groups `parallel` at a time (each in
 * order), journalling each as it ends. After a failure no stage starts and the run waits
 * for the ones in flight before it reports. `afterStage` sees every finished stage.
 */
export async function runStages(
  stages: Stage[],
  journal: Journal,
  options: {
    parallel?: number;
    say?: (line: string) => void;
    afterStage?: (id: string) => Promise<void>;
  } = {},
): Promise<{ done: string[]; skipped: string[] }> {
  const say = options.say ?? (() => {});
  const done: string[] = [];
  const skipped: string[] = [];
  const state = new RunState();
  const runGroup = async ({ stages: list }: { stages: Stage[] }) => {
    for (const stage of list) {
      const result = await runStage(
        stage,
        journal,
        (line) => say(`${stage.group.replace(/^host:/, '')}: ${line}`),
        state,
      );
      (result === 'done' ? done : skipped).push(stage.id);
      await options.afterStage?.(stage.id);
    }
  };
  const groups = stageGroups(stages);
  for (const group of groups.filter((g) => g.group === 'lab')) await runGroup(group);
  try {
    await bounded(
      groups.filter((g) => g.group.startsWith('host:')),
      options.parallel ?? 1,
      runGroup,
    );
  } finally {
    await state.settle();
  }
  for (const group of groups.filter((g) => g.group === 'lab-end')) await runGroup(group);
  return { done, skipped };
}

function fingerprintOf(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 12);
}
