// The Proxmox VE simulator's state and rules, apart from HTTP: nodes with an iGPU whose
// mdev types offer what the kernel formula gives, cluster PCI mappings checked against
// the hardware, VM configs with digests, worker tasks (UPIDs), tokens with ACLs, and VMs
// that take an mdev instance when they start and give it back when they stop — as
// Proxmox does. The HTTPS front (server.ts) and the demo lab are built on it.

import { createHash } from 'node:crypto';
import { predictGvtTypes } from '../../knowledge/gvt.ts';
import {
  configPrivileges,
  EFIDISK,
  HOSTPCI,
  HOSTPCI_KEY,
  MACHINE,
  mdevUuid,
  PCI_MAP_ENTRY,
} from '../../proxmox/api-spec.ts';
import {
  PropertyStringError,
  type PropertyValues,
  parsePropertyString,
} from '../../proxmox/property-string.ts';
import { type ShutdownOutcome, SimHa } from './ha.ts';
import { isVmOption } from './parameters.ts';
import { splitList } from './schema.ts';

export interface SimGpu {
  bdf: string;
  /** `8086:3e92` */
  vendorDevice: string;
  /** `1028:0869` */
  subsystem: string;
  iommuGroup: number;
  apertureMiB: number;
  graphicsVer: number;
  /**
   * An SR-IOV iGPU: the VFs it offers at most (sriov_totalvfs). Such a PF provides no
   * mediated devices (GVT-g and SR-IOV are different generations), so it lists no mdev.
   */
  totalVfs?: number;
}

/** A virtual function the PF made (`sriov_numvfs`): its address and its own IOMMU group. */
export interface SimVf {
  bdf: string;
  iommuGroup: number;
}

export interface SimVm {
  vmid: number;
  node: string;
  status: 'running' | 'stopped';
  config: Record<string, string>;
  /** A guest that ignores the ACPI power button (no agent, hung): shutdown times out. */
  ignoresShutdown?: boolean;
  /**
   * An HA-managed VM: the shutdown task only files the request and ends OK at once; the
   * VM stops this many ms later.
   */
  haStopDelayMs?: number;
  /**
   * Changes Proxmox keeps for the next start (what cannot be hot-plugged into a running VM);
   * `force` lists the pending deletes given with `force` (their disks are not kept as unusedN).
   */
  pending?: { set: Record<string, string>; delete: string[]; force?: string[] };
  /** When it was last started (epoch seconds), for uptime. */
  startedAt?: number;
}

/** A cluster PCI mapping as pci.cfg holds it. */
export interface SimMapping {
  mdev: boolean;
  map: string[];
  description?: string;
  liveMigrationCapable?: boolean;
}

/** Who is calling: a user, or one of its API tokens. */
export interface Caller {
  user: string;
  /** Token name; tokens are never root, even root@pam's (Proxmox's raw-device rule). */
  token?: string;
}

/** A worker task, with the fields its UPID encodes (pve-common src/PVE/UPID.pm, f665029e). */
export interface SimTask {
  upid: string;
  node: string;
  pid: number;
  /** The worker's start in clock ticks since the node booted (/proc/PID/stat field 22). */
  pstart: number;
  /** Epoch seconds. */
  starttime: number;
  type: string;
  id: string;
  /** `user@realm` or `user@realm!token`, as in the UPID. */
  user: string;
  status: 'running' | 'stopped';
  exitstatus?: string;
  endtime?: number;
}

/**
 * Errors carry the HTTP status Proxmox answers with and a message in its wording; a 400
 * from pve-common's raise_param_exc carries per-parameter `errors` too.
 */
export class SimError extends Error {
  readonly status: number;
  readonly errors?: Record<string, string>;
  constructor(status: number, message: string, errors?: Record<string, string>) {
    super(message);
    this.status = status;
    this.errors = errors;
  }
}

/** pve-common raise_param_exc: 400 `Parameter verification failed.` with the errors. */
export const paramError = (errors: Record<string, string>) =>
  new SimError(400, 'Parameter verification failed.', errors);

export type MdevEvent = {
  action: 'create' | 'remove';
  node: string;
  bdf: string;
  uuid: string;
  type: string;
};

export interface SimulatorOptions {
  /** How long a start/stop/config task runs before it ends, in ms. */
  taskMs?: number;
  /** One second of a task's `timeout` parameter, in ms (shutdown timeouts). */
  secondMs?: number;
  /** Called when Proxmox would create or remove a mediated device in sysfs (the demo lab mirrors it on fake hosts). */
  onMdev?: (event: MdevEvent) => void;
  /** Called for every call that reaches an endpoint: `METHOD /path/{template}` and the parameter names given. */
  onRequest?: (endpoint: string, params: string[]) => void;
}

export class SimulatorState {
  readonly gpus = new Map<string, SimGpu>();
  readonly mappings = new Map<string, SimMapping>();
  readonly vms = new Map<number, SimVm>();
  readonly tasks = new Map<string, SimTask>();
  /** token id (`user@realm!name`) → secret */
  readonly tokens = new Map<string, string>();
  /** ACL: user or token id → path → privileges (they propagate to sub-paths). */
  readonly acl = new Map<string, Map<string, Set<string>>>();
  /** Proxmox HA: the resources and the datacenter's shutdown policy (ha.ts). */
  readonly ha = new SimHa();
  /** Every mutating call, in order: the golden tests read it. */
  readonly calls: string[] = [];
  /** Mediated devices in use: node → mdev type → count. */
  private readonly inUse = new Map<string, Map<string, number>>();
  /** Virtual functions per node, 00:02.1 … in order (none until `setVirtualFunctions`). */
  readonly vfs = new Map<string, SimVf[]>();
  /** PCI devices passed through (not mdev): node → address → the VM holding it. */
  private readonly pciInUse = new Map<string, Map<string, number>>();
  private readonly options: Required<Omit<SimulatorOptions, 'onMdev' | 'onRequest'>> &
    Pick<SimulatorOptions, 'onMdev' | 'onRequest'>;
  private taskCounter = 0;
  /** Epoch seconds at which every simulated node booted: a day before the simulator started. */
  readonly bootTime = Math.floor(Date.now() / 1000) - 86_400;

  constructor(options: SimulatorOptions = {}) {
    this.options = { taskMs: 5, secondMs: 5, ...options };
  }

  /** Reports a call to the onRequest observer, if any. */
  observe(endpoint: string, params: string[]): void {
    this.options.onRequest?.(endpoint, params);
  }

  addNode(node: string, gpu: SimGpu): void {
    this.gpus.set(node, gpu);
    this.inUse.set(node, new Map());
    this.pciInUse.set(node, new Map());
  }

