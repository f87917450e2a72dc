// Partial failure is partial: a Proxmox host whose SSH is down, or a Kubernetes API that
// does not answer, marks its own chains as unreachable, and the rest of the demo lab is
// planned and verified as usual; apply refuses until --skip-host names the host, then
// applies the rest and says what it left out.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { renderPlanSections } from '../../src/cli/lab-run.ts';
import { openKube } from '../../src/cluster/kube.ts';
import { TargetError, UsageError } from '../../src/core/errors.ts';
import { describeWait, NOTICE_AFTER_MS, onWait, type WaitEvent } from '../../src/core/waits.ts';
import type { DemoLab } from '../../src/demo/lab.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';
import type { LabConnections } from '../../src/engine/connections.ts';
import { Journal } from '../../src/engine/journal.ts';
import {
  planExitCode,
  planIsEmpty,
  planLab,
  planRefusal,
  planSections,
  unreachableRefusal,
} from '../../src/engine/plan.ts';
import { rollbackLab } from '../../src/engine/rollback.ts';
import { exitCodeOf, verifyLab, worstOfChains } from '../../src/engine/verify.ts';
import { withDemo } from '../support/demo.ts';

const fast = { pollMs: 10, rebootTimeoutMs: 10_000 };
const refused = 'ssh://root@pve2.demo: cannot connect: connection refused';

/** The demo lab's connections with pve2's SSH refusing, as a stopped host's does. */
function pve2Down(demo: DemoLab): LabConnections {
  return {
    ...demo.connections,
    host: (node) =>
      node === 'pve2'
        ? Promise.reject(new TargetError(refused, { fix: 'check sshd runs on pve2', nothingChanged: true }))
        : demo.connections.host(node),
  };
}

/** The demo lab's connections with a Kubernetes API that does not answer (a closed port). */
async function kubeDown(demo: DemoLab): Promise<LabConnections> {
  const file = join(demo.dir, 'kubeconfig-down');
  const text = await readFile(demo.description.kubeconfig, 'utf8');
  await writeFile(file, text.replace(/server: https:\/\/127\.0\.0\.1:\d+/, 'server: https://127.0.0.1:1'));
  return { ...demo.connections, kube: openKube({ kubeconfig: file, attempts: 1 }) };
}

test('pve2 down: plan shows every other chain planned and pve2 unreachable with its reason; exit 2', async () => {
  await withDemo(async (demo) => {
    const plan = await planLab(demo.lab, pve2Down(demo));
    assert.deepEqual(
      planSections(plan).map((s) => `${s.title}: ${s.unreachable ? 'unreachable' : s.steps.length}`),
      [
        'mapping iGPU: 1',
        'mapping iGPU-VF (virtual functions): 0',
        'host pve1: 7',
        'VM 101 on pve1: 3',
        'guest of VM 101 (ubuntu, k3s-1): 2',
        'host pve2: unreachable',
        'VM 102 on pve2: 3',
        'guest of VM 102 (talos, talos-1): 2',
        'host pve3: 3',
        'host pve4: 12',
        'VM 103 on pve4: 3',
        'guest of VM 103 (ubuntu, k3s-2): 8',
        'rollout: 0',
        'cluster: 5',
        // The drain pre-flight: each host turn that drains a node, checked (no steps of its own).
        'rollout: the drains of each host’s turn: 0',
      ],
    );
    assert.deepEqual(
      plan.unreachable.map((u) => [u.part, u.node, u.reason]),
      [['host', 'pve2', `${refused} — check sshd runs on pve2`]],
    );
    assert.equal(planRefusal(plan), undefined);
    assert.equal(planExitCode(plan), 2);
    const text = renderPlanSections(planSections(plan));
    // The guard's hook is the same on pve1 and pve3: its 300 lines are printed once.
    assert.equal(text.split('+# igpu-split kernel guard (gvt-g).').length, 2, 'the GVT-g guard printed once');
    assert.match(text, /host pve3\n(.*\n)* {7}\(the same change as host pve1, step \d+, shown there\)\n/);
    assert.match(
      text,
      /host pve2\n\n {2}UNREACHABLE {2}ssh:\/\/root@pve2\.demo: cannot connect: connection refused — check sshd runs on pve2\n {15}fix: bring it back and plan again, or leave its chains out: igpu-split apply --skip-host pve2\n/,
    );
    assert.equal(planExitCode(await planLab(demo.lab, demo.connections)), 0);
  });
});

