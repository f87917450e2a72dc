// Progress where operators look (src/cluster/progress.ts) against the project's Kubernetes
// API server over HTTPS: the rollout Lease (acquire, resume, refuse naming the holder,
// take-over after expiry, two machines racing on create and on update), the node label and
// annotation written and released without touching the cluster layer's labels, an
// annotation someone else changed refused in one line with nothing changed, the skip label;
// then one apply of the demo lab: labels `done`/`skipped` at the end and the Lease let go.

import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type KubeApi, type KubeObject, openKube } from '../../src/cluster/kube.ts';
import {
  acquireLease,
  DETAIL_ANNOTATION,
  ForeignProgress,
  hostsSkippedByLabel,
  type LeaseOptions,
  PROGRESS_MANAGER,
  ROLLOUT_LABEL,
  ROLLOUT_OBJECT,
  ROLLOUT_STAGES,
  RolloutProgress,
  releaseLease,
  releaseProgress,
  renewLease,
  rolloutStageOf,
  SKIP_LABEL,
} from '../../src/cluster/progress.ts';
import type { Lab } from '../../src/config/lab.ts';
import { type IgpuSplitError, RefusedError } from '../../src/core/errors.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';
import { Journal } from '../../src/engine/journal.ts';
import { type RunningKubeSimulator, startKubeSimulator } from '../../src/sim/kube/server.ts';
import { KINDS } from '../../src/sim/kube/store.ts';
import { withDemo } from '../support/demo.ts';

let dir: string;
const sims: RunningKubeSimulator[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'igpu-progress-'));
});
after(async () => {
  for (const sim of sims) await sim.close();
  await rm(dir, { recursive: true, force: true });
});

async function cluster(): Promise<{ sim: RunningKubeSimulator; kube: KubeApi }> {
  const sim = await startKubeSimulator({
    nodes: [
      { name: 'k3s-1', gpus: 1 },
      { name: 'talos-1', gpus: 1 },
    ],
  });
  sims.push(sim);
  const file = join(dir, `kubeconfig-${sims.length}`);
  await writeFile(file, sim.kubeconfig);
  return { sim, kube: openKube({ kubeconfig: file }) };
}

const LAB = {
  hosts: [{ node: 'pve1' }, { node: 'pve2' }],
  vms: [
    { vmid: 101, host: 'pve1', kubernetesNode: 'k3s-1' },
    { vmid: 102, host: 'pve2', kubernetesNode: 'talos-1' },
  ],
  kubernetes: { namespace: 'igpu-split' },
} as unknown as Lab;

const at = (iso: string) => () => new Date(iso);
const machine = (identity: string, now: string, more: Partial<LeaseOptions> = {}): LeaseOptions => ({
  namespace: 'igpu-split',
  identity,
  now: at(now),
  ...more,
});
const leaseOf = async (kube: KubeApi) =>
  (await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, 'igpu-split'))?.spec as
    | Record<string, unknown>
    | undefined;

const annotationOf = (node: KubeObject | undefined) =>
  (node?.metadata.annotations as Record<string, string> | undefined)?.[DETAIL_ANNOTATION];

async function refusedWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RefusedError, String(error));
    assert.match(error.oneLine(), pattern);
    assert.doesNotMatch(error.oneLine(), /\n/);
    return true;
  });
}

test('every rollout label value is a valid Kubernetes label value, and each engine stage has one', () => {
  // apimachinery pkg/util/validation/validation.go @v0.34.1: labelValueFmt, LabelValueMaxLength.
  const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
  for (const value of ROLLOUT_STAGES) {
    assert.match(value, labelValue);
    assert.ok(value.length <= 63, value);
  }
  for (const id of [
    'pve1/drain',
    'pve1/host',
    'pve1/vms',
    'pve1/start',
    'pve1/guest/101',
    'pve1/uncordon',
    'pve1/ready',
  ])
    assert.ok(rolloutStageOf(id), id);
  assert.equal(rolloutStageOf('mapping'), undefined);
  // The simulated server stores both objects, with the real plurals and scope.
  assert.deepEqual(
    KINDS.filter((k) => ['ConfigMap', 'Lease'].includes(k.kind)).map(
      (k) => `${k.group}/${k.plural}:${k.namespaced}`,
    ),
    ['/configmaps:true', 'coordination.k8s.io/leases:true'],
  );
});

