// Whether the cluster's etcd quorum is whole before the next hosts take their turn: every
// member's node Ready, and the API server's `etcd` readiness check passing (GET
// /readyz?verbose, `[+]etcd ok`: kubernetes/apiserver pkg/server/healthz/healthz.go and
// pkg/server/options/etcd.go @v0.34.1; /readyz is readable with the default roles, /readyz/etcd
// is not). A wait that runs out names the members still unhealthy and what to do; nothing
// of the next wave has started then.

import { TargetError } from '../core/errors.ts';
import { pollVisibly } from '../core/waits.ts';
import type { KubeApi, KubeObject } from './kube.ts';

export interface QuorumState {
  /** Members whose node is not Ready (or gone). */
  unready: string[];
  /** The API server's etcd check: passed, failed, or not listed. */
  etcd: 'ok' | 'failed' | 'unknown';
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

export async function readQuorum(kube: KubeApi, members: readonly string[]): Promise<QuorumState> {
  const [nodes, ready] = await Promise.all([kube.list('v1', 'Node'), kube.readyz()]);
  const byName = new Map(nodes.map((n) => [n.metadata.name, n]));
  return {
    unready: members.filter((m) => !nodeReady(byName.get(m))),
    etcd: etcdCheck(ready.text),
  };
}

/** Waits, bounded, until every member is Ready and etcd answers the API server. */
export async function waitQuorum(
  kube: KubeApi,
  members: readonly string[],
  options: { timeoutMs: number; pollMs?: number; before?: string },
): Promise<void> {
  if (members.length === 0) return;
  const deadline = Date.now() + options.timeoutMs;
  let state = await readQuorum(kube, members);
  await pollVisibly(
    {
      target: kube.target,
      what: `etcd quorum (${members.join(', ')}) to be whole`,
      limitMs: options.timeoutMs,
    },
    async () => {
      while ((state.unready.length > 0 || state.etcd === 'failed') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 2_000));
        state = await readQuorum(kube, members);
      }
    },
  );
  if (state.unready.length === 0 && state.etcd !== 'failed') return;
  const seconds = Math.round(options.timeoutMs / 1000);
  throw new TargetError(
    state.unready.length > 0
      ? `etcd member${state.unready.length === 1 ? '' : 's'} ${state.unready.join(', ')} not Ready after ${seconds} s${options.before ? `; ${options.before} not started` : ''}`
      : `the API server's etcd check still fails after ${seconds} s${options.before ? `; ${options.before} not started` : ''}`,
    {
      target: kube.target,
      fix: `bring ${state.unready.length > 0 ? state.unready.join(', ') : 'etcd'} back (kubectl get nodes; talosctl etcd status on Talos), then igpu-split apply --resume`,
      nothingChanged: true,
    },
  );
}
