// The part of the Proxmox VE API igpu-split uses, described compactly: methods, paths,
// parameters and the property-string formats we write. The simulator and the client
// are built on this; test/proxmox/api-spec.test.ts checks every line of it against the
// official API schema (pve-docs api-viewer/apidata.js), so names, types and optionality
// cannot drift from what a real Proxmox VE accepts.

export type ValueType = 'string' | 'integer' | 'boolean' | 'number' | 'array' | 'object';

export interface KeySpec {
  type: ValueType;
  optional: boolean;
}

/** A property string: comma-separated key=value pairs; the default key may be given bare. */
export interface PropertyStringSpec {
  /** The format's name in the official schema, e.g. `pve-qm-hostpci`. */
  name: string;
  defaultKey?: string;
  keys: Record<string, KeySpec>;
}

export interface ParamSpec extends KeySpec {
  /** For string (or array-item) parameters that hold a property string. */
  format?: PropertyStringSpec;
}

/**
 * The privilege check Proxmox makes before running an endpoint: `privileges` on `path`
 * (with `{vmid}`-style placeholders), all of them or — with `any` — one of them.
 * Absent when every authenticated user may call it.
 */
export interface PermissionSpec {
  path: string;
  privileges: string[];
  any: boolean;
}

export interface EndpointSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  params: Record<string, ParamSpec>;
  permission?: PermissionSpec;
}

const req = (type: ValueType): KeySpec => ({ type, optional: false });
const opt = (type: ValueType): KeySpec => ({ type, optional: true });

/** The config keys of a VM's PCI passthrough slots, `hostpci0`…; group 1 is the index. */
export const HOSTPCI_KEY = /^hostpci(\d+)$/;

/** `hostpciN` of a VM: a raw PCI address (root@pam only) or a cluster mapping, with an mdev type. */
export const HOSTPCI: PropertyStringSpec = {
  name: 'pve-qm-hostpci',
  defaultKey: 'host',
  keys: {
    host: opt('string'),
    'device-id': opt('string'),
    driver: opt('string'),
    'legacy-igd': opt('boolean'),
    mapping: opt('string'),
    mdev: opt('string'),
    pcie: opt('boolean'),
    rombar: opt('boolean'),
    romfile: opt('string'),
    'sub-device-id': opt('string'),
    'sub-vendor-id': opt('string'),
    'vendor-id': opt('string'),
    'x-vga': opt('boolean'),
  },
};

/**
 * A VM's `smbios1` (format `pve-qm-smbios1`): SMBIOS type 1 fields, the uuid among them.
 * Keys from proxmox/qemu-server src/PVE/QemuServer.pm $smbios1_fmt @e6352be6 (2026-08-17);
 * a VM created through the API gets `uuid=<generated>` (src/PVE/API2/Qemu.pm
 * generate_smbios1_uuid). Only read: igpu-split never writes it.
 */
export const SMBIOS1: PropertyStringSpec = {
  name: 'pve-qm-smbios1',
  keys: {
    base64: opt('boolean'),
    family: opt('string'),
    manufacturer: opt('string'),
    product: opt('string'),
    serial: opt('string'),
    sku: opt('string'),
    uuid: opt('string'),
    version: opt('string'),
  },
};

/** One entry of a cluster PCI mapping's `map` list: the device on one node. */
export const PCI_MAP_ENTRY: PropertyStringSpec = {
  name: 'pci-map',
  keys: {
    node: req('string'),
    path: req('string'),
    id: req('string'),
    'subsystem-id': opt('string'),
    iommugroup: opt('integer'),
    description: opt('string'),
  },
};

/** `machine` of a VM: the type (q35 or i440fx, possibly versioned) and the vIOMMU. */
export const MACHINE: PropertyStringSpec = {
  name: 'machine',
  defaultKey: 'type',
  keys: {
    type: opt('string'),
    'aw-bits': opt('number'),
    'enable-s3': opt('boolean'),
    'enable-s4': opt('boolean'),
    viommu: opt('string'),
  },
};

