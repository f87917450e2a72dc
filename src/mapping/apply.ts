// Applying and rolling back the mapping plan through the API: one create or one update
// guarded by the digest read at plan time (someone else's edit in between is refused,
// not overwritten). Rollback removes only entries marked as ours, and the mapping
// itself only when we created it and nothing else is left in it.

import { RefusedError } from '../core/errors.ts';
import { counted } from '../core/text.ts';
import type { Privilege, ProxmoxApi } from '../proxmox/api.ts';
import { HOSTPCI_KEY, PCI_MAP_ENTRY } from '../proxmox/api-spec.ts';
import { parsePropertyString } from '../proxmox/property-string.ts';
import { type MappingPlan, OUR_ENTRY, OUR_MAPPING_DESCRIPTION, OUR_POOL_DESCRIPTION } from './plan.ts';

const OUR_DESCRIPTIONS = [OUR_MAPPING_DESCRIPTION, OUR_POOL_DESCRIPTION];

/** What applying the plan needs the token to hold: creating wants the parent path, updating the mapping's own. */
export function mappingPrivileges(plan: MappingPlan): Privilege[] {
  if (plan.steps.length === 0) return [];
  return [{ path: plan.create ? '/mapping/pci' : `/mapping/pci/${plan.name}`, privilege: 'Mapping.Modify' }];
}

export async function applyMappingPlan(api: ProxmoxApi, plan: MappingPlan): Promise<{ changed: boolean }> {
  const blocking = plan.checks.filter((c) => c.status === 'fail');
  if (blocking.length > 0) {
    throw new RefusedError(`mapping ${plan.name} cannot be applied: ${blocking[0]?.evidence}`, {
      target: api.target,
      fix: blocking[0]?.fix,
    });
  }
  if (plan.steps.length === 0) return { changed: false };
  await api.requirePrivileges(mappingPrivileges(plan));
  const mdev = plan.mdev ?? true;
  if (plan.create) {
    await api.createMapping({
      id: plan.name,
      map: plan.map,
      mdev,
      description: plan.description ?? OUR_MAPPING_DESCRIPTION,
    });
  } else {
    await api.updateMapping(plan.name, {
      map: plan.map,
      ...(plan.setMdev ? { mdev } : {}),
      digest: plan.digest,
    });
  }
  return { changed: true };
}

/**
 * Rollback of the mapping; refused while one of the given VMs still attaches through
 * it (a VM whose mapping entry is gone would not start).
 */
export async function rollbackMapping(
  api: ProxmoxApi,
  name: string,
  vms: readonly { vmid: number; node: string }[] = [],
): Promise<string[]> {
  if (!(await api.mappings()).some((m) => m.id === name)) return [];
  for (const vm of vms) {
    const config = await api.vmConfig(vm.node, vm.vmid);
    const user = Object.entries(config.values).find(
      ([key, value]) => HOSTPCI_KEY.test(key) && new RegExp(`(^|,)mapping=${name}(,|$)`).test(value),
    );
    if (user) {
      throw new RefusedError(`VM ${vm.vmid} still attaches through mapping ${name} (${user[0]})`, {
        target: api.target,
        fix: 'run igpu-split vm rollback first',
      });
    }
  }
  const mapping = await api.mapping(name);
  const kept = mapping.map.filter(
    (entry) => parsePropertyString(entry, PCI_MAP_ENTRY).description !== OUR_ENTRY,
  );
  if (kept.length === mapping.map.length) return [];
  if (kept.length === 0 && OUR_DESCRIPTIONS.includes(mapping.description ?? '')) {
    await api.deleteMapping(name);
    return [`deleted mapping ${name}`];
  }
  await api.updateMapping(name, { map: kept, digest: mapping.digest });
  return [
    `removed ${counted(mapping.map.length - kept.length, 'igpu-split entry', 'igpu-split entries')} from mapping ${name}`,
  ];
}