test('the Lease: taken, resumed by its holder, refused to another machine naming the holder, taken over only after expiry with --take-over', async () => {
  const { kube } = await cluster();
  await acquireLease(kube, machine('ann@laptop', '2026-01-01T10:00:00Z'));
  let spec = await leaseOf(kube);
  assert.equal(spec?.holderIdentity, 'ann@laptop');
  assert.equal(spec?.leaseDurationSeconds, 60);
  assert.equal(spec?.leaseTransitions, 0);
  assert.equal(spec?.renewTime, '2026-01-01T10:00:00.000000Z');
  // The namespace did not exist: the Lease made it, labelled ours (cluster rollback deletes it).
  assert.equal(
    (await kube.get('v1', 'Namespace', 'igpu-split'))?.metadata.labels?.['app.kubernetes.io/managed-by'],
    'igpu-split',
  );

  await refusedWith(
    acquireLease(kube, machine('bob@desk', '2026-01-01T10:00:30Z', { takeOver: true })),
    /Lease igpu-split\/igpu-split-rollout: another machine is rolling this lab out: the rollout lock is held by ann@laptop until 2026-01-01T10:01:00\.000Z — continue it there \(igpu-split apply --resume on ann@laptop\)/,
  );
  // The holder resumes (and renews).
  await acquireLease(kube, machine('ann@laptop', '2026-01-01T10:00:40Z'));
  await renewLease(kube, machine('ann@laptop', '2026-01-01T10:00:50Z'));
  spec = await leaseOf(kube);
  assert.equal(spec?.acquireTime, '2026-01-01T10:00:00.000000Z');
  assert.equal(spec?.renewTime, '2026-01-01T10:00:50.000000Z');
  // Expired: not without --take-over, then taken over with one transition more.
  await refusedWith(
    acquireLease(kube, machine('bob@desk', '2026-01-01T10:05:00Z')),
    /the rollout lock of ann@laptop expired at 2026-01-01T10:01:50\.000Z.*igpu-split apply --take-over/,
  );
  assert.equal((await leaseOf(kube))?.holderIdentity, 'ann@laptop');
  await acquireLease(kube, machine('bob@desk', '2026-01-01T10:05:00Z', { takeOver: true }));
  spec = await leaseOf(kube);
  assert.equal(spec?.holderIdentity, 'bob@desk');
  assert.equal(spec?.leaseTransitions, 1);
  // The old holder's renewal finds it taken, and says by whom.
  await refusedWith(renewLease(kube, machine('ann@laptop', '2026-01-01T10:05:10Z')), /taken by bob@desk/);
  // Let go: no holder, anyone may take it (no take-over needed, no transition counted from nobody).
  await releaseLease(kube, machine('bob@desk', '2026-01-01T10:06:00Z'));
  assert.equal((await leaseOf(kube))?.holderIdentity, undefined);
  await acquireLease(kube, machine('cy@box', '2026-01-01T10:06:01Z'));
  assert.equal((await leaseOf(kube))?.holderIdentity, 'cy@box');
  assert.equal((await leaseOf(kube))?.leaseTransitions, 1);
});