  /**
   * What writing `count` to the PF's sriov_numvfs does: VFs 00:02.1 … 00:02.<count> appear
   * (strongtz/i915-sriov-dkms README.md @ 2421d3f; SRIOV-FACTS §2), each in its own IOMMU
   * group, or go away with 0. More than sriov_totalvfs is refused as the kernel's
   * sriov_numvfs_store does (-ERANGE), and so is a PF without SR-IOV.
   */
  setVirtualFunctions(node: string, count: number): void {
    const gpu = this.node(node);
    if (gpu.totalVfs === undefined) throw new Error(`${node}: the simulated iGPU has no SR-IOV (totalVfs)`);
    if (count < 0 || count > gpu.totalVfs)
      throw new Error(`${node}: sriov_numvfs ${count} is more than sriov_totalvfs ${gpu.totalVfs}`);
    const slot = gpu.bdf.slice(0, gpu.bdf.lastIndexOf('.'));
    // Groups after every group the node has: VFs are separate devices behind no bridge of their own.
    const base = Math.max(gpu.iommuGroup, 0) + 1;
    this.vfs.set(
      node,
      Array.from({ length: count }, (_, i) => ({ bdf: `${slot}.${i + 1}`, iommuGroup: base + i })),
    );
    this.calls.push(`${node}: sriov_numvfs ${count}`);
  }

  /** The PF and its VFs as Proxmox's pci_device_info sees them, by address. */
  private pciDevice(
    node: string,
    path: string,
  ): { bdf: string; iommuGroup: number; mdev: boolean } | undefined {
    const gpu = this.gpus.get(node);
    if (!gpu) return undefined;
    const bdf = normalizeBdf(path);
    if (gpu.bdf === bdf) return { bdf, iommuGroup: gpu.iommuGroup, mdev: gpu.totalVfs === undefined };
    const vf = this.vfs.get(node)?.find((v) => v.bdf === bdf);
    return vf && { ...vf, mdev: false };
  }

  addVm(vm: SimVm): void {
    this.vms.set(vm.vmid, vm);
  }

  addToken(tokenId: string, secret: string, grants: Record<string, string[]>): void {
    this.tokens.set(tokenId, secret);
    this.acl.set(tokenId, new Map(Object.entries(grants).map(([path, privs]) => [path, new Set(privs)])));
  }

  /** Effective privileges on a path: those granted on it or any parent. */
  privileges(caller: Caller, path: string): Set<string> {
    if (caller.user === 'root@pam' && !caller.token) return new Set(['*']);
    const id = caller.token ? `${caller.user}!${caller.token}` : caller.user;
    const held = new Set<string>();
    for (const [granted, privs] of this.acl.get(id) ?? []) {
      if (granted === '/' || path === granted || path.startsWith(`${granted}/`))
        for (const p of privs) held.add(p);
    }
    return held;
  }

  /** Throws Proxmox's 403 unless the caller holds the privilege(s) on the path. */
  check(caller: Caller, path: string, privileges: readonly string[], any = false): void {
    const held = this.privileges(caller, path);
    if (held.has('*')) return;
    const ok = any ? privileges.some((p) => held.has(p)) : privileges.every((p) => held.has(p));
    if (!ok) {
      const missing = any ? privileges.join('|') : privileges.filter((p) => !held.has(p)).join(', ');
      throw new SimError(403, `Permission check failed (${path}, ${missing})`);
    }
  }

  node(name: string): SimGpu {
    const gpu = this.gpus.get(name);
    // A real pveproxy resolves a node it does not know as a host name, and the lookup fails
    // (pve-manager PVE/HTTPServer.pm remote_node_ip → pve-common PVE::Network and
    // PVE::Tools getaddrinfo_all; glibc's text for EAI_NONAME).
    if (!gpu)
      throw new SimError(
        500,
        `hostname lookup '${name}' failed - failed to get address info for: ${name}: Name or service not known`,
      );
    return gpu;
  }

  /**
   * GET /nodes/{node}/hardware/pci, the iGPU only (what the layers read), as pve-manager
   * PVE/API2/Hardware/PCI.pm pci_scan and pve-common SysFSTools.pm lspci answer: classes
   * in the blacklist (default `05;06;0b`) left out by prefix, subsystem ids only when
   * verbose (the default). Vendor and device names (from pci.ids) are not simulated.
   */
  pciDevices(node: string, options: { verbose?: boolean; blacklist?: string } = {}) {
    const gpu = this.node(node);
    const [vendor, device] = gpu.vendorDevice.split(':');
    const [subVendor, subDevice] = gpu.subsystem.split(':');
    const gpuClass = '0x030000';
    const blacklist = splitList(options.blacklist ?? '05;06;0b');
    if (blacklist.some((prefix) => gpuClass.startsWith(`0x${prefix}`))) return [];
    const subsystem =
      (options.verbose ?? true)
        ? { subsystem_vendor: `0x${subVendor}`, subsystem_device: `0x${subDevice}` }
        : {};
    // A VF carries the PF's vendor and device id: the i915 DKMS tells a VF by an MMIO register,
    // not by its id (SRIOV-FACTS §1a), and strongtz/i915-sriov-dkms docs/block-vfs.md @ 2421d3f
    // binds 00:02.[1-7] with the PF's ATTR{device}. Its lspci sample names the VF class
    // differently ("Video device") without the code, so the PF's class is kept here.
    const vfs = (this.vfs.get(node) ?? []).map((vf) => ({
      id: vf.bdf,
      vendor: `0x${vendor}`,
      device: `0x${device}`,
      class: gpuClass,
      iommugroup: vf.iommuGroup,
      ...subsystem,
    }));
    return [
      {
        id: gpu.bdf,
        vendor: `0x${vendor}`,
        device: `0x${device}`,
        class: gpuClass,
        iommugroup: gpu.iommuGroup,
        ...(gpu.totalVfs === undefined ? { mdev: 1 } : {}),
        ...subsystem,
      },
      ...vfs,
    ];
  }

  /** GET /nodes/{node}/hardware/pci/{id}/mdev */
  mdevTypes(node: string, pciId?: string) {
    const gpu = this.node(node);
    if (pciId !== undefined && pciId !== gpu.bdf && !this.mappings.has(pciId) && !this.pciDevice(node, pciId))
      throw new SimError(500, `no such PCI device or mapping '${pciId}'`);
    // An SR-IOV PF and its VFs have no mdev_supported_types: pve-common SysFSTools get_mdev_types lists none.
    if (
      gpu.totalVfs !== undefined ||
      (pciId !== undefined && this.vfs.get(node)?.some((v) => v.bdf === pciId))
    )
      return [];
    const used = Object.fromEntries(this.inUse.get(node) ?? []);
    return predictGvtTypes({ apertureMiB: gpu.apertureMiB, graphicsVer: gpu.graphicsVer, inUse: used }).map(
      (p) => ({
        type: p.id,
        available: p.instances,
        name: p.name,
        description: `low_gm_size: ${p.config.lowGmMiB}MB\nhigh_gm_size: ${p.config.highGmMiB}MB\nfence: ${p.config.fences}\nresolution: ${p.config.resolution}\nweight: ${p.config.weight}\n`,
      }),
    );
  }

  /** GET /cluster/mapping/pci/{id}'s fields (and the listing's, with id and digest). */
  mappingFields(mapping: SimMapping) {
    return {
      map: mapping.map,
      ...(mapping.mdev ? { mdev: 1 } : {}),
      ...(mapping.liveMigrationCapable ? { 'live-migration-capable': 1 } : {}),
      ...(mapping.description !== undefined ? { description: mapping.description } : {}),
    };
  }

