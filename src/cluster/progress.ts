// Progress where operators look, and the rollout lock across machines (issue 19):
//
// - each GPU node's host turn as a node label (`kubectl get nodes -L igpu-split.io/rollout`),
//   with the details in an annotation, both written by server-side apply as a field manager
//   of their own (`igpu-split-rollout`), so that rollback releases exactly them;
// - a summary on a ConfigMap `igpu-split-rollout` in the lab's namespace (no CRD is
//   installed, so no custom resource);
// - a coordination.k8s.io/v1 Lease `igpu-split-rollout` beside it: the lock between
//   machines (holder `user@machine`), taken with optimistic concurrency so two machines
//   racing cannot both win;
// - a node labelled `igpu-split.io/skip=true` leaves its Proxmox host out, as --skip-host does.
//
// The field manager is not `igpu-split`: server-side apply takes an applied configuration
// as the manager's whole intent and removes the fields that manager owned and left out, so
// the cluster layer's node-label apply (as `igpu-split`) would drop the rollout label, and
// the rollout's apply would drop the GPU labels.

import { hostname, userInfo } from 'node:os';
import type { Lab } from '../config/lab.ts';
import { IgpuSplitError, RefusedError } from '../core/errors.ts';
import type { KubeApi, KubeObject } from './kube.ts';
import { OURS } from './manifest.ts';

export const ROLLOUT_LABEL = 'igpu-split.io/rollout';
export const DETAIL_ANNOTATION = 'igpu-split.io/rollout-detail';
/** `igpu-split.io/skip=true` on a node: its host is left out, as with --skip-host. */
export const SKIP_LABEL = 'igpu-split.io/skip';
/** The status ConfigMap and the Lease, in the lab's namespace. */
export const ROLLOUT_OBJECT = 'igpu-split-rollout';
export const PROGRESS_MANAGER = 'igpu-split-rollout';
/** How long the Lease holds without a renewal; it is renewed every third of that. */
export const LEASE_SECONDS = 60;

/**
 * The label's values: where a node's host turn is. Each is a valid label value
 * (kubernetes/apimachinery pkg/util/validation/validation.go @v0.34.1: labelValueFmt is
 * `(qualifiedNameFmt)?`, at most LabelValueMaxLength = 63 characters, alphanumerics at both
 * ends and `-`, `_`, `.` between).
 */
export const ROLLOUT_STAGES = [
  'pending',
  'draining',
  'changing-host',
  'changing-vms',
  'changing-guest',
  'waiting-ready',
  'done',
  'failed',
  'skipped',
] as const;
export type RolloutStage = (typeof ROLLOUT_STAGES)[number];

/** The stage of a host turn an engine stage id (`pve1/drain`, `pve1/guest/101`) stands for. */
export function rolloutStageOf(stageId: string): RolloutStage | undefined {
  const kind = stageId.split('/')[1];
  const stages: Record<string, RolloutStage> = {
    drain: 'draining',
    host: 'changing-host',
    vms: 'changing-vms',
    start: 'changing-vms',
    guest: 'changing-guest',
    uncordon: 'waiting-ready',
    ready: 'waiting-ready',
  };
  return kind === undefined ? undefined : stages[kind];
}

/** `user@machine`: who holds the Lease. */
export function holderIdentity(): string {
  let user = process.env.USER ?? 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // expected: SystemError — a uid without a passwd entry (a container); $USER names it then
  }
  return `${user}@${hostname()}`;
}

