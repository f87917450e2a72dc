// `npm run bench`: every benchmark, for today's tree and — side by side in the same run —
// for the baseline commit (issue 14: each median within 10% of d5cfd90's). Each side's
// benchmark code runs from its own tree in a child process (bench/run-one.ts), the two
// sides taking turns, and every run alternates which side goes first, so the machine's
// noise falls on both alike. The peers stay: bare `node` start-up for the CLI, Ansible
// for the host layer. Figures are medians; goals come from the issues.

import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BASELINE, prepareBaseline } from '../bench/baseline.ts';
import type { ClusterVerifyResult } from '../bench/cluster-verify.ts';
import type { DisruptionResult } from '../bench/disruptions.ts';
import { benchNpmStart, benchPlayground, type FirstContact } from '../bench/first-contact.ts';
import { type FleetPlanResult, HOSTS, VMS_PER_HOST } from '../bench/fleet-plan.ts';
import type { FleetRolloutResult } from '../bench/fleet-rollout.ts';
import { type HostLayerResult, hostLayerSkipReason } from '../bench/host-layer.ts';
import type { LabLoadResult } from '../bench/lab-load.ts';
import { RESULT_MARK } from '../bench/run-one.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 25);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RUN_ONE = join(ROOT, 'bench/run-one.ts');
const fixture = 'test/fixtures/hosts/i5-8500t-gvt';

interface Side {
  name: string;
  tree: string;
}

interface Case {
  name: string;
  args: string[];
  goalMs?: number;
}

/** One figure of both sides; lower is better. */
interface Comparison {
  name: string;
  unit: 'ms' | 'MB';
  current: number;
  baseline: number;
}

const compared: Comparison[] = [];
let missed = 0;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] as number;
};

/** The sides in run `round`'s order: A B, then B A, … */
const inTurn = <T>(sides: T[], round: number): T[] => (round % 2 === 0 ? sides : [...sides].reverse());

/** Wall time of one `node <args>` in `cwd`; exit 1 (a finding) counts as a run. */
function once(args: string[], cwd = ROOT): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { cwd, stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0 && result.status !== 1)
    throw new Error(`${args.join(' ')} in ${cwd} exited ${result.status ?? result.signal}`);
  return ms;
}

/** One benchmark function of `side`'s own bench/<module>.ts, in a child process in that tree. */
function runBench<T>(side: Side, module: string, name: string, args?: unknown[]): T {
  const result = spawnSync(
    process.execPath,
    [RUN_ONE, `bench/${module}.ts`, name, ...(args ? [JSON.stringify(args)] : [])],
    { cwd: side.tree, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 },
  );
  const line = result.stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(RESULT_MARK));
  if (result.status !== 0 || line === undefined)
    throw new Error(`${name} of ${side.name} (${side.tree}) exited ${result.status ?? result.signal}`);
  return JSON.parse(line.slice(RESULT_MARK.length)) as T;
}

function compare(name: string, unit: Comparison['unit'], values: Map<Side, number>, sides: Side[]): void {
  const [current, baseline] = sides.map((side) => values.get(side));
  if (current !== undefined && baseline !== undefined) compared.push({ name, unit, current, baseline });
}

function verdict(c: Comparison): string {
  const ratio = c.current / c.baseline;
  const percent = Math.round(Math.abs(ratio - 1) * 100);
  if (ratio > 1.1) return `${c.unit === 'MB' ? 'LARGER' : 'SLOWER'} by ${percent}%`;
  if (ratio < 0.9) return `${c.unit === 'MB' ? 'smaller' : 'faster'} by ${percent}%`;
  return 'within 10%';
}

const goal = (met: boolean, text: string) => {
  if (!met) missed++;
  return `${text} ${met ? 'met' : 'MISSED'}`;
};