/** `efidisk0`: the OVMF variable store; `pre-enrolled-keys=1` turns Secure Boot on. */
export const EFIDISK: PropertyStringSpec = {
  name: 'efidisk',
  defaultKey: 'file',
  keys: {
    file: req('string'),
    efitype: opt('string'),
    format: opt('string'),
    'import-from': opt('string'),
    'ms-cert': opt('string'),
    'pre-enrolled-keys': opt('boolean'),
    size: opt('string'),
  },
};

const node = req('string');
const vmid = req('integer');

export const ENDPOINTS: readonly EndpointSpec[] = [
  { method: 'GET', path: '/version', params: {} },
  { method: 'GET', path: '/nodes', params: {} },
  {
    method: 'GET',
    path: '/nodes/{node}/hardware/pci',
    params: { node },
    permission: { path: '/', privileges: ['Sys.Audit', 'Sys.Modify'], any: true },
  },
  {
    method: 'GET',
    path: '/nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev',
    params: { node, 'pci-id-or-mapping': req('string') },
    permission: { path: '/', privileges: ['Sys.Audit', 'Sys.Modify'], any: true },
  },
  { method: 'GET', path: '/cluster/mapping/pci', params: { 'check-node': opt('string') } },
  {
    method: 'POST',
    path: '/cluster/mapping/pci',
    params: {
      id: req('string'),
      map: { ...req('array'), format: PCI_MAP_ENTRY },
      mdev: opt('boolean'),
      description: opt('string'),
    },
    permission: { path: '/mapping/pci', privileges: ['Mapping.Modify'], any: false },
  },
  {
    method: 'GET',
    path: '/cluster/mapping/pci/{id}',
    params: { id: req('string') },
    permission: {
      path: '/mapping/pci/{id}',
      privileges: ['Mapping.Use', 'Mapping.Modify', 'Mapping.Audit'],
      any: true,
    },
  },
  {
    method: 'PUT',
    path: '/cluster/mapping/pci/{id}',
    params: {
      id: req('string'),
      map: { ...opt('array'), format: PCI_MAP_ENTRY },
      mdev: opt('boolean'),
      description: opt('string'),
      digest: opt('string'),
      delete: opt('string'),
    },
    permission: { path: '/mapping/pci/{id}', privileges: ['Mapping.Modify'], any: false },
  },
  {
    method: 'DELETE',
    path: '/cluster/mapping/pci/{id}',
    params: { id: req('string') },
    permission: { path: '/mapping/pci', privileges: ['Mapping.Modify'], any: false },
  },
  // Lists only the VMs the caller has VM.Audit on.
  { method: 'GET', path: '/nodes/{node}/qemu', params: { node } },
  // Every VM of the cluster in one call, filtered per entry (VM.Audit on /vms/<id>): the rollout
  // reads each host's VMs from it.
  { method: 'GET', path: '/cluster/resources', params: { type: opt('string') } },
  {
    method: 'GET',
    path: '/nodes/{node}/qemu/{vmid}/config',
    params: { node, vmid, current: opt('boolean') },
    permission: { path: '/vms/{vmid}', privileges: ['VM.Audit'], any: false },
  },
  {
    // The asynchronous variant (returns a task): the one Proxmox advises when a
    // change allocates storage, as recreating the EFI disk does.
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/config',
    params: {
      node,
      vmid,
      digest: opt('string'),
      delete: opt('string'),
      'hostpci[n]': { ...opt('string'), format: HOSTPCI },
      machine: { ...opt('string'), format: MACHINE },
      bios: opt('string'),
      efidisk0: { ...opt('string'), format: EFIDISK },
      description: opt('string'),
    },
    permission: {
      path: '/vms/{vmid}',
      privileges: [
        'VM.Config.Disk',
        'VM.Config.CDROM',
        'VM.Config.CPU',
        'VM.Config.Memory',
        'VM.Config.Network',
        'VM.Config.HWType',
        'VM.Config.Options',
        'VM.Config.Cloudinit',
      ],
      any: true,
    },
  },
  {
    method: 'GET',
    path: '/nodes/{node}/qemu/{vmid}/status/current',
    params: { node, vmid },
    permission: { path: '/vms/{vmid}', privileges: ['VM.Audit'], any: false },
  },
  {
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/status/start',
    params: { node, vmid, timeout: opt('integer') },
    permission: { path: '/vms/{vmid}', privileges: ['VM.PowerMgmt'], any: false },
  },
  {
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/status/shutdown',
    params: { node, vmid, timeout: opt('integer'), forceStop: opt('boolean') },
    permission: { path: '/vms/{vmid}', privileges: ['VM.PowerMgmt'], any: false },
  },
  {
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/status/stop',
    params: { node, vmid, timeout: opt('integer') },
    permission: { path: '/vms/{vmid}', privileges: ['VM.PowerMgmt'], any: false },
  },
  { method: 'GET', path: '/nodes/{node}/tasks/{upid}/status', params: { node, upid: req('string') } },
  // Proxmox HA (pve-docs api-viewer/apidata.js e5010dc; proxmox/pve-ha-manager
  // src/PVE/API2/HA/Resources.pm @b71218f2): the resources list (`sid` each), one resource with
  // its `state`, and the state changed. igpu-split sets `ignored` for a host's turn and puts
  // the state it read back after (see src/engine/rollout/ha.ts).
  {
    method: 'GET',
    path: '/cluster/ha/resources',
    params: { type: opt('string') },
    permission: { path: '/', privileges: ['Sys.Audit'], any: false },
  },
  {
    method: 'GET',
    path: '/cluster/ha/resources/{sid}',
    params: { sid: req('string') },
    permission: { path: '/', privileges: ['Sys.Audit'], any: false },
  },
  {
    method: 'PUT',
    path: '/cluster/ha/resources/{sid}',
    params: {
      sid: req('string'),
      state: opt('string'),
      digest: opt('string'),
      comment: opt('string'),
      delete: opt('string'),
      failback: opt('boolean'),
      group: opt('string'),
      max_relocate: opt('integer'),
      max_restart: opt('integer'),
    },
    permission: { path: '/', privileges: ['Sys.Console'], any: false },
  },
  // The datacenter options, `ha: shutdown_policy=…` among them. pve-manager PVE/API2/Cluster.pm
  // get_options (14a22df3) answers every user (`user => 'all'`) but returns `ha` only to one
  // with Sys.Audit on `/` (the check the schema names, made in the code).
  {
    method: 'GET',
    path: '/cluster/options',
    params: {},
    permission: { path: '/', privileges: ['Sys.Audit'], any: false },
  },
  { method: 'GET', path: '/access/permissions', params: { path: opt('string'), userid: opt('string') } },
];

