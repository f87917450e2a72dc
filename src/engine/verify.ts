// The end-to-end chain for every node VM, one link per layer: host facts → mapping →
// VM config and running → guest i915 and render node → plugin and allocatable → smoke
// pod. Each link is pass/warn/fail with the evidence and the fix of its worst check;
// the exit code follows the worst link.

import { verifyCluster } from '../cluster/verify.ts';
import { gpuNodesOf } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { bounded } from '../core/bounded.ts';
import { type Check, worstStatus } from '../core/model.ts';
import { guestLayer } from '../guest/providers.ts';
import { readState } from '../host/apply.ts';
import { gatherHostFacts } from '../host/gather.ts';
import { verifyHost } from '../host/verify.ts';
import { gatherMappingFacts, planMapping } from '../mapping/plan.ts';
import { verifyVms } from '../vm/verify.ts';
import { guestEnvironment, type LabConnections, type LabVm } from './connections.ts';

export interface ChainLink extends Check {
  link: 'host' | 'mapping' | 'vm' | 'guest' | 'cluster' | 'smoke';
}

export interface VmChain {
  vmid: number;
  node?: string;
  links: ChainLink[];
}

/** One link from the checks of a layer: its worst, or a pass summarising them. */
function link(vmid: number, name: ChainLink['link'], checks: Check[], summary: string): ChainLink {
  const id = `chain.${vmid}.${name}`;
  if (checks.length === 0)
    return {
      id,
      link: name,
      status: 'warn',
      evidence: `${summary}: nothing could be checked`,
      fix: 'see the layer’s own verify',
    };
  const status = worstStatus(checks);
  const worst = checks.find((c) => c.status === status) as Check;
  return status === 'pass'
    ? { id, link: name, status, evidence: `${summary}: ${checks.length} check(s) pass` }
    : { id, link: name, status, evidence: worst.evidence, ...(worst.fix ? { fix: worst.fix } : {}) };
}

export async function verifyLab(
  lab: Lab,
  connections: LabConnections,
  options: {
    smoke?: boolean;
    pollMs?: number;
    timeoutMs?: number;
    settleMs?: number;
    /** Hears each chain as soon as it is verified (the CLI prints it then). */
    onChain?: (chain: VmChain) => void;
  } = {},
): Promise<VmChain[]> {
  const hostChecks = new Map<string, Check[]>();
  await bounded(
    lab.hosts.filter((h) => h.ssh),
    8,
    async (h) => {
      const access = await connections.host(h.node);
      try {
        hostChecks.set(h.node, verifyHost(await gatherHostFacts(access), await readState(access)));
      } finally {
        await access.close();
      }
    },
  );
  const mapping = planMapping(
    await gatherMappingFacts(connections.proxmox, lab.mapping, [...new Set(lab.vms.map((vm) => vm.host))]),
  );
  const cluster = await verifyCluster(connections.kube, lab.kubernetes, gpuNodesOf(lab), {
    smoke: options.smoke,
    pollMs: options.pollMs,
    timeoutMs: options.timeoutMs,
    settleMs: options.settleMs,
  });
  return bounded(lab.vms, 8, async (vm): Promise<VmChain> => {
    const links: ChainLink[] = [];
    const host = hostChecks.get(vm.host);
    links.push(
      host
        ? link(vm.vmid, 'host', host, `host ${vm.host}`)
        : {
            id: `chain.${vm.vmid}.host`,
            link: 'host',
            status: 'warn',
            evidence: `host ${vm.host} has no ssh: in the lab file, so it was not read`,
            fix: 'add it to verify the host layer',
          },
    );
    const mappingChecks = mapping.checks.filter((c) => c.id.startsWith(`mapping.${vm.host}.`));
    const entryMissing = mapping.steps.length > 0;
    links.push(
      entryMissing
        ? {
            id: `chain.${vm.vmid}.mapping`,
            link: 'mapping',
            status: 'fail',
            evidence: `mapping ${lab.mapping} lacks or mismatches the entry for ${vm.host}`,
            fix: 'run igpu-split apply (or mapping apply)',
          }
        : link(
            vm.vmid,
            'mapping',
            mappingChecks.length > 0 ? mappingChecks : [{ id: 'm', status: 'pass', evidence: '' }],
            `mapping ${lab.mapping}`,
          ),
    );
    links.push(
      link(
        vm.vmid,
        'vm',
        await verifyVms(connections.proxmox, [{ vmid: vm.vmid, node: vm.host, vgpu: vm.vgpu }], {
          mapping: lab.mapping,
        }),
        `VM ${vm.vmid}`,
      ),
    );
    links.push(link(vm.vmid, 'guest', await guestChecks(vm, connections), `guest of VM ${vm.vmid}`));
    const node = vm.kubernetesNode;
    const nodeChecks = node ? cluster.filter((c) => c.id.startsWith(`cluster.${node}.`)) : [];
    links.push(
      link(
        vm.vmid,
        'cluster',
        nodeChecks.filter((c) => !c.id.endsWith('.smoke')),
        node ? `node ${node}` : 'no kubernetesNode',
      ),
    );
    if (options.smoke !== false)
      links.push(
        link(
          vm.vmid,
          'smoke',
          nodeChecks.filter((c) => c.id.endsWith('.smoke')),
          node ? `smoke pod on ${node}` : 'no kubernetesNode',
        ),
      );
    const chain = { vmid: vm.vmid, node, links };
    options.onChain?.(chain);
    return chain;
  });
}

/** The guest's checks through its OS's provider; none when the lab file gives no way to reach it. */
async function guestChecks(vm: LabVm, connections: LabConnections): Promise<Check[]> {
  const layer = guestLayer(vm, guestEnvironment(connections));
  if (!layer) return [];
  try {
    return await layer.verify();
  } finally {
    await layer.close();
  }
}

export function worstOfChains(chains: readonly VmChain[]) {
  return worstStatus(chains.flatMap((c) => c.links));
}
