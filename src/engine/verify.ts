// The end-to-end chain for every node VM, one link per layer: host facts → mapping →
// VM config and running → guest i915 and render node → plugin and allocatable → smoke
// pod. Each link is pass/warn/pending/fail with the evidence and the fix of its worst
// check, or unreachable when its target could not be read (the rest is verified all the
// same); the exit code follows the worst link (exitCodeOf).

import { verifyCluster } from '../cluster/verify.ts';
import { gpuNodesOf, type SriovHost } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { bounded } from '../core/bounded.ts';
import { EXIT, type ExitCode, TargetError, unlessUnreachable } from '../core/errors.ts';
import { type Check, type CheckStatus, worstStatus } from '../core/model.ts';
import { counted } from '../core/text.ts';
import type { HostGpu } from '../guest/attachment.ts';
import type { GuestAttachment } from '../guest/provider.ts';
import { guestLayer } from '../guest/providers.ts';
import { readState } from '../host/apply.ts';
import { gatherHostFacts } from '../host/gather.ts';
import { verifyHost } from '../host/verify.ts';
import { gatherMappingFacts, type MappingPlan, planMapping } from '../mapping/plan.ts';
import { gatherVfPoolFacts, planVfPool } from '../mapping/vf-pool.ts';
import { verifyVms } from '../vm/verify.ts';
import { guestEnvironment, type LabConnections, type LabVm } from './connections.ts';
import { attachmentsOf, gpuDriverOf, hostGpuOf } from './guest-attachment.ts';

/** A link's verdict: a check's, or `unreachable` when its host, guest or API could not be read. */
export type LinkStatus = CheckStatus | 'unreachable';

export interface ChainLink extends Omit<Check, 'status'> {
  link: 'host' | 'mapping' | 'vm' | 'guest' | 'cluster' | 'smoke';
  status: LinkStatus;
}

/**
 * Worst first: a failed check (something to fix) over a link that could not be read, over
 * one waiting for the user's manual step, over a warning.
 */
const LINK_SEVERITY: Record<LinkStatus, number> = { pass: 0, warn: 1, pending: 2, unreachable: 3, fail: 4 };

/** A link whose target could not be read, with the connection's own one-line error. */
function unreachableLink(vmid: number, name: ChainLink['link'], error: TargetError): ChainLink {
  return {
    id: `chain.${vmid}.${name}`,
    link: name,
    status: 'unreachable',
    evidence: error.oneLine(),
    fix: 'bring it back (or check the address and credentials in the lab file), then verify again',
  };
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
    ? {
        id,
        link: name,
        status,
        evidence: `${summary}: ${counted(checks.length, 'check')} ${checks.length === 1 ? 'passes' : 'pass'}`,
      }
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
  const hostChecks = new Map<string, Check[] | TargetError>();
  // Hosts whose iGPU has VFs now: their chains go through the VF pool, not the GVT-g mapping.
  const sriovHosts = new Map<string, SriovHost>();
  const hostGpus = new Map<string, HostGpu>();
  await bounded(
    lab.hosts.filter((h) => h.ssh),
    8,
    async (h) => {
      const checks = await unlessUnreachable(async () => {
        const access = await connections.host(h.node);
        try {
          const facts = await gatherHostFacts(access);
          const pf = facts.displayDevices.find((d) => d.sriov && !d.virtualFunction && d.vendorId === 0x8086);
          if (pf?.sriov?.numVfs)
            sriovHosts.set(h.node, { node: h.node, pfBdf: pf.bdf, vfs: pf.sriov.numVfs });
          hostGpus.set(h.node, hostGpuOf(facts, h));
          return verifyHost(facts, await readState(access));
        } finally {
          await access.close();
        }
      });
      hostChecks.set(h.node, checks);
    },
  );
  // The Proxmox API is read for every chain's mapping and VM: without it verify cannot go on.
  const mappingFacts = await gatherMappingFacts(connections.proxmox, lab.mapping, [
    ...new Set(lab.vms.map((vm) => vm.host)),
  ]);
  // Each chain is judged by its own host's entry: one host still to be added (skipped, or
  // down when apply ran) does not fail the chains of the hosts that have theirs.
  const pools = new Map<string, MappingPlan>();
  for (const host of sriovHosts.values())
    pools.set(host.node, planVfPool(await gatherVfPoolFacts(connections.proxmox, lab.sriov.mapping, [host])));
  const mappingFor = (node: string) =>
    pools.get(node) ??
    planMapping({ ...mappingFacts, nodes: mappingFacts.nodes.filter((n) => n.node === node) });
  const mappingName = (node: string) => (sriovHosts.has(node) ? lab.sriov.mapping : lab.mapping);
  // What each VM is given decides its guest's checks and the resource its node offers.
  const attached = attachmentsOf(lab, hostGpus);
  const cluster = await unlessUnreachable(() =>
    verifyCluster(
      connections.kube,
      lab.kubernetes,
      gpuNodesOf(lab, (vm) => gpuDriverOf(vm, attached.get(vm.vmid))),
      {
        smoke: options.smoke,
        pollMs: options.pollMs,
        timeoutMs: options.timeoutMs,
        settleMs: options.settleMs,
      },
    ),
  );
  return bounded(lab.vms, 8, async (vm): Promise<VmChain> => {
    const links: ChainLink[] = [];
    const host = hostChecks.get(vm.host);
    links.push(
      host instanceof TargetError
        ? unreachableLink(vm.vmid, 'host', host)
        : host
          ? link(vm.vmid, 'host', host, `host ${vm.host}`)
          : {
              id: `chain.${vm.vmid}.host`,
              link: 'host',
              status: 'warn',
              evidence: `host ${vm.host} has no ssh: in the lab file, so it was not read`,
              fix: 'add it to verify the host layer',
            },
    );
    const mapping = mappingFor(vm.host);
    const mappingChecks = mapping.checks.filter((c) => c.id.startsWith(`mapping.${vm.host}.`));
    const entryMissing = mapping.steps.length > 0;
    links.push(
      entryMissing
        ? {
            id: `chain.${vm.vmid}.mapping`,
            link: 'mapping',
            status: 'fail',
            evidence: `mapping ${mappingName(vm.host)} lacks or mismatches the entry for ${vm.host}`,
            fix: 'run igpu-split apply (or mapping apply)',
          }
        : link(
            vm.vmid,
            'mapping',
            mappingChecks.length > 0 ? mappingChecks : [{ id: 'm', status: 'pass', evidence: '' }],
            `mapping ${mappingName(vm.host)}`,
          ),
    );
    links.push(
      link(
        vm.vmid,
        'vm',
        await verifyVms(
          connections.proxmox,
          [
            {
              vmid: vm.vmid,
              node: vm.host,
              vgpu: vm.vgpu,
              ...(sriovHosts.has(vm.host) ? { attach: 'vf' as const } : {}),
            },
          ],
          { mapping: lab.mapping, vfPool: lab.sriov.mapping },
        ),
        `VM ${vm.vmid}`,
      ),
    );
    const guest = await unlessUnreachable(() => guestChecks(vm, connections, attached.get(vm.vmid)));
    links.push(
      guest instanceof TargetError
        ? unreachableLink(vm.vmid, 'guest', guest)
        : link(vm.vmid, 'guest', guest, `guest of VM ${vm.vmid}`),
    );
    links.push(...clusterLinks(vm, cluster, options.smoke !== false));
    const chain = { vmid: vm.vmid, node: vm.kubernetesNode, links };
    options.onChain?.(chain);
    return chain;
  });
}

