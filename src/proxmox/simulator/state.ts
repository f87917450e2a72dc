// The Proxmox VE simulator's state and rules, apart from HTTP: nodes with an iGPU whose
// mdev types offer what the kernel formula gives, cluster PCI mappings, VM configs with
// digests, and VMs that take an mdev instance when they start and give it back when they
// stop — as Proxmox does. The HTTPS front (next) and the demo lab are built on it.

import { createHash } from 'node:crypto';
import { predictGvtTypes } from '../../knowledge/gvt.ts';
import { HOSTPCI, PCI_MAP_ENTRY } from '../api-spec.ts';
import { type PropertyStringError, parsePropertyString } from '../property-string.ts';

export interface SimGpu {
  bdf: string;
  vendorDevice: string;
  apertureMiB: number;
  graphicsVer: number;
}

export interface SimVm {
  vmid: number;
  node: string;
  status: 'running' | 'stopped';
  config: Record<string, string>;
}

/** Errors carry the HTTP status Proxmox answers with and a message in its wording style. */
export class SimError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const HOSTPCI_KEY = /^hostpci\d+$/;

export class SimulatorState {
  readonly gpus = new Map<string, SimGpu>();
  readonly mappings = new Map<string, { mdev: boolean; map: string[]; description?: string }>();
  readonly vms = new Map<number, SimVm>();
  /** Mediated devices in use: node → mdev type → count. */
  private readonly inUse = new Map<string, Map<string, number>>();

  addNode(node: string, gpu: SimGpu): void {
    this.gpus.set(node, gpu);
    this.inUse.set(node, new Map());
  }

  addVm(vm: SimVm): void {
    this.vms.set(vm.vmid, vm);
  }

  /** GET /nodes/{node}/hardware/pci/{id}/mdev */
  mdevTypes(node: string): { type: string; available: number; description: string; name: string }[] {
    const gpu = this.gpus.get(node);
    if (!gpu) throw new SimError(500, `no such node '${node}'`);
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

  digest(vmid: number): string {
    const vm = this.vm(vmid);
    const text = Object.keys(vm.config)
      .sort()
      .map((key) => `${key}: ${vm.config[key]}`)
      .join('\n');
    return createHash('sha1').update(text).digest('hex');
  }

  /** PUT /nodes/{node}/qemu/{vmid}/config, with the checks Proxmox makes for what we send. */
  updateConfig(
    vmid: number,
    changes: Record<string, string>,
    options: { user: string; digest?: string; delete?: string },
  ): void {
    const vm = this.vm(vmid);
    if (options.digest && options.digest !== this.digest(vmid)) {
      throw new SimError(500, 'detected modified configuration - file changed by other user? Try again.');
    }
    const touched = [...Object.keys(changes), ...(options.delete ?? '').split(',').filter(Boolean)];
    if (touched.some((key) => HOSTPCI_KEY.test(key)) && vm.status === 'running') {
      throw new SimError(500, `VM ${vmid} is running - hostpci changes need a stopped VM`);
    }
    for (const [key, value] of Object.entries(changes)) {
      if (HOSTPCI_KEY.test(key)) this.checkHostpci(key, value, options.user, vm.node);
    }
    for (const key of touched.slice(Object.keys(changes).length)) delete vm.config[key];
    Object.assign(vm.config, changes);
  }

  /** POST …/status/start: takes the VM's mdev instances or fails like Proxmox does. */
  start(vmid: number): void {
    const vm = this.vm(vmid);
    if (vm.status === 'running') return;
    const wanted = this.mdevsOf(vm);
    const available = new Map(this.mdevTypes(vm.node).map((t) => [t.type, t.available]));
    for (const type of wanted) {
      if ((available.get(type) ?? 0) < 1) {
        throw new SimError(500, `no available instances of mdev type '${type}' on node '${vm.node}'`);
      }
      available.set(type, (available.get(type) ?? 0) - 1);
    }
    const used = this.inUse.get(vm.node) as Map<string, number>;
    for (const type of wanted) used.set(type, (used.get(type) ?? 0) + 1);
    vm.status = 'running';
  }

  /** POST …/status/stop or shutdown: the mdevs are removed with the VM's process. */
  stop(vmid: number): void {
    const vm = this.vm(vmid);
    if (vm.status === 'stopped') return;
    const used = this.inUse.get(vm.node) as Map<string, number>;
    for (const type of this.mdevsOf(vm)) used.set(type, Math.max(0, (used.get(type) ?? 0) - 1));
    vm.status = 'stopped';
  }

  private vm(vmid: number): SimVm {
    const vm = this.vms.get(vmid);
    if (!vm) throw new SimError(500, `Configuration file 'nodes/…/qemu-server/${vmid}.conf' does not exist`);
    return vm;
  }

  private mdevsOf(vm: SimVm): string[] {
    return Object.entries(vm.config)
      .filter(([key]) => HOSTPCI_KEY.test(key))
      .map(([, value]) => parsePropertyString(value, HOSTPCI).mdev)
      .filter((mdev): mdev is string => typeof mdev === 'string');
  }

  private checkHostpci(key: string, value: string, user: string, node: string): void {
    let parsed: ReturnType<typeof parsePropertyString>;
    try {
      parsed = parsePropertyString(value, HOSTPCI);
    } catch (error) {
      throw new SimError(400, `${key}: ${(error as PropertyStringError).message}`);
    }
    if (parsed.host !== undefined && parsed.mapping !== undefined)
      throw new SimError(400, `${key}: 'host' and 'mapping' exclude each other`);
    if (parsed.host !== undefined && user !== 'root@pam') {
      throw new SimError(403, `only root can set '${key}' config for real devices`);
    }
    if (parsed.mapping !== undefined) {
      const mapping = this.mappings.get(String(parsed.mapping));
      if (!mapping) throw new SimError(400, `${key}: no such PCI mapping '${parsed.mapping}'`);
      const entries = mapping.map.map((entry) => parsePropertyString(entry, PCI_MAP_ENTRY));
      if (!entries.some((entry) => entry.node === node)) {
        throw new SimError(400, `${key}: mapping '${parsed.mapping}' has no entry for node '${node}'`);
      }
      if (parsed.mdev !== undefined && !mapping.mdev)
        throw new SimError(400, `${key}: mapping '${parsed.mapping}' is not marked mdev`);
    }
  }
}