test('two machines racing for the Lease: one wins, the other is refused naming it (create and update)', async () => {
  const { kube } = await cluster();
  // Both find no Lease and create it at once.
  const first = await Promise.allSettled([
    acquireLease(kube, machine('ann@laptop', '2026-01-01T10:00:00Z')),
    acquireLease(kube, machine('bob@desk', '2026-01-01T10:00:00Z')),
  ]);
  assert.deepEqual(first.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  const winner = (await leaseOf(kube))?.holderIdentity as string;
  const lost = first.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.match((lost.reason as IgpuSplitError).oneLine(), new RegExp(`held by ${winner}`));
  // Expired; both take it over at once from the same resourceVersion: one update conflicts.
  const later = '2026-01-01T11:00:00Z';
  const second = await Promise.allSettled([
    acquireLease(kube, machine('cy@box', later, { takeOver: true })),
    acquireLease(kube, machine('dee@pc', later, { takeOver: true })),
  ]);
  assert.deepEqual(second.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
  assert.equal((await leaseOf(kube))?.leaseTransitions, 1);
  // The update's precondition itself: a stale resourceVersion changes nothing.
  const live = await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, 'igpu-split');
  assert.ok(live);
  const stale = {
    ...live,
    metadata: { ...live.metadata, resourceVersion: '1' },
    spec: { holderIdentity: 'eve@x' },
  };
  assert.equal(await kube.replace(stale), undefined);
  assert.notEqual((await leaseOf(kube))?.holderIdentity, 'eve@x');
});

test('labels and annotation: written per host turn under their own field manager, summarised, and released exactly', async () => {
  const { kube } = await cluster();
  // The cluster layer's own label, as igpu-split.
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name: 'k3s-1', labels: { 'gpu.igpu-split.io/vgpus': '1' } },
  });
  const progress = new RolloutProgress(kube, {
    namespace: 'igpu-split',
    identity: 'ann@laptop',
    run: 'ann@laptop/2026-01-01T10:00:00.000Z',
    lab: LAB,
    now: at('2026-01-01T10:00:00Z'),
  });
  await acquireLease(kube, machine('ann@laptop', '2026-01-01T10:00:00Z'));
  await progress.claim(
    new Map([
      ['pve1', 'pending'],
      ['pve2', 'skipped'],
    ]),
  );
  await progress.mark('pve1', 'draining', 'drain k3s-1');
  let node = await kube.get('v1', 'Node', 'k3s-1');
  assert.equal(node?.metadata.labels?.[ROLLOUT_LABEL], 'draining');
  assert.equal(node?.metadata.labels?.['gpu.igpu-split.io/vgpus'], '1');
  const detail = JSON.parse(annotationOf(node) ?? '{}');
  assert.deepEqual(
    {
      host: detail.host,
      stage: detail.stage,
      title: detail.title,
      run: detail.run,
      startedAt: detail.startedAt,
    },
    {
      host: 'pve1',
      stage: 'draining',
      title: 'drain k3s-1',
      run: 'ann@laptop/2026-01-01T10:00:00.000Z',
      startedAt: '2026-01-01T10:00:00.000Z',
    },
  );
  assert.equal((await kube.get('v1', 'Node', 'talos-1'))?.metadata.labels?.[ROLLOUT_LABEL], 'skipped');
  const summary = await kube.get('v1', 'ConfigMap', ROLLOUT_OBJECT, 'igpu-split');
  assert.match(
    String((summary as { data?: Record<string, string> })?.data?.summary),
    /^0 done, 1 in flight, 0 pending, 0 failed, 1 skipped \(run ann@laptop\/2026-01-01T10:00:00\.000Z of ann@laptop/,
  );
  assert.ok(
    ((node?.metadata as { managedFields?: { manager: string }[] } | undefined)?.managedFields ?? []).some(
      (e) => e.manager === PROGRESS_MANAGER,
    ),
  );
  // Rollback: the rollout's label and annotation go, the cluster layer's label stays, and
  // the ConfigMap and the Lease are deleted.
  const done = await releaseProgress(kube, 'igpu-split', ['k3s-1', 'talos-1']);
  assert.equal(done.length, 4, done.join('\n'));
  node = await kube.get('v1', 'Node', 'k3s-1');
  assert.equal(node?.metadata.labels?.[ROLLOUT_LABEL], undefined);
  assert.equal(annotationOf(node), undefined);
  assert.equal(node?.metadata.labels?.['gpu.igpu-split.io/vgpus'], '1');
  assert.equal(await kube.get('v1', 'ConfigMap', ROLLOUT_OBJECT, 'igpu-split'), undefined);
  assert.equal(await leaseOf(kube), undefined);
});

