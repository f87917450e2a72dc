// Draining a host's Kubernetes nodes before anything on it is disturbed, and uncordoning
// them after. Nodes someone had cordoned before the first drain stay cordoned after the
// run; the journal keeps that across an interruption.

import { drainNode, uncordonNode, waitNodeReady } from '../../cluster/apply.ts';
import type { KubeApi } from '../../cluster/kube.ts';
import type { HostPart } from '../plan.ts';
import type { Stage } from '../scheduler.ts';
import { REBOOT_TIMEOUT_MS, type StageContext } from './context.ts';

/** The GPU nodes of the host's VMs, by name. */
export function nodesOn({ lab, plan }: StageContext, part: HostPart): string[] {
  return lab.vms
    .filter((vm) => vm.host === part.node && vm.kubernetesNode)
    .map((vm) => vm.kubernetesNode as string)
    .filter((name) => plan.gpuNodes.some((n) => n.name === name));
}

/** The nodes that exist in the cluster now (one may have been removed since the plan). */
async function present({ connections }: StageContext, nodes: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const name of nodes) if (await connections.kube.get('v1', 'Node', name)) found.push(name);
  return found;
}

export function drainStage(context: StageContext, part: HostPart, nodes: readonly string[]): Stage {
  const { connections, journal, options } = context;
  return {
    id: `${part.node}/drain`,
    group: `host:${part.node}`,
    fingerprint: nodes.join(','),
    title: `drain ${nodes.join(', ')}`,
    run: async (say) => {
      for (const name of await present(context, nodes)) {
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
  };
}

export function uncordonStage(context: StageContext, part: HostPart, nodes: readonly string[]): Stage {
  const { connections, journal, options } = context;
  return {
    id: `${part.node}/uncordon`,
    group: `host:${part.node}`,
    fingerprint: nodes.join(','),
    title: `uncordon ${nodes.join(', ')}`,
    run: async (say) => {
      for (const name of await present(context, nodes)) {
        if (journal.marked(`cordoned-before:${name}`)) {
          say(`${name} was cordoned before this run: left so`);
          continue;
        }
        // The next host is drained only once this one's nodes serve again.
        await waitNodeReady(connections.kube, name, {
          timeoutMs: options.rebootTimeoutMs ?? REBOOT_TIMEOUT_MS,
          pollMs: options.pollMs,
        });
        await uncordonNode(connections.kube, name);
        await journal.mark(`drained:${name}`, false);
        say(`uncordoned ${name}`);
      }
    },
  };
}

/**
 * Nodes a Talos upgrade drained and uncordoned itself: the engine only waits for them to be
 * Ready, so the next host starts once this one's nodes serve again (as after an uncordon).
 */
export function readyStage(context: StageContext, part: HostPart, nodes: readonly string[]): Stage {
  const { connections, options } = context;
  return {
    id: `${part.node}/ready`,
    group: `host:${part.node}`,
    fingerprint: nodes.join(','),
    title: `wait for ${nodes.join(', ')} to be Ready (Talos drained and uncordoned ${nodes.length === 1 ? 'it' : 'them'})`,
    run: async (say) => {
      for (const name of await present(context, nodes)) {
        await waitNodeReady(connections.kube, name, {
          timeoutMs: options.rebootTimeoutMs ?? REBOOT_TIMEOUT_MS,
          pollMs: options.pollMs,
        });
        say(`${name} is Ready`);
      }
    },
  };
}

export interface RestartDrainOptions {
  /** How long a drain may take, and a node to be Ready again. */
  drainTimeoutMs?: number;
  readyTimeoutMs?: number;
  pollMs?: number;
  say?: (line: string) => void;
}

/**
 * Hooks for a command that restarts node VMs outside an apply's stages (vm apply, vm
 * rollback, rollback): the VM's Kubernetes node is drained before the VM stops, and
 * uncordoned once Ready after it runs again — unless someone had cordoned it before. A VM
 * with no Kubernetes node, or one the cluster does not have, is not drained.
 */
export function drainAroundRestart(
  kube: KubeApi,
  nodeOf: (vmid: number) => string | undefined,
  options: RestartDrainOptions = {},
): { beforeStop(vm: { vmid: number }): Promise<void>; afterStart(vm: { vmid: number }): Promise<void> } {
  const drained = new Map<number, { name: string; cordonedBefore: boolean }>();
  return {
    beforeStop: async ({ vmid }) => {
      const name = nodeOf(vmid);
      // A read that fails stops the command before the VM is touched.
      const live = name ? await kube.get('v1', 'Node', name) : undefined;
      if (!name || !live) return;
      drained.set(vmid, { name, cordonedBefore: live.spec?.unschedulable === true });
      options.say?.(`draining ${name} (VM ${vmid})`);
      await drainNode(kube, name, { timeoutMs: options.drainTimeoutMs, pollMs: options.pollMs });
      options.say?.(`drained ${name}`);
    },
    afterStart: async ({ vmid }) => {
      const node = drained.get(vmid);
      if (!node) return;
      drained.delete(vmid);
      if (node.cordonedBefore) {
        options.say?.(`${node.name} was cordoned before: left so`);
        return;
      }
      await waitNodeReady(kube, node.name, {
        timeoutMs: options.readyTimeoutMs ?? REBOOT_TIMEOUT_MS,
        pollMs: options.pollMs,
      });
      await uncordonNode(kube, node.name);
      options.say?.(`uncordoned ${node.name}`);
    },
  };
}
