// The VF pool: a second cluster PCI mapping (`sriov.mapping`, default `iGPU-VF`, mdev off)
// with, per SR-IOV host, one entry per virtual function 00:02.1 … 00:02.N in that order.
// Proxmox starts a VM that names such a mapping on the first free entry of its node, in
// map order (pve-docs qm.adoc @ e5010dc, "Resource Mapping": "the first free one will be
// used when the guest is started … useful for devices with SR-IOV"; qemu-server
// src/PVE/QemuServer/PCI.pm @ e6352be6, choose_hostpci_devices). Entries are written only
// for VFs Proxmox lists (their IOMMU group is known only then); a host whose VFs appear at
// its reboot gets them from `syncVfPool` right before its VMs are attached.

import type { SriovHost } from '../config/derived.ts';
import { bounded, READ_CONCURRENCY } from '../core/bounded.ts';
import type { Check } from '../core/model.ts';
import type { PciDevice, ProxmoxApi } from '../proxmox/api.ts';
import { PCI_MAP_ENTRY } from '../proxmox/api-spec.ts';
import { findIgpu, fullBdf, vfPaths } from '../proxmox/igpu.ts';
import { parsePropertyString } from '../proxmox/property-string.ts';
import { applyMappingPlan } from './apply.ts';
import {
  desiredEntry,
  entryNode,
  isOurs,
  type MappingPlan,
  mappingStep,
  nodeChecks,
  OUR_POOL_DESCRIPTION,
  readMapping,
  userEntryCheck,
} from './plan.ts';

export { OUR_POOL_DESCRIPTION };

export const DEFAULT_VF_POOL = 'iGPU-VF';

export interface VfPoolFacts {
  name: string;
  existing?: { map: string[]; mdev: boolean; description?: string; digest?: string };
  /** Per SR-IOV host: what the engine planned, the PF and VFs Proxmox lists, and Proxmox's checks. */
  nodes: {
    host: SriovHost;
    pf?: PciDevice;
    vfs: PciDevice[];
    checks: { severity: string; message: string }[];
  }[];
}

export async function gatherVfPoolFacts(
  api: ProxmoxApi,
  name: string,
  hosts: readonly SriovHost[],
): Promise<VfPoolFacts> {
  const existing = await readMapping(api, name);
  const nodes = await bounded(hosts, READ_CONCURRENCY, async (host) => {
    const devices = await api.pciDevices(host.node);
    const paths = new Set(vfPaths(host.pfBdf, host.vfs).map(fullBdf));
    const checks = await nodeChecks(api, name, host.node, existing !== undefined);
    return {
      host,
      pf: findIgpu(devices),
      vfs: devices.filter((d) => paths.has(fullBdf(d.id))),
      checks,
    };
  });
  return {
    name,
    existing: existing && {
      map: existing.map,
      mdev: existing.mdev ?? false,
      description: existing.description,
      digest: existing.digest,
    },
    nodes,
  };
}

export function planVfPool(facts: VfPoolFacts): MappingPlan {
  const map = [...(facts.existing?.map ?? [])];
  const changes: string[] = [];
  const checks = facts.nodes.flatMap((node) => planNodeVfs(facts.name, node, map, changes));
  const create = !facts.existing;
  const setMdev = !create && facts.existing?.mdev === true;
  // Nothing to write yet (no VF listed anywhere): the mapping is made with the first entries.
  const empty = create && map.length === 0;
  const step = empty ? undefined : mappingStep(facts.name, map, changes, create, setMdev, false);
  const blocking = checks.find((c) => c.status === 'fail');
  return {
    name: facts.name,
    checks,
    steps: step ? [step] : [],
    map,
    create: create && !empty,
    mdev: false,
    setMdev,
    description: OUR_POOL_DESCRIPTION,
    digest: facts.existing?.digest,
    ...(blocking ? { refused: blocking.evidence } : {}),
  };
}

/**
 * One SR-IOV host's entries: ours for that node are replaced by one per listed VF in
 * order (kept where our entries were); the user's are kept, except that one naming the
 * physical function is refused. Returns the host's checks.
 */