test('an annotation someone else changed: one line naming the node and what to do; nothing is written', async () => {
  const { sim, kube } = await cluster();
  const progress = new RolloutProgress(kube, {
    namespace: 'igpu-split',
    identity: 'ann@laptop',
    run: 'run-1',
    lab: LAB,
  });
  await progress.claim(new Map([['pve1', 'pending']]));
  // A hand edit (kubectl annotate --overwrite), then another run's value.
  for (const value of ['hands off', JSON.stringify({ run: 'run-2', holder: 'bob@desk', host: 'pve1' })]) {
    const nodeKind = KINDS.find((k) => k.kind === 'Node');
    assert.ok(nodeKind);
    sim.store.mergePatch(nodeKind, undefined, 'k3s-1', {
      metadata: { annotations: { [DETAIL_ANNOTATION]: value } },
    });
    await assert.rejects(progress.mark('pve1', 'draining', 'drain k3s-1'), (error: unknown) => {
      assert.ok(error instanceof ForeignProgress);
      assert.match(
        error.oneLine(),
        /^node k3s-1: the igpu-split\.io\/rollout-detail annotation was changed by someone else .*: the rollout stopped here, nothing further changed — .*kubectl annotate node k3s-1 igpu-split\.io\/rollout-detail- and igpu-split apply --resume$/,
      );
      return true;
    });
    const node = await kube.get('v1', 'Node', 'k3s-1');
    assert.equal(node?.metadata.labels?.[ROLLOUT_LABEL], 'pending');
    assert.equal(annotationOf(node), value);
  }
  // Once removed as the line says, the run goes on.
  const nodeKind = KINDS.find((k) => k.kind === 'Node');
  assert.ok(nodeKind);
  sim.store.mergePatch(nodeKind, undefined, 'k3s-1', {
    metadata: { annotations: { [DETAIL_ANNOTATION]: null } },
  });
  await progress.mark('pve1', 'draining', 'drain k3s-1');
  assert.equal((await kube.get('v1', 'Node', 'k3s-1'))?.metadata.labels?.[ROLLOUT_LABEL], 'draining');
});

test('the skip label leaves its node’s Proxmox host out', async () => {
  const { kube } = await cluster();
  assert.deepEqual(await hostsSkippedByLabel(kube, LAB), []);
  await kube.apply(
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'talos-1', labels: { [SKIP_LABEL]: 'true' } } },
    'operator',
  );
  assert.deepEqual(await hostsSkippedByLabel(kube, LAB), ['pve2']);
});

