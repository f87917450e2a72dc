// Applying the lab plan in the rolling order, host by host (or N at once): drain the
// Kubernetes nodes of the host's VMs → host changes → reboot → host verify → VM changes
// (stop, config, start) → guest changes (+ reboot) → uncordon; the mapping first and the
// cluster objects last. Each stage is journalled when it ends, so `apply --resume`
// continues after an interruption; a lab-wide lock keeps two applies apart.

import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostAccess } from '../access/host.ts';
import { applyClusterPlan, drainNode, uncordonNode } from '../cluster/apply.ts';
import type { Lab } from '../config/lab.ts';
import { IgpuSplitError, TargetError, UsageError } from '../core/errors.ts';
import { applyTalosPlan } from '../guest/talos/plan.ts';
import { applyUbuntuPlan } from '../guest/ubuntu/apply.ts';
import { applyHostPlan, readState } from '../host/apply.ts';
import { gatherHostFacts } from '../host/gather.ts';
import { rebootAndWait } from '../host/reboot.ts';
import { verifyHost } from '../host/verify.ts';
import { applyMappingPlan } from '../mapping/apply.ts';
import { applyVmPlan } from '../vm/apply.ts';
import type { LabConnections } from './connections.ts';
import type { HostPart, LabPlan } from './plan.ts';

export interface Stage {
  id: string;
  /** The host group it belongs to (`lab` for lab-wide stages). */
  group: string;
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
  /** Stage ids an interrupted run finished (from its journal). */
  done?: readonly string[];
}

