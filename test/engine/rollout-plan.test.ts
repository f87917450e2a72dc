// The rollout in the lab plan, on the demo lab: VMs mapped to Kubernetes nodes by SMBIOS
// uuid (a VM the lab does not name counts too), the budget and quorum refusals in one line
// naming the host, the waves, and apply holding the waves with a quorum wait between them.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Lab } from '../../src/config/lab.ts';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { type DemoLab, startDemoLab } from '../../src/demo/lab.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';
import { planLab, planRefusal, planSections } from '../../src/engine/plan.ts';
import { K } from '../../src/sim/kube/controllers.ts';

/** The demo lab with every node VM's SMBIOS uuid and a control plane (VM 100) the lab does not name. */
async function mappedDemo(): Promise<DemoLab> {
  const demo = await startDemoLab();
  // Each node VM's SMBIOS uuid, and the node's systemUUID the kubelet read from it.
  const uuids: Record<number, [string, string]> = {
    100: ['cp-1', '6b1f0a9e-0000-4000-8000-000000000100'],
    101: ['k3s-1', '6b1f0a9e-0000-4000-8000-000000000101'],
    102: ['talos-1', '6b1f0a9e-0000-4000-8000-000000000102'],
    103: ['k3s-2', '6b1f0a9e-0000-4000-8000-000000000103'],
  };
  // cp-1, the control plane, is a VM on pve1 the lab file does not name.
  demo.proxmox.addVm({
    vmid: 100,
    node: 'pve1',
    status: 'stopped',
    config: { name: 'cp-1', memory: '4096' },
  });
  demo.proxmox.start(100);
  for (const [vmid, [node, uuid]] of Object.entries(uuids)) {
    const vm = (demo.proxmox as unknown as { vms: Map<number, { config: Record<string, string> }> }).vms.get(
      Number(vmid),
    );
    if (vm) vm.config.smbios1 = `uuid=${uuid.toUpperCase()}`;
    const live = demo.kube.store.get(K.Node, undefined, node);
    if (live)
      demo.kube.store.update(K.Node, {
        ...live,
        status: {
          ...(live.status as Record<string, unknown>),
          nodeInfo: {
            ...((live.status as { nodeInfo?: object } | undefined)?.nodeInfo ?? {}),
            systemUUID: uuid,
          },
        },
      });
  }
  return demo;
}

let demo: DemoLab;
const demos: DemoLab[] = [];
before(async () => {
  demo = await mappedDemo();
  demos.push(demo);
});
after(async () => {
  for (const one of demos) await one.close();
});

const rolloutChecks = (plan: Awaited<ReturnType<typeof planLab>>) =>
  planSections(plan).find((s) => s.layer === 'rollout')?.checks ?? [];

test('a single control plane on a rebooting host is refused, naming the host, the node and --allow-api-outage', async () => {
  const plan = await planLab(demo.lab, demo.connections, { rollout: { parallel: 2 } });
  assert.deepEqual(
    plan.rollout?.disruptions.map((d) => `${d.node}: ${d.nodes.join(',')}`),
    ['pve1: cp-1,k3s-1', 'pve2: talos-1', 'pve3: ', 'pve4: k3s-2'],
  );
  assert.match(
    planRefusal(plan) ?? '',
    /^host pve1 carries the cluster's only control-plane node \(cp-1\): its turn stops the Kubernetes API$/,
  );
  const fail = rolloutChecks(plan).find((c) => c.status === 'fail');
  assert.match(fail?.fix ?? '', /--allow-api-outage/);
});

test('with --allow-api-outage: the default budget is the most nodes one turn takes down, and waves hold it', async () => {
  const plan = await planLab(demo.lab, demo.connections, { rollout: { parallel: 2, allowApiOutage: true } });
  assert.equal(planRefusal(plan), undefined);
  assert.equal(plan.rollout?.budget, 2);
  // pve3 stops no VM: it joins the first wave it fits.
  assert.deepEqual(plan.rollout?.waves, [
    ['pve1', 'pve3'],
    ['pve2', 'pve4'],
  ]);
  const checks = rolloutChecks(plan);
  assert.match(
    checks.find((c) => c.id === 'rollout.budget')?.evidence ?? '',
    /^maxUnavailable 2 \(the default: the most nodes one host's turn takes down\): at most 2 Kubernetes nodes down at once \(4 in the cluster\)$/,
  );
  assert.match(
    checks.find((c) => c.id === 'rollout.waves')?.evidence ?? '',
    /^1\. pve1 \(VMs 100, 101: cp-1, k3s-1 down\) \+ pve3 \(no VM stops\); 2\. pve2 \(VM 102: talos-1 down\) \+ pve4 \(VM 103: k3s-2 down\)$/,
  );
});

test('a budget smaller than one host’s turn, 0, or more than the cluster has: one line each', async () => {
  const withBudget = (maxUnavailable: number | string) =>
    planLab({ ...demo.lab, rollout: { maxUnavailable } } as Lab, demo.connections, {
      rollout: { parallel: 2, allowApiOutage: true },
    });
  assert.match(
    planRefusal(await withBudget(1)) ?? '',
    /^host pve1 takes 2 nodes down at once \(cp-1, k3s-1\), more than maxUnavailable 1$/,
  );
  assert.match(planRefusal(await withBudget(0)) ?? '', /^maxUnavailable 0 lets no node go down/);
  assert.match(
    planRefusal(await withBudget(9)) ?? '',
    /^maxUnavailable 9 is more than the cluster's 4 nodes$/,
  );
  const percent = await withBudget('50%');
  assert.equal(percent.rollout?.budget, 2);
  assert.match(percent.rollout?.budgetFrom ?? '', /^50% = 2 of 4 nodes$/);
});

test('apply holds the waves: cp-1 drained and its VM started again, and a quorum that stays broken stops the next wave in one line; resume converges', async () => {
  const lab = await mappedDemo();
  demos.push(lab);
  const events: string[] = [];
  const reporter = {
    report: (event: { kind: string; stage?: { id: string }; line?: string }) => {
      if (event.kind === 'stage-start') events.push(`start ${event.stage?.id}`);
      if (event.kind === 'stage-line' && event.line) events.push(event.line);
    },
  };
  const options = {
    labFile: lab.labFile,
    parallel: 2,
    allowApiOutage: true,
    pollMs: 10,
    rebootTimeoutMs: 1_000,
    reporter,
    // After pve1's turn the API server's etcd check starts failing, and stays so.
    afterStage: async (id: string) => {
      if (id === 'pve1/uncordon') lab.kube.etcd.healthy = false;
    },
  };
  await assert.rejects(applyLab(lab.lab, lab.connections, options), (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError);
    assert.match(
      error.oneLine(),
      /the API server's etcd check still fails after 1 s; the turn of pve2, pve4 not started/,
    );
    return true;
  });
  assert.ok(events.includes('drained cp-1'), events.join(' | '));
  assert.equal((await lab.connections.proxmox.vmStatus('pve1', 100)).status, 'running');
  assert.ok(
    !events.some((e) => e.startsWith('start pve2/') || e.startsWith('start pve4/')),
    'the next wave did not start',
  );
  lab.kube.etcd.healthy = true;
  const resumed = await applyLab(lab.lab, lab.connections, {
    ...options,
    resume: true,
    afterStage: async () => {},
  });
  assert.ok(resumed.done.some((id: string) => id.startsWith('pve2/')));
  assert.ok(resumed.done.some((id: string) => id.startsWith('pve4/')));
});