/**
 * What a config change needs beyond the endpoint's own check, per key. Proxmox checks
 * these in code, not in the schema (qemu-server PVE/API2/Qemu.pm,
 * check_vm_modify_config_perm: `machine` is a hardware-type option, `bios` a general
 * one (as is `description`), hostpci needs VM.Config.HWType plus Mapping.Use on the mapping it names, a new
 * disk needs VM.Config.Disk and Datastore.AllocateSpace on its storage).
 */
export function configPrivileges(
  vmid: number,
  key: string,
  value?: string,
): { path: string; privilege: string }[] {
  const vm = `/vms/${vmid}`;
  if (HOSTPCI_KEY.test(key)) {
    const mapping = value ? /(?:^|,)mapping=([^,]+)/.exec(value)?.[1] : undefined;
    return [
      { path: vm, privilege: 'VM.Config.HWType' },
      ...(mapping ? [{ path: `/mapping/pci/${mapping}`, privilege: 'Mapping.Use' }] : []),
    ];
  }
  if (key === 'machine') return [{ path: vm, privilege: 'VM.Config.HWType' }];
  if (key === 'bios' || key === 'description') return [{ path: vm, privilege: 'VM.Config.Options' }];
  if (/^efidisk\d$/.test(key)) {
    const storage = value ? /^(?:file=)?([^:,]+):/.exec(value)?.[1] : undefined;
    return [
      { path: vm, privilege: 'VM.Config.Disk' },
      ...(storage ? [{ path: `/storage/${storage}`, privilege: 'Datastore.AllocateSpace' }] : []),
    ];
  }
  return [];
}

/** Proxmox names a VM's mdev by hostpci index and vmid (qemu-server PCI.pm, generate_mdev_uuid). */
export function mdevUuid(vmid: number, index: number): string {
  return `${String(index).padStart(8, '0')}-0000-0000-0000-${String(vmid).padStart(12, '0')}`;
}