  /** GET /cluster/mapping/pci; with check-node, Proxmox's drift checks for that node's entries. */
  listMappings(checkNode?: string) {
    const digest = this.pciConfigDigest();
    return [...this.mappings].map(([id, mapping]) => ({
      id,
      ...this.mappingFields(mapping),
      digest,
      ...(checkNode ? { checks: this.mappingChecks(id, checkNode) } : {}),
    }));
  }

  /** Proxmox digests the whole pci.cfg: any mapping's change changes every digest. */
  private pciConfigDigest(): string {
    return createHash('sha1')
      .update(JSON.stringify([...this.mappings]))
      .digest('hex');
  }

  /** GET /cluster/mapping/pci/{id}: its digest (of the whole pci.cfg), or Proxmox's error. */
  mappingDigest(id: string): string {
    if (!this.mappings.has(id)) throw new SimError(500, `mapping '${id}' not found`);
    return this.pciConfigDigest();
  }

  /**
   * POST /cluster/mapping/pci, as pve-manager PVE/API2/Cluster/Mapping/PCI.pm create does
   * (errors prefixed by lock_pci_config, pve-guest-common src/PVE/Mapping/PCI.pm).
   */
  createMapping(id: string, body: Partial<SimMapping> & { map: string[] }): void {
    const failed = 'create hardware mapping failed';
    for (const entry of body.map) this.parseMapEntry(entry);
    if (this.mappings.has(id)) throw new SimError(500, `${failed}: pci ID '${id}' already defined`);
    checkWritable(body, failed);
    this.mappings.set(id, {
      mdev: body.mdev ?? false,
      map: body.map,
      ...(body.description !== undefined ? { description: body.description } : {}),
      ...(body.liveMigrationCapable !== undefined ? { liveMigrationCapable: body.liveMigrationCapable } : {}),
    });
    this.calls.push(`create mapping ${id}: ${body.map.join(' ; ')}${body.mdev ? ' (mdev)' : ''}`);
  }

  /**
   * PUT /cluster/mapping/pci/{id}, as PCI.pm update does: the digest first, then the
   * mapping, then `delete` (pve-common SectionConfig.pm delete_from_config: only optional
   * options, never one set in the same call), then the new values.
   */
  updateMapping(id: string, body: Partial<SimMapping> & { digest?: string; delete?: string[] }): void {
    const failed = 'update hardware mapping failed';
    if (body.digest && body.digest !== this.pciConfigDigest())
      throw new SimError(
        500,
        `${failed}: detected modified configuration - file changed by other user? Try again.`,
      );
    const mapping = this.mappings.get(id);
    if (!mapping) throw new SimError(500, `${failed}: pci ID '${id}' does not exist`);
    for (const entry of body.map ?? []) this.parseMapEntry(entry);
    const given: Record<string, unknown> = {
      map: body.map,
      mdev: body.mdev,
      description: body.description,
      'live-migration-capable': body.liveMigrationCapable,
    };
    const next: SimMapping = { ...mapping };
    for (const key of body.delete ?? []) {
      if (!(key in given)) throw new SimError(500, `${failed}: no such option '${key}'`);
      if (key === 'map') throw new SimError(500, `${failed}: unable to delete required option '${key}'`);
      if (given[key] !== undefined)
        throw new SimError(500, `${failed}: cannot set and delete property '${key}' at the same time!`);
      if (key === 'mdev') next.mdev = false;
      if (key === 'description') delete next.description;
      if (key === 'live-migration-capable') delete next.liveMigrationCapable;
    }
    if (body.map) next.map = body.map;
    if (body.mdev !== undefined) next.mdev = body.mdev;
    if (body.description !== undefined) next.description = body.description;
    if (body.liveMigrationCapable !== undefined) next.liveMigrationCapable = body.liveMigrationCapable;
    checkWritable(next, failed);
    this.mappings.set(id, next);
    const extras = [
      ...(body.delete?.length ? [`delete ${body.delete.join(',')}`] : []),
      ...(body.description !== undefined ? [`description=${JSON.stringify(body.description)}`] : []),
    ];
    this.calls.push(
      `update mapping ${id}: ${next.map.join(' ; ')}${next.mdev ? ' (mdev)' : ''}${extras.length ? ` ${extras.join(' ')}` : ''}`,
    );
  }

  /** DELETE /cluster/mapping/pci/{id}: a mapping that is not there is no error (PCI.pm delete). */
  deleteMapping(id: string): void {
    if (this.mappings.delete(id)) this.calls.push(`delete mapping ${id}`);
  }

  /**
   * The VM; asked on `node` (the node the request went to; by default the first node), a
   * missing one fails as it does there (pve-guest-common AbstractConfig.pm load_config).
   */
  vm(vmid: number, node?: string): SimVm {
    const vm = this.vms.get(vmid);
    const asked = node ?? [...this.gpus.keys()][0] ?? 'localhost';
    if (!vm)
      throw new SimError(500, `Configuration file 'nodes/${asked}/qemu-server/${vmid}.conf' does not exist`);
    return vm;
  }

  digest(vmid: number): string {
    const vm = this.vm(vmid);
    const text = Object.keys(vm.config)
      .sort()
      .map((key) => `${key}: ${vm.config[key]}`)
      .join('\n');
    // The file holds the pending section too.
    return createHash('sha1')
      .update(`${text}\n${JSON.stringify(vm.pending ?? null)}`)
      .digest('hex');
  }

  /**
   * POST /nodes/{node}/qemu/{vmid}/config, in the order qemu-server PVE/API2/Qemu.pm
   * update_vm_api (e6352be6) checks: something to do, `cdrom` as `ide2`, `revert` and
   * `delete` naming options that exist and are not also set, privileges, the digest, then
   * the values. A running VM gets what Proxmox applies at once (description, name, tags,
   * … and the cloud-init options: QemuServer.pm $fast_plug_option); the rest waits as pending.
   */
  updateConfig(
    vmid: number,
    given: Record<string, string>,
    caller: Caller,
    options: { digest?: string; delete?: string; revert?: string; force?: boolean } = {},
  ): void {
    const vm = this.vm(vmid);
    const changes = Object.fromEntries(
      Object.entries(given).map(([key, value]) => [key === 'cdrom' ? 'ide2' : key, value]),
    );
    const deleted = splitList(options.delete ?? '').map((key) => (key === 'cdrom' ? 'ide2' : key));
    const reverted = splitList(options.revert ?? '');
    checkConfigRequest(changes, deleted, reverted);
    this.checkConfigPrivileges(vm, changes, deleted, caller);
    if (options.digest && options.digest !== this.digest(vmid))
      throw new SimError(500, 'checksum mismatch (file change by other user?)');
    const machine = changes.machine ?? vm.config.machine ?? '';
    for (const [key, value] of Object.entries(changes)) this.checkValue(key, value, caller, machine);
    const pending = vm.pending ?? { set: {}, delete: [] };
    for (const key of reverted) {
      delete pending.set[key];
      pending.delete = pending.delete.filter((k) => k !== key);
    }
    const listed = [
      ...Object.entries(changes).map(([k, v]) => `${k}=${v}`),
      ...deleted.map((k) => `delete ${k}`),
      ...reverted.map((k) => `revert ${k}`),
    ];
    const forced = options.force ? deleted : [];
    if (vm.status === 'running') {
      const waits = this.updateRunning(vm, pending, changes, deleted, forced);
      this.calls.push(`config ${vmid}${waits ? ' (pending)' : ''}: ${listed.join(' ')}`);
      return;
    }
    // A stopped VM gets every pending change applied along with this one.
    this.write(vm, pending.set, pending.delete, pending.force ?? []);
    vm.pending = undefined;
    this.write(vm, changes, deleted, forced);
    this.calls.push(`config ${vmid}: ${listed.join(' ')}`);
  }

