// The built-in demo lab, modelled on a real one: four Proxmox hosts (two i5-8500T with
// UHD 630 8086:3e92, one i7-6700K with HD 530 8086:1912, all at a 256 MB aperture, and an
// N100 8086:46d1 for SR-IOV), two K3s-on-Ubuntu node VMs (GVT-g, and a VF of the N100) and a
// Talos node VM, a four-node Kubernetes cluster. The
// Proxmox simulator and the Kubernetes API server run in this process over HTTPS on
// loopback; hosts and guests are captured trees that behave like the machines.
// The lab file it writes is a real one: point it at a real lab by changing it.

import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DirectoryHost } from '../access/directory-host.ts';
import { openKube } from '../cluster/kube.ts';
import type { Lab } from '../config/lab.ts';
import { parseLab } from '../config/load.ts';
import type { LabConnections } from '../engine/connections.ts';
import { ImageFactory } from '../guest/talos/factory.ts';
import { ProxmoxApi } from '../proxmox/api.ts';
import { ProxmoxClient } from '../proxmox/client.ts';
import { type RunningKubeSimulator, startKubeSimulator } from '../sim/kube/server.ts';
import { parameterChecker, type RunningSimulator, startSimulator } from '../sim/proxmox/server.ts';
import { SimulatorState } from '../sim/proxmox/state.ts';
import { type FakeFactory, startImageFactory } from '../sim/talos-factory.ts';
import { DEMO_TALOS_NODE, DEMO_TALOS_VERSION, proxmoxHost, talosNode, ubuntuGuest } from './machines.ts';
import { sriovHost } from './sriov-host.ts';

const K3S_RUNTIME = 'containerd://2.2.5-k3s2';
/** The node VMs' SMBIOS uuids, which their kubelets report as systemUUID. */
const DEMO_UUIDS: Record<string, string> = {
  'k3s-1': '5d3c2a10-7e4b-4c1a-9f00-000000000101',
  'talos-1': '5d3c2a10-7e4b-4c1a-9f00-000000000102',
  'k3s-2': '5d3c2a10-7e4b-4c1a-9f00-000000000103',
};
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
export const DEMO_TOKEN_ID = 'igpu-split@pve!demo';
export const DEMO_SECRET_ENV = 'IGPU_SPLIT_DEMO_TOKEN';

/** Where the demo lab's parts are: enough for another process to drive the same lab. */
export interface DemoDescription {
  dir: string;
  labFile: string;
  roots: Record<string, string>;
  /** The Ubuntu guests' trees, by machine name (k3s-1 on a GVT-g vGPU, k3s-2 on pve4's VF). */
  guestRoots: Record<string, string>;
  proxmoxUrl: string;
  fingerprint: string;
  secret: string;
  kubeconfig: string;
  factoryUrl: string;
}

export interface DemoLab {
  dir: string;
  labFile: string;
  lab: Lab;
  description: DemoDescription;
  connections: LabConnections;
  proxmox: SimulatorState;
  /** The Proxmox simulator's HTTPS front (fault injection). */
  proxmoxServer: RunningSimulator;
  kube: RunningKubeSimulator;
  /** Stops the simulators; the folder goes too unless `keepFiles`. */
  close(options?: { keepFiles?: boolean }): Promise<void>;
}

const HOSTS = [
  { node: 'pve1', before: 'i5-8500t-before', after: 'i5-8500t-gvt' },
  { node: 'pve2', before: 'i5-8500t-before', after: 'i5-8500t-gvt' },
  { node: 'pve3', before: 'i7-6700k-sdboot', after: undefined },
  // Alder Lake-N N100, UHD 8086:46d1: SR-IOV through i915-sriov-dkms (src/demo/sriov-host.ts).
  { node: 'pve4', before: 'n100-before', after: undefined },
] as const;

/** The Ubuntu guests: k3s-1 in VM 101 (GVT-g), k3s-2 in VM 103 on pve4's virtual function. */
const GUESTS = [
  { name: 'k3s-1', vmid: 101, before: 'ubuntu-2404-cloud-before', after: 'ubuntu-2404-cloud-after' },
  { name: 'k3s-2', vmid: 103, before: 'ubuntu-2404-sriov-before', after: 'ubuntu-2404-sriov-after' },
] as const;

/** The demo's SR-IOV host, and the sysfs file whose count the Proxmox simulator follows. */
const SRIOV_NODE = 'pve4';
const NUMVFS = 'sys/bus/pci/devices/0000:00:02.0/sriov_numvfs';

/**
 * The simulator lists the VFs the host's tree has, read before each request: a host
 * rebooted by another process (the playground's SSH server, a kill-point child) counts too.
 */
