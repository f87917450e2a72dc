// `npm run bench`: whole-process timings of the CLI, each measured beside the
// bare `node` start-up it cannot beat, in the same run, and reported as a ratio.
// Figures are medians of interleaved runs after a warm-up; goals come from the issues.

import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { benchDisruptions } from '../bench/disruptions.ts';
import { benchFleetPlan, HOSTS, VMS_PER_HOST } from '../bench/fleet-plan.ts';
import { benchHostLayer, type HostLayerResult, hostLayerSkipReason } from '../bench/host-layer.ts';
import { benchLabLoad } from '../bench/lab-load.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 25);
const node = process.execPath;
const fixture = 'test/fixtures/hosts/i5-8500t-gvt';

interface Case {
  name: string;
  args: string[];
  goalMs?: number;
}

const peer: Case = { name: 'node -e 0 (bare start-up, the peer)', args: ['-e', '0'] };
const cases: Case[] = [
  { name: 'igpu-split --help', args: ['bin/igpu-split.js', '--help'], goalMs: 150 },
  {
    name: 'igpu-split doctor --root <fixture>',
    args: ['bin/igpu-split.js', 'doctor', '--root', fixture],
    goalMs: 400,
  },
  {
    name: 'igpu-split doctor --root <fixture> --json',
    args: ['bin/igpu-split.js', 'doctor', '--root', fixture, '--json'],
    goalMs: 400,
  },
];