  /** The privileges each changed or deleted key needs, and the value it replaces. */
  private checkConfigPrivileges(
    vm: SimVm,
    changes: Record<string, string>,
    deleted: string[],
    caller: Caller,
  ): void {
    for (const key of [...Object.keys(changes), ...deleted]) {
      for (const need of configPrivileges(vm.vmid, key, changes[key] ?? vm.config[key]))
        this.check(caller, need.path, [need.privilege]);
      // Proxmox checks the value being replaced too: a raw address is root@pam's to change.
      const replaced = vm.config[key];
      if (HOSTPCI_KEY.test(key) && replaced && isRaw(replaced) && !isRootSession(caller))
        throw new SimError(500, `only root can set '${key}' config for non-mapped devices`);
    }
  }

  /**
   * A running VM takes what applies at once now and keeps the rest as pending (`forced`:
   * the deletes given with `force`); true when something waits for the next start.
   */
  private updateRunning(
    vm: SimVm,
    pending: NonNullable<SimVm['pending']>,
    changes: Record<string, string>,
    deleted: string[],
    forced: string[],
  ): boolean {
    const now = Object.keys(changes).filter(appliesAtOnce);
    const later = Object.keys(changes).filter((key) => !appliesAtOnce(key));
    const deletedLater = deleted.filter((k) => !appliesAtOnce(k));
    this.write(
      vm,
      Object.fromEntries(now.map((key) => [key, changes[key] as string])),
      deleted.filter(appliesAtOnce),
      forced,
    );
    for (const key of later) {
      pending.set[key] = changes[key] as string;
      pending.delete = pending.delete.filter((k) => k !== key);
    }
    for (const key of deletedLater) {
      delete pending.set[key];
      if (!pending.delete.includes(key)) pending.delete.push(key);
      if (forced.length > 0) pending.force = [...new Set([...(pending.force ?? []), key])];
    }
    vm.pending = Object.keys(pending.set).length > 0 || pending.delete.length > 0 ? pending : undefined;
    return later.length > 0 || deletedLater.length > 0;
  }

  /** GET …/config: with pending changes folded in, unless `current`. */
  configOf(vmid: number, current: boolean): Record<string, string> {
    const vm = this.vm(vmid);
    if (current || !vm.pending) return { ...vm.config };
    const merged = { ...vm.config, ...vm.pending.set };
    for (const key of vm.pending.delete) delete merged[key];
    return merged;
  }

  /**
   * GET …/pending, as pve-guest-common GuestHelpers.pm config_with_pending_array builds
   * it: each key of the config (digest included) with its value and any pending value or
   * delete (2 when forced), then keys only pending, then deletes of keys not in the config
   * — which that code always marks 2, its `$force` being the delete's hash (4a8f6cbf).
   */
  pendingOf(vmid: number) {
    const vm = this.vm(vmid);
    const set = { ...vm.pending?.set };
    const deletes = new Set(vm.pending?.delete ?? []);
    const forced = new Set(vm.pending?.force ?? []);
    const mask = (key: string, value: string) => (key === 'cipassword' ? '**********' : value);
    const items: { key: string; value?: string; pending?: string; delete?: number }[] = [];
    for (const [key, value] of Object.entries({ ...vm.config, digest: this.digest(vmid) })) {
      const item: { key: string; value?: string; pending?: string; delete?: number } = {
        key,
        value: mask(key, value),
      };
      if (set[key] !== undefined) item.pending = mask(key, set[key] as string);
      delete set[key];
      if (deletes.delete(key)) item.delete = forced.has(key) ? 2 : 1;
      items.push(item);
    }
    for (const [key, value] of Object.entries(set)) items.push({ key, pending: mask(key, value) });
    for (const key of deletes) items.push({ key, delete: 2 });
    return items;
  }

  private write(vm: SimVm, changes: Record<string, string>, deleted: string[], forced: string[]): void {
    const vmid = vm.vmid;
    for (const key of deleted) {
      // A deleted disk is kept as unusedN, as Proxmox does, unless deleted with `force`.
      const value = vm.config[key];
      if (value !== undefined && isDiskKey(key) && !isCdrom(value) && !forced.includes(key))
        vm.config[this.freeUnused(vm)] = volumeOf(value);
      delete vm.config[key];
    }
    for (const [key, value] of Object.entries(changes)) {
      vm.config[key] = /^efidisk\d$/.test(key) ? this.allocateEfiDisk(vmid, value) : value;
      // A volume attached again leaves the unused list, as in Proxmox.
      const volume = volumeOf(vm.config[key] as string);
      for (const [unused, held] of Object.entries(vm.config))
        if (/^unused\d+$/.test(unused) && held === volume && unused !== key) delete vm.config[unused];
    }
  }

  /** The node shuts down or reboots: its VMs stop, or block, as HA's shutdown policy makes them (ha.ts). */
  nodeShutdown(node: string, reboot: boolean): ShutdownOutcome {
    this.node(node);
    return this.ha.shutdown(node, [...this.vms.values()], reboot, (vmid) => this.stop(vmid, 'shutdown'));
  }

  /** POST …/status/start: takes the VM's mdev instances or fails like Proxmox does. */
  start(vmid: number): void {
    const vm = this.vm(vmid);
    if (vm.status === 'running') return;
    if (vm.pending) {
      this.write(vm, vm.pending.set, vm.pending.delete, vm.pending.force ?? []);
      vm.pending = undefined;
    }
    const wanted = this.mdevsOf(vm);
    const available = new Map(this.mdevTypes(vm.node).map((t) => [t.type, t.available]));
    const gpu = this.node(vm.node);
    for (const { type, mapping } of wanted) {
      if (mapping) {
        const errors = this.mappingChecks(mapping, vm.node).filter((c) => c.severity === 'error');
        if (errors.length > 0)
          throw new SimError(
            500,
            `PCI device mapping invalid (hardware probably changed): ${errors[0]?.message}`,
          );
      }
      if ((available.get(type) ?? 0) < 1) {
        throw new SimError(500, `pci device '${gpu.bdf}' has no available instances of '${type}'`);
      }
      available.set(type, (available.get(type) ?? 0) - 1);
    }
    const chosen = this.choosePassthrough(vm);
    const held = this.pciInUse.get(vm.node) as Map<string, number>;
    for (const bdf of chosen.values()) held.set(bdf, vmid);
    const used = this.inUse.get(vm.node) as Map<string, number>;
    for (const { type, index } of wanted) {
      used.set(type, (used.get(type) ?? 0) + 1);
      this.options.onMdev?.({
        action: 'create',
        node: vm.node,
        bdf: gpu.bdf,
        uuid: mdevUuid(vmid, index),
        type,
      });
    }
    vm.status = 'running';
    vm.startedAt = Math.floor(Date.now() / 1000);
    this.calls.push(`start ${vmid}`);
  }