/** metav1.MicroTime's form (apimachinery pkg/apis/meta/v1/micro_time.go @v0.34.1 RFC3339Micro). */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export interface LeaseOptions {
  /** The lab's namespace. */
  namespace: string;
  /** `user@machine` of this run. */
  identity: string;
  /** Take a Lease whose holder let it expire (--take-over). */
  takeOver?: boolean;
  now?: () => Date;
  durationSeconds?: number;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/** When a Lease held by its holder runs out: its last renewal plus its duration. */
function expiryOf(spec: LeaseSpec): Date | undefined {
  const last = spec.renewTime ?? spec.acquireTime;
  if (!last || spec.leaseDurationSeconds === undefined) return undefined;
  return new Date(Date.parse(last) + spec.leaseDurationSeconds * 1000);
}

/** Why this run may not take the Lease as it is now, or undefined. */
export function leaseRefusalOf(
  lease: KubeObject | undefined,
  options: LeaseOptions,
): RefusedError | undefined {
  const spec = (lease?.spec ?? {}) as LeaseSpec;
  const holder = spec.holderIdentity;
  if (!lease || !holder || holder === options.identity) return undefined;
  const now = (options.now ?? (() => new Date()))();
  const expiry = expiryOf(spec);
  const where = `Lease ${options.namespace}/${ROLLOUT_OBJECT}`;
  if (expiry && expiry.getTime() > now.getTime())
    return new RefusedError(
      `another machine is rolling this lab out: the rollout lock is held by ${holder} until ${expiry.toISOString()}`,
      {
        target: where,
        fix: `continue it there (igpu-split apply --resume on ${holder}), or once the lock has expired: igpu-split apply --take-over`,
        nothingChanged: true,
      },
    );
  if (options.takeOver) return undefined;
  return new RefusedError(
    `the rollout lock of ${holder} expired${expiry ? ` at ${expiry.toISOString()}` : ''}, and its rollout may be unfinished`,
    {
      target: where,
      fix: `continue it on ${holder} (igpu-split apply --resume), or take it over from here: igpu-split apply --take-over`,
      nothingChanged: true,
    },
  );
}

/** The read-only check before the question: another machine's live or expired Lease. */
export async function leaseRefusal(kube: KubeApi, options: LeaseOptions): Promise<RefusedError | undefined> {
  const lease = await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, options.namespace);
  return leaseRefusalOf(lease, options);
}

function leaseObject(spec: LeaseSpec, namespace: string, resourceVersion?: string) {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: ROLLOUT_OBJECT, namespace, labels: { ...OURS }, resourceVersion },
    spec: spec as Record<string, unknown>,
  };
}

/** The lab's namespace, created when the cluster stage has not made it yet. */
async function ensureNamespace(kube: KubeApi, namespace: string): Promise<void> {
  if (await kube.get('v1', 'Namespace', namespace)) return;
  try {
    await kube.create({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: namespace, labels: { ...OURS } },
    });
  } catch (error) {
    // expected: anything — another machine created it meanwhile; a namespace still missing is the error
    if (!(await kube.get('v1', 'Namespace', namespace))) throw error;
  }
}

/**
 * Takes the Lease for this run: creates it, or updates it at the resourceVersion read (so of
 * two machines racing, one wins and the other reads the winner and is refused), renewing
 * it when this identity holds it already (a resume), taking it over (leaseTransitions + 1)
 * when it expired and takeOver is set. Refused in one line naming the holder otherwise.
 */
export async function acquireLease(kube: KubeApi, options: LeaseOptions): Promise<void> {
  const now = () => microTime((options.now ?? (() => new Date()))());
  const duration = options.durationSeconds ?? LEASE_SECONDS;
  await ensureNamespace(kube, options.namespace);
  for (let attempt = 0; attempt < 3; attempt++) {
    const live = await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, options.namespace);
    const refused = leaseRefusalOf(live, options);
    if (refused) throw refused;
    const held = (live?.spec ?? {}) as LeaseSpec;
    const ours = held.holderIdentity === options.identity;
    const spec: LeaseSpec = {
      holderIdentity: options.identity,
      leaseDurationSeconds: duration,
      acquireTime: ours && held.acquireTime ? held.acquireTime : now(),
      renewTime: now(),
      leaseTransitions: (held.leaseTransitions ?? 0) + (held.holderIdentity && !ours ? 1 : 0),
    };
    if (!live) {
      const created = await kube
        .create(leaseObject(spec, options.namespace))
        .catch(async (error: unknown) => {
          // expected: anything — a create another machine won (409) reads as a race lost; the rest is thrown
          if (await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, options.namespace))
            return undefined;
          throw error;
        });
      if (created) return;
      continue;
    }
    if (await kube.replace(leaseObject(spec, options.namespace, live.metadata.resourceVersion as string)))
      return;
  }
  throw new RefusedError('another machine took the rollout lock at the same moment', {
    target: `Lease ${options.namespace}/${ROLLOUT_OBJECT}`,
    fix: `see who holds it: kubectl get lease -n ${options.namespace}`,
    nothingChanged: true,
  });
}

