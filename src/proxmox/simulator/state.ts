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
} from '../api-spec.ts';
import { type PropertyStringError, type PropertyValues, parsePropertyString } from '../property-string.ts';

export interface SimGpu {
  bdf: string;
  /** `8086:3e92` */
  vendorDevice: string;
  /** `1028:0869` */
  subsystem: string;
  iommuGroup: number;
  apertureMiB: number;
  graphicsVer: number;
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
  /** Changes Proxmox keeps for the next start (hostpci of a running VM cannot be hot-plugged). */
  pending?: { set: Record<string, string>; delete: string[] };
}

/** Who is calling: a user, or one of its API tokens. */
export interface Caller {
  user: string;
  /** Token name; tokens are never root, even root@pam's (Proxmox's raw-device rule). */
  token?: string;
}

export interface SimTask {
  upid: string;
  node: string;
  type: string;
  id: string;
  user: string;
  status: 'running' | 'stopped';
  exitstatus?: string;
}

/** Errors carry the HTTP status Proxmox answers with and a message in its wording. */
export class SimError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

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
}

export class SimulatorState {
  readonly gpus = new Map<string, SimGpu>();
  readonly mappings = new Map<string, { mdev: boolean; map: string[]; description?: string }>();
  readonly vms = new Map<number, SimVm>();
  readonly tasks = new Map<string, SimTask>();
  /** token id (`user@realm!name`) → secret */
  readonly tokens = new Map<string, string>();
  /** ACL: user or token id → path → privileges (they propagate to sub-paths). */
  readonly acl = new Map<string, Map<string, Set<string>>>();
  /** Every mutating call, in order: the golden tests read it. */
  readonly calls: string[] = [];
  /** Mediated devices in use: node → mdev type → count. */
  private readonly inUse = new Map<string, Map<string, number>>();
  private readonly options: Required<Omit<SimulatorOptions, 'onMdev'>> & Pick<SimulatorOptions, 'onMdev'>;
  private taskCounter = 0;

  constructor(options: SimulatorOptions = {}) {
    this.options = { taskMs: 5, secondMs: 5, ...options };
  }