test('pve2 down: apply is refused naming pve2 and --skip-host, and nothing changes', async () => {
  await withDemo(async (demo) => {
    const journal = new Journal(demo.labFile);
    await assert.rejects(
      applyLab(demo.lab, pve2Down(demo), { labFile: demo.labFile, journal, ...fast }),
      (error: unknown) => {
        assert.ok(error instanceof TargetError);
        assert.equal(error.exitCode, 2);
        assert.match(error.message, /cannot be reached, so nothing was changed: ssh:\/\/root@pve2\.demo/);
        assert.match(
          error.fix ?? '',
          /bring pve2 back, or leave its chains out: igpu-split apply --skip-host pve2/,
        );
        return true;
      },
    );
    assert.equal(existsSync(journal.file), false);
    assert.equal(demo.proxmox.mappings.size, 0);
    assert.ok(!planIsEmpty(await planLab(demo.lab, demo.connections)));
  });
});

test('apply --skip-host pve2 applies the rest, leaves pve2 and its VM alone, and says it skipped it', async () => {
  await withDemo(async (demo) => {
    const connections = pve2Down(demo);
    const result = await applyLab(demo.lab, connections, {
      labFile: demo.labFile,
      skipHosts: ['pve2'],
      ...fast,
    });
    assert.deepEqual(result.plan.skippedHosts, ['pve2']);
    assert.deepEqual(result.plan.unreachable, []);
    assert.deepEqual(result.done, [
      'lab/mapping',
      'pve1/drain',
      'pve1/host',
      'pve1/vms',
      'pve1/guest/101',
      'pve1/uncordon',
      'pve3/host',
      'pve4/drain',
      'pve4/host',
      'pve4/vms',
      'pve4/guest/103',
      'pve4/uncordon',
      'lab/cluster',
    ]);
    const sections = planSections(result.plan).map((s) => s.title);
    assert.ok(!sections.some((t) => /pve2|102/.test(t)), sections.join(', '));
    assert.match(
      renderPlanSections(planSections(result.plan), result.plan.skippedHosts),
      /\nskipped: pve2 \(--skip-host\)\n$/,
    );
    // VM 102 kept its config and talos-1 was never drained.
    assert.equal(demo.proxmox.vms.get(102)?.config.hostpci0, undefined);
    assert.equal((await demo.connections.kube.get('v1', 'Node', 'talos-1'))?.spec?.unschedulable, undefined);
    // With pve2 back, the next plan is pve2's part alone.
    const next = await planLab(demo.lab, demo.connections);
    assert.deepEqual(
      planSections(next)
        .filter((s) => s.steps.length > 0)
        .map((s) => s.title),
      ['mapping iGPU', 'host pve2', 'VM 102 on pve2', 'guest of VM 102 (talos, talos-1)', 'cluster'],
    );
    // The mapping still lacks pve2's entry: that fails VM 102's chain, not VM 101's.
    const chains = await verifyLab(demo.lab, demo.connections, { pollMs: 10, timeoutMs: 5_000 });
    const mappingOf = (vmid: number) =>
      chains.find((c) => c.vmid === vmid)?.links.find((l) => l.link === 'mapping')?.status;
    assert.equal(mappingOf(101), 'pass');
    assert.equal(mappingOf(102), 'fail');
  });
});

test('--skip-host with a name the lab file lacks is refused, naming the hosts', async () => {
  await withDemo(async (demo) => {
    await assert.rejects(planLab(demo.lab, demo.connections, { skipHosts: ['pve9'] }), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(
        error.oneLine(),
        /--skip-host pve9: no such host in the lab file — hosts are: pve1, pve2, pve3/,
      );
      return true;
    });
  });
});

test('pve2 down: verify checks every chain, marks VM 102’s host link unreachable and exits 2', async () => {
  await withDemo(async (demo) => {
    await applyLab(demo.lab, demo.connections, { labFile: demo.labFile, ...fast });
    const heard: number[] = [];
    const chains = await verifyLab(demo.lab, pve2Down(demo), {
      pollMs: 10,
      timeoutMs: 5_000,
      onChain: (chain) => heard.push(chain.vmid),
    });
    // Each chain is told as soon as it is verified (the CLI prints it then), every one once.
    assert.deepEqual(heard.toSorted(), chains.map((c) => c.vmid).toSorted());
    const of = (vmid: number) =>
      Object.fromEntries((chains.find((c) => c.vmid === vmid)?.links ?? []).map((l) => [l.link, l.status]));
    assert.equal(of(102).host, 'unreachable');
    for (const name of ['mapping', 'vm', 'guest', 'cluster', 'smoke'])
      assert.equal(of(102)[name], 'pass', name);
    assert.notEqual(of(101).host, 'unreachable');
    const link = chains.find((c) => c.vmid === 102)?.links[0];
    assert.match(link?.evidence ?? '', /pve2\.demo: cannot connect: connection refused/);
    assert.ok(link?.fix);
    assert.equal(worstOfChains(chains), 'unreachable');
    assert.equal(exitCodeOf(worstOfChains(chains)), 2);
  });
});