/** --help and doctor, whole processes, each side's bin/ beside bare node; RUNS rounds after a warm-up. */
function benchCli(sides: Side[]): void {
  const cases: Case[] = [
    { name: 'igpu-split --help', args: ['--help'], goalMs: 150 },
    { name: 'igpu-split doctor --root <fixture>', args: ['doctor', '--root', fixture], goalMs: 400 },
    {
      name: 'igpu-split doctor --root <fixture> --json',
      args: ['doctor', '--root', fixture, '--json'],
      goalMs: 400,
    },
  ];
  const peer: number[] = [];
  const samples = new Map(cases.map((c) => [c, new Map<Side, number[]>(sides.map((s) => [s, []]))]));
  // Warm-up (page cache, compile cache), then the rounds; each side runs its own bin/ from its own tree.
  once(['-e', '0']);
  for (const c of cases) for (const side of sides) once(['bin/igpu-split.js', ...c.args], side.tree);
  for (let i = 0; i < RUNS; i++) {
    peer.push(once(['-e', '0']));
    for (const c of cases)
      for (const side of inTurn(sides, i))
        samples
          .get(c)
          ?.get(side)
          ?.push(once(['bin/igpu-split.js', ...c.args], side.tree));
  }
  const peerMs = median(peer);
  console.log('| command | median ms | ratio to bare node | goal |');
  console.log('|---|---:|---:|---|');
  console.log(`| node -e 0 (bare start-up, the peer) | ${peerMs.toFixed(1)} | 1.00 | |`);
  for (const c of cases) {
    const medians = new Map([...(samples.get(c) ?? [])].map(([side, ms]) => [side, median(ms)]));
    const ms = medians.get(sides[0] as Side) as number;
    const met = c.goalMs === undefined || ms <= c.goalMs;
    console.log(
      `| ${c.name} | ${ms.toFixed(1)} | ${(ms / peerMs).toFixed(2)} | ${goal(met, `≤ ${c.goalMs} ms`)} |`,
    );
    compare(c.name, 'ms', medians, sides);
  }
}

/** Host layer on 8 fake hosts against Ansible (the peer), three fresh fleets per side. */
function benchHostLayers(sides: Side[]): void {
  const skip = hostLayerSkipReason();
  if (skip) {
    console.log(`\nhost layer vs Ansible: skipped (${skip})`);
    return;
  }
  const runs = new Map<Side, HostLayerResult[]>(sides.map((s) => [s, []]));
  for (let i = 0; i < 3; i++)
    for (const side of inTurn(sides, i))
      runs.get(side)?.push(runBench<HostLayerResult>(side, 'host-layer', 'benchHostLayer'));
  // Every side's run timed Ansible on its own fresh fleet: one peer, all its runs.
  const all = [...runs.values()].flat();
  const theirs = median(all.map((r) => r.ansibleMs));
  const ours = new Map([...runs].map(([side, r]) => [side, median(r.map((x) => x.igpuSplitMs))]));
  console.log(
    '\n| gather + plan + apply, 8 fake sshd hosts (median of 3 fresh fleets) | ms | speed-up | goal |',
  );
  console.log('|---|---:|---:|---|');
  console.log(
    `| ansible-playbook bench/peer/host-layer.yml, pipelining, 8 forks (the peer, median of ${all.length}) | ${theirs.toFixed(0)} | 1.0× | |`,
  );
  for (const [side, ms] of ours) {
    const ratio = theirs / ms;
    const goalText = side === sides[0] ? goal(ratio >= 10, '≥ 10×') : '';
    console.log(
      `| igpu-split ${side.name} (one process, all hosts at once) | ${ms.toFixed(0)} | ${ratio.toFixed(1)}× | ${goalText} |`,
    );
  }
  compare('host layer, 8 fake sshd hosts', 'ms', ours, sides);
}

/** Plan for a fleet of 500 hosts / 2,000 VMs (simulated), three runs per side; absolute goals for today's. */
function benchFleetPlans(sides: Side[]): void {
  const runs = new Map<Side, FleetPlanResult[]>(sides.map((s) => [s, []]));
  for (let i = 0; i < 3; i++)
    for (const side of inTurn(sides, i))
      runs.get(side)?.push(runBench<FleetPlanResult>(side, 'fleet-plan', 'benchFleetPlan'));
  const today = runs.get(sides[0] as Side) ?? [];
  const fleetMs = median(today.map((r) => r.ms));
  const fleetMiB = Math.max(...today.map((r) => r.peakRssMiB));
  console.log(
    `\n| plan, ${HOSTS} hosts / ${HOSTS * VMS_PER_HOST} VMs, all layers (median of 3) | value | goal |`,
  );
  console.log('|---|---:|---|');
  console.log(`| wall time of the planner | ${fleetMs} ms | ${goal(fleetMs <= 3000, '≤ 3000 ms')} |`);
  console.log(
    `| peak memory of its process (max of 3) | ${fleetMiB} MB | ${goal(fleetMiB <= 300, '≤ 300 MB')} |`,
  );
  console.log(`| steps planned | ${today[0]?.steps} | |`);
  // Issue 16: the same fleet with every second host an N100 set up for SR-IOV (today's tree only).
  const mixed = [0, 1, 2].map(() =>
    runBench<FleetPlanResult>(sides[0] as Side, 'fleet-plan', 'benchFleetPlan', [true]),
  );
  const mixedMs = median(mixed.map((r) => r.ms));
  console.log(
    `| wall time, half the hosts SR-IOV (N100) and half GVT-g | ${mixedMs} ms (GVT-g only: ${fleetMs} ms, ${(mixedMs / fleetMs).toFixed(2)}×) | ${goal(mixedMs <= 3000, '≤ 3000 ms')} |`,
  );
  console.log(
    `| peak memory, mixed fleet (max of 3) | ${Math.max(...mixed.map((r) => r.peakRssMiB))} MB | ${goal(Math.max(...mixed.map((r) => r.peakRssMiB)) <= 300, '≤ 300 MB')} |`,
  );
  console.log(`| steps planned, mixed fleet | ${mixed[0]?.steps} | |`);
  const medianOf = (pick: (r: FleetPlanResult) => number) =>
    new Map([...runs].map(([side, r]) => [side, median(r.map(pick))]));
  compare(
    `plan ${HOSTS} hosts, planner wall time`,
    'ms',
    medianOf((r) => r.ms),
    sides,
  );
  compare(
    `plan ${HOSTS} hosts, peak memory (median of 3)`,
    'MB',
    medianOf((r) => r.peakRssMiB),
    sides,
  );
}