function planNodeVfs(
  name: string,
  { host, pf, vfs, checks: drift }: VfPoolFacts['nodes'][number],
  map: string[],
  changes: string[],
): Check[] {
  const { node } = host;
  const pfBdf = fullBdf(host.pfBdf);
  const checks: Check[] = [];
  // `0000:00:02` without a function is the whole device, the PF included.
  const namesPf = (entry: string) =>
    String(parsePropertyString(entry, PCI_MAP_ENTRY).path)
      .split(';')
      .map(fullBdf)
      .some((path) => path === pfBdf || `${path}.0` === pfBdf);
  // The flag is the pool's, and the plan sets it off: its mismatch is no fault of an entry.
  const entryDrift = drift.filter((c) => !/^'mdev' does not match/.test(c.message));
  const users = map.filter((e) => entryNode(e) === node && !isOurs(e));
  for (const entry of users) {
    if (namesPf(entry)) checks.push(pfEntryCheck(name, node, entry, pfBdf));
    else checks.push(userEntryCheck(node, entry, entry, entryDrift));
  }
  // A VF the user's own entry already pools gets no second entry.
  const covered = new Set(
    users.flatMap((e) => String(parsePropertyString(e, PCI_MAP_ENTRY).path).split(';').map(fullBdf)),
  );
  const want = vfs.filter((vf) => !covered.has(fullBdf(vf.id))).map((vf) => desiredEntry(node, vf));
  const ours = map.filter((e) => entryNode(e) === node && isOurs(e));
  if (ours.join('\n') !== want.join('\n')) {
    const at = map.findIndex((e) => entryNode(e) === node && isOurs(e));
    const others = map.filter((e) => !(entryNode(e) === node && isOurs(e)));
    const position = at < 0 ? others.length : map.slice(0, at).filter((e) => others.includes(e)).length;
    map.splice(0, map.length, ...others.slice(0, position), ...want, ...others.slice(position));
    changes.push(...ours.filter((e) => !want.includes(e)).map((e) => `- ${e}`));
    changes.push(...want.filter((e) => !ours.includes(e)).map((e) => `+ ${e}`));
  }
  if (!pf)
    checks.push({
      id: `mapping.${node}.gpu`,
      status: 'fail',
      evidence: `Proxmox lists no Intel iGPU at 00:02.0 on ${node} (/nodes/${node}/hardware/pci)`,
      fix: `run igpu-split doctor on ${node}; the iGPU may be disabled in the BIOS`,
    });
  else if (vfs.length < host.vfs)
    checks.push({
      id: `mapping.${node}.vfs`,
      status: 'pass',
      evidence: `${node}: Proxmox lists ${vfs.length} of the ${host.vfs} planned VFs; the rest appear when the host makes them (sriov_numvfs at boot), and their entries are added before its VMs are attached`,
    });
  for (const warning of drift.filter((c) => c.severity === 'warning'))
    checks.push({
      id: `mapping.${node}.drift`,
      status: 'warn',
      evidence: `Proxmox: ${warning.message}`,
      fix: 'check the entries for that node',
    });
  return checks;
}

/** A pool entry naming the PF: giving 00:02.0 to a VM takes every VF down with it. */
function pfEntryCheck(name: string, node: string, entry: string, pfBdf: string): Check {
  return {
    id: `mapping.${node}.pf`,
    status: 'fail',
    evidence: `mapping ${name} on ${node} has an entry for the physical function ${pfBdf} (${entry}); a VM given the PF takes every VF down with it (strongtz/i915-sriov-dkms docs/install-pve-host.md)`,
    fix: `remove that entry in Datacenter → Resource Mappings → ${name}; igpu-split adds one entry per VF (00:02.1 …)`,
  };
}

/**
 * The VF pool for one host, made as planned now: gathers, plans and applies for that node
 * only (the other hosts' entries are kept as they are). What the VM stage of an SR-IOV host
 * runs once the host has made its VFs; a concurrent edit of pci.cfg (digest) is retried once.
 */
export async function syncVfPool(
  api: ProxmoxApi,
  name: string,
  host: SriovHost,
): Promise<{ changed: boolean; plan: MappingPlan }> {
  for (let attempt = 0; ; attempt++) {
    const plan = planVfPool(await gatherVfPoolFacts(api, name, [host]));
    try {
      return { ...(await applyMappingPlan(api, plan)), plan };
    } catch (error) {
      // expected: another host's stage wrote pci.cfg in between (Proxmox: "detected modified configuration") — read again once
      if (attempt > 0 || !/detected modified configuration/.test(String(error))) throw error;
    }
  }
}