  /** POST …/status/stop or shutdown: the mdevs are removed with the VM's process. */
  stop(vmid: number, how: 'stop' | 'shutdown' = 'stop'): void {
    const vm = this.vm(vmid);
    if (vm.status === 'stopped') return;
    const used = this.inUse.get(vm.node) as Map<string, number>;
    const gpu = this.node(vm.node);
    for (const { type, index } of this.mdevsOf(vm)) {
      used.set(type, Math.max(0, (used.get(type) ?? 0) - 1));
      this.options.onMdev?.({
        action: 'remove',
        node: vm.node,
        bdf: gpu.bdf,
        uuid: mdevUuid(vmid, index),
        type,
      });
    }
    const held = this.pciInUse.get(vm.node) as Map<string, number>;
    for (const [bdf, holder] of held) if (holder === vmid) held.delete(bdf);
    vm.status = 'stopped';
    this.calls.push(`${how} ${vmid}`);
  }

  /**
   * Runs work as a Proxmox worker task: the UPID comes back at once (pve-common UPID.pm
   * encode: `UPID:node:PID:PSTART:STARTTIME:type:id:user:`, hex), the work happens after
   * `taskMs` (or `delayMs`), and an error becomes the task's exit status.
   */
  runTask(
    node: string,
    type: string,
    id: string,
    caller: Caller,
    work: () => void,
    delayMs?: number,
  ): string {
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
    this.taskCounter++;
    const user = caller.token ? `${caller.user}!${caller.token}` : caller.user;
    const starttime = Math.floor(Date.now() / 1000);
    // Worker pids count up from a plausible value; pstart is in clock ticks (USER_HZ 100) since boot.
    const pid = 40_000 + this.taskCounter;
    const pstart = (starttime - this.bootTime) * 100 + this.taskCounter;
    const upid = `UPID:${node}:${hex(pid)}:${hex(pstart)}:${hex(starttime)}:${type}:${id}:${user}:`;
    const task: SimTask = { upid, node, pid, pstart, starttime, type, id, user, status: 'running' };
    this.tasks.set(upid, task);
    setTimeout(() => {
      try {
        work();
        task.exitstatus = 'OK';
      } catch (error) {
        // expected: anything — a failed worker ends its task with the message as exit status, as in Proxmox
        task.exitstatus = (error as Error).message;
      }
      task.status = 'stopped';
      task.endtime = Math.floor(Date.now() / 1000);
    }, delayMs ?? this.options.taskMs).unref();
    return upid;
  }

  /**
   * GET /nodes/{node}/tasks/{upid}/status, as pve-manager PVE/API2/Tasks.pm
   * read_task_status answers: the UPID's fields (a token's task split into user and
   * tokenid), running or stopped, and the exit status once stopped. Someone else's task
   * needs Sys.Audit on /nodes/<node>.
   */
  taskStatus(node: string, upid: string, caller: Caller) {
    if (!UPID.test(upid)) throw paramError({ upid: 'unable to parse worker upid' });
    const task = this.tasks.get(upid);
    if (!task || task.node !== node) throw paramError({ upid: 'no such task' });
    if (!ownsTask(task, caller)) this.check(caller, `/nodes/${node}`, ['Sys.Audit']);
    const { endtime: _, exitstatus, ...fields } = task;
    return {
      ...fields,
      ...splitTaskUser(task.user),
      ...(task.status === 'stopped' ? { exitstatus } : {}),
    };
  }

  /**
   * GET /nodes/{node}/tasks, as Tasks.pm node_tasks answers: finished tasks (archive), the
   * running ones (active) or both, newest first, filtered, `start`/`limit` applied to
   * what passed the filters, and the count of those as `total`. Without Sys.Audit on
   * /nodes/<node> a caller sees only its own tasks (a token only the token's).
   */
  taskList(
    node: string,
    caller: Caller,
    filter: TaskFilter,
  ): { tasks: Record<string, unknown>[]; total: number } {
    this.node(node);
    const held = this.privileges(caller, `/nodes/${node}`);
    const auditor = held.has('*') || held.has('Sys.Audit');
    const wanted = wantedStatuses(filter);
    const mine = [...this.tasks.values()].filter((task) => task.node === node);
    let count = 0;
    let limit = filter.limit ?? 50;
    const tasks: Record<string, unknown>[] = [];
    for (const task of taskCandidates(mine, filter.source ?? 'archive')) {
      if (!auditor && !ownsTask(task, caller)) continue;
      if (!taskPasses(task, filter, wanted)) continue;
      if (count++ < (filter.start ?? 0)) continue;
      if (limit <= 0) continue;
      const { exitstatus, status: _, ...fields } = task;
      tasks.push({
        ...fields,
        ...splitTaskUser(task.user),
        status: task.status === 'running' ? 'RUNNING' : exitstatus,
      });
      limit--;
    }
    return { tasks, total: count };
  }

  /**
   * GET /nodes/{node}/status (pve-manager PVE/API2/Nodes.pm status): uptime since the
   * simulated boot, memory used by the running VMs, the CPU the node was given.
   */
  nodeStatus(node: string) {
    this.node(node);
    const facts = NODE_FACTS;
    const used =
      facts.baseUsedBytes +
      [...this.vms.values()]
        .filter((vm) => vm.node === node && vm.status === 'running')
        .reduce((sum, vm) => sum + memoryMiB(vm.config) * MiB, 0);
    const free = facts.memoryBytes - used;
    return {
      uptime: Math.floor(Date.now() / 1000) - this.bootTime,
      idle: 0,
      loadavg: ['0.10', '0.08', '0.05'],
      kversion: `Linux ${facts.kernelRelease} ${facts.kernelVersion}`,
      'current-kernel': {
        sysname: 'Linux',
        release: facts.kernelRelease,
        version: facts.kernelVersion,
        machine: 'x86_64',
      },
      'boot-info': { mode: 'efi', secureboot: 0 },
      cpuinfo: { ...facts.cpu, user_hz: 100, mhz: '2100.000', hvm: '1' },
      cpu: 0.01,
      wait: 0,
      memory: { total: facts.memoryBytes, used, free, available: free },
      ksm: { shared: 0 },
      swap: { total: 0, used: 0, free: 0 },
      pveversion: `pve-manager/${PVE_VERSION.version}/${PVE_VERSION.repoid}`,
      rootfs: {
        total: facts.rootfsBytes,
        used: facts.rootfsUsedBytes,
        avail: facts.rootfsBytes - facts.rootfsUsedBytes,
        free: facts.rootfsBytes - facts.rootfsUsedBytes,
      },
    };
  }