/** The node's cluster link (and smoke link), or both unreachable when the API could not be read. */
function clusterLinks(vm: LabVm, cluster: Check[] | TargetError, smoke: boolean): ChainLink[] {
  const names: ChainLink['link'][] = smoke ? ['cluster', 'smoke'] : ['cluster'];
  if (cluster instanceof TargetError) return names.map((name) => unreachableLink(vm.vmid, name, cluster));
  const node = vm.kubernetesNode;
  const nodeChecks = node ? cluster.filter((c) => c.id.startsWith(`cluster.${node}.`)) : [];
  return names.map((name) =>
    name === 'cluster'
      ? link(
          vm.vmid,
          'cluster',
          nodeChecks.filter((c) => !c.id.endsWith('.smoke')),
          node ? `node ${node}` : 'no kubernetesNode',
        )
      : link(
          vm.vmid,
          'smoke',
          nodeChecks.filter((c) => c.id.endsWith('.smoke')),
          node ? `smoke pod on ${node}` : 'no kubernetesNode',
        ),
  );
}

/** The guest's checks through its OS's provider; none when the lab file gives no way to reach it. */
async function guestChecks(
  vm: LabVm,
  connections: LabConnections,
  attachment: GuestAttachment | undefined,
): Promise<Check[]> {
  const layer = guestLayer(vm, {
    ...guestEnvironment(connections),
    ...(attachment ? { attachment: () => attachment } : {}),
  });
  if (!layer) return [];
  try {
    return await layer.verify();
  } finally {
    await layer.close();
  }
}

/** The worst link of all chains: fail > unreachable > pending > warn > pass. */
export function worstOfChains(chains: readonly VmChain[]): LinkStatus {
  let worst: LinkStatus = 'pass';
  for (const l of chains.flatMap((c) => c.links))
    if (LINK_SEVERITY[l.status] > LINK_SEVERITY[worst]) worst = l.status;
  return worst;
}

/**
 * The exit code a verify ends with (README, "Exit codes"): 1 a check failed, 2 a link could
 * not be read, 3 a link waits for a manual step, 0 otherwise (warnings allowed).
 */
export function exitCodeOf(worst: LinkStatus): ExitCode {
  if (worst === 'fail') return EXIT.checkFailed;
  if (worst === 'unreachable') return EXIT.usage;
  if (worst === 'pending') return EXIT.manualStep;
  return EXIT.ok;
}