function followVfs(root: string): (state: SimulatorState) => void {
  let seen = 0;
  return (state) => {
    let count = 0;
    try {
      count = Number(readFileSync(join(root, NUMVFS), 'utf8').trim()) || 0;
    } catch (error) {
      // expected: ENOENT — the stock i915 offers no SR-IOV: no VFs
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (count === seen) return;
    seen = count;
    state.setVirtualFunctions(SRIOV_NODE, count);
  };
}

/** The i7-6700K capture has a 512 MB aperture; the demo host has 256 MB, as the real one. */
async function apertureTo256(root: string): Promise<void> {
  const dev = join(root, 'sys/bus/pci/devices/0000:00:02.0');
  const lines = (await readFile(join(dev, 'resource'), 'utf8')).split('\n');
  lines[2] = '0x0000000090000000 0x000000009fffffff 0x000000000014220c';
  await writeFile(join(dev, 'resource'), lines.join('\n'));
  const types = join(dev, 'mdev_supported_types');
  await rm(join(types, 'i915-GVTg_V5_2'), { recursive: true, force: true });
  await writeFile(join(types, 'i915-GVTg_V5_4/available_instances'), '1\n');
  await writeFile(join(types, 'i915-GVTg_V5_8/available_instances'), '2\n');
}

/**
 * Starts the demo lab in a new temporary folder, or in `into` (an empty folder the caller
 * made); `made` hears the folder at once (to remove it if cut short).
 */
export async function startDemoLab(made?: (dir: string) => void, into?: string): Promise<DemoLab> {
  // Made and told in one step: an interrupt cannot fall between the two.
  const dir = into ?? mkdtempSync(join(tmpdir(), 'igpu-split-demo-'));
  made?.(dir);
  const roots: Record<string, string> = {};
  for (const host of HOSTS) {
    roots[host.node] = join(dir, 'machines', host.node);
    await cp(join(FIXTURES, 'hosts', host.before), roots[host.node] as string, {
      recursive: true,
      verbatimSymlinks: true,
    });
  }
  await apertureTo256(roots.pve3 as string);
  // Captures carry no boot id; a running machine has one.
  for (const root of Object.values(roots)) {
    await mkdir(join(root, 'proc/sys/kernel/random'), { recursive: true });
    await writeFile(join(root, 'proc/sys/kernel/random/boot_id'), `${randomUUID()}\n`);
  }
  const guestRoots: Record<string, string> = {};
  for (const guest of GUESTS) {
    guestRoots[guest.name] = join(dir, 'machines', guest.name);
    await cp(join(FIXTURES, 'guests', guest.before), guestRoots[guest.name] as string, {
      recursive: true,
      verbatimSymlinks: true,
    });
    // Every installed Ubuntu has /var/tmp (captures keep no empty folders).
    await mkdir(join(guestRoots[guest.name] as string, 'var/tmp'), { recursive: true });
  }

  const follow = followVfs(roots[SRIOV_NODE] as string);
  const state: SimulatorState = new SimulatorState({
    taskMs: 20,
    secondMs: 20,
    onRequest: () => follow(state),
  });
  const gpu = { bdf: '0000:00:02.0', iommuGroup: 1, apertureMiB: 256, graphicsVer: 9 };
  state.addNode('pve1', { ...gpu, vendorDevice: '8086:3e92', subsystem: '17aa:3136' });
  state.addNode('pve2', { ...gpu, vendorDevice: '8086:3e92', subsystem: '17aa:3136' });
  state.addNode('pve3', { ...gpu, vendorDevice: '8086:1912', subsystem: '1462:7978' });
  // The n100-before capture's iGPU; 7 VFs at most (sriov_totalvfs of the DKMS i915).
  state.addNode(SRIOV_NODE, {
    ...gpu,
    vendorDevice: '8086:46d1',
    subsystem: '8086:7270',
    graphicsVer: 12,
    totalVfs: 7,
  });
  // Each VM's SMBIOS uuid, as Proxmox generates one on create (qemu-server
  // generate_smbios1_uuid): the node's systemUUID below is the same, so the rollout maps them.
  const vm = (name: string) => ({
    name,
    smbios1: `uuid=${DEMO_UUIDS[name]}`,
    machine: 'q35',
    bios: 'ovmf',
    efidisk0: 'local-lvm:vm-disk-efi,efitype=4m,size=4M',
    scsi0: 'local-lvm:vm-disk-0,size=32G',
    net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr0',
  });
  state.addVm({ vmid: 101, node: 'pve1', status: 'stopped', config: vm('k3s-1') });
  state.addVm({ vmid: 102, node: 'pve2', status: 'stopped', config: vm('talos-1') });
  state.addVm({ vmid: 103, node: SRIOV_NODE, status: 'stopped', config: vm('k3s-2') });
  state.start(101);
  state.start(102);
  state.start(103);
  const secret = `demo-${Math.random().toString(36).slice(2)}`;
  process.env[DEMO_SECRET_ENV] = secret;
  state.addToken(DEMO_TOKEN_ID, secret, {
    '/': ['Sys.Audit'],
    '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Options', 'VM.PowerMgmt'],
    '/mapping/pci': ['Mapping.Audit', 'Mapping.Use', 'Mapping.Modify'],
  });
  const proxmox = await startSimulator(state);
  const kube = await startKubeSimulator({
    nodes: [
      { name: 'cp-1', labels: { 'node-role.kubernetes.io/control-plane': '' } },
      // The PRETTY_NAME of the captured guest's os-release (test/fixtures/guests); the runtime
      // is the containerd K3s v1.34.9+k3s1 embeds (its release page, "Embedded Component
      // Versions": Containerd v2.2.5-k3s2, https://github.com/k3s-io/k3s/releases, read 2026-12-01).
      // The `containerd://` prefix without a `v` is our rendering: the exact string a K3s
      // kubelet reports was not read at a source (the CDI check accepts either spelling).
      // A GVT-g vGPU shows the parent's device id in the guest (UHD 630, 8086:3e92): Linux
      // drivers/gpu/drm/i915/gvt/cfg_space.c intel_vgpu_init_cfg_space copies the host
      // device's config space (gvt->firmware.cfg_space) into the vGPU's.
      {
        name: 'k3s-1',
        gpus: 1,
        osImage: 'Ubuntu 24.04.3 LTS',
        containerRuntimeVersion: K3S_RUNTIME,
        pciId: '0x3e92',
        systemUUID: DEMO_UUIDS['k3s-1'],
      },
      // The VF guest binds i915 from the DKMS: the plugin offers gpu.intel.com/i915 there too.
      {
        name: 'k3s-2',
        gpus: 1,
        osImage: 'Ubuntu 24.04.3 LTS',
        containerRuntimeVersion: K3S_RUNTIME,
        systemUUID: DEMO_UUIDS['k3s-2'],
      },
      // What Talos's os-release says (pkg/machinery/constants/constants.go PRETTY_NAME at v1.10.9).
      {
        name: 'talos-1',
        gpus: 1,
        osImage: `Talos (${DEMO_TALOS_VERSION})`,
        pciId: '0x3e92',
        systemUUID: DEMO_UUIDS['talos-1'],
      },
    ],
    defaultPodSecurity: 'baseline',
    vainfo: true,
  });
  const factory: FakeFactory = await startImageFactory();
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, kube.kubeconfig, { mode: 0o600 });
  const labFile = join(dir, 'igpu-split.yaml');
  await writeFile(
    labFile,
    demoLabText({
      proxmoxUrl: proxmox.url,
      fingerprint: proxmox.fingerprint,
      kubeconfig,
      factoryUrl: factory.url,
    }),
  );
  const lab = parseLab(await readFile(labFile, 'utf8'), labFile);

  const description: DemoDescription = {
    dir,
    labFile,
    roots,
    guestRoots,
    proxmoxUrl: proxmox.url,
    fingerprint: proxmox.fingerprint,
    secret,
    kubeconfig,
    factoryUrl: factory.url,
  };
  const connections = demoConnections(description);
  return {
    dir,
    labFile,
    lab,
    description,
    connections,
    proxmox: state,
    proxmoxServer: proxmox,
    kube,
    close: async (options = {}) => {
      await connections.close();
      await Promise.all([proxmox.close(), kube.close(), factory.close()]);
      if (!options.keepFiles) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The demo machines' names: the Proxmox hosts and the Ubuntu guests. */
export const DEMO_MACHINES = [...HOSTS.map((h) => h.node), ...GUESTS.map((g) => g.name)] as const;

/** One demo machine (a Proxmox host, or an Ubuntu guest) as a host to read and change. */
export function demoMachine(d: DemoDescription, name: string): DirectoryHost {
  const guest = GUESTS.find((g) => g.name === name);
  if (guest)
    return new DirectoryHost(
      d.guestRoots[name] as string,
      ubuntuGuest(join(FIXTURES, 'guests', guest.after)),
      IN_PROCESS.guests[name],
    );
  if (name === SRIOV_NODE)
    return new DirectoryHost(d.roots[name] as string, sriovHost({ node: name }), IN_PROCESS.hosts[name]);
  const spec = HOSTS.find((h) => h.node === name);
  const after = spec?.after ? join(FIXTURES, 'hosts', spec.after) : undefined;
  return new DirectoryHost(d.roots[name] as string, proxmoxHost(after), IN_PROCESS.hosts[name]);
}

/** Connections to a running demo lab's machines and simulators (from this process or another). */
export function demoConnections(d: DemoDescription): LabConnections {
  const client = new ProxmoxClient({
    baseUrl: d.proxmoxUrl,
    tokenId: DEMO_TOKEN_ID,
    secret: d.secret,
    tls: { fingerprint: d.fingerprint },
  });
  return {
    proxmox: new ProxmoxApi(client, DEMO_TOKEN_ID, { pollMs: 20 }),
    host: async (node) => demoMachine(d, node).open(),
    guest: async (vm) => demoMachine(d, GUESTS.find((g) => g.vmid === vm.vmid)?.name ?? 'k3s-1').open(),
    talosctl: talosNode(join(d.dir, 'talos-node-state')),
    factory: new ImageFactory(d.factoryUrl),
    kube: openKube({ kubeconfig: d.kubeconfig }),
    talosOut: join(d.dir, 'talos'),
    close: () => client.close(),
  };
}

/** Where the demo's machines answer SSH: names in the in-process demo, loopback ports when served. */
export interface DemoSshAddresses {
  hosts: Record<string, string>;
  guests: Record<string, string>;
}

const IN_PROCESS: DemoSshAddresses = {
  hosts: Object.fromEntries(HOSTS.map((h) => [h.node, `ssh://root@${h.node}.demo`])),
  guests: Object.fromEntries(GUESTS.map((g) => [g.name, `ssh://root@${g.name}.demo`])),
};

/** The demo lab file (the playground writes it again with its SSH servers' addresses). */
export function demoLabText(
  d: Pick<DemoDescription, 'proxmoxUrl' | 'fingerprint' | 'kubeconfig' | 'factoryUrl'>,
  ssh: DemoSshAddresses = IN_PROCESS,
): string {
  return `# igpu-split demo lab — every address below is a simulator on this machine.
# To use a real lab, change: proxmox.url and fingerprint (Datacenter → node →
# Certificates), the token and its secret variable or file, each host's ssh: and each
# VM's guest: or talos:, and kubernetes.kubeconfig. See the README, "Using it on a real lab".
proxmox:
  url: ${d.proxmoxUrl}
  token: ${DEMO_TOKEN_ID}
  tokenSecretEnv: ${DEMO_SECRET_ENV}
  fingerprint: "${d.fingerprint}"
mapping: iGPU
hosts:
  - { node: pve1, ssh: "${ssh.hosts.pve1}" }   # i5-8500T, UHD 630
  - { node: pve2, ssh: "${ssh.hosts.pve2}" }   # i5-8500T, UHD 630
  - { node: pve3, ssh: "${ssh.hosts.pve3}" }   # i7-6700K, HD 530, already set up
  - { node: pve4, ssh: "${ssh.hosts.pve4}", mode: sriov }   # N100 (Alder Lake-N): virtual functions
vms:
  - vmid: 101
    host: pve1
    os: ubuntu
    kubernetesNode: k3s-1
    guest: "${ssh.guests['k3s-1']}"
  - vmid: 102
    host: pve2
    os: talos
    kubernetesNode: talos-1
    talos: { node: ${DEMO_TALOS_NODE} }   # the Talos version is read from the node
  - vmid: 103
    host: pve4
    os: ubuntu   # one virtual function of pve4 (through the sriov.mapping pool); the guest gets the DKMS
    kubernetesNode: k3s-2
    guest: "${ssh.guests['k3s-2']}"
sriov:
  # The release the N100's kernel (6.17) is in range of; the demo host writes what the
  # package leaves and never downloads it.
  hostDriver:
    url: https://github.com/strongtz/i915-sriov-dkms/releases/download/2026.05.06/i915-sriov-dkms_2026.05.06_amd64.deb
  # Ubuntu 24.04's 6.8 kernel is in the range of 2025.07.22 (6.8–6.16), not of 2026.05.06.
  guestDriver:
    url: https://github.com/strongtz/i915-sriov-dkms/releases/download/2025.07.22/i915-sriov-dkms_2025.07.22_amd64.deb
imageFactory: ${d.factoryUrl}
kubernetes:
  kubeconfig: ${d.kubeconfig}
  smokeImage: jellyfin/jellyfin:10.10.7   # has vainfo: the smoke pod also proves VA-API
`;
}

/** Which API description the Proxmox simulator checks requests against (the demo says so). */
export function proxmoxSchemaSource(): 'official' | 'compact' {
  return parameterChecker().schemaSource;
}
