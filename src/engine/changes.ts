// Which stage changed the lab, and when. Every call that can change a host, a guest,
// Proxmox or the cluster goes through these wrappers and tells the stage it runs in
// (found through AsyncLocalStorage, so hosts worked on in parallel are told apart). The
// journal marks a stage begun only then: a stage that fails before its first change — a
// refused SSH connection, a missing privilege — leaves nothing to resume, nor does one whose
// first change the server refused outright.

import { AsyncLocalStorage } from 'node:async_hooks';
import type { HostAccess } from '../access/host.ts';
import type { KubeApi } from '../cluster/kube.ts';
import { IgpuSplitError } from '../core/errors.ts';
import type { Talosctl } from '../guest/talos/talosctl.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import type { LabConnections } from './connections.ts';

/** The stage a change runs in: how to mark it begun, and to take that back. */
interface StageMarks {
  begin(): Promise<boolean>;
  undo(): Promise<void>;
}

const stage = new AsyncLocalStorage<StageMarks>();

/**
 * Runs a stage's work; `changing` runs once, before the first change the work makes. When
 * that first change is refused before it could change anything (a 4xx answer, a refused
 * connection: the error says `nothingChanged`), `unchanged` takes the mark back — until
 * another change of the stage goes through.
 */
export function runAsStage<T>(
  changing: () => Promise<void>,
  unchanged: () => Promise<void>,
  work: () => Promise<T>,
): Promise<T> {
  let marked: Promise<void> | undefined;
  let settled = false;
  return stage.run(
    {
      begin: async () => {
        if (marked) {
          await marked;
          settled = true;
          return false;
        }
        marked = changing();
        await marked;
        return true;
      },
      undo: async () => {
        if (settled) return;
        marked = undefined;
        await unchanged();
      },
    },
    work,
  );
}

/** `target` with the named methods reporting a change before they run. */
function watched<T extends object>(target: T, changing: readonly string[]): T {
  return new Proxy(target, {
    get(object, key, receiver) {
      const value = Reflect.get(object, key, receiver);
      if (typeof value !== 'function' || !changing.includes(String(key))) return value;
      return async (...args: unknown[]) => await asChange(() => value.apply(receiver, args));
    },
  });
}

/** One change: the stage is begun before it, and un-begun when it was refused outright. */
async function asChange<T>(call: () => Promise<T>): Promise<T> {
  const marks = stage.getStore();
  const first = (await marks?.begin()) === true;
  try {
    return await call();
  } catch (error) {
    // expected: anything — rethrown; a refusal that changed nothing (nothingChanged) un-begins the stage first
    if (first && error instanceof IgpuSplitError && error.nothingChanged) await marks?.undo();
    throw error;
  }
}

const HOST_CHANGES = ['writeFileAtomic', 'createExclusive', 'makeDir', 'remove', 'run'] as const;
const PROXMOX_CHANGES = [
  'createMapping',
  'updateMapping',
  'deleteMapping',
  'updateVmConfig',
  'vmPower',
] as const;
const KUBE_CHANGES = ['apply', 'replace', 'create', 'delete', 'setUnschedulable', 'evict'] as const;
const TALOSCTL_CHANGES = new Set(['patch', 'upgrade', 'apply-config', 'reboot']);

/** The same connections, each change reported to the stage that makes it. */
export function watchChanges(connections: LabConnections): LabConnections {
  const talosctl: Talosctl | undefined = connections.talosctl
    ? (args) => {
        const run = () => (connections.talosctl as Talosctl)(args);
        return TALOSCTL_CHANGES.has(args[0] ?? '') ? asChange(run) : run();
      }
    : undefined;
  return {
    ...connections,
    proxmox: watched<ProxmoxApi>(connections.proxmox, PROXMOX_CHANGES),
    kube: watched<KubeApi>(connections.kube, KUBE_CHANGES),
    host: async (node) => watched<HostAccess>(await connections.host(node), HOST_CHANGES),
    guest: async (vm) => watched<HostAccess>(await connections.guest(vm), HOST_CHANGES),
    talosctl,
    close: () => connections.close(),
  };
}