/** Reboots and restarts per apply of the demo lab: counts, the same on both sides or a change of behaviour. */
function benchDisruptionCounts(sides: Side[]): void {
  console.log('\n| demo lab, apply | host reboots | guest reboots | VM restarts | goal |');
  console.log('|---|---:|---:|---:|---|');
  const rows = new Set<string>();
  const withoutSriov = new Set<string>();
  let today: DisruptionResult | undefined;
  for (const side of sides) {
    const d = runBench<DisruptionResult>(side, 'disruptions', 'benchDisruptions');
    if (side === sides[0]) today = d;
    // The SR-IOV host's share: its reboot, its VM's restart and its guest's reboot.
    const s = d.sriov ? 1 : 0;
    const hostsBut = Object.entries(d.first.hostReboots).filter(([node]) => node !== d.sriov?.node);
    withoutSriov.add(
      `${hostsBut.reduce((a, [, n]) => a + n, 0)}|${d.first.guestReboots - s}|${d.first.vmRestarts - s}|${d.second.hostReboots}|${d.second.guestReboots}|${d.second.vmRestarts}`,
    );
    const maxReboots = Math.max(0, ...Object.values(d.first.hostReboots));
    const total = Object.values(d.first.hostReboots).reduce((a, b) => a + b, 0);
    const quiet = d.second.hostReboots + d.second.guestReboots + d.second.vmRestarts;
    const first = `${total} (≤ ${maxReboots} per host) | ${d.first.guestReboots} | ${d.first.vmRestarts}`;
    const second = `${d.second.hostReboots} | ${d.second.guestReboots} | ${d.second.vmRestarts}`;
    rows.add(`${first}|${second}`);
    const isToday = side === sides[0];
    console.log(
      `| ${side.name}: first run (${d.hosts} hosts) | ${first} | ${isToday ? goal(maxReboots <= 1, '≤ 1 reboot per host') : ''} |`,
    );
    console.log(
      `| ${side.name}: second run (converged) | ${second} | ${isToday ? goal(quiet === 0, 'none') : ''} |`,
    );
  }
  const sriov = today?.sriov;
  if (sriov) {
    console.log(`\n| SR-IOV host of the demo (${sriov.node}) | host reboots | goal |`);
    console.log('|---|---:|---|');
    console.log(`| first apply | ${sriov.firstReboots} | ${goal(sriov.firstReboots === 1, '1')} |`);
    console.log(`| converged lab | ${sriov.secondReboots} | ${goal(sriov.secondReboots === 0, '0')} |`);
    console.log(
      `| VFs planned / the iGPU's maximum | ${sriov.vfsPlanned} / ${sriov.vfsMax} | one per node VM on the host |`,
    );
  }
  if (sides.length > 1) {
    // The demo gained an SR-IOV host with one node VM (issue 16): without its share the counts must match.
    const same = rows.size === 1 || (sriov !== undefined && withoutSriov.size === 1);
    if (!same) missed++;
    console.log(
      same
        ? `\nsame counts as ${BASELINE}${rows.size === 1 ? '' : ` once the SR-IOV host ${sriov?.node} and its VM are left out`}`
        : `\ncounts DIFFER from ${BASELINE}`,
    );
  }
}

