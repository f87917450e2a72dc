// Reboots and VM restarts per run, on the demo lab: a first apply (goal: at most one
// reboot per host) and a second apply on the converged lab (goal: none at all).

import type { HostAccess } from '../src/access/host.ts';
import { type DemoLab, startDemoLab } from '../src/demo/lab.ts';
import { applyLab } from '../src/engine/apply-lab.ts';
import { MAX_IGPU_VFS } from '../src/knowledge/igpu-platforms.ts';

export interface DisruptionResult {
  hosts: number;
  first: { hostReboots: Record<string, number>; guestReboots: number; vmRestarts: number };
  second: { hostReboots: number; guestReboots: number; vmRestarts: number };
  /** The demo's SR-IOV host (issue 16): its reboots per run, and its VFs as planned and as the iGPU offers at most. */
  sriov?: { node: string; firstReboots: number; secondReboots: number; vfsPlanned: number; vfsMax: number };
}

/** One whole apply of the lab, as `igpu-split apply --yes` runs it: the one place this file calls the engine. */
async function applyOnce(demo: DemoLab): Promise<void> {
  await applyLab(demo.lab, demo.connections, { labFile: demo.labFile, pollMs: 10 });
}

export async function benchDisruptions(): Promise<DisruptionResult> {
  const demo = await startDemoLab();
  const hostReboots: Record<string, number> = {};
  let guestReboots = 0;
  const counting = (open: () => Promise<HostAccess>, count: () => void) => async () => {
    const access = await open();
    const run = access.run.bind(access);
    access.run = (command, options) => {
      if (/systemctl reboot/.test(command)) count();
      return run(command, options);
    };
    return access;
  };
  const host = demo.connections.host;
  const guest = demo.connections.guest;
  demo.connections.host = (node) =>
    counting(
      () => host(node),
      () => {
        hostReboots[node] = (hostReboots[node] ?? 0) + 1;
      },
    )();
  demo.connections.guest = (vm) =>
    counting(
      () => guest(vm),
      () => void guestReboots++,
    )();
  const starts = () => demo.proxmox.calls.filter((c) => /^start /.test(c)).length;
  try {
    const before = starts();
    await applyOnce(demo);
    const first = { hostReboots: { ...hostReboots }, guestReboots, vmRestarts: starts() - before };
    const mid = {
      host: Object.values(hostReboots).reduce((a, b) => a + b, 0),
      guest: guestReboots,
      starts: starts(),
    };
    await applyOnce(demo);
    const second = {
      hostReboots: Object.values(hostReboots).reduce((a, b) => a + b, 0) - mid.host,
      guestReboots: guestReboots - mid.guest,
      vmRestarts: starts() - mid.starts,
    };
    const sriovNode = demo.lab.hosts.find((h) => h.mode === 'sriov')?.node;
    const sriov = sriovNode
      ? {
          node: sriovNode,
          firstReboots: first.hostReboots[sriovNode] ?? 0,
          secondReboots: (hostReboots[sriovNode] ?? 0) - (first.hostReboots[sriovNode] ?? 0),
          ...(await vfCounts(demo, sriovNode)),
        }
      : undefined;
    return { hosts: demo.lab.hosts.length, first, second, ...(sriov ? { sriov } : {}) };
  } finally {
    await demo.close();
  }
}

/**
 * sriov_numvfs (what the host plan made) against the most an Intel iGPU offers (MAX_IGPU_VFS:
 * the host's own sriov_totalvfs reads max_vfs once the DKMS i915 runs, so it cannot say it).
 */
async function vfCounts(demo: DemoLab, node: string): Promise<{ vfsPlanned: number; vfsMax: number }> {
  const access = await demo.connections.host(node);
  try {
    const numvfs = await access.readFile('/sys/bus/pci/devices/0000:00:02.0/sriov_numvfs');
    return { vfsPlanned: Number(numvfs.toString().trim()), vfsMax: MAX_IGPU_VFS };
  } finally {
    await access.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`)
  console.log(JSON.stringify(await benchDisruptions(), null, 2));
