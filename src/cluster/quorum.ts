// Whether the cluster's etcd quorum is whole before the next hosts take their turn: every
// member's node Ready, the API server's `etcd` readiness check passing (GET /readyz?verbose,
// `[+]etcd ok`: kubernetes/apiserver pkg/server/healthz/healthz.go and
// pkg/server/options/etcd.go @v0.34.1; /readyz is readable with the default roles, /readyz/etcd
// is not), and — for Talos members the lab file can reach, when talosctl is here — each
// member's row of `talosctl etcd status`. A wait that runs out names the members still unhealthy and what to do; nothing
// of the next wave has started then.

import { TargetError } from '../core/errors.ts';
import { pollVisibly } from '../core/waits.ts';
import type { KubeApi, KubeObject } from './kube.ts';

export interface QuorumState {
  /** Members whose node is not Ready (or gone). */
  unready: string[];
  /** The API server's etcd check: passed, failed, or not listed. */
  etcd: 'ok' | 'failed' | 'unknown';
  /** Talos members whose `talosctl etcd status` row shows errors or a learner (when it was asked). */
  talos?: string[];
}

/** Talos control-plane members igpu-split can ask with talosctl: node name → its talosctl address. */
export interface TalosEtcd {
  nodes: Record<string, string>;
  talosctl: (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;
}

/**
 * The rows of `talosctl etcd status` that are not healthy: a non-empty ERRORS column, or
 * LEARNER true. The columns are siderolabs/talos cmd/talosctl/cmd/talos/etcd.go @v1.13.9
 * (NODE MEMBER DB SIZE IN USE LEADER RAFT INDEX RAFT TERM RAFT APPLIED INDEX LEARNER PROTOCOL
 * STORAGE ERRORS), written through a tabwriter with 3 spaces of padding, so cells are split
 * on runs of 3 or more spaces (DB SIZE and IN USE hold single spaces). Returns node addresses.
 */
export function unhealthyEtcd(stdout: string): string[] {
  const [header, ...rows] = stdout.split('\n').filter((line) => line.trim() !== '');
  const columns = (header ?? '').trim().split(/\s{3,}/);
  const at = (name: string) => columns.indexOf(name);
  const [node, learner, errors] = [at('NODE'), at('LEARNER'), at('ERRORS')];
  if (learner < 0) return [];
  return rows.flatMap((row) => {
    const cells = row.trim().split(/\s{3,}/);
    const bad = cells[learner] === 'true' || (errors >= 0 && (cells[errors] ?? '') !== '');
    return bad ? [node >= 0 ? (cells[node] ?? '?') : '?'] : [];
  });
}

const nodeReady = (node: KubeObject | undefined) =>
  ((node?.status?.conditions ?? []) as { type: string; status: string }[]).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );

/** The `etcd` line of /readyz?verbose. */
export function etcdCheck(text: string): QuorumState['etcd'] {
  if (/^\[\+\]etcd ok$/m.test(text)) return 'ok';
  if (/^\[-\]etcd failed/m.test(text)) return 'failed';
  return 'unknown';
}

export async function readQuorum(
  kube: KubeApi,
  members: readonly string[],
  talos?: TalosEtcd,
): Promise<QuorumState> {
  const [nodes, ready] = await Promise.all([kube.list('v1', 'Node'), kube.readyz()]);
  const byName = new Map(nodes.map((n) => [n.metadata.name, n]));
  const state: QuorumState = {
    unready: members.filter((m) => !nodeReady(byName.get(m))),
    etcd: etcdCheck(ready.text),
  };
  const addresses = Object.entries(talos?.nodes ?? {});
  if (!talos || addresses.length === 0) return state;
  const run = await talos.talosctl(['etcd', 'status', '--nodes', addresses.map(([, a]) => a).join(',')]);
  // A talosctl that cannot answer counts every Talos member as not yet healthy.
  const bad = run.code === 0 ? new Set(unhealthyEtcd(run.stdout)) : new Set(addresses.map(([, a]) => a));
  return { ...state, talos: addresses.filter(([, a]) => bad.has(a)).map(([name]) => name) };
}

const broken = (state: QuorumState) =>
  state.unready.length > 0 || state.etcd === 'failed' || (state.talos?.length ?? 0) > 0;

/** Waits, bounded, until every member is Ready and etcd answers the API server. */
export async function waitQuorum(
  kube: KubeApi,
  members: readonly string[],
  options: { timeoutMs: number; pollMs?: number; before?: string; talos?: TalosEtcd },
): Promise<void> {
  if (members.length === 0) return;
  const deadline = Date.now() + options.timeoutMs;
  let state = await readQuorum(kube, members, options.talos);
  await pollVisibly(
    {
      target: kube.target,
      what: `etcd quorum (${members.join(', ')}) to be whole`,
      limitMs: options.timeoutMs,
    },
    async () => {
      while (broken(state) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2_000));
        state = await readQuorum(kube, members, options.talos);
      }
    },
  );
  if (!broken(state)) return;
  const seconds = Math.round(options.timeoutMs / 1000);
  const after = `after ${seconds} s${options.before ? `; ${options.before} not started` : ''}`;
  const talosBad = state.talos ?? [];
  const who = state.unready.length > 0 ? state.unready : talosBad.length > 0 ? talosBad : ['etcd'];
  throw new TargetError(
    state.unready.length > 0
      ? `etcd member${state.unready.length === 1 ? '' : 's'} ${state.unready.join(', ')} not Ready ${after}`
      : talosBad.length > 0
        ? `talosctl etcd status shows ${talosBad.join(', ')} with errors or still a learner ${after}`
        : `the API server's etcd check still fails ${after}`,
    {
      target: kube.target,
      fix: `bring ${who.join(', ')} back (kubectl get nodes; talosctl etcd status on Talos), then igpu-split apply --resume`,
      nothingChanged: true,
    },
  );
}
