// The planner half of bench/fleet-plan.ts: loads the fleet's lab file, plans every
// layer against the simulators (hosts and guests read from captured trees), and prints
// its wall time and peak memory as one JSON line.

import { fileURLToPath } from 'node:url';
import { CapturedRoot } from '../src/access/captured-root.ts';
import { openKube } from '../src/cluster/kube.ts';
import { loadLab } from '../src/config/load.ts';
import type { LabConnections } from '../src/engine/connections.ts';
import { planLab, planSections } from '../src/engine/plan.ts';
import { ImageFactory } from '../src/guest/talos/factory.ts';
import { ProxmoxApi } from '../src/proxmox/api.ts';
import { ProxmoxClient } from '../src/proxmox/client.ts';
import { memoized } from './memoized-host.ts';

const HOST = fileURLToPath(new URL('../test/fixtures/hosts/i5-8500t-before', import.meta.url));
const N100 = fileURLToPath(new URL('../test/fixtures/hosts/n100-before', import.meta.url));
const GUEST = fileURLToPath(new URL('../test/fixtures/guests/ubuntu-2404-cloud-before', import.meta.url));

const lab = await loadLab(process.argv[2] as string);
// Every host reads the same capture (and every guest the same): one reader each.
const hostTree = memoized(await new CapturedRoot(HOST).open());
// The SR-IOV hosts of a mixed fleet (mode: sriov) read the N100 capture (an older tree has none).
const sriovNodes = new Set(lab.hosts.filter((h) => (h.mode as string) === 'sriov').map((h) => h.node));
const n100Tree = sriovNodes.size > 0 ? memoized(await new CapturedRoot(N100).open()) : hostTree;
const guestTree = memoized(await new CapturedRoot(GUEST).open());
const client = new ProxmoxClient({
  baseUrl: lab.proxmox.url,
  tokenId: lab.proxmox.token,
  secret: process.env.FLEET_SECRET as string,
  tls: { fingerprint: lab.proxmox.fingerprint as string },
});
const connections: LabConnections = {
  proxmox: new ProxmoxApi(client, lab.proxmox.token),
  host: async (node: string) => (sriovNodes.has(node) ? n100Tree : hostTree),
  guest: async () => guestTree,
  talosctl: undefined,
  factory: new ImageFactory(lab.imageFactory),
  kube: openKube({ kubeconfig: lab.kubernetes.kubeconfig }),
  talosOut: '/nonexistent',
  close: () => client.close(),
};
const start = performance.now();
const plan = await planLab(lab, connections);
const ms = performance.now() - start;
await connections.close();
const steps = planSections(plan).reduce((sum, s) => sum + s.steps.length, 0);
console.log(
  JSON.stringify({
    ms: Math.round(ms),
    peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    steps,
  }),
);
