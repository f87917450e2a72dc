// The mapping layer: one cluster PCI mapping (default `iGPU`, `mdev=1`) with an entry
// for the iGPU of every GPU host, so API tokens can attach vGPUs (Proxmox lets only a
// root@pam session name a raw PCI address). Facts come from Proxmox's own view of the
// hardware (/nodes/{node}/hardware/pci) — the same view it checks mappings against.
// Entries igpu-split writes carry `description=igpu-split`; entries without it are the
// user's and are kept as they are.

import { bounded, READ_CONCURRENCY } from '../core/bounded.ts';
import type { Check, LayerPlan, Step } from '../core/model.ts';
import { counted } from '../core/text.ts';
import type { Mapping, PciDevice, ProxmoxApi } from '../proxmox/api.ts';
import { PCI_MAP_ENTRY } from '../proxmox/api-spec.ts';
import { findIgpu } from '../proxmox/igpu.ts';
import {
  formatPropertyString,
  type PropertyValues,
  parsePropertyString,
} from '../proxmox/property-string.ts';

export const DEFAULT_MAPPING = 'iGPU';
export const OUR_ENTRY = 'igpu-split';
export const OUR_MAPPING_DESCRIPTION = 'igpu-split: Intel iGPU, mediated devices (GVT-g)';
export const OUR_POOL_DESCRIPTION = 'igpu-split: Intel iGPU, SR-IOV virtual functions';

export interface MappingFacts {
  name: string;
  /** The mapping as Proxmox has it, when it exists. */
  existing?: { map: string[]; mdev: boolean; description?: string; digest?: string };
  /** Per GPU host: the iGPU Proxmox sees, and Proxmox's checks of the mapping for it. */
  nodes: { node: string; gpu?: PciDevice; checks: { severity: string; message: string }[] }[];
}

export interface MappingPlan extends LayerPlan {
  name: string;
  /** The map as it will be after apply (the user's entries first, as they were). */
  map: string[];
  create: boolean;
  /** The mapping's mdev flag as apply leaves it: on for GVT-g, off for a VF pool. Absent: on. */
  mdev?: boolean;
  /** Whether apply changes the flag of an existing mapping to `mdev`. */
  setMdev: boolean;
  /** Created with this description (ours: rollback deletes a mapping only when it carries it). */
  description?: string;
  digest?: string;
}

/** The mapping as Proxmox has it, or undefined when there is none of that name. */
export async function readMapping(
  api: ProxmoxApi,
  name: string,
): Promise<Awaited<ReturnType<ProxmoxApi['mapping']>> | undefined> {
  return (await api.mappings()).some((m) => m.id === name) ? await api.mapping(name) : undefined;
}

/**
 * Proxmox's own checks of one node's entries (the list with check-node); without an existing
 * mapping there is nothing to check.
 */
export async function nodeChecks(
  api: ProxmoxApi,
  name: string,
  node: string,
  exists: boolean,
): Promise<{ severity: string; message: string }[]> {
  return exists ? ((await api.mappings(node)).find((m: Mapping) => m.id === name)?.checks ?? []) : [];
}

export async function gatherMappingFacts(
  api: ProxmoxApi,
  name: string,
  nodes: readonly string[],
): Promise<MappingFacts> {
  const existing = await readMapping(api, name);
  const perNode = await bounded(nodes, READ_CONCURRENCY, async (node) => {
    const gpu = findIgpu(await api.pciDevices(node));
    return { node, gpu, checks: await nodeChecks(api, name, node, existing !== undefined) };
  });
  return {
    name,
    existing: existing && {
      map: existing.map,
      mdev: existing.mdev ?? false,
      description: existing.description,
      digest: existing.digest,
    },
    nodes: perNode,
  };
}

export function desiredEntry(node: string, gpu: PciDevice): string {
  const hex = (value: string | undefined) => value?.replace(/^0x/i, '').toLowerCase();
  const values: PropertyValues = {
    node,
    path: gpu.id,
    id: `${hex(gpu.vendor)}:${hex(gpu.device)}`,
    description: OUR_ENTRY,
  };
  if (gpu.subsystem_vendor && gpu.subsystem_device)
    values['subsystem-id'] = `${hex(gpu.subsystem_vendor)}:${hex(gpu.subsystem_device)}`;
  // -1: no IOMMU (GVT-g without VT-d); Proxmox then expects no group in the entry.
  if (gpu.iommugroup >= 0) values.iommugroup = gpu.iommugroup;
  return formatPropertyString(values, PCI_MAP_ENTRY);
}