  /**
   * GET /cluster/resources (pve-manager PVE/API2/Cluster.pm resources and API2Tools.pm
   * extract_vm_stats / extract_node_stats): VMs the caller may audit, then nodes (their
   * statistics only with Sys.Audit on /nodes/<node>). The simulator has no storage, SDN
   * or pools, so those types list nothing.
   */
  resources(caller: Caller, type?: string) {
    const may = (path: string, privilege: string) => {
      const held = this.privileges(caller, path);
      return held.has('*') || held.has(privilege);
    };
    const now = Math.floor(Date.now() / 1000);
    const entries: Record<string, unknown>[] = [];
    if (!type || type === 'vm') {
      for (const vm of [...this.vms.values()].sort((a, b) => String(a.vmid).localeCompare(String(b.vmid)))) {
        if (may(`/vms/${vm.vmid}`, 'VM.Audit')) entries.push(vmResource(vm, now));
      }
    }
    if (!type || type === 'node') {
      for (const node of this.gpus.keys()) {
        const stats = may(`/nodes/${node}`, 'Sys.Audit') ? nodeStatistics(this.nodeStatus(node)) : {};
        entries.push({ id: `node/${node}`, node, type: 'node', status: 'online', level: '', ...stats });
      }
    }
    return entries;
  }

  /** A graceful shutdown: ends in time unless the guest ignores it; then stops only with forceStop. */
  shutdownTask(vmid: number, caller: Caller, timeoutSeconds = 180, forceStop = false): string {
    const vm = this.vm(vmid);
    if (vm.haStopDelayMs !== undefined) {
      return this.runTask(vm.node, 'hastop', String(vmid), caller, () => {
        setTimeout(() => this.stop(vmid, 'shutdown'), vm.haStopDelayMs).unref();
      });
    }
    if (!vm.ignoresShutdown)
      return this.runTask(vm.node, 'qmshutdown', String(vmid), caller, () => this.stop(vmid, 'shutdown'));
    return this.runTask(
      vm.node,
      'qmshutdown',
      String(vmid),
      caller,
      () => {
        if (!forceStop) throw new Error('VM quit/powerdown failed - got timeout');
        this.stop(vmid);
      },
      timeoutSeconds * this.options.secondMs,
    );
  }

  /** Proxmox's drift checks of a mapping's entries for one node against the hardware. */
  mappingChecks(id: string, node: string): { severity: 'warning' | 'error'; message: string }[] {
    const mapping = this.mappings.get(id);
    if (!mapping) return [{ severity: 'error', message: `PCI mapping '${id}' does not exist` }];
    const entries = mapping.map
      .map((entry) => parsePropertyString(entry, PCI_MAP_ENTRY))
      .filter((e) => e.node === node);
    if (entries.length === 0) return [{ severity: 'error', message: `no entry for node '${node}'` }];
    const gpu = this.gpus.get(node);
    const checks: { severity: 'warning' | 'error'; message: string }[] = [];
    for (const entry of entries) {
      const path = String(entry.path);
      const device = this.pciDevice(node, path);
      if (!gpu || !device) {
        checks.push({ severity: 'error', message: `no PCI device found for '${path}'` });
        continue;
      }
      const actual: PropertyValues = {
        id: gpu.vendorDevice,
        'subsystem-id': gpu.subsystem,
        iommugroup: device.iommuGroup,
      };
      // pve-guest-common src/PVE/Mapping/PCI.pm assert_valid @ 4a8f6cb (since 57cd454) also
      // compares the mapping's mdev flag with the device's; checked here where it can differ
      // on hardware the simulator models: an SR-IOV PF or VF, which offers no mdev.
      if (!device.mdev && mapping.mdev)
        checks.push({ severity: 'error', message: `'mdev' does not match for '${id}' (0 != 1)` });
      for (const prop of ['id', 'subsystem-id', 'iommugroup'] as const) {
        // A device without an IOMMU group (-1) expects none in the entry.
        if (prop === 'iommugroup' && device.iommuGroup < 0 && entry[prop] === undefined) continue;
        if (entry[prop] === undefined)
          checks.push({
            severity: 'error',
            message: `missing expected property '${prop}' for device '${path}'`,
          });
        else if (String(entry[prop]) !== String(actual[prop]))
          checks.push({
            severity: 'error',
            message: `'${prop}' does not match for '${path}' (${actual[prop]} != ${entry[prop]})`,
          });
      }
    }
    return checks;
  }

  /** The device a running VM holds by passthrough (not mdev), per address; what `status` reads. */
  heldDevices(node: string): Map<string, number> {
    return new Map(this.pciInUse.get(node));
  }

  /**
   * The PCI devices a starting VM passes through (hostpciN without mdev), per key, as
   * qemu-server src/PVE/QemuServer/PCI.pm @ e6352be6 picks them: parse_hostpci takes the
   * node's entries of a mapping in map order (each entry's `path` one alternative) after
   * assert_valid; choose_hostpci_devices uses a single alternative as it is, and with
   * several skips the used and reserved ones and dies "could not find a free device for
   * 'hostpciN'" when none is left; reserve_pci_usage then refuses a device a running VM
   * holds: "PCI device '<id>' already in use by VMID '<vmid>'".
   */
  private choosePassthrough(vm: SimVm): Map<string, string> {
    const held = this.pciInUse.get(vm.node) as Map<string, number>;
    const chosen = new Map<string, string>();
    const taken = (bdf: string) =>
      (held.get(bdf) ?? vm.vmid) !== vm.vmid || [...chosen.values()].includes(bdf);
    for (const [key, value] of Object.entries(vm.config)) {
      if (!HOSTPCI_KEY.test(key)) continue;
      const parsed = parsePropertyString(value, HOSTPCI);
      if (parsed.mdev !== undefined) continue;
      const alternatives = this.alternativesOf(vm.node, parsed);
      if (alternatives.length === 1) {
        const only = alternatives[0] as string;
        const holder = held.get(only);
        if (holder !== undefined && holder !== vm.vmid)
          throw new SimError(500, `PCI device '${only}' already in use by VMID '${holder}'`);
        chosen.set(key, only);
        continue;
      }
      const free = alternatives.find((bdf) => !taken(bdf));
      if (free === undefined) throw new SimError(500, `could not find a free device for '${key}'`);
      chosen.set(key, free);
    }
    return chosen;
  }

