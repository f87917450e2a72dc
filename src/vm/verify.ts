// Verifying the VM layer: each node VM has a vGPU on the iGPU in its config, runs, and
// holds the mediated device Proxmox created for it at start (sysfs on the host, when the
// caller can read the host; otherwise Proxmox's word: it refuses to start a VM whose
// mdev it cannot create).

import type { Check } from '../core/model.ts';
import type { ProxmoxApi } from '../proxmox/api.ts';
import { HOSTPCI, HOSTPCI_KEY, mdevUuid } from '../proxmox/api-spec.ts';
import { parsePropertyString } from '../proxmox/property-string.ts';
import type { DesiredVm } from './gather.ts';
import { isVfPoolValue } from './vf.ts';

/** Reads a host's sysfs: does /sys/bus/mdev/devices/<uuid> exist on that Proxmox node? */
export type MdevProbe = (node: string, uuid: string) => Promise<boolean>;

export async function verifyVms(
  api: ProxmoxApi,
  desired: readonly DesiredVm[],
  options: { mapping?: string; probe?: MdevProbe; vfPool?: string } = {},
): Promise<Check[]> {
  const checks: Check[] = [];
  for (const vm of desired) {
    const id = `vm.${vm.vmid}`;
    const [config, status] = await Promise.all([
      api.vmConfig(vm.node, vm.vmid),
      api.vmStatus(vm.node, vm.vmid),
    ]);
    if (vm.attach === 'vf') {
      checks.push(...verifyVf(vm, config.values, status.status, options.vfPool));
      continue;
    }
    const attached = Object.entries(config.values)
      .filter(([key]) => HOSTPCI_KEY.test(key))
      .map(([key, value]) => ({
        key,
        index: Number(key.slice(7)),
        value: parsePropertyString(value, HOSTPCI),
      }))
      .find(
        ({ value }) =>
          typeof value.mdev === 'string' &&
          (options.mapping === undefined || value.mapping === options.mapping),
      );
    if (!attached) {
      checks.push({
        id: `${id}.vgpu`,
        status: 'fail',
        evidence: `VM ${vm.vmid} on ${vm.node}: no hostpci with an mdev type${options.mapping ? ` through mapping ${options.mapping}` : ''}`,
        fix: 'run igpu-split vm apply',
      });
      continue;
    }
    const type = String(attached.value.mdev);
    if (vm.vgpu !== 'auto' && vm.vgpu !== type) {
      checks.push({
        id: `${id}.vgpu`,
        status: 'warn',
        evidence: `VM ${vm.vmid}: ${attached.key} has ${type}, the lab file asks for ${vm.vgpu}`,
        fix: 'run igpu-split vm apply',
      });
    } else {
      checks.push({
        id: `${id}.vgpu`,
        status: 'pass',
        evidence: `VM ${vm.vmid}: ${attached.key} has ${type}`,
      });
    }
    if (status.status !== 'running') {
      checks.push({
        id: `${id}.running`,
        status: 'fail',
        evidence: `VM ${vm.vmid} is stopped`,
        fix: `start it (qm start ${vm.vmid}); Proxmox creates the vGPU at start and says so if none is free`,
      });
      continue;
    }
    const uuid = mdevUuid(vm.vmid, attached.index);
    if (options.probe) {
      const exists = await options.probe(vm.node, uuid);
      checks.push(
        exists
          ? {
              id: `${id}.mdev`,
              status: 'pass',
              evidence: `${vm.node}: /sys/bus/mdev/devices/${uuid} exists (${type})`,
            }
          : {
              id: `${id}.mdev`,
              status: 'fail',
              evidence: `${vm.node}: VM ${vm.vmid} runs but /sys/bus/mdev/devices/${uuid} is missing`,
              fix: `restart the VM (qm shutdown ${vm.vmid} && qm start ${vm.vmid}) and read its start task log`,
            },
      );
    } else {
      checks.push({
        id: `${id}.mdev`,
        status: 'pass',
        evidence: `VM ${vm.vmid} runs with ${attached.key} ${type}: Proxmox created mdev ${uuid} at start (no host access to read sysfs)`,
      });
    }
  }
  return checks;
}

/**
 * A VM on an SR-IOV host: its config attaches through the VF pool, and it runs — Proxmox
 * refuses to start it when no VF of the pool is free ("could not find a free device for
 * 'hostpciN'", qemu-server src/PVE/QemuServer/PCI.pm @ e6352be6), so running is its word.
 */
function verifyVf(
  vm: DesiredVm,
  values: Record<string, string>,
  status: string,
  pool: string | undefined,
): Check[] {
  const id = `vm.${vm.vmid}`;
  const attached = Object.entries(values).find(
    ([key, value]) => HOSTPCI_KEY.test(key) && isVfPoolValue(value, pool),
  );
  if (!attached)
    return [
      {
        id: `${id}.vgpu`,
        status: 'fail',
        evidence: `VM ${vm.vmid} on ${vm.node}: no hostpci through the VF pool${pool ? ` ${pool}` : ''}`,
        fix: 'run igpu-split vm apply',
      },
    ];
  const has: Check = {
    id: `${id}.vgpu`,
    status: 'pass',
    evidence: `VM ${vm.vmid}: ${attached[0]} has ${attached[1]}`,
  };
  if (status !== 'running')
    return [
      has,
      {
        id: `${id}.running`,
        status: 'fail',
        evidence: `VM ${vm.vmid} is stopped`,
        fix: `start it (qm start ${vm.vmid}); Proxmox gives it the first free VF at start and says so if none is free`,
      },
    ];
  return [
    has,
    {
      id: `${id}.vf`,
      status: 'pass',
      evidence: `VM ${vm.vmid} runs with ${attached[0]}: Proxmox gave it a free VF of ${pool} at start`,
    },
  ];
}