/** Lab files of 1,000 and 10,000 VMs: loading must grow about linearly (ratio ≤ 15). Today's tree only. */
function benchLabLoads(sides: Side[]): void {
  const [small, large] = runBench<LabLoadResult[]>(sides[0] as Side, 'lab-load', 'benchLabLoad');
  if (!small || !large) return;
  const warm = large.medianMs / small.medianMs;
  const cold = large.coldMedianMs / small.coldMedianMs;
  console.log(
    `\n| load the lab file (no ${BASELINE} counterpart: added in issue 12) | size | warm ms (median of 7) | cold process ms (median of 5) | goal |`,
  );
  console.log('|---|---:|---:|---:|---|');
  for (const r of [small, large])
    console.log(
      `| ${r.vms.toLocaleString('en')} VMs | ${(r.bytes / 1024).toFixed(0)} KB | ${r.medianMs.toFixed(1)} | ${r.coldMedianMs.toFixed(1)} | |`,
    );
  console.log(
    `| ratio 10,000 / 1,000 | | ${warm.toFixed(1)} | ${cold.toFixed(1)} | ${goal(Math.max(warm, cold) <= 15, '≤ 15')} |`,
  );
}

/**
 * Verify per GPU node on the demo lab, the device plugin beside DRA mode (issue 18), one run
 * alternating them; and that DRA's verify left every claim's allocation as it was. Today's
 * tree only: the baseline has no DRA mode.
 */
function benchClusterVerifies(sides: Side[]): void {
  const r = runBench<ClusterVerifyResult>(sides[0] as Side, 'cluster-verify', 'benchClusterVerify');
  console.log(
    `\n| demo lab, cluster verify with smoke pods (no ${BASELINE} counterpart: added in issue 18) | ms per GPU node (median of ${r.runs}) | ratio to the device plugin |`,
  );
  console.log('|---|---:|---:|');
  console.log(`| device plugin (${r.nodes} GPU nodes) | ${r.devicePluginMsPerNode.toFixed(0)} | 1.00 |`);
  console.log(
    `| DRA, admin claims (a workload holds one node's device) | ${r.draMsPerNode.toFixed(0)} | ${(r.draMsPerNode / r.devicePluginMsPerNode).toFixed(2)} |`,
  );
  if (!r.allocationsUnchanged) missed++;
  console.log(
    `\nDRA verify left every device's allocation unchanged: ${r.allocationsUnchanged ? 'yes' : 'NO'} (${r.claimsCompared} workload claim compared before and after each run)`,
  );
}

/**
 * A rollout across a simulated 50-host / 150-node fleet (issue 19): wall time against the
 * lower bound the budget allows, the most nodes down at once, and quorum. Today's tree only.
 */
function benchFleetRollouts(sides: Side[]): void {
  const r = runBench<FleetRolloutResult>(sides[0] as Side, 'fleet-rollout', 'benchFleetRollout');
  const underBudget = r.maxDown <= r.budget;
  if (!underBudget || !r.quorumKept || !r.resumed) missed++;
  console.log(
    `\n| fleet rollout, ${r.hosts} hosts / ${r.nodes} node VMs, 3 control-plane (no ${BASELINE} counterpart: added in issue 19) | value | goal |`,
  );
  console.log('|---|---:|---|');
  console.log(`| budget (maxUnavailable 10%) / waves | ${r.budget} nodes / ${r.waves} | |`);
  console.log(
    `| wall time / the lower bound the budget allows | ${r.wallMs.toFixed(0)} / ${r.lowerBoundMs.toFixed(0)} ms = ${(r.wallMs / r.lowerBoundMs).toFixed(2)} | |`,
  );
  console.log(`| most nodes down at once | ${r.maxDown} | ${goal(underBudget, `≤ ${r.budget}`)} |`);
  console.log(
    `| etcd quorum kept throughout | ${r.quorumKept ? 'yes' : 'NO'} | ${goal(r.quorumKept, 'yes')} |`,
  );
  console.log(
    `| ${r.failedOnce} failed its reboot once; the run stopped and a resume finished | ${r.resumed ? 'yes' : 'NO'} | |`,
  );
}

/** The demo end to end (what `npm start` runs on a fresh machine), a few rounds beside bare node. */
function benchDemo(sides: Side[]): void {
  const DEMO_RUNS = 5;
  const peer: number[] = [];
  const runs = new Map<Side, number[]>(sides.map((s) => [s, []]));
  for (let i = 0; i < DEMO_RUNS; i++) {
    peer.push(once(['-e', '0']));
    for (const side of inTurn(sides, i)) runs.get(side)?.push(once(['bin/igpu-split.js', 'demo'], side.tree));
  }
  const medians = new Map([...runs].map(([side, ms]) => [side, median(ms)]));
  const demoMs = medians.get(sides[0] as Side) as number;
  console.log(`\n| whole process, median of ${DEMO_RUNS} | median ms | ratio to bare node | goal |`);
  console.log('|---|---:|---:|---|');
  console.log(
    `| igpu-split demo (doctor → plan → apply → verify → status) | ${demoMs.toFixed(0)} | ${(demoMs / median(peer)).toFixed(0)} | ${goal(demoMs <= 30_000, '≤ 30000 ms')} |`,
  );
  compare('igpu-split demo', 'ms', medians, sides);
}