  /** A hostpci value's alternatives on a node (parse_hostpci): the mapping's entries for it, or the raw address. */
  private alternativesOf(node: string, parsed: PropertyValues): string[] {
    if (parsed.host !== undefined) return [normalizeBdf(String(parsed.host).split(';')[0] as string)];
    const name = String(parsed.mapping);
    const mapping = this.mappings.get(name);
    const entries = (mapping?.map ?? [])
      .map((entry) => parsePropertyString(entry, PCI_MAP_ENTRY))
      .filter((entry) => entry.node === node);
    if (entries.length === 0) throw new SimError(500, `PCI device mapping not found for '${name}'`);
    const errors = this.mappingChecks(name, node).filter((c) => c.severity === 'error');
    if (errors.length > 0)
      throw new SimError(
        500,
        `PCI device mapping invalid (hardware probably changed): ${errors[0]?.message}`,
      );
    return entries.map((entry) => normalizeBdf(String(entry.path).split(';')[0] as string));
  }

  private mdevsOf(vm: SimVm): { type: string; index: number; mapping?: string }[] {
    return Object.entries(vm.config).flatMap(([key, value]) => {
      const index = HOSTPCI_KEY.exec(key)?.[1];
      if (index === undefined) return [];
      const parsed = parsePropertyString(value, HOSTPCI);
      if (typeof parsed.mdev !== 'string') return [];
      return [{ type: parsed.mdev, index: Number(index), mapping: parsed.mapping as string | undefined }];
    });
  }

  /**
   * What Proxmox checks in code beyond the schema for the options igpu-split writes; any
   * other option passed the schema check and is stored as given.
   */
  private checkValue(key: string, value: string, caller: Caller, machine: string): void {
    if (HOSTPCI_KEY.test(key)) {
      this.checkHostpci(key, parseParameter(key, value, HOSTPCI), caller, machine);
    } else if (key === 'machine') {
      const parsed = parseParameter(key, value, MACHINE);
      if (parsed.viommu === 'intel' && !/q35/.test(String(parsed.type ?? '')))
        throw paramError({ machine: 'Intel vIOMMU needs q35' });
    } else if (key === 'bios') {
      if (value !== 'seabios' && value !== 'ovmf')
        throw paramError({
          bios: `value '${value}' does not have a value in the enumeration 'seabios, ovmf'`,
        });
    } else if (/^efidisk\d$/.test(key)) {
      parseParameter(key, value, EFIDISK);
    }
  }

  /** A hostpciN: a raw address (root@pam only) or a mapping that exists, marked for mdev if one is asked. */
  private checkHostpci(
    key: string,
    parsed: ReturnType<typeof parsePropertyString>,
    caller: Caller,
    machine: string,
  ): void {
    if (parsed.host !== undefined && parsed.mapping !== undefined)
      throw paramError({ [key]: "Cannot set both 'host' and 'mapping'." });
    if (parsed.host === undefined && parsed.mapping === undefined)
      throw paramError({ [key]: "Either 'host' or 'mapping' must be set." });
    if (parsed.host !== undefined && !isRootSession(caller))
      throw new SimError(500, `only root can set '${key}' config for non-mapped devices`);
    if (parsed.mapping !== undefined) {
      const mapping = this.mappings.get(String(parsed.mapping));
      if (!mapping) throw new SimError(500, `PCI device mapping not found for '${parsed.mapping}'`);
      if (parsed.mdev !== undefined && !mapping.mdev)
        throw new SimError(500, `${key}: mapping '${parsed.mapping}' is not marked for mediated devices`);
    }
    if (parsed.pcie && !/q35/.test(machine))
      throw new SimError(500, `${key}: pcie=1 needs the q35 machine type`);
  }

  /** `local-lvm:1,…` allocates a new volume (the size is ignored for EFI disks). */
  private allocateEfiDisk(vmid: number, value: string): string {
    const parsed = parsePropertyString(value, EFIDISK);
    const file = String(parsed.file);
    const alloc = /^([^:]+):(\d+)$/.exec(file);
    if (!alloc) return value;
    let n = 0;
    const existing = Object.values(this.vm(vmid).config).join(' ');
    while (existing.includes(`vm-${vmid}-disk-${n}`)) n++;
    return value.replace(file, `${alloc[1]}:vm-${vmid}-disk-${n}`).replace(/(,size=[^,]*)?$/, ',size=4M');
  }

  private freeUnused(vm: SimVm): string {
    let n = 0;
    while (vm.config[`unused${n}`] !== undefined) n++;
    return `unused${n}`;
  }

  private parseMapEntry(entry: string): void {
    try {
      parsePropertyString(entry, PCI_MAP_ENTRY);
    } catch (error) {
      // expected: PropertyStringError — an entry that does not parse is Proxmox's 400 on `map`
      if (!(error instanceof PropertyStringError)) throw error;
      throw new SimError(400, `Parameter verification failed. map: ${error.message}`);
    }
  }
}

/** A property-string parameter, parsed; one that does not parse is Proxmox's 400 on that parameter. */
function parseParameter(key: string, value: string, spec: typeof HOSTPCI) {
  try {
    return parsePropertyString(value, spec);
  } catch (error) {
    // expected: PropertyStringError — the value does not parse: answered as Proxmox's 400 on the parameter
    if (!(error instanceof PropertyStringError)) throw error;
    throw paramError({ [key]: error.message });
  }
}

/**
 * A config update's own consistency, before privileges: something to do, and no key both
 * set and reverted or deleted, or unknown.
 */
function checkConfigRequest(changes: Record<string, string>, deleted: string[], reverted: string[]): void {
  if (Object.keys(changes).length === 0 && deleted.length === 0 && reverted.length === 0)
    throw new SimError(500, 'no options specified');
  for (const key of reverted) {
    if (!isVmOption(key)) throw paramError({ revert: `unknown option '${key}'` });
    if (changes[key] !== undefined)
      throw paramError({ delete: `you can't use '-${key}' and -revert ${key}' at the same time` });
  }
  for (const key of deleted) {
    if (changes[key] !== undefined)
      throw paramError({ delete: `you can't use '-${key}' and -delete ${key}' at the same time` });
    if (reverted.includes(key))
      throw paramError({ revert: `you can't use '-delete ${key}' and -revert ${key}' at the same time` });
    if (!isVmOption(key)) throw paramError({ delete: `unknown option '${key}'` });
  }
}

/** A VM's entry in GET /cluster/resources (API2Tools.pm extract_vm_stats). */
function vmResource(vm: SimVm, now: number): Record<string, unknown> {
  const running = vm.status === 'running';
  const maxmem = memoryMiB(vm.config) * MiB;
  return {
    id: `qemu/${vm.vmid}`,
    vmid: vm.vmid,
    node: vm.node,
    type: 'qemu',
    status: vm.status,
    name: vm.config.name ?? `VM ${vm.vmid}`,
    template: vm.config.template === '1' ? 1 : 0,
    uptime: running && vm.startedAt ? now - vm.startedAt : 0,
    maxcpu: Number(vm.config.vcpus ?? 0) || Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1),
    cpu: 0,
    maxmem,
    mem: running ? Math.floor(maxmem / 2) : 0,
    memhost: running ? Math.floor(maxmem / 2) : 0,
    maxdisk: 0,
    disk: 0,
    netin: 0,
    netout: 0,
    diskread: 0,
    diskwrite: 0,
    ...(vm.config.lock ? { lock: vm.config.lock } : {}),
    ...(vm.config.tags ? { tags: vm.config.tags } : {}),
  };
}

