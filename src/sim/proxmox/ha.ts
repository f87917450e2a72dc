// Proxmox HA in the simulator: the resources config (/etc/pve/ha/resources.cfg) behind
// /cluster/ha/resources, the datacenter's `ha: shutdown_policy`, and what a node's LRM does
// with its services when the node shuts down or reboots. Read from proxmox/pve-ha-manager
// @b71218f2 (2026-04-25): src/PVE/API2/HA/Resources.pm (index, read, create, update and
// their messages), src/PVE/HA/Config.pm (parse_sid, update_resources_config,
// service_check_ha_state: `ignored` is not HA-managed), src/PVE/HA/LRM.pm shutdown_request
// (the policies) and src/PVE/HA/Manager.pm next_state_migrate_relocate (a failed migration
// leaves the service started on its node, to be tried again while the node is in
// maintenance); pve-manager PVE/API2/Nodes.pm get_filtered_vmlist (14a22df3): `stopall`
// skips HA-managed VMs. Migration refusals as qemu-server src/PVE/QemuMigrate.pm (e6352be6)
// words them. Kept simple: no CRM loop, no fencing, no rules or groups.

import { createHash } from 'node:crypto';
import { HOSTPCI_KEY } from '../../proxmox/api-spec.ts';
import { SimError } from './state.ts';

export type SimHaState = 'started' | 'stopped' | 'enabled' | 'disabled' | 'ignored';

export interface SimHaResource {
  type: 'vm' | 'ct';
  state?: SimHaState;
  comment?: string;
  group?: string;
  failback?: boolean;
  max_relocate?: number;
  max_restart?: number;
}

/** What a node's shutdown did to its VMs, as the LRM and pve-guests would. */
export interface ShutdownOutcome {
  /** Stopped (by the LRM, or by pve-guests' stopall for VMs HA does not manage). */
  stopped: number[];
  /** Stopped and frozen: the LRM starts them again on this node once it is back. */
  frozen: number[];
  /** Stopped, and HA recovers them on another node if this one stays away. */
  recovered: number[];
  /** Still running: HA could not migrate them, so the node's shutdown waits (hangs). */
  blocking: { vmid: number; message: string }[];
  /** The LRM's and CRM's log lines, as pve-ha-lrm and pve-ha-crm write them. */
  log: string[];
}

interface HaVm {
  vmid: number;
  node: string;
  status: 'running' | 'stopped';
  config: Record<string, string>;
}

export class SimHa {
  readonly resources = new Map<string, SimHaResource>();
  /** datacenter.cfg `ha: shutdown_policy=…`; unset means `conditional`. */
  shutdownPolicy?: 'freeze' | 'failover' | 'conditional' | 'migrate';

  /** resources.cfg's digest: any change to any resource changes it. */
  digest(): string {
    return createHash('sha1')
      .update(JSON.stringify([...this.resources].sort(([a], [b]) => a.localeCompare(b))))
      .digest('hex');
  }

  /** Config.pm parse_sid: `vm:101`, or a bare VMID looked up among the guests. */
  parseSid(sid: string, exists: (vmid: number) => boolean): string {
    if (/^\d+$/.test(sid)) {
      if (!exists(Number(sid)))
        throw new SimError(500, `unable to detect SID from VMID - VM/CT ${sid} does not exist`);
      return `vm:${sid}`;
    }
    if (!/^\S+:\S+$/.test(sid)) throw new SimError(500, `unable to parse service id '${sid}'`);
    return sid;
  }

  list(type?: string) {
    return [...this.resources]
      .filter(([, r]) => !type || r.type === type)
      .map(([sid, r]) => ({ sid, ...r, digest: this.digest() }));
  }

  read(sid: string) {
    const resource = this.resources.get(sid);
    if (!resource) throw new SimError(500, `no such resource '${sid}'`);
    return { sid, ...resource, digest: this.digest() };
  }

  create(sid: string, resource: SimHaResource): void {
    if (this.resources.has(sid))
      throw new SimError(500, `create resource failed: resource ID '${sid}' already defined`);
    this.resources.set(sid, resource);
  }

  /** PUT: SectionConfig assert_if_modified on a stale digest, as update_resources_config makes it. */
  update(sid: string, change: Partial<SimHaResource> & { digest?: string; delete?: string[] }): void {
    const { digest, delete: deleted, ...set } = change;
    if (digest && digest !== this.digest())
      throw new SimError(
        500,
        'update resources config failed: detected modified configuration - file changed by other user? Try again.',
      );
    const resource = this.resources.get(sid);
    if (!resource) throw new SimError(500, `update resources config failed: no such resource '${sid}'`);
    for (const key of deleted ?? []) delete (resource as unknown as Record<string, unknown>)[key];
    for (const [key, value] of Object.entries(set))
      if (value !== undefined) (resource as unknown as Record<string, unknown>)[key] = value;
  }

  /** The VM's HA state when HA manages it (`ignored` is not managed), else undefined. */
  managed(vmid: number): SimHaState | undefined {
    const state =
      this.resources.get(`vm:${vmid}`)?.state ?? (this.resources.has(`vm:${vmid}`) ? 'started' : undefined);
    return state === 'ignored' ? undefined : state;
  }

  /**
   * A node shuts down (`reboot`: a reboot) with these VMs on it. `stop` stops one. Under
   * `migrate` a started VM with a PCI device (hostpci: raw, mapped or mdev) cannot be
   * migrated (no mapping here is live-migration-capable): it keeps running and blocks.
   */
  shutdown(
    node: string,
    vms: readonly HaVm[],
    reboot: boolean,
    stop: (vmid: number) => void,
  ): ShutdownOutcome {
    const policy = this.shutdownPolicy ?? 'conditional';
    const out: ShutdownOutcome = { stopped: [], frozen: [], recovered: [], blocking: [], log: [] };
    out.log.push(`got shutdown request with shutdown policy '${policy}'`);
    for (const vm of vms.filter((v) => v.node === node && v.status === 'running')) {
      const state = this.managed(vm.vmid);
      if (state === undefined) {
        // pve-guests' stopall: the VMs HA does not manage (ignored ones among them).
        stop(vm.vmid);
        out.stopped.push(vm.vmid);
        continue;
      }
      if (policy === 'migrate') {
        const devices = Object.keys(vm.config).filter((k) => HOSTPCI_KEY.test(k));
        if (devices.length > 0 && (state === 'started' || state === 'enabled')) {
          const message = `can't migrate VM which uses local devices: ${devices.join(', ')}`;
          out.log.push(`service 'vm:${vm.vmid}' - migration failed (exit code 1)`);
          out.blocking.push({ vmid: vm.vmid, message });
          continue;
        }
      }
      stop(vm.vmid);
      out.stopped.push(vm.vmid);
      const freeze = policy === 'freeze' || (policy === 'conditional' && reboot);
      if (freeze) out.frozen.push(vm.vmid);
      else if (policy !== 'migrate') out.recovered.push(vm.vmid);
    }
    return out;
  }
}