/** The stages of an apply, in order; stages of one group run in sequence. */
export function applyStages(
  lab: Lab,
  plan: LabPlan,
  connections: LabConnections,
  options: ApplyOptions = {},
): Stage[] {
  const stages: Stage[] = [];
  if (plan.mapping.steps.length > 0) {
    stages.push({
      id: 'lab/mapping',
      group: 'lab',
      title: `mapping ${plan.mapping.name}`,
      run: async (say) => {
        await applyMappingPlan(connections.proxmox, plan.mapping);
        say(`mapping ${plan.mapping.name} ${plan.mapping.create ? 'created' : 'updated'}`);
      },
    });
  }
  for (const part of plan.hosts) stages.push(...hostStages(lab, plan, part, connections, options));
  if (plan.cluster.steps.length > 0) {
    stages.push({
      id: 'lab/cluster',
      group: 'lab-end',
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
  options: ApplyOptions,
): Stage[] {
  const stages: Stage[] = [];
  const group = part.node;
  const vmChanges = plan.vms.changes.filter((c) => part.vmids.includes(c.vmid));
  const guestWork = part.guests.filter(
    (g) => (g.ubuntu?.steps.length ?? 0) + (g.talos?.steps.length ?? 0) > 0,
  );
  const hostWork = (part.host?.steps.length ?? 0) > 0;
  // A run interrupted between drain and uncordon left nodes cordoned: uncordon them even
  // when nothing else is left to do on this host.
  const leftCordoned =
    options.done?.includes(`${group}/drain`) && !options.done.includes(`${group}/uncordon`);
  if (!hostWork && vmChanges.length === 0 && guestWork.length === 0 && !leftCordoned) return stages;
  const disturbing =
    part.host?.reboot || vmChanges.some((c) => c.wasRunning) || guestWork.length > 0 || leftCordoned;
  const nodes = lab.vms
    .filter((vm) => vm.host === part.node && vm.kubernetesNode)
    .map((vm) => vm.kubernetesNode as string)
    .filter((name) => plan.gpuNodes.some((n) => n.name === name));
  const drainable = async () => {
    const present: string[] = [];
    for (const name of nodes) if (await connections.kube.get('v1', 'Node', name)) present.push(name);
    return present;
  };
  if (disturbing && nodes.length > 0) {
    stages.push({
      id: `${group}/drain`,
      group,
      title: `drain ${nodes.join(', ')}`,
      run: async (say) => {
        for (const name of await drainable()) {
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
      id: `${group}/host`,
      group,
      title: `host ${part.node}: ${hostPlan.steps.length} change(s)${hostPlan.reboot ? ', reboot' : ''}`,
      run: async (say) => {
        let host: HostAccess = await connections.host(part.node);
        try {
          const result = await applyHostPlan(host, hostPlan, { force: false });
          say(`host ${part.node}: ${result.done.length} step(s) applied`);
          if (result.rebootNeeded) {
            host = await rebootAndWait(host, {
              reconnect: () => connections.host(part.node),
              timeoutMs: options.rebootTimeoutMs ?? 900_000,
              pollMs: options.pollMs,
            });
            say(`host ${part.node}: rebooted`);
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
      id: `${group}/vms`,
      group,
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
          },
        )),
    });
  }
  for (const guest of guestWork) {
    stages.push({
      id: `${group}/guest/${guest.vm.vmid}`,
      group,
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
            throw new IgpuSplitError(`talosctl is not installed: wrote ${result.files.join(', ')}`, {
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
      id: `${group}/uncordon`,
      group,
      title: `uncordon ${nodes.join(', ')}`,
      run: async (say) => {
        for (const name of await drainable()) {
          await uncordonNode(connections.kube, name);
          say(`uncordoned ${name}`);
        }
      },
    });
  }
  return stages;
}

/** The journal and lock live next to the lab file, in .igpu-split/. */
export class Journal {
  readonly dir: string;
  private done = new Set<string>();

  constructor(labFile: string) {
    this.dir = join(labFile, '..', '.igpu-split');
  }

  get file(): string {
    return join(this.dir, 'journal.json');
  }

  /** Takes the lab-wide lock; a lock whose process is gone is taken over only with `resume`. */
  async lock(resume: boolean): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const lockFile = join(this.dir, 'lock');
    const handle = await open(lockFile, 'wx', 0o600).catch(async (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
      const pid = Number((await readFile(lockFile, 'utf8').catch(() => '')).trim());
      const alive = Number.isInteger(pid) && pid > 0 && processAlive(pid);
      if (alive) {
        throw new UsageError(`another igpu-split apply (pid ${pid}) holds the lab lock ${lockFile}`, {
          fix: 'wait for it to finish',
        });
      }
      if (!resume) {
        throw new UsageError(`an earlier apply (pid ${pid || '?'}) stopped without finishing`, {
          fix: 'continue it with igpu-split apply --resume (its journal says what is done)',
        });
      }
      await rm(lockFile, { force: true });
      return open(lockFile, 'wx', 0o600);
    });
    await handle.writeFile(`${process.pid}\n`);
    await handle.close();
  }

  async unlock(): Promise<void> {
    await rm(join(this.dir, 'lock'), { force: true });
  }

  /** Loads what an interrupted run finished (resume), or starts empty. */
  async start(resume: boolean): Promise<string[]> {
    if (resume) {
      const text = await readFile(this.file, 'utf8').catch(() => undefined);
      this.done = new Set(text ? (JSON.parse(text) as { done: string[] }).done : []);
    } else {
      this.done = new Set();
      await this.save();
    }
    return [...this.done];
  }

  has(id: string): boolean {
    return this.done.has(id);
  }

  async record(id: string): Promise<void> {
    this.done.add(id);
    await this.save();
  }

  async finish(): Promise<void> {
    await rm(this.file, { force: true });
  }

  private async save(): Promise<void> {
    const temp = `${this.file}.tmp`;
    await writeFile(temp, `${JSON.stringify({ done: [...this.done] }, null, 2)}\n`, { mode: 0o600 });
    const { rename } = await import('node:fs/promises');
    await rename(temp, this.file);
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

/** Runs one stage unless the journal has it, and journals it when it ends. */
export async function runStage(
  stage: Stage,
  journal: Journal,
  say: (line: string) => void,
): Promise<'done' | 'skipped'> {
  if (journal.has(stage.id)) return 'skipped';
  await stage.run(say);
  await journal.record(stage.id);
  return 'done';
}

/** The stages in run order: lab-wide first, then one group per host, then the lab-wide end. */
export function stageGroups(stages: readonly Stage[]): { group: string; stages: Stage[] }[] {
  const names = [...new Set(stages.map((s) => s.group))];
  const order = [
    ...names.filter((n) => n === 'lab'),
    ...names.filter((n) => !n.startsWith('lab')),
    ...names.filter((n) => n === 'lab-end'),
  ];
  return order.map((group) => ({ group, stages: stages.filter((s) => s.group === group) }));
}

/**
 * Runs the stages: the lab-wide ones alone, host groups `parallel` at a time (each in
 * order), and journals each as it ends. `afterStage` sees every finished stage.
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
  const runGroup = async ({ stages: list }: { stages: Stage[] }) => {
    for (const stage of list) {
      const result = await runStage(stage, journal, (line) => say(`${stage.group}: ${line}`));
      (result === 'done' ? done : skipped).push(stage.id);
      await options.afterStage?.(stage.id);
    }
  };
  const groups = stageGroups(stages);
  const { bounded } = await import('./plan.ts');
  for (const group of groups.filter((g) => g.group === 'lab')) await runGroup(group);
  await bounded(
    groups.filter((g) => !g.group.startsWith('lab')),
    options.parallel ?? 1,
    runGroup,
  );
  for (const group of groups.filter((g) => g.group === 'lab-end')) await runGroup(group);
  return { done, skipped };
}