/** Renews the Lease; refused when another identity holds it now (taken over after it expired). */
export async function renewLease(kube: KubeApi, options: LeaseOptions): Promise<void> {
  const live = await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, options.namespace);
  const held = (live?.spec ?? {}) as LeaseSpec;
  if (!live || held.holderIdentity !== options.identity)
    throw new RefusedError(
      `the rollout lock was taken by ${held.holderIdentity ?? 'nobody (it is gone)'} while this run held it`,
      {
        target: `Lease ${options.namespace}/${ROLLOUT_OBJECT}`,
        fix: `the rollout stopped here; see kubectl get lease -n ${options.namespace} and continue from the holder's machine`,
      },
    );
  const spec = { ...held, renewTime: microTime((options.now ?? (() => new Date()))()) };
  // A renewal that lost a race is tried once more from a fresh read.
  if (!(await kube.replace(leaseObject(spec, options.namespace, live.metadata.resourceVersion as string))))
    await renewLease(kube, options);
}

/** Lets the Lease go (no holder; leaseTransitions kept) when this identity holds it. */
export async function releaseLease(kube: KubeApi, options: LeaseOptions): Promise<void> {
  const live = await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, options.namespace);
  const held = (live?.spec ?? {}) as LeaseSpec;
  if (!live || held.holderIdentity !== options.identity) return;
  const spec: LeaseSpec = {
    leaseDurationSeconds: held.leaseDurationSeconds,
    leaseTransitions: held.leaseTransitions,
  };
  await kube.replace(leaseObject(spec, options.namespace, live.metadata.resourceVersion as string));
}

/** The Proxmox hosts whose VMs' nodes carry `igpu-split.io/skip=true`. */
export async function hostsSkippedByLabel(kube: KubeApi, lab: Lab): Promise<string[]> {
  const nodes = await kube.list('v1', 'Node', { labelSelector: `${SKIP_LABEL}=true` });
  const names = new Set(nodes.map((n) => n.metadata.name));
  return [
    ...new Set(
      lab.vms.filter((vm) => vm.kubernetesNode && names.has(vm.kubernetesNode)).map((vm) => vm.host),
    ),
  ];
}

/** What the detail annotation holds (JSON). */
export interface RolloutDetail {
  run: string;
  holder: string;
  host: string;
  stage: RolloutStage;
  title: string;
  startedAt: string;
}

function detailOf(node: KubeObject): { present: boolean; detail?: RolloutDetail } {
  const text = (node.metadata.annotations as Record<string, string> | undefined)?.[DETAIL_ANNOTATION];
  if (text === undefined) return { present: false };
  try {
    const value = JSON.parse(text) as Partial<RolloutDetail>;
    if (typeof value?.run === 'string' && typeof value.host === 'string')
      return { present: true, detail: value as RolloutDetail };
  } catch {
    // expected: SyntaxError — a value someone wrote by hand: foreign, said as such below
  }
  return { present: true };
}

/** An annotation someone else changed: one line naming the node and what to do. */
export class ForeignProgress extends RefusedError {}

export interface ProgressOptions {
  namespace: string;
  identity: string;
  /** The run's id: a resume keeps it (the journal's start), so its own annotations are its. */
  run: string;
  lab: Lab;
  now?: () => Date;
}

/**
 * The rollout's progress on the nodes and the status ConfigMap. `claim` writes every GPU
 * node's starting state (a fresh run may overwrite what an earlier, finished run left);
 * `mark` writes a host turn's stage on its nodes, after checking that the annotation is
 * still this run's: one someone else changed stops the stage before anything is written.
 */
export class RolloutProgress {
  private readonly hosts = new Map<string, RolloutStage>();
  private readonly kube: KubeApi;
  private readonly options: ProgressOptions;
  constructor(kube: KubeApi, options: ProgressOptions) {
    this.kube = kube;
    this.options = options;
  }

  private nodesOf(host: string): string[] {
    return this.options.lab.vms
      .filter((vm) => vm.host === host && vm.kubernetesNode)
      .map((vm) => vm.kubernetesNode as string);
  }

  private now(): string {
    return (this.options.now ?? (() => new Date()))().toISOString();
  }

  /** Starting states, by host: pending, done, skipped. */
  async claim(states: ReadonlyMap<string, RolloutStage>): Promise<void> {
    for (const [host, stage] of states) {
      this.hosts.set(host, stage);
      for (const node of this.nodesOf(host)) await this.write(node, host, stage, stage, true);
    }
    await this.summary();
  }