function once(args: string[]): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(node, args, { stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0 && result.status !== 1)
    throw new Error(`${args.join(' ')} exited ${result.status}`);
  return ms;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

const all = [peer, ...cases];
for (const c of all) once(c.args); // warm-up: page cache, compile cache
const samples = new Map<Case, number[]>(all.map((c) => [c, []]));
for (let i = 0; i < RUNS; i++) for (const c of all) samples.get(c)?.push(once(c.args));

const peerMs = median(samples.get(peer) ?? []);
console.log(
  `igpu-split bench — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${RUNS} runs each\n`,
);
console.log('| command | median ms | ratio to bare node | goal |');
console.log('|---|---:|---:|---|');
console.log(`| ${peer.name} | ${peerMs.toFixed(1)} | 1.00 | |`);
let missed = 0;
for (const c of cases) {
  const ms = median(samples.get(c) ?? []);
  const met = c.goalMs === undefined || ms <= c.goalMs;
  if (!met) missed++;
  console.log(
    `| ${c.name} | ${ms.toFixed(1)} | ${(ms / peerMs).toFixed(2)} | ≤ ${c.goalMs} ms ${met ? 'met' : 'MISSED'} |`,
  );
}

// Host layer on 8 fake hosts, against Ansible (the peer), three fresh fleets each.
const skip = hostLayerSkipReason();
if (skip) {
  console.log(`\nhost layer vs Ansible: skipped (${skip})`);
} else {
  const runs: HostLayerResult[] = [];
  for (let i = 0; i < 3; i++) runs.push(await benchHostLayer());
  const ours = median(runs.map((r) => r.igpuSplitMs));
  const theirs = median(runs.map((r) => r.ansibleMs));
  const ratio = theirs / ours;
  const met = ratio >= 10;
  if (!met) missed++;
  console.log(
    '\n| gather + plan + apply, 8 fake sshd hosts (median of 3 fresh fleets) | ms | speed-up | goal |',
  );
  console.log('|---|---:|---:|---|');
  console.log(
    `| ansible-playbook bench/peer/host-layer.yml, pipelining, 8 forks (the peer) | ${theirs.toFixed(0)} | 1.0× | |`,
  );
  console.log(
    `| igpu-split (one process, all hosts at once) | ${ours.toFixed(0)} | ${ratio.toFixed(1)}× | ≥ 10× ${met ? 'met' : 'MISSED'} |`,
  );
}
// Plan for a fleet of 500 hosts / 2,000 VMs (simulated), three runs; absolute goals.
const fleet = [];
for (let i = 0; i < 3; i++) fleet.push(await benchFleetPlan());
const fleetMs = median(fleet.map((r) => r.ms));
const fleetMiB = Math.max(...fleet.map((r) => r.peakRssMiB));
const fleetMet = fleetMs <= 3000 && fleetMiB <= 300;
if (!fleetMet) missed++;
console.log(
  `\n| plan, ${HOSTS} hosts / ${HOSTS * VMS_PER_HOST} VMs, all layers (median of 3) | value | goal |`,
);
console.log('|---|---:|---|');
console.log(`| wall time of the planner | ${fleetMs} ms | ≤ 3000 ms ${fleetMs <= 3000 ? 'met' : 'MISSED'} |`);
console.log(
  `| peak memory of its process (max of 3) | ${fleetMiB} MB | ≤ 300 MB ${fleetMiB <= 300 ? 'met' : 'MISSED'} |`,
);
console.log(`| steps planned | ${fleet[0]?.steps} | |`);

// Disruption per run, on the demo lab.
const disruption = await benchDisruptions();
const maxReboots = Math.max(0, ...Object.values(disruption.first.hostReboots));
const quiet = disruption.second.hostReboots + disruption.second.guestReboots + disruption.second.vmRestarts;
if (maxReboots > 1 || quiet > 0) missed++;
console.log('\n| demo lab, apply | host reboots | guest reboots | VM restarts | goal |');
console.log('|---|---:|---:|---:|---|');
console.log(
  `| first run (${disruption.hosts} hosts) | ${Object.values(disruption.first.hostReboots).reduce((a, b) => a + b, 0)} (≤ ${maxReboots} per host) | ${disruption.first.guestReboots} | ${disruption.first.vmRestarts} | ≤ 1 reboot per host ${maxReboots <= 1 ? 'met' : 'MISSED'} |`,
);
console.log(
  `| second run (converged) | ${disruption.second.hostReboots} | ${disruption.second.guestReboots} | ${disruption.second.vmRestarts} | none ${quiet === 0 ? 'met' : 'MISSED'} |`,
);

// Lab files of 1,000 and 10,000 VMs: loading must grow about linearly (ratio ≤ 15).
const [small, large] = await benchLabLoad();
if (small && large) {
  const warm = large.medianMs / small.medianMs;
  const cold = large.coldMedianMs / small.coldMedianMs;
  if (warm > 15 || cold > 15) missed++;
  const goal = (ratio: number) => `≤ 15 ${ratio <= 15 ? 'met' : 'MISSED'}`;
  console.log(
    '\n| load the lab file | size | warm ms (median of 7) | cold process ms (median of 5) | goal |',
  );
  console.log('|---|---:|---:|---:|---|');
  for (const r of [small, large])
    console.log(
      `| ${r.vms.toLocaleString('en')} VMs | ${(r.bytes / 1024).toFixed(0)} KB | ${r.medianMs.toFixed(1)} | ${r.coldMedianMs.toFixed(1)} | |`,
    );
  console.log(
    `| ratio 10,000 / 1,000 | | ${warm.toFixed(1)} | ${cold.toFixed(1)} | ${goal(Math.max(warm, cold))} |`,
  );
}

// The demo end to end (what `npm start` runs on a fresh machine), a few runs beside bare node.
const DEMO_RUNS = 5;
const demoRuns: number[] = [];
const demoPeer: number[] = [];
for (let i = 0; i < DEMO_RUNS; i++) {
  demoPeer.push(once(peer.args));
  demoRuns.push(once(['bin/igpu-split.js', 'demo']));
}
const demoMs = median(demoRuns);
const demoMet = demoMs <= 30_000;
if (!demoMet) missed++;
console.log(`\n| whole process, median of ${DEMO_RUNS} | median ms | ratio to bare node | goal |`);
console.log('|---|---:|---:|---|');
console.log(
  `| igpu-split demo (doctor → plan → apply → verify → status) | ${demoMs.toFixed(0)} | ${(demoMs / median(demoPeer)).toFixed(0)} | ≤ 30000 ms ${demoMet ? 'met' : 'MISSED'} |`,
);
console.log(missed === 0 ? '\nall goals met' : `\n${missed} goal(s) missed`);