  addNode(node: string, gpu: SimGpu): void {
    this.gpus.set(node, gpu);
    this.inUse.set(node, new Map());
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

  /** GET /nodes/{node}/hardware/pci, the iGPU only (what the layers read). */
  pciDevices(node: string) {
    const gpu = this.node(node);
    const [vendor, device] = gpu.vendorDevice.split(':');
    const [subVendor, subDevice] = gpu.subsystem.split(':');
    return [
      {
        id: gpu.bdf,
        class: '0x030000',
        vendor: `0x${vendor}`,
        device: `0x${device}`,
        subsystem_vendor: `0x${subVendor}`,
        subsystem_device: `0x${subDevice}`,
        iommugroup: gpu.iommuGroup,
        mdev: 1,
      },
    ];
  }

  /** GET /nodes/{node}/hardware/pci/{id}/mdev */
  mdevTypes(node: string, pciId?: string) {
    const gpu = this.node(node);
    if (pciId !== undefined && pciId !== gpu.bdf && !this.mappings.has(pciId))
      throw new SimError(500, `no such PCI device or mapping '${pciId}'`);
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

  /** GET /cluster/mapping/pci; with check-node, Proxmox's drift checks for that node's entries. */
  listMappings(checkNode?: string) {
    return [...this.mappings].map(([id, mapping]) => ({
      id,
      map: mapping.map,
      ...(mapping.mdev ? { mdev: 1 } : {}),
      ...(mapping.description ? { description: mapping.description } : {}),
      ...(checkNode ? { checks: this.mappingChecks(id, checkNode) } : {}),
    }));
  }

  /** Proxmox digests the whole pci.cfg: any mapping's change changes every digest. */
  mappingDigest(id: string): string {
    if (!this.mappings.has(id)) throw new SimError(500, `PCI mapping '${id}' does not exist`);
    return createHash('sha1')
      .update(JSON.stringify([...this.mappings]))
      .digest('hex');
  }

  createMapping(id: string, body: { map: string[]; mdev?: boolean; description?: string }): void {
    if (this.mappings.has(id)) throw new SimError(500, `pci ID '${id}' already defined`);
    for (const entry of body.map) this.parseMapEntry(entry);
    this.mappings.set(id, { mdev: body.mdev ?? false, map: body.map, description: body.description });
    this.calls.push(`create mapping ${id}: ${body.map.join(' ; ')}${body.mdev ? ' (mdev)' : ''}`);
  }

  updateMapping(id: string, body: { map?: string[]; mdev?: boolean; digest?: string }): void {
    const mapping = this.mappings.get(id);
    if (!mapping) throw new SimError(500, `PCI mapping '${id}' does not exist`);
    if (body.digest && body.digest !== this.mappingDigest(id))
      throw new SimError(500, 'detected modified configuration - file changed by other user? Try again.');
    for (const entry of body.map ?? []) this.parseMapEntry(entry);
    if (body.map) mapping.map = body.map;
    if (body.mdev !== undefined) mapping.mdev = body.mdev;
    this.calls.push(`update mapping ${id}: ${mapping.map.join(' ; ')}${mapping.mdev ? ' (mdev)' : ''}`);
  }

  deleteMapping(id: string): void {
    if (!this.mappings.delete(id)) throw new SimError(500, `PCI mapping '${id}' does not exist`);
    this.calls.push(`delete mapping ${id}`);
  }

  /** The VM; asked on `node` (the node the request went to), a missing one fails as it does there. */
  vm(vmid: number, node = 'localhost'): SimVm {
    const vm = this.vms.get(vmid);
    if (!vm)
      throw new SimError(500, `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`);
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

  /** POST /nodes/{node}/qemu/{vmid}/config, with the checks Proxmox makes for what we send. */
  updateConfig(
    vmid: number,
    changes: Record<string, string>,
    caller: Caller,
    options: { digest?: string; delete?: string } = {},
  ): void {
    const vm = this.vm(vmid);
    if (options.digest && options.digest !== this.digest(vmid)) {
      throw new SimError(500, 'detected modified configuration - file changed by other user? Try again.');
    }
    const deleted = (options.delete ?? '').split(',').filter(Boolean);
    for (const key of [...Object.keys(changes), ...deleted]) {
      for (const need of configPrivileges(vmid, key, changes[key] ?? vm.config[key]))
        this.check(caller, need.path, [need.privilege]);
      // Proxmox checks the value being replaced too: a raw address is root@pam's to change.
      if (HOSTPCI_KEY.test(key) && vm.config[key] && isRaw(vm.config[key]) && !isRootSession(caller))
        throw new SimError(500, `only root can set '${key}' config for non-mapped devices`);
    }
    const machine = changes.machine ?? vm.config.machine ?? '';
    for (const [key, value] of Object.entries(changes)) this.checkValue(vmid, key, value, caller, machine);
    const listed = [
      ...Object.entries(changes).map(([k, v]) => `${k}=${v}`),
      ...deleted.map((k) => `delete ${k}`),
    ];
    if (vm.status === 'running' && [...Object.keys(changes), ...deleted].some((k) => HOSTPCI_KEY.test(k))) {
      // Not hot-pluggable: Proxmox keeps the change as pending until the next start.
      vm.pending = {
        set: { ...vm.pending?.set, ...changes },
        delete: [...(vm.pending?.delete ?? []), ...deleted],
      };
      this.calls.push(`config ${vmid} (pending): ${listed.join(' ')}`);
      return;
    }
    // A stopped VM gets every pending change applied along with this one.
    if (vm.pending) this.write(vm, vm.pending.set, vm.pending.delete);
    vm.pending = undefined;
    this.write(vm, changes, deleted);
    this.calls.push(`config ${vmid}: ${listed.join(' ')}`);
  }

  /** GET …/config: with pending changes folded in, unless `current`. */
  configOf(vmid: number, current: boolean): Record<string, string> {
    const vm = this.vm(vmid);
    if (current || !vm.pending) return { ...vm.config };
    const merged = { ...vm.config, ...vm.pending.set };
    for (const key of vm.pending.delete) delete merged[key];
    return merged;
  }

  private write(vm: SimVm, changes: Record<string, string>, deleted: string[]): void {
    const vmid = vm.vmid;
    for (const key of deleted) {
      // A deleted disk is kept as unusedN, as Proxmox does.
      if (/^efidisk\d$/.test(key) && vm.config[key])
        vm.config[this.freeUnused(vm)] = volumeOf(vm.config[key]);
      delete vm.config[key];
    }
    for (const [key, value] of Object.entries(changes)) {
      vm.config[key] = /^efidisk\d$/.test(key) ? this.allocateEfiDisk(vmid, value) : value;
      // A volume attached again leaves the unused list, as in Proxmox.
      const volume = volumeOf(vm.config[key] as string);
      for (const [unused, held] of Object.entries(vm.config))
        if (/^unused\d+$/.test(unused) && held === volume) delete vm.config[unused];
    }
  }

  /** POST …/status/start: takes the VM's mdev instances or fails like Proxmox does. */
  start(vmid: number): void {
    const vm = this.vm(vmid);
    if (vm.status === 'running') return;
    if (vm.pending) {
      this.write(vm, vm.pending.set, vm.pending.delete);
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
    vm.status = 'stopped';
    this.calls.push(`${how} ${vmid}`);
  }

  /**
   * Runs work as a Proxmox worker task: the UPID comes back at once, the work happens
   * after `taskMs` (or `delayMs`), and an error becomes the task's exit status.
   */
  runTask(
    node: string,
    type: string,
    id: string,
    caller: Caller,
    work: () => void,
    delayMs?: number,
  ): string {
    const hex = (n: number, width: number) => n.toString(16).toUpperCase().padStart(width, '0');
    this.taskCounter++;
    const user = caller.token ? `${caller.user}!${caller.token}` : caller.user;
    const now = Math.floor(Date.now() / 1000);
    const upid = `UPID:${node}:${hex(4000 + this.taskCounter, 8)}:${hex(this.taskCounter, 8)}:${hex(now, 8)}:${type}:${id}:${user}:`;
    const task: SimTask = { upid, node, type, id, user, status: 'running' };
    this.tasks.set(upid, task);
    setTimeout(() => {
      try {
        work();
        task.exitstatus = 'OK';
      } catch (error) {
        task.exitstatus = (error as Error).message;
      }
      task.status = 'stopped';
    }, delayMs ?? this.options.taskMs).unref();
    return upid;
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
      if (!gpu || gpu.bdf !== normalizeBdf(path)) {
        checks.push({ severity: 'error', message: `no PCI device found for '${path}'` });
        continue;
      }
      const actual: PropertyValues = {
        id: gpu.vendorDevice,
        'subsystem-id': gpu.subsystem,
        iommugroup: gpu.iommuGroup,
      };
      for (const prop of ['id', 'subsystem-id', 'iommugroup'] as const) {
        // A device without an IOMMU group (-1) expects none in the entry.
        if (prop === 'iommugroup' && gpu.iommuGroup < 0 && entry[prop] === undefined) continue;
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

  private mdevsOf(vm: SimVm): { type: string; index: number; mapping?: string }[] {
    return Object.entries(vm.config).flatMap(([key, value]) => {
      const index = HOSTPCI_KEY.exec(key)?.[1];
      if (index === undefined) return [];
      const parsed = parsePropertyString(value, HOSTPCI);
      if (typeof parsed.mdev !== 'string') return [];
      return [{ type: parsed.mdev, index: Number(index), mapping: parsed.mapping as string | undefined }];
    });
  }

  private checkValue(vmid: number, key: string, value: string, caller: Caller, machine: string): void {
    const parse = (spec: typeof HOSTPCI) => {
      try {
        return parsePropertyString(value, spec);
      } catch (error) {
        throw new SimError(
          400,
          `Parameter verification failed. ${key}: ${(error as PropertyStringError).message}`,
        );
      }
    };
    if (HOSTPCI_KEY.test(key)) {
      const parsed = parse(HOSTPCI);
      if (parsed.host !== undefined && parsed.mapping !== undefined)
        throw new SimError(
          400,
          `Parameter verification failed. ${key}: Cannot set both 'host' and 'mapping'.`,
        );
      if (parsed.host === undefined && parsed.mapping === undefined)
        throw new SimError(
          400,
          `Parameter verification failed. ${key}: Either 'host' or 'mapping' must be set.`,
        );
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
    } else if (key === 'machine') {
      const parsed = parse(MACHINE);
      if (parsed.viommu === 'intel' && !/q35/.test(String(parsed.type ?? '')))
        throw new SimError(400, `Parameter verification failed. machine: Intel vIOMMU needs q35`);
    } else if (key === 'bios') {
      if (value !== 'seabios' && value !== 'ovmf')
        throw new SimError(
          400,
          `Parameter verification failed. bios: value '${value}' does not have a value in the enumeration 'seabios, ovmf'`,
        );
    } else if (/^efidisk\d$/.test(key)) {
      parse(EFIDISK);
    } else if (key !== 'description') {
      throw new SimError(
        400,
        `Parameter verification failed. ${key}: the simulator does not model this option (vm ${vmid})`,
      );
    }
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
      throw new SimError(
        400,
        `Parameter verification failed. map: ${(error as PropertyStringError).message}`,
      );
    }
  }
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
  } catch {
    return false;
  }
}

function isRootSession(caller: Caller): boolean {
  return caller.user === 'root@pam' && !caller.token;
}
