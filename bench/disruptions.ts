// Reboots and VM restarts per run, on the demo lab: a first apply (goal: at most one
// reboot per host) and a second apply on the converged lab (goal: none at all).

import type { HostAccess } from '../src/access/host.ts';
import { startDemoLab } from '../src/demo/lab.ts';
import { applyStages } from '../src/engine/apply.ts';
import { Journal } from '../src/engine/journal.ts';
import { planLab } from '../src/engine/plan.ts';
import { runStages } from '../src/engine/scheduler.ts';

export interface DisruptionResult {
  hosts: number;
  first: { hostReboots: Record<string, number>; guestReboots: number; vmRestarts: number };
  second: { hostReboots: number; guestReboots: number; vmRestarts: number };
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
    const applyOnce = async () => {
      const journal = new Journal(demo.labFile);
      await journal.lock(false);
      await journal.start(false);
      await runStages(
        applyStages(demo.lab, await planLab(demo.lab, demo.connections), demo.connections, journal, {
          pollMs: 10,
        }),
        journal,
      );
      await journal.finish();
      await journal.unlock();
    };
    const before = starts();
    await applyOnce();
    const first = { hostReboots: { ...hostReboots }, guestReboots, vmRestarts: starts() - before };
    const mid = {
      host: Object.values(hostReboots).reduce((a, b) => a + b, 0),
      guest: guestReboots,
      starts: starts(),
    };
    await applyOnce();
    const second = {
      hostReboots: Object.values(hostReboots).reduce((a, b) => a + b, 0) - mid.host,
      guestReboots: guestReboots - mid.guest,
      vmRestarts: starts() - mid.starts,
    };
    return { hosts: demo.lab.hosts.length, first, second };
  } finally {
    await demo.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`)
  console.log(JSON.stringify(await benchDisruptions(), null, 2));
