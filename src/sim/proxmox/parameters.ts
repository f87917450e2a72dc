// What the simulator serves and what it does with every parameter. The endpoints are
// those of api-spec.ts (what igpu-split calls) and four a user's own tools commonly call
// beside them. PARAMETERS is the one table of every parameter the official schema
// (pve-docs api-viewer/apidata.js, e5010dc) defines for them, each "acted on" or
// "ignored: <why>"; test/proxmox/simulator-params.test.ts holds it to the schema and
// checks that everything igpu-split's client and python3-proxmoxer send is acted on.

import { ENDPOINTS, type EndpointSpec, type KeySpec } from '../../proxmox/api-spec.ts';

export type Handling = 'acted on' | `ignored: ${string}`;

const req = (type: KeySpec['type']): KeySpec => ({ type, optional: false });
const opt = (type: KeySpec['type']): KeySpec => ({ type, optional: true });

/** Served beside ours; permissions as the schema states them (pve-manager, qemu-server). */
export const EXTRA_ENDPOINTS: readonly EndpointSpec[] = [
  {
    method: 'GET',
    path: '/nodes/{node}/status',
    params: { node: req('string') },
    permission: { path: '/nodes/{node}', privileges: ['Sys.Audit'], any: false },
  },
  // The caller's own tasks, or all with Sys.Audit on /nodes/<node>.
  {
    method: 'GET',
    path: '/nodes/{node}/tasks',
    params: {
      node: req('string'),
      start: opt('integer'),
      limit: opt('integer'),
      userfilter: opt('string'),
      typefilter: opt('string'),
      vmid: opt('integer'),
      errors: opt('boolean'),
      source: opt('string'),
      since: opt('integer'),
      until: opt('integer'),
      statusfilter: opt('string'),
    },
  },
  {
    method: 'GET',
    path: '/nodes/{node}/qemu/{vmid}/pending',
    params: { node: req('string'), vmid: req('integer') },
    permission: { path: '/vms/{vmid}', privileges: ['VM.Audit'], any: false },
  },
  // Served so a user's script (and the tests) can make an HA resource; igpu-split never does.
  {
    method: 'POST',
    path: '/cluster/ha/resources',
    params: {
      sid: req('string'),
      type: opt('string'),
      state: opt('string'),
      comment: opt('string'),
      failback: opt('boolean'),
      group: opt('string'),
      max_relocate: opt('integer'),
      max_restart: opt('integer'),
    },
    permission: { path: '/', privileges: ['Sys.Console'], any: false },
  },
];

export const SERVED_ENDPOINTS: readonly EndpointSpec[] = [...ENDPOINTS, ...EXTRA_ENDPOINTS];

const ACTED: Handling = 'acted on';
const NO_LOCKS: Handling =
  'ignored: the simulator takes no config locks, so there is none to skip (refused for anyone but root@pam, as Proxmox does)';
const MIGRATION: Handling =
  'ignored: used by migrations and restores, which the simulator does not run (refused for anyone but root@pam, as Proxmox does)';
const NO_STORAGE: Handling =
  'ignored: the simulator has no storage volumes to keep active (refused for anyone but root@pam, as Proxmox does)';
/** A VM option: written to the config (or its pending section while the VM runs), returned by config and pending. */
const STORED: Handling = ACTED;

