// A rollout across a simulated fleet of 50 Proxmox hosts and 150 node VMs (3 per host, three
// of them the control plane on three hosts), every host rebooting: the rollout planner
// (src/engine/rollout) makes the waves, and the engine's scheduler (runStages, with its
// journal) runs each host's turn — drain, reboot, back Ready — with the waits compressed
// (a reboot 200 ms instead of about a minute). A PodDisruptionBudget over three replicas on
// three hosts is modelled as a drain that waits until the budget allows the next eviction. One host fails its reboot on the
// first run; the run stops, and a resume finishes. Measured: wall time against the lower
// bound the budget allows, the most nodes ever down at once, and whether quorum held.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Journal } from '../src/engine/journal.ts';
import { disruptionOf, type RolloutNode, type RolloutVm } from '../src/engine/rollout/budget.ts';
import { fewestWaves, scheduleRollout } from '../src/engine/rollout/schedule.ts';
import { runStages, type Stage } from '../src/engine/scheduler.ts';

export const FLEET_HOSTS = 50;
export const VMS_PER_FLEET_HOST = 3;
const DRAIN_MS = 40;
const REBOOT_MS = 200;
const READY_MS = 60;
const FAILING_HOST = 'pve17';
/** The replicas a PodDisruptionBudget covers: one node each on pve1, pve2 and pve3. */
const PDB_REPLICAS = new Set(['k8s-2', 'k8s-5', 'k8s-8']);

export interface FleetRolloutResult {
  hosts: number;
  nodes: number;
  budget: number;
  waves: number;
  wallMs: number;
  lowerBoundMs: number;
  maxDown: number;
  quorumKept: boolean;
  failedOnce: string;
  resumed: boolean;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function benchFleetRollout(budgetPercent = 10): Promise<FleetRolloutResult> {
  const nodes: RolloutNode[] = [];
  const hosts: { node: string; vms: RolloutVm[] }[] = [];
  const members = new Set(['k8s-1', 'k8s-50', 'k8s-100']);
  for (let h = 1; h <= FLEET_HOSTS; h++) {
    const vms: RolloutVm[] = [];
    for (let v = 0; v < VMS_PER_FLEET_HOST; v++) {
      // Control-plane nodes spread: k8s-1 on pve1, k8s-50 on pve17, k8s-100 on pve34.
      const n = (h - 1) * VMS_PER_FLEET_HOST + v + 1;
      const name = `k8s-${n}`;
      const uuid = `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
      nodes.push({ name, systemUUID: uuid, member: members.has(name) });
      vms.push({ vmid: 1000 + n, running: true, uuid, lab: true });
    }
    hosts.push({ node: `pve${h}`, vms });
  }
  const disruptions = hosts.map((h) => disruptionOf({ ...h, reboots: true, restarts: [] }, nodes));
  const budget = Math.ceil((budgetPercent / 100) * nodes.length);
  const constraints = {
    budget,
    budgetFrom: `${budgetPercent}%`,
    clusterNodes: nodes.length,
    members: members.size,
    allowApiOutage: false,
    alone: new Set<string>(),
    maxHosts: FLEET_HOSTS,
  };
  const schedule = scheduleRollout(disruptions, constraints);
  if (schedule.refusals.length > 0) throw new Error(schedule.refusals[0]?.reason);
  const down = new Set<string>();
  let maxDown = 0;
  let quorumKept = true;
  let failNow = true;
  const turnOf = new Map(disruptions.map((d) => [d.node, d]));
  const stagesOf = (host: string): Stage[] => {
    const d = turnOf.get(host);
    const group = `host:${host}`;
    return [
      {
        id: `${host}/drain`,
        group,
        fingerprint: 'drain',
        title: `drain ${d?.nodes.join(', ')}`,
        run: async () => {
          // A PodDisruptionBudget (maxUnavailable 1) over replicas on three nodes of
          // different hosts: a drain that would evict a second replica waits until the
          // first is back, as eviction does (429 until disruptionsAllowed is 1 again).
          const mine = (d?.nodes ?? []).filter((n) => PDB_REPLICAS.has(n));
          while (mine.length > 0 && [...down].some((n) => PDB_REPLICAS.has(n) && !mine.includes(n)))
            await sleep(5);
          for (const node of d?.nodes ?? []) down.add(node);
          maxDown = Math.max(maxDown, down.size);
          const membersDown = [...down].filter((n) => members.has(n)).length;
          if (membersDown > schedule.tolerance) quorumKept = false;
          await sleep(DRAIN_MS);
        },
      },
      {
        id: `${host}/host`,
        group,
        fingerprint: 'host',
        title: `host ${host}: reboot`,
        run: async () => {
          await sleep(REBOOT_MS);
          if (host === FAILING_HOST && failNow) {
            failNow = false;
            throw new Error('the host did not come back in time (simulated)');
          }
        },
      },
      {
        id: `${host}/uncordon`,
        group,
        fingerprint: 'uncordon',
        title: `uncordon ${d?.nodes.join(', ')}`,
        run: async () => {
          await sleep(READY_MS);
          for (const node of d?.nodes ?? []) down.delete(node);
        },
      },
    ];
  };
  const stages = hosts.flatMap((h) => stagesOf(h.node));
  const dir = await mkdtemp(join(tmpdir(), 'igpu-fleet-rollout-'));
  const labFile = join(dir, 'igpu-split.yaml');
  await writeFile(labFile, '# fleet rollout bench\n');
  const run = async (resume: boolean) => {
    const journal = new Journal(labFile);
    await journal.lock(resume);
    await journal.start(resume);
    let finished = false;
    try {
      await runStages(stages, journal, {
        parallel: FLEET_HOSTS,
        waves: schedule.waves,
        // Quorum is whole again before the next wave: the nodes of the last wave are back.
        beforeWave: async () => {
          if ([...down].some((n) => members.has(n))) quorumKept = false;
        },
      });
      finished = true;
    } finally {
      await journal.release(finished);
    }
  };
  const start = performance.now();
  let resumed = false;
  try {
    await run(false);
  } catch {
    // expected: the simulated failing host — the run stops; the resume below finishes it
    // The nodes of the failed host stay down until its turn is taken again.
    resumed = true;
    await run(true);
  }
  const wallMs = performance.now() - start;
  await rm(dir, { recursive: true, force: true });
  const turnMs = DRAIN_MS + REBOOT_MS + READY_MS;
  return {
    hosts: FLEET_HOSTS,
    nodes: nodes.length,
    budget,
    waves: schedule.waves.length,
    wallMs,
    lowerBoundMs: fewestWaves(disruptions, constraints) * turnMs,
    maxDown,
    quorumKept,
    failedOnce: FAILING_HOST,
    resumed,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await benchFleetRollout());
