// The stage runner on its own: group order (a host may be called lab1), the journal
// keyed by what a stage does, and a failing host stopping the others from starting
// while the ones in flight finish before the run reports.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Journal } from '../../src/engine/journal.ts';
import { runStages, type Stage, stageGroups } from '../../src/engine/scheduler.ts';

const stage = (id: string, group: string, run: Stage['run'] = async () => {}, fingerprint = 'f'): Stage => ({
  id,
  group,
  title: id,
  fingerprint,
  run,
});

async function journal() {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-stages-'));
  const j = new Journal(join(dir, 'igpu-split.yaml'));
  await j.lock(false);
  await j.start(false);
  return { j, dir };
}

test('lab-wide stages come first and last; every host group between, whatever the host is called', () => {
  const groups = stageGroups([
    stage('lab1/host', 'host:lab1'),
    stage('lab/cluster', 'lab-end'),
    stage('pve2/host', 'host:pve2'),
    stage('lab/mapping', 'lab'),
  ]);
  assert.deepEqual(
    groups.map((g) => g.group),
    ['lab', 'host:lab1', 'host:pve2', 'lab-end'],
  );
});

test('the journal counts a stage as done only for the same content', async () => {
  const { j, dir } = await journal();
  try {
    await runStages([stage('pve1/vms', 'host:pve1')], j);
    assert.equal(j.has(stage('pve1/vms', 'host:pve1')), true);
    assert.equal(j.has(stage('pve1/vms', 'host:pve1', async () => {}, 'another plan')), false);
    assert.deepEqual(j.ids(), ['pve1/vms']);
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  }
});

test('with --parallel, a failing host stops new stages; the run waits for those in flight', async () => {
  const { j, dir } = await journal();
  const events: string[] = [];
  try {
    await assert.rejects(
      runStages(
        [
          stage('a/1', 'host:a', async () => {
            await new Promise((resolve) => setTimeout(resolve, 5));
            throw new Error('a failed');
          }),
          stage('b/1', 'host:b', async () => {
            await new Promise((resolve) => setTimeout(resolve, 40));
            events.push('b/1 finished');
          }),
          stage('b/2', 'host:b', async () => void events.push('b/2 started')),
        ],
        j,
        { parallel: 2 },
      ),
      /a failed/,
    );
    assert.deepEqual(events, ['b/1 finished'], 'b/1 finished before the run reported; b/2 never started');
    assert.deepEqual(j.ids(), ['b/1']);
  } finally {
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  }
});

test('a stage is resumable from its first change: one that fails before any leaves no journal and no lock', async () => {
  const { watchChanges } = await import('../../src/engine/changes.ts');
  const { existsSync } = await import('node:fs');
  const applied: string[] = [];
  // Connections whose Kubernetes side records what is applied; the rest is never touched.
  const connections = watchChanges({
    kube: {
      apply: async (object: { kind: string }) => {
        applied.push(object.kind);
        return object;
      },
      get: async () => undefined,
    },
    proxmox: {},
    host: async () => ({}),
    guest: async () => ({}),
    close: async () => {},
  } as never);
  const early = await journal();
  try {
    await assert.rejects(
      runStages(
        [
          stage('pve1/drain', 'host:pve1', async () => {
            await connections.kube.get('v1', 'Node', 'k3s-1'); // a read is no change
            throw new Error('SSH refused');
          }),
        ],
        early.j,
      ),
      /SSH refused/,
    );
    assert.equal(early.j.changed, false);
    await early.j.release(false);
    assert.ok(!existsSync(join(early.j.dir, 'lock')) && !existsSync(early.j.file), 'nothing left');
  } finally {
    await rm(early.dir, { recursive: true, force: true });
  }
  const late = await journal();
  try {
    await assert.rejects(
      runStages(
        [
          stage('lab/cluster', 'lab-end', async () => {
            await connections.kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } });
            throw new Error('the API server went away');
          }),
        ],
        late.j,
      ),
      /went away/,
    );
    assert.deepEqual(applied, ['Namespace']);
    assert.equal(late.j.changed, true);
    await late.j.release(false);
    assert.ok(existsSync(late.j.file), 'the journal stays for --resume');
    assert.match(
      (await new Journal(join(late.dir, 'igpu-split.yaml')).earlierRun()) ?? '',
      /stopped in the middle of lab\/cluster/,
    );
  } finally {
    await rm(late.dir, { recursive: true, force: true });
  }
});

test('the journal says a stage began before its first change runs; a first change refused outright un-begins it', async () => {
  const { watchChanges } = await import('../../src/engine/changes.ts');
  const { readFileSync, existsSync } = await import('node:fs');
  const { TargetError } = await import('../../src/core/errors.ts');
  let seenInJournal: string[] | undefined;
  let refuse = true;
  const target = await journal();
  const connections = watchChanges({
    kube: {
      setUnschedulable: async () => {
        // What a kill right now would leave: the journal must already say the stage began.
        seenInJournal = JSON.parse(readFileSync(target.j.file, 'utf8')).begun;
        if (refuse) throw new TargetError('cordon node k3s-1: forbidden', { nothingChanged: true });
        throw new TargetError('cordon node k3s-1: the connection broke half-way');
      },
    },
    proxmox: {},
    host: async () => ({}),
    guest: async () => ({}),
    close: async () => {},
  } as never);
  const drain = () =>
    stage('pve1/drain', 'host:pve1', async () => {
      await target.j.mark('drained:k3s-1', true); // a fact for the stage, no change by itself
      await connections.kube.setUnschedulable('k3s-1', true);
    });
  try {
    await assert.rejects(runStages([drain()], target.j), /forbidden/);
    assert.deepEqual(seenInJournal, ['pve1/drain']);
    assert.equal(target.j.changed, false, 'refused outright: nothing to resume');
    refuse = false;
    await assert.rejects(runStages([drain()], target.j), /half-way/);
    assert.equal(target.j.changed, true, 'maybe changed: resumable');
    await target.j.release(false);
    assert.ok(existsSync(target.j.file), 'the journal stays for --resume');
  } finally {
    await rm(target.dir, { recursive: true, force: true });
  }
});
