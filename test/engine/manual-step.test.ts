// A manual step is a state, not an error: the demo lab without talosctl. The Talos guest
// stage writes its files and waits for the user; the node is uncordoned, the cluster
// stage runs, and the apply reports one pending step. verify shows the link pending until
// the Kubernetes node shows the change (osImage and Talos's extension labels), then pass,
// and the next apply has nothing left to wait for.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import type { DemoLab } from '../../src/demo/lab.ts';
import { DEMO_TALOS_VERSION } from '../../src/demo/machines.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';
import type { LabConnections } from '../../src/engine/connections.ts';
import { Journal } from '../../src/engine/journal.ts';
import { planIsEmpty, planLab } from '../../src/engine/plan.ts';
import { exitCodeOf, verifyLab, worstOfChains } from '../../src/engine/verify.ts';
import { TALOS_EXTENSION_LABEL_PREFIX } from '../../src/knowledge/pins.ts';
import { withDemo } from '../support/demo.ts';

const fast = { pollMs: 10, rebootTimeoutMs: 10_000 };

const withoutTalosctl = (demo: DemoLab): LabConnections => ({ ...demo.connections, talosctl: undefined });

const guestLink = async (demo: DemoLab, connections: LabConnections) => {
  const chains = await verifyLab(demo.lab, connections, { pollMs: 10, timeoutMs: 5_000 });
  return { chains, link: chains.find((c) => c.vmid === 102)?.links.find((l) => l.link === 'guest') };
};

test('without talosctl: the Talos step waits for the user, talos-1 is uncordoned, the cluster stage runs, verify says pending until the node shows the change', async () => {
  await withDemo(async (demo) => {
    const connections = withoutTalosctl(demo);
    const lines: string[] = [];
    const result = await applyLab(demo.lab, connections, {
      labFile: demo.labFile,
      reporter: { report: (e) => void (e.kind === 'stage-line' && lines.push(e.line)) },
      ...fast,
    });
    assert.equal(result.pending.length, 1);
    const [step] = result.pending;
    assert.equal(step?.target, 'talos 10.0.0.6');
    assert.equal(step?.reason, 'talosctl is not installed');
    assert.match(
      step?.commands[0] ?? '',
      /^talosctl patch machineconfig --nodes 10\.0\.0\.6 --patch @.*machine-patch\.yaml$/,
    );
    assert.match(
      step?.commands[1] ?? '',
      /^talosctl upgrade --nodes 10\.0\.0\.6 --image \S+\/installer\/[0-9a-f]{64}:v1\.10\.9$/,
    );
    for (const file of step?.files ?? []) assert.ok(existsSync(file), file);
    assert.ok(
      lines.some((l) => /talos 10\.0\.0\.6: waiting for a manual step \(talosctl is not installed\)/.test(l)),
    );
    // The rest of the lab went on: pve2's node uncordoned, the cluster stage ran.
    assert.ok(result.done.includes('pve2/guest/102') && result.done.includes('pve2/uncordon'));
    assert.ok(result.done.includes('lab/cluster'));
    assert.equal((await demo.connections.kube.get('v1', 'Node', 'talos-1'))?.spec?.unschedulable, undefined);
    // A finished run leaves no journal (the node itself says when the step is done).
    assert.equal(existsSync(new Journal(demo.labFile).file), false);

    const before = await guestLink(demo, connections);
    assert.equal(before.link?.status, 'pending');
    assert.match(before.link?.evidence ?? '', /waiting for a manual step .*extensions i915, intel-ucode/);
    assert.match(before.link?.fix ?? '', /run the talosctl commands igpu-split apply printed/);
    assert.equal(worstOfChains(before.chains), 'pending');
    assert.equal(exitCodeOf(worstOfChains(before.chains)), 3);
    // Until then a later apply waits for the same step again, and drains nothing for it.
    const again = await applyLab(demo.lab, connections, { labFile: demo.labFile, ...fast });
    assert.deepEqual(
      again.pending.map((p) => p.target),
      ['talos 10.0.0.6'],
    );
    assert.deepEqual(again.done, ['pve2/guest/102']);

    // The user ran the commands elsewhere: the node runs the planned version with the extensions.
    demo.kube.setNode('talos-1', {
      osImage: `Talos (${DEMO_TALOS_VERSION})`,
      labels: {
        [`${TALOS_EXTENSION_LABEL_PREFIX}i915`]: '20250812',
        [`${TALOS_EXTENSION_LABEL_PREFIX}intel-ucode`]: '20250812',
      },
    });
    const after = await guestLink(demo, connections);
    assert.equal(after.link?.status, 'pass', JSON.stringify(after.link));
    assert.notEqual(worstOfChains(after.chains), 'pending');
    assert.ok(planIsEmpty(await planLab(demo.lab, connections)));
    const resumed = await applyLab(demo.lab, connections, { labFile: demo.labFile, resume: true, ...fast });
    assert.equal(resumed.converged, true);
    assert.deepEqual(resumed.pending, []);
  });
});

test('a pending step in an interrupted run’s journal is listed by its resume, and the journal stays readable', async () => {
  await withDemo(async (demo) => {
    const connections = withoutTalosctl(demo);
    const journal = new Journal(demo.labFile);
    await assert.rejects(
      applyLab(demo.lab, connections, {
        labFile: demo.labFile,
        journal,
        afterStage: async (id) => {
          if (id === 'pve2/guest/102') throw new Error('interrupted');
        },
        ...fast,
      }),
      /interrupted/,
    );
    const saved = JSON.parse(await readFile(journal.file, 'utf8')) as { pending: { target: string }[] };
    assert.deepEqual(
      saved.pending.map((p) => p.target),
      ['talos 10.0.0.6'],
    );
    const resumed = await applyLab(demo.lab, connections, { labFile: demo.labFile, resume: true, ...fast });
    // The guest stage is not run again, yet its step is still waiting.
    assert.ok(!resumed.done.includes('pve2/guest/102') && resumed.skipped.includes('pve2/guest/102'));
    assert.deepEqual(
      resumed.pending.map((p) => p.target),
      ['talos 10.0.0.6'],
    );
    assert.equal((await demo.connections.kube.get('v1', 'Node', 'talos-1'))?.spec?.unschedulable, undefined);
  });
});