export const entryNode = (entry: string) => String(parsePropertyString(entry, PCI_MAP_ENTRY).node);
export const isOurs = (entry: string) => parsePropertyString(entry, PCI_MAP_ENTRY).description === OUR_ENTRY;

export function planMapping(facts: MappingFacts): MappingPlan {
  const map = [...(facts.existing?.map ?? [])];
  const changes: string[] = [];
  const checks = facts.nodes.flatMap((node) => planNodeEntry(node, map, changes));
  const create = !facts.existing;
  const setMdev = !create && !facts.existing?.mdev;
  const step = mappingStep(facts.name, map, changes, create, setMdev);
  return {
    name: facts.name,
    checks,
    steps: step ? [step] : [],
    map,
    create,
    setMdev,
    digest: facts.existing?.digest,
  };
}

/**
 * One GPU host's entry: added to `map` or, when ours, updated (the diff lines go to
 * `changes`); the user's own entry is kept. Returns the checks for that host.
 */
function planNodeEntry(
  { node, gpu, checks: drift }: MappingFacts['nodes'][number],
  map: string[],
  changes: string[],
): Check[] {
  if (!gpu) {
    return [
      {
        id: `mapping.${node}.gpu`,
        status: 'fail',
        evidence: `Proxmox lists no Intel iGPU at 00:02.0 on ${node} (/nodes/${node}/hardware/pci)`,
        fix: `run igpu-split doctor on ${node}; the iGPU may be disabled in the BIOS or bound to vfio-pci`,
      },
    ];
  }
  const checks: Check[] = [];
  const want = desiredEntry(node, gpu);
  const index = map.findIndex((entry) => entryNode(entry) === node);
  const current = map[index];
  if (current === undefined) {
    map.push(want);
    changes.push(`+ ${want}`);
  } else if (current !== want && isOurs(current)) {
    changes.push(`- ${current}`, `+ ${want}`);
    map[index] = want;
  } else if (current !== want) {
    checks.push(userEntryCheck(node, current, want, drift));
  }
  for (const warning of drift.filter((c) => c.severity === 'warning')) {
    checks.push({
      id: `mapping.${node}.drift`,
      status: 'warn',
      evidence: `Proxmox: ${warning.message}`,
      fix: 'check the entry for that node',
    });
  }
  return checks;
}

/** The user's entry: kept; Proxmox's own checks say whether it still matches. */
export function userEntryCheck(
  node: string,
  entry: string,
  want: string,
  drift: { severity: string; message: string }[],
): Check {
  const errors = drift.filter((c) => c.severity === 'error');
  return {
    id: `mapping.${node}.entry`,
    status: errors.length > 0 ? 'fail' : 'pass',
    evidence: `${node} has your entry ${entry}${errors.length > 0 ? `; Proxmox: ${errors.map((e) => e.message).join('; ')}` : ''}`,
    ...(errors.length > 0
      ? {
          fix: `edit it in Datacenter → Resource Mappings to match: ${want.replace(`,description=${OUR_ENTRY}`, '')}`,
        }
      : {}),
  };
}

/** The one create or update call, or undefined when the mapping is as wanted. */
export function mappingStep(
  name: string,
  map: string[],
  changes: string[],
  create: boolean,
  setMdev: boolean,
  mdev = true,
): Step | undefined {
  if (!create && changes.length === 0 && !setMdev) return undefined;
  const verb = create ? 'create' : 'update';
  const flag = mdev ? 'mdev=1 (mediated devices)' : 'mdev=0 (virtual functions, passed through whole)';
  const what = [
    ...(create || setMdev ? [flag] : []),
    ...(changes.length > 0 ? [counted(changes.filter((c) => c.startsWith('+')).length, 'entry')] : []),
  ].join(', ');
  const maps = map.map((m) => `--map '${m}'`).join(' ');
  const bit = mdev ? 1 : 0;
  return {
    id: `mapping/${name}`,
    target: `mapping ${name}`,
    description: `${verb} cluster PCI mapping ${name}: ${what}`,
    diff: changes.join('\n'),
    disturbs: [],
    command: create
      ? `pvesh create /cluster/mapping/pci --id ${name} --mdev ${bit} ${maps}`
      : `pvesh set /cluster/mapping/pci/${name}${setMdev ? ` --mdev ${bit}` : ''} ${maps}`,
  };
}