export const PARAMETERS: Readonly<Record<string, Readonly<Record<string, Handling>>>> = {
  'GET /version': {},
  'GET /nodes': {},
  'GET /nodes/{node}/hardware/pci': { node: ACTED, 'pci-class-blacklist': ACTED, verbose: ACTED },
  'GET /nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev': { node: ACTED, 'pci-id-or-mapping': ACTED },
  'GET /cluster/mapping/pci': { 'check-node': ACTED },
  'POST /cluster/mapping/pci': {
    id: ACTED,
    map: ACTED,
    mdev: ACTED,
    description: ACTED,
    'live-migration-capable': ACTED,
  },
  'GET /cluster/mapping/pci/{id}': { id: ACTED },
  'PUT /cluster/mapping/pci/{id}': {
    id: ACTED,
    map: ACTED,
    mdev: ACTED,
    description: ACTED,
    'live-migration-capable': ACTED,
    digest: ACTED,
    delete: ACTED,
  },
  'DELETE /cluster/mapping/pci/{id}': { id: ACTED },
  'GET /cluster/ha/resources': { type: ACTED },
  'GET /cluster/ha/resources/{sid}': { sid: ACTED },
  'PUT /cluster/ha/resources/{sid}': {
    sid: ACTED,
    state: ACTED,
    digest: ACTED,
    delete: ACTED,
    comment: ACTED,
    failback: ACTED,
    group: ACTED,
    max_relocate: ACTED,
    max_restart: ACTED,
  },
  'POST /cluster/ha/resources': {
    sid: ACTED,
    type: ACTED,
    state: ACTED,
    comment: ACTED,
    failback: ACTED,
    group: ACTED,
    max_relocate: ACTED,
    max_restart: ACTED,
  },
  'GET /cluster/options': {},
  'GET /nodes/{node}/qemu': {
    node: ACTED,
    full: 'ignored: adds runtime statistics (block, balloon, network counters) the simulator does not measure',
  },
  'GET /nodes/{node}/qemu/{vmid}/config': {
    node: ACTED,
    vmid: ACTED,
    current: ACTED,
    // The simulator keeps no snapshots: every name is refused as an unknown snapshot is.
    snapshot: ACTED,
  },
  'POST /nodes/{node}/qemu/{vmid}/config': {
    node: ACTED,
    vmid: ACTED,
    digest: ACTED,
    delete: ACTED,
    revert: ACTED,
    // A deleted disk is dropped instead of being kept as unusedN.
    force: ACTED,
    skiplock: NO_LOCKS,
    background_delay:
      'ignored: the answer is the task id at once; the simulated task ends after its fixed time anyway',
    'import-working-storage': 'ignored: the simulator imports no disk images',
    // Proxmox's alias for ide2.
    cdrom: ACTED,
    acpi: STORED,
    affinity: STORED,
    agent: STORED,
    'allow-ksm': STORED,
    'amd-sev': STORED,
    arch: STORED,
    args: STORED,
    audio0: STORED,
    autostart: STORED,
    balloon: STORED,
    bios: STORED,
    boot: STORED,
    bootdisk: STORED,
    cicustom: STORED,
    cipassword: STORED,
    citype: STORED,
    ciupgrade: STORED,
    ciuser: STORED,
    cores: STORED,
    cpu: STORED,
    cpulimit: STORED,
    cpuunits: STORED,
    description: STORED,
    efidisk0: STORED,
    freeze: STORED,
    hookscript: STORED,
    'hostpci[n]': STORED,
    hotplug: STORED,
    hugepages: STORED,
    'ide[n]': STORED,
    'intel-tdx': STORED,
    'ipconfig[n]': STORED,
    ivshmem: STORED,
    keephugepages: STORED,
    keyboard: STORED,
    kvm: STORED,
    localtime: STORED,
    lock: STORED,
    machine: STORED,
    memory: STORED,
    migrate_downtime: STORED,
    migrate_speed: STORED,
    name: STORED,
    nameserver: STORED,
    'net[n]': STORED,
    numa: STORED,
    'numa[n]': STORED,
    onboot: STORED,
    ostype: STORED,
    'parallel[n]': STORED,
    protection: STORED,
    reboot: STORED,
    rng0: STORED,
    'sata[n]': STORED,
    'scsi[n]': STORED,
    scsihw: STORED,
    searchdomain: STORED,
    'serial[n]': STORED,
    shares: STORED,
    smbios1: STORED,
    smp: STORED,
    sockets: STORED,
    spice_enhancements: STORED,
    sshkeys: STORED,
    startdate: STORED,
    startup: STORED,
    tablet: STORED,
    tags: STORED,
    tdf: STORED,
    template: STORED,
    tpmstate0: STORED,
    'unused[n]': STORED,
    'usb[n]': STORED,
    vcpus: STORED,
    vga: STORED,
    'virtio[n]': STORED,
    'virtiofs[n]': STORED,
    vmgenid: STORED,
    vmstatestorage: STORED,
    watchdog: STORED,
  },
  'GET /nodes/{node}/qemu/{vmid}/status/current': { node: ACTED, vmid: ACTED },
  'POST /nodes/{node}/qemu/{vmid}/status/start': {
    node: ACTED,
    vmid: ACTED,
    timeout: 'ignored: a simulated start ends after its fixed time, never near a timeout',
    machine: 'ignored: a one-off QEMU machine type for this start; the simulator runs no QEMU',
    skiplock: NO_LOCKS,
    'force-cpu': MIGRATION,
    migratedfrom: MIGRATION,
    migration_network: MIGRATION,
    migration_type: MIGRATION,
    'nets-host-mtu': MIGRATION,
    stateuri: MIGRATION,
    targetstorage: MIGRATION,
    'with-conntrack-state': MIGRATION,
  },
  'POST /nodes/{node}/qemu/{vmid}/status/shutdown': {
    node: ACTED,
    vmid: ACTED,
    timeout: ACTED,
    forceStop: ACTED,
    keepActive: NO_STORAGE,
    skiplock: NO_LOCKS,
  },
  'POST /nodes/{node}/qemu/{vmid}/status/stop': {
    node: ACTED,
    vmid: ACTED,
    timeout: 'ignored: a simulated stop ends after its fixed time, never near a timeout',
    'overrule-shutdown': 'ignored: a simulated stop never waits for a shutdown task still running',
    keepActive: NO_STORAGE,
    migratedfrom: MIGRATION,
    skiplock: NO_LOCKS,
  },
  'GET /nodes/{node}/tasks/{upid}/status': { node: ACTED, upid: ACTED },
  'GET /access/permissions': { path: ACTED, userid: ACTED },
  'GET /nodes/{node}/status': { node: ACTED },
  'GET /cluster/resources': { type: ACTED },
  'GET /nodes/{node}/tasks': {
    node: ACTED,
    start: ACTED,
    limit: ACTED,
    userfilter: ACTED,
    typefilter: ACTED,
    vmid: ACTED,
    errors: ACTED,
    source: ACTED,
    since: ACTED,
    until: ACTED,
    statusfilter: ACTED,
  },
  'GET /nodes/{node}/qemu/{vmid}/pending': { node: ACTED, vmid: ACTED },
};

