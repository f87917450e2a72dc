// Which stage changed the lab, and when. Every call that can change a host, a guest,
// Proxmox or the cluster goes through these wrappers and tells the stage it runs in
// (found through AsyncLocalStorage, so hosts worked on in parallel are told apart). The
// journal marks a stage begun only then: a stage that fails before its first change — a
// refused SSH connection, a missing privilege — leaves nothing to resume.

import { AsyncLocalStorage } from 'node:async_hooks';
import type { HostAccess } from '../access/host.ts';
import type { KubeApi } from '../cluster/kube.ts';
import type { Talosctl } from '../guest/talos/talosctl.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import type { LabConnections } from './connections.ts';

const stage = new AsyncLocalStorage<() => Promise<void>>();

/** Runs a stage's work; `changing` runs once, before the first change the work makes. */
export function runAsStage<T>(changing: () => Promise<void>, work: () => Promise<T>): Promise<T> {
  let marked: Promise<void> | undefined;
  return stage.run(() => {
    marked ??= changing();
    return marked;
  }, work);
}

async function beforeChange(): Promise<void> {
  await stage.getStore()?.();
}

/** `target` with the named methods reporting a change before they run. */
function watched<T extends object>(target: T, changing: readonly string[]): T {
  return new Proxy(target, {
    get(object, key, receiver) {
      const value = Reflect.get(object, key, receiver);
      if (typeof value !== 'function' || !changing.includes(String(key))) return value;
      return async (...args: unknown[]) => {
        await beforeChange();
        return value.apply(receiver, args);
      };
    },
  });
}

const HOST_CHANGES = ['writeFileAtomic', 'createExclusive', 'makeDir', 'remove', 'run'] as const;
const PROXMOX_CHANGES = [
  'createMapping',
  'updateMapping',
  'deleteMapping',
  'updateVmConfig',
  'vmPower',
] as const;
const KUBE_CHANGES = ['apply', 'create', 'delete', 'setUnschedulable', 'evict'] as const;
const TALOSCTL_CHANGES = new Set(['patch', 'upgrade', 'apply-config', 'reboot']);

/** The same connections, each change reported to the stage that makes it. */
export function watchChanges(connections: LabConnections): LabConnections {
  const talosctl: Talosctl | undefined = connections.talosctl
    ? async (args) => {
        if (TALOSCTL_CHANGES.has(args[0] ?? '')) await beforeChange();
        return (connections.talosctl as Talosctl)(args);
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