  async mark(host: string, stage: RolloutStage, title: string): Promise<void> {
    this.hosts.set(host, stage);
    for (const node of this.nodesOf(host)) await this.write(node, host, stage, title, false);
    await this.summary();
  }

  private async write(node: string, host: string, stage: RolloutStage, title: string, claiming: boolean) {
    const live = await this.kube.get('v1', 'Node', node);
    if (!live) return;
    const { present, detail } = detailOf(live);
    // Claiming, an earlier run's detail is ours to replace (the Lease says none runs now).
    const foreign = present && (!detail || (!claiming && detail.run !== this.options.run));
    if (foreign)
      throw new ForeignProgress(
        `the ${DETAIL_ANNOTATION} annotation was changed by someone else (${detail ? `run ${detail.run} of ${detail.holder}` : 'not a value igpu-split writes'}): the rollout stopped here, nothing further changed`,
        {
          target: `node ${node}`,
          fix: `check no other rollout runs (kubectl get lease -n ${this.options.namespace}), then kubectl annotate node ${node} ${DETAIL_ANNOTATION}- and igpu-split apply --resume`,
          nothingChanged: true,
        },
      );
    const value: RolloutDetail = {
      run: this.options.run,
      holder: this.options.identity,
      host,
      stage,
      title,
      startedAt: this.now(),
    };
    await this.kube.apply(
      {
        apiVersion: 'v1',
        kind: 'Node',
        metadata: {
          name: node,
          labels: { [ROLLOUT_LABEL]: stage },
          annotations: { [DETAIL_ANNOTATION]: JSON.stringify(value) },
        },
      },
      PROGRESS_MANAGER,
    );
  }

  /** The counts by state, the run and its holder, on the ConfigMap. */
  async summary(): Promise<void> {
    const by = (state: (s: RolloutStage) => boolean) =>
      [...this.hosts].filter(([, s]) => state(s)).map(([host]) => host);
    const status = {
      run: this.options.run,
      holder: this.options.identity,
      updated: this.now(),
      done: by((s) => s === 'done'),
      inFlight: by((s) => !['pending', 'done', 'failed', 'skipped'].includes(s)),
      pending: by((s) => s === 'pending'),
      failed: by((s) => s === 'failed'),
      skipped: by((s) => s === 'skipped'),
      hosts: Object.fromEntries(this.hosts),
    };
    const text = `${status.done.length} done, ${status.inFlight.length} in flight, ${status.pending.length} pending, ${status.failed.length} failed, ${status.skipped.length} skipped (run ${status.run} of ${status.holder}, ${status.updated})`;
    await this.kube.apply(
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: ROLLOUT_OBJECT, namespace: this.options.namespace, labels: { ...OURS } },
        data: { summary: text, 'status.json': JSON.stringify(status) },
      },
      PROGRESS_MANAGER,
    );
  }
}

/**
 * Rollback: gives up the rollout label and annotation on the nodes (an apply of nothing as
 * our rollout field manager; a value another manager also set stays) and deletes the
 * ConfigMap and the Lease.
 */
export async function releaseProgress(
  kube: KubeApi,
  namespace: string,
  nodes: readonly string[],
): Promise<string[]> {
  const done: string[] = [];
  for (const name of nodes) {
    const live = await kube.get('v1', 'Node', name);
    const ours = (
      live?.metadata as { managedFields?: { manager?: string }[] } | undefined
    )?.managedFields?.some((entry) => entry.manager === PROGRESS_MANAGER);
    if (!ours) continue;
    await kube.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name } }, PROGRESS_MANAGER);
    done.push(`released the rollout label and annotation on node ${name}`);
  }
  for (const [apiVersion, kind] of [
    ['v1', 'ConfigMap'],
    ['coordination.k8s.io/v1', 'Lease'],
  ] as const) {
    if (!(await kube.get(apiVersion, kind, ROLLOUT_OBJECT, namespace))) continue;
    await kube.delete(apiVersion, kind, ROLLOUT_OBJECT, namespace);
    done.push(`deleted ${kind} ${ROLLOUT_OBJECT}`);
  }
  return done;
}

/** Whether an error is the rollout's own refusal (no progress is written after it). */
export function isForeignProgress(error: unknown): boolean {
  return (
    error instanceof ForeignProgress ||
    (error instanceof IgpuSplitError && error.cause instanceof ForeignProgress)
  );
}