/** Parameters only root@pam may give (refused with Proxmox's wording for anyone else), per endpoint. */
export const ROOT_ONLY: Readonly<Record<string, readonly string[]>> = {
  'POST /nodes/{node}/qemu/{vmid}/config': ['skiplock'],
  'POST /nodes/{node}/qemu/{vmid}/status/start': [
    'skiplock',
    'stateuri',
    'migratedfrom',
    'migration_type',
    'migration_network',
    'targetstorage',
    'force-cpu',
    'with-conntrack-state',
    'nets-host-mtu',
  ],
  'POST /nodes/{node}/qemu/{vmid}/status/shutdown': ['skiplock', 'keepActive'],
  'POST /nodes/{node}/qemu/{vmid}/status/stop': ['skiplock', 'keepActive', 'migratedfrom'],
};

/** The config POST's parameters that steer the call rather than name a VM option. */
const CONFIG_CONTROLS = new Set([
  'node',
  'vmid',
  'digest',
  'delete',
  'revert',
  'force',
  'skiplock',
  'background_delay',
  'import-working-storage',
  'cdrom',
]);

/** A VM option `delete` and `revert` may name (qemu-server's option_exists, over the options we list). */
export function isVmOption(key: string): boolean {
  const options = PARAMETERS['POST /nodes/{node}/qemu/{vmid}/config'] ?? {};
  if (CONFIG_CONTROLS.has(key)) return false;
  return options[key] !== undefined || options[`${/^(.*\D)\d+$/.exec(key)?.[1] ?? ''}[n]`] !== undefined;
}