/** A node's statistics in GET /cluster/resources (API2Tools.pm extract_node_stats). */
function nodeStatistics(status: ReturnType<SimulatorState['nodeStatus']>): Record<string, unknown> {
  return {
    uptime: status.uptime,
    cpu: status.cpu,
    mem: status.memory.used,
    disk: status.rootfs.used,
    maxcpu: status.cpuinfo.cpus,
    maxmem: status.memory.total,
    maxdisk: status.rootfs.total,
  };
}

/** The filters of GET /nodes/{node}/tasks. */
export interface TaskFilter {
  start?: number;
  limit?: number;
  userfilter?: string;
  typefilter?: string;
  vmid?: number;
  errors?: boolean;
  source?: string;
  since?: number;
  until?: number;
  statusfilter?: string;
}

/** The exit states a task list shows: `errors` drops ok, unless a statusfilter names them. */
function wantedStatuses(filter: TaskFilter): Set<string> {
  if (filter.statusfilter !== undefined && !filter.errors)
    return new Set(splitList(filter.statusfilter).map((s) => s.toLowerCase()));
  const wanted = new Set(['ok', 'warning', 'error', 'unknown']);
  if (filter.errors) wanted.delete('ok');
  return wanted;
}

/** Running tasks (newest first) for `active` and `all`, then finished ones by end unless `active`. */
function taskCandidates(mine: SimTask[], source: string): SimTask[] {
  const active = mine.filter((task) => task.status === 'running').reverse();
  const archived = mine
    .filter((task) => task.status === 'stopped')
    .sort((a, b) => (b.endtime ?? 0) - (a.endtime ?? 0) || b.pid - a.pid);
  return [
    ...(source === 'active' || source === 'all' ? active : []),
    ...(source !== 'active' ? archived : []),
  ];
}

/** The user, type, VM, time and status filters (the caller's visibility is checked apart). */
function taskPasses(task: SimTask, filter: TaskFilter, wanted: Set<string>): boolean {
  const { user } = splitTaskUser(task.user);
  if (filter.userfilter && !user.toLowerCase().includes(filter.userfilter.toLowerCase())) return false;
  if (filter.typefilter && task.type !== filter.typefilter) return false;
  if (filter.vmid && task.id !== String(filter.vmid)) return false;
  if (filter.since !== undefined && task.starttime < filter.since) return false;
  if (filter.until !== undefined && task.starttime > filter.until) return false;
  return wanted.has(statusType(task.exitstatus));
}

function volumeOf(disk: string): string {
  return disk.split(',')[0]?.replace(/^file=/, '') ?? disk;
}

/** `00:02.0` and `0000:00:02.0` name the same device. */
function normalizeBdf(path: string): string {
  return /^[0-9a-f]{4}:/i.test(path) ? path : `0000:${path}`;
}

function isRaw(value: string): boolean {
  try {
    return parsePropertyString(value, HOSTPCI).host !== undefined;
  } catch (error) {
    // expected: PropertyStringError — a value that does not parse names no raw address
    if (!(error instanceof PropertyStringError)) throw error;
    return false;
  }
}

function isRootSession(caller: Caller): boolean {
  return caller.user === 'root@pam' && !caller.token;
}

/** What /version and /nodes/{node}/status report as the simulated Proxmox VE release. */
export const PVE_VERSION = { version: '8.4.1', release: '8.4', repoid: '2a5fa54a' } as const;

const MiB = 1024 * 1024;

/**
 * The simulated node's hardware and kernel: the CPU and kernel release of the i5-8500T
 * fixture host (test/fixtures/hosts/i5-8500t-gvt proc/cpuinfo and proc/cmdline); memory
 * and disk sizes are the simulator's own choice.
 */
const NODE_FACTS = {
  cpu: { model: 'Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz', cores: 6, cpus: 6, sockets: 1 },
  kernelRelease: '6.8.12-4-pve',
  kernelVersion: 'simulated',
  memoryBytes: 32 * 1024 * MiB,
  baseUsedBytes: 2 * 1024 * MiB,
  rootfsBytes: 100 * 1024 * MiB,
  rootfsUsedBytes: 8 * 1024 * MiB,
};

/** A VM's memory in MiB: `memory` is `[current=]N` (qemu-server's default 512). */
function memoryMiB(config: Record<string, string>): number {
  const current = /(?:^|,)(?:current=)?(\d+)(?:,|$)/.exec(config.memory ?? '')?.[1];
  return current ? Number(current) : 512;
}

/** pve-common UPID.pm decode's pattern. */
const UPID =
  /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

/** Tasks.pm $convert_token_task: a token's task names the user and the token apart. */
function splitTaskUser(user: string): { user: string; tokenid?: string } {
  const bang = user.indexOf('!');
  return bang < 0 ? { user } : { user: user.slice(0, bang), tokenid: user.slice(bang + 1) };
}

/** Tasks.pm $check_task_user: a token owns only its tasks; a user owns its own and its tokens'. */
function ownsTask(task: SimTask, caller: Caller): boolean {
  const callerId = caller.token ? `${caller.user}!${caller.token}` : caller.user;
  const { user, tokenid } = splitTaskUser(task.user);
  return tokenid ? callerId === task.user || callerId === user : callerId === user;
}

/** pve-common UPID.pm normalize_status_type (a running task has no status yet: unknown). */
function statusType(status: string | undefined): string {
  if (!status || status === 'unexpected status') return 'unknown';
  if (status === 'OK') return 'ok';
  return /^WARNINGS: \d+$/.test(status) ? 'warning' : 'error';
}

/**
 * Applied to a running VM at once rather than kept pending: qemu-server QemuServer.pm
 * $fast_plug_option and the cloud-init options ($confdesc_cloudinit, ipconfigN), e6352be6.
 * Proxmox also hot-plugs disks, NICs, USB, CPU and memory when `hotplug` allows it; the
 * simulator keeps those pending.
 */
function appliesAtOnce(key: string): boolean {
  return /^(description|hookscript|lock|migrate_downtime|migrate_speed|name|onboot|protection|shares|startup|tags|vmstatestorage|citype|ciuser|cipassword|ciupgrade|cicustom|searchdomain|nameserver|sshkeys|ipconfig\d+)$/.test(
    key,
  );
}

/** Config keys that hold a volume (qemu-server Drive.pm's drive names plus efidisk0 and tpmstate0). */
function isDiskKey(key: string): boolean {
  return /^(ide|sata|scsi|virtio)\d+$|^efidisk0$|^tpmstate0$/.test(key);
}

function isCdrom(value: string): boolean {
  return /(^|,)media=cdrom(,|$)/.test(value) || /^none(,|$)/.test(value);
}

/** pci.cfg is written line by line: pve-common SectionConfig.pm format_config_line refuses a line feed. */
function checkWritable(mapping: Partial<SimMapping>, failed: string): void {
  if (mapping.description !== undefined && /[\n\r]/.test(mapping.description))
    throw new SimError(500, `${failed}: property 'description' contains a line feed`);
}
