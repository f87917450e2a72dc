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

export interface EndpointSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  params: Record<string, ParamSpec>;
}

const req = (type: ValueType): KeySpec => ({ type, optional: false });
const opt = (type: ValueType): KeySpec => ({ type, optional: true });

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

const node = req('string');
const vmid = req('integer');

export const ENDPOINTS: readonly EndpointSpec[] = [
  { method: 'GET', path: '/version', params: {} },
  { method: 'GET', path: '/nodes', params: {} },
  { method: 'GET', path: '/nodes/{node}/hardware/pci', params: { node } },
  {
    method: 'GET',
    path: '/nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev',
    params: { node, 'pci-id-or-mapping': req('string') },
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
  },
  { method: 'GET', path: '/cluster/mapping/pci/{id}', params: { id: req('string') } },
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
  },
  { method: 'DELETE', path: '/cluster/mapping/pci/{id}', params: { id: req('string') } },
  {
    method: 'GET',
    path: '/nodes/{node}/qemu/{vmid}/config',
    params: { node, vmid, current: opt('boolean') },
  },
  {
    method: 'PUT',
    path: '/nodes/{node}/qemu/{vmid}/config',
    params: {
      node,
      vmid,
      digest: opt('string'),
      delete: opt('string'),
      'hostpci[n]': { ...opt('string'), format: HOSTPCI },
      machine: opt('string'),
      bios: opt('string'),
    },
  },
  { method: 'GET', path: '/nodes/{node}/qemu/{vmid}/status/current', params: { node, vmid } },
  {
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/status/start',
    params: { node, vmid, timeout: opt('integer') },
  },
  {
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/status/shutdown',
    params: { node, vmid, timeout: opt('integer'), forceStop: opt('boolean') },
  },
  {
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/status/stop',
    params: { node, vmid, timeout: opt('integer') },
  },
  { method: 'GET', path: '/nodes/{node}/tasks/{upid}/status', params: { node, upid: req('string') } },
  { method: 'GET', path: '/access/permissions', params: { path: opt('string'), userid: opt('string') } },
];