test('a Kubernetes API that does not answer: the cluster part is unreachable, the rest planned; apply refused; verify marks the cluster links', async () => {
  await withDemo(async (demo) => {
    const connections = await kubeDown(demo);
    const plan = await planLab(demo.lab, connections);
    const cluster = planSections(plan).find((s) => s.layer === 'cluster');
    assert.match(cluster?.unreachable?.reason ?? '', /127\.0\.0\.1:1/);
    assert.deepEqual(
      plan.unreachable.map((u) => u.part),
      ['cluster'],
    );
    assert.ok((planSections(plan).find((s) => s.title === 'host pve1')?.steps.length ?? 0) > 0);
    assert.equal(planExitCode(plan), 2);
    assert.match(unreachableRefusal(plan)?.fix ?? '', /the Kubernetes API must answer/);
    await assert.rejects(
      applyLab(demo.lab, connections, { labFile: demo.labFile, ...fast }),
      /some of the lab cannot be reached, so nothing was changed/,
    );
    const chains = await verifyLab(demo.lab, connections, { pollMs: 10, timeoutMs: 2_000 });
    for (const chain of chains) {
      const status = Object.fromEntries(chain.links.map((l) => [l.link, l.status]));
      assert.equal(status.cluster, 'unreachable');
      assert.equal(status.smoke, 'unreachable');
      assert.equal(status.mapping, 'fail');
    }
    // A failed check outranks a link that could not be read.
    assert.equal(worstOfChains(chains), 'fail');
    assert.equal(exitCodeOf(worstOfChains(chains)), 1);
  });
});

test('a host slow to answer: the gathering before the plan says what it still waits for', async () => {
  await withDemo(async (demo) => {
    const events: WaitEvent[] = [];
    const off = onWait((event) => events.push(event));
    try {
      await planLab(demo.lab, {
        ...demo.connections,
        host: async (node) => {
          // Past the first notice (2 s): the wait is said while pve2 is still silent.
          if (node === 'pve2') await new Promise((resolve) => setTimeout(resolve, NOTICE_AFTER_MS + 1_000));
          return demo.connections.host(node);
        },
      });
    } finally {
      off();
    }
    const gathering = events.filter((e) => e.target === 'gathering').map(describeWait);
    assert.ok(
      gathering.some((line) => /^gathering: still waiting for host pve2\b/.test(line)),
      gathering.join('\n') || 'no gathering line',
    );
  });
});

test('rollback with a guest that cannot be reached: the rest is rolled back, and a note says its kernel guard stays', async () => {
  await withDemo(async (demo) => {
    await applyLab(demo.lab, demo.connections, { labFile: demo.labFile, ...fast });
    const down = 'ssh://root@k3s-2.demo: cannot connect: connection refused';
    const connections: LabConnections = {
      ...demo.connections,
      guest: (vm) =>
        vm.vmid === 103
          ? Promise.reject(new TargetError(down, { fix: 'check sshd runs in VM 103', nothingChanged: true }))
          : demo.connections.guest(vm),
    };
    const report = await rollbackLab(demo.lab, connections);
    assert.deepEqual(report.undone.guest, []);
    assert.ok(
      report.notes.some(
        (n) => n.startsWith(`guest of VM 103: ${down}`) && /its kernel guard, if any, stays/.test(n),
      ),
      report.notes.join('\n'),
    );
    // The VMs, the mappings and the hosts were rolled back all the same.
    assert.ok(report.undone.vm.length > 0, JSON.stringify(report.undone));
    assert.ok(report.undone.host.length > 0, JSON.stringify(report.undone));
    // Reached again, the guard goes: a second rollback finishes the job.
    const again = await rollbackLab(demo.lab, demo.connections);
    assert.deepEqual(
      again.undone.guest.map((g) => g.vmid),
      [103],
    );
  });
});