test('an apply of the demo lab: another machine’s Lease refuses it; then the nodes end `done` (a skip-labelled one `skipped`) and the Lease is let go', async () => {
  await withDemo(async (demo) => {
    const kube = demo.connections.kube;
    const fast = { pollMs: 10, rebootTimeoutMs: 10_000 };
    // Another machine holds the lab (renewed just now): refused before anything changes.
    await acquireLease(kube, { namespace: demo.lab.kubernetes.namespace, identity: 'bob@desk' });
    await refusedWith(
      applyLab(demo.lab, demo.connections, { labFile: demo.labFile, identity: 'ann@laptop', ...fast }),
      /held by bob@desk until/,
    );
    assert.equal(demo.proxmox.mappings.size, 0);
    await releaseLease(kube, { namespace: demo.lab.kubernetes.namespace, identity: 'bob@desk' });

    await kube.apply(
      { apiVersion: 'v1', kind: 'Node', metadata: { name: 'talos-1', labels: { [SKIP_LABEL]: 'true' } } },
      'operator',
    );
    const journal = new Journal(demo.labFile);
    const result = await applyLab(demo.lab, demo.connections, {
      labFile: demo.labFile,
      journal,
      identity: 'ann@laptop',
      ...fast,
    });
    assert.deepEqual(result.plan.skippedHosts, ['pve2']);
    const labels = Object.fromEntries(
      await Promise.all(
        ['k3s-1', 'talos-1', 'k3s-2'].map(async (name) => [
          name,
          (await kube.get('v1', 'Node', name))?.metadata.labels?.[ROLLOUT_LABEL],
        ]),
      ),
    );
    assert.deepEqual(labels, { 'k3s-1': 'done', 'talos-1': 'skipped', 'k3s-2': 'done' });
    const lease = await kube.get(
      'coordination.k8s.io/v1',
      'Lease',
      ROLLOUT_OBJECT,
      demo.lab.kubernetes.namespace,
    );
    assert.equal(lease?.spec?.holderIdentity, undefined);
    const status = await kube.get('v1', 'ConfigMap', ROLLOUT_OBJECT, demo.lab.kubernetes.namespace);
    const data = JSON.parse(
      (status as unknown as { data: Record<string, string> }).data['status.json'] ?? '{}',
    );
    assert.deepEqual(data.skipped, ['pve2']);
    assert.deepEqual(data.failed, []);
    assert.deepEqual(data.inFlight, []);
    assert.ok(data.done.includes('pve1') && data.done.includes('pve4'), JSON.stringify(data));
  });
});

test('a run that stops keeps the Lease, unrenewed: another machine is refused naming it, the holder resumes and lets it go', async () => {
  await withDemo(async (demo) => {
    const kube = demo.connections.kube;
    const namespace = demo.lab.kubernetes.namespace;
    const fast = { pollMs: 10, rebootTimeoutMs: 10_000 };
    const journal = new Journal(demo.labFile);
    await assert.rejects(
      applyLab(demo.lab, demo.connections, {
        labFile: demo.labFile,
        journal,
        identity: 'ann@laptop',
        ...fast,
        afterStage: async (id) => {
          if (id === 'pve1/host') throw new Error('interrupted');
        },
      }),
      /interrupted/,
    );
    const held = await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, namespace);
    assert.equal(held?.spec?.holderIdentity, 'ann@laptop');
    // pve1's turn stopped after its host stage; the hosts after it never started.
    assert.equal((await kube.get('v1', 'Node', 'k3s-1'))?.metadata.labels?.[ROLLOUT_LABEL], 'changing-host');
    assert.equal((await kube.get('v1', 'Node', 'k3s-2'))?.metadata.labels?.[ROLLOUT_LABEL], 'pending');
    // Another machine (its own copy of the lab folder) is refused before anything changes.
    const elsewhere = join(dir, 'elsewhere');
    await mkdir(elsewhere, { recursive: true });
    await copyFile(demo.labFile, join(elsewhere, 'igpu-split.yaml'));
    await refusedWith(
      applyLab(demo.lab, demo.connections, {
        labFile: join(elsewhere, 'igpu-split.yaml'),
        identity: 'bob@desk',
        ...fast,
      }),
      /held by ann@laptop until .*igpu-split apply --resume on ann@laptop/,
    );
    // The holder resumes: same run, every node ends done, the Lease is let go.
    await applyLab(demo.lab, demo.connections, {
      labFile: demo.labFile,
      journal,
      resume: true,
      identity: 'ann@laptop',
      ...fast,
    });
    for (const name of ['k3s-1', 'talos-1', 'k3s-2'])
      assert.equal((await kube.get('v1', 'Node', name))?.metadata.labels?.[ROLLOUT_LABEL], 'done', name);
    const lease = await kube.get('coordination.k8s.io/v1', 'Lease', ROLLOUT_OBJECT, namespace);
    assert.equal(lease?.spec?.holderIdentity, undefined);
    assert.equal(lease?.spec?.leaseTransitions, 0);
  });
});
