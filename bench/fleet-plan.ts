// Plan for a simulated fleet of 500 Proxmox hosts and 2,000 node VMs (4 per host, each a
// Kubernetes node with an Ubuntu guest): the Proxmox simulator and the Kubernetes API
// server run here; the planner runs in a child process (bench/fleet-plan-child.ts) so its
// wall time and peak memory are its own. Hosts and guests are read from captured trees.

import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeSimulator } from '../src/sim/kube/server.ts';
import { startSimulator } from '../src/sim/proxmox/server.ts';
import { SimulatorState } from '../src/sim/proxmox/state.ts';

export const HOSTS = 500;
export const VMS_PER_HOST = 4;

export interface FleetPlanResult {
  ms: number;
  peakRssMiB: number;
  steps: number;
}

/**
 * `mixed`: every second host is an Alder Lake-N N100 to be set up for SR-IOV (the
 * n100-before capture, the i915-sriov-dkms release named in the lab), the others GVT-g.
 */
export async function benchFleetPlan(mixed = false): Promise<FleetPlanResult> {
  const state = new SimulatorState();
  const token = 'igpu-split@pve!bench';
  const secret = 'bench-secret';
  const nodes: string[] = [];
  const vms: { vmid: number; node: string; name: string }[] = [];
  for (let h = 0; h < HOSTS; h++) {
    const node = `pve${h + 1}`;
    nodes.push(node);
    const sriov = mixed && h % 2 === 1;
    // 1024 MB aperture: 7 × V5_8, so four VMs per host fit; an N100 offers 7 VFs.
    state.addNode(node, {
      bdf: '0000:00:02.0',
      vendorDevice: sriov ? '8086:46d1' : '8086:3e92',
      subsystem: sriov ? '8086:7270' : '17aa:3136',
      iommuGroup: 1,
      apertureMiB: 1024,
      graphicsVer: sriov ? 12 : 9,
      ...(sriov ? { totalVfs: 7 } : {}),
    });
    for (let v = 0; v < VMS_PER_HOST; v++) {
      const vmid = 1000 + h * VMS_PER_HOST + v;
      const name = `k8s-${vmid}`;
      vms.push({ vmid, node, name });
      state.addVm({ vmid, node, status: 'running', config: { name, machine: 'q35', bios: 'ovmf' } });
    }
  }
  state.addToken(token, secret, {
    '/': ['Sys.Audit'],
    '/vms': ['VM.Audit'],
    '/mapping/pci': ['Mapping.Audit'],
  });
  const pve = await startSimulator(state);
  const kube = await startKubeSimulator({ nodes: vms.map((vm) => ({ name: vm.name, gpus: 1 })) });
  const dir = await mkdtemp(join(tmpdir(), 'igpu-fleet-'));
  try {
    await writeFile(join(dir, 'kubeconfig'), kube.kubeconfig);
    const lab = [
      `proxmox: { url: ${pve.url}, token: "${token}", tokenSecretEnv: FLEET_SECRET, fingerprint: "${pve.fingerprint}" }`,
      'hosts:',
      ...nodes.map(
        (node, h) =>
          `  - { node: ${node}, ssh: "ssh://root@${node}"${mixed && h % 2 === 1 ? ', mode: sriov' : ''} }`,
      ),
      'vms:',
      ...vms.map(
        (vm) =>
          `  - { vmid: ${vm.vmid}, host: ${vm.node}, os: ubuntu, kubernetesNode: ${vm.name}, guest: "ssh://root@${vm.name}" }`,
      ),
      `kubernetes: { kubeconfig: ${join(dir, 'kubeconfig')} }`,
      ...(mixed
        ? [
            'sriov:',
            '  hostDriver: { url: https://github.com/strongtz/i915-sriov-dkms/releases/download/2026.05.06/i915-sriov-dkms_2026.05.06_amd64.deb }',
            '  guestDriver: { url: https://github.com/strongtz/i915-sriov-dkms/releases/download/2025.07.22/i915-sriov-dkms_2025.07.22_amd64.deb }',
          ]
        : []),
      '',
    ].join('\n');
    await writeFile(join(dir, 'igpu-split.yaml'), lab);
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        // The same V8 flag bin/igpu-split.js runs with.
        ['--max-semi-space-size=8', 'bench/fleet-plan-child.ts', join(dir, 'igpu-split.yaml')],
        { env: { ...process.env, FLEET_SECRET: secret }, maxBuffer: 1 << 24 },
        (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
      ),
    );
    return JSON.parse(out.trim().split('\n').pop() as string) as FleetPlanResult;
  } finally {
    await pve.close();
    await kube.close();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`)
  console.log(await benchFleetPlan(process.argv[2] === 'mixed'));