/**
 * First contact on a fresh clone (issue 15): `npm start` cold and warm for both sides (one
 * run each: the cold one downloads Node.js and the dependencies), then today's playground,
 * ready and planned against, beside bare node. Not in the 10% comparison: one networked run
 * is too noisy for it; the ratios are printed instead.
 */
async function benchFirstContact(sides: Side[]): Promise<void> {
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const commits = new Map<Side, string>(sides.map((side, i) => [side, i === 0 ? head : BASELINE]));
  const starts = new Map<Side, FirstContact>();
  try {
    for (const side of sides) starts.set(side, benchNpmStart(ROOT, commits.get(side) as string));
  } catch (error) {
    console.log(`
first contact: skipped (${error instanceof Error ? error.message : String(error)})`);
    return;
  }
  const [today, base] = sides.map((side) => starts.get(side));
  console.log(
    `\n| fresh clone, PATH of the system's folders (node ${spawnSync('/usr/bin/node', ['-v'], { encoding: 'utf8' }).stdout.trim() || 'none'}) | today (HEAD ${head.slice(0, 7)}) ms | ${BASELINE} ms | today / ${BASELINE} |`,
  );
  console.log('|---|---:|---:|---:|');
  for (const [name, pick] of [
    ['npm start, cold: Node.js, npm ci (empty npm cache), build, demo', (f: FirstContact) => f.coldStartMs],
    ['npm start, warm: build, demo', (f: FirstContact) => f.warmStartMs],
  ] as const) {
    const ms = today ? pick(today) : Number.NaN;
    const baseMs = base ? pick(base) : Number.NaN;
    console.log(
      `| ${name} | ${ms.toFixed(0)} | ${base ? baseMs.toFixed(0) : '–'} | ${base ? (ms / baseMs).toFixed(2) : '–'} |`,
    );
  }
  const peer = median([0, 1, 2, 3, 4].map(() => once(['-e', '0'])));
  const pg = await benchPlayground(ROOT, 3, 3);
  console.log('\n| the playground (today only: new in issue 15) | median ms | ratio to bare node |');
  console.log('|---|---:|---:|');
  console.log(`| node -e 0 (bare start-up, the peer) | ${peer.toFixed(1)} | 1.00 |`);
  for (const [name, values] of [
    ['demo --serve until its ready line (median of 3)', pg.readyMs],
    ['plan against it, from a shell that sourced demo.env (median of 9)', pg.planMs],
  ] as const)
    console.log(`| ${name} | ${median(values).toFixed(0)} | ${(median(values) / peer).toFixed(0)} |`);
}

function printComparison(): void {
  console.log(`\n| benchmark | today | ${BASELINE} | today / ${BASELINE} | verdict |`);
  console.log('|---|---:|---:|---:|---|');
  for (const c of compared) {
    const v = verdict(c);
    if (/^(SLOWER|LARGER)/.test(v)) missed++;
    const show = (n: number) => `${n.toFixed(c.unit === 'MB' || n >= 1000 ? 0 : 1)} ${c.unit}`;
    console.log(
      `| ${c.name} | ${show(c.current)} | ${show(c.baseline)} | ${(c.current / c.baseline).toFixed(2)} | ${v} |`,
    );
  }
}

const baseline = await prepareBaseline();
const sides: Side[] = [{ name: 'today', tree: ROOT }];
if ('tree' in baseline) sides.push({ name: BASELINE, tree: baseline.tree });
console.log(
  `igpu-split bench — node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${RUNS} runs each`,
);
console.log(
  'tree' in baseline
    ? `baseline ${BASELINE}: ${baseline.note}; both sides run in turns\n`
    : `baseline ${BASELINE}: no comparison (${baseline.skip})\n`,
);
benchCli(sides);
benchHostLayers(sides);
benchFleetPlans(sides);
benchDisruptionCounts(sides);
benchLabLoads(sides);
benchClusterVerifies(sides);
benchFleetRollouts(sides);
benchDemo(sides);
await benchFirstContact(sides);
if (sides.length > 1) printComparison();
console.log(missed === 0 ? '\nall goals met' : `\n${missed} goal(s) missed`);
