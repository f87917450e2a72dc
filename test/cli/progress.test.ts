// The console side of an apply's progress: whatever the engine reports — a stage failing
// before later groups were reached, stages skipped, lines — the display finishes, so the
// command ends (a display left waiting once ended the process with exit 13 and no message).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { progressReporter, waitsDrawn } from '../../src/cli/progress.ts';
import type { Stage } from '../../src/engine/scheduler.ts';

const stage = (id: string, group: string): Stage => ({
  id,
  group,
  fingerprint: id,
  title: id,
  run: async () => {},
});

/** Finishes within a second, or fails saying it was left waiting. */
async function finishes(work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the display was left waiting')), 1000);
  });
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

test('a stage that fails before later groups are reached: the display still finishes', async () => {
  const first = stage('pve1/drain', 'host:pve1');
  const groups = [
    { group: 'host:pve1', stages: [first, stage('pve1/host', 'host:pve1')] },
    { group: 'lab-end', stages: [stage('lab/cluster', 'lab-end')] },
  ];
  const reporter = await progressReporter({ quiet: true });
  reporter.report({ kind: 'stages', groups, parallel: 1 });
  reporter.report({ kind: 'stage-start', stage: first });
  reporter.report({ kind: 'stage-line', stage: first, line: 'drained k3s-1' });
  reporter.report({ kind: 'stage-end', stage: first, result: 'failed' });
  await finishes(reporter.finish());
});

test('every stage done or skipped (a resume): the display finishes; the plan goes to onPlan', async () => {
  const stages = [
    stage('lab/mapping', 'lab'),
    stage('pve1/host', 'host:pve1'),
    stage('lab/cluster', 'lab-end'),
  ];
  const plans: unknown[] = [];
  const reporter = await progressReporter({ quiet: true, onPlan: (event) => plans.push(event.plan) });
  reporter.report({ kind: 'plan', plan: {} as never });
  reporter.report({
    kind: 'stages',
    groups: stages.map((s) => ({ group: s.group, stages: [s] })),
    parallel: 2,
  });
  for (const [i, s] of stages.entries()) {
    reporter.report({ kind: 'stage-start', stage: s });
    reporter.report({ kind: 'stage-end', stage: s, result: i === 1 ? 'skipped' : 'done' });
  }
  await finishes(reporter.finish());
  assert.equal(plans.length, 1);
});

test('without a terminal the waits stay plain stderr lines (main prints them); the display takes none', async () => {
  const first = stage('pve1/host', 'host:pve1');
  const reporter = await progressReporter({ quiet: false });
  reporter.report({ kind: 'stages', groups: [{ group: 'host:pve1', stages: [first] }], parallel: 1 });
  reporter.report({ kind: 'stage-start', stage: first });
  reporter.report({
    kind: 'waiting',
    stage: first,
    wait: {
      kind: 'waiting',
      target: 'ssh://root@pve1',
      what: 'the reboot',
      elapsedMs: 4_000,
      limitMs: 900_000,
    },
  });
  assert.equal(waitsDrawn(), false, 'main prints the wait line');
  reporter.report({ kind: 'stage-end', stage: first, result: 'done' });
  await finishes(reporter.finish());
});
