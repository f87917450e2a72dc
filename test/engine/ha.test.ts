// Proxmox HA during a host's turn (src/engine/rollout/ha.ts): what the plan says per shutdown
// policy, the refusal without Sys.Console, the state set to ignored for the turn and put
// back after — also by a resumed run — and the simulator's node shutdown per policy.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEMO_TOKEN_ID } from '../../src/demo/lab.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';
import { Journal } from '../../src/engine/journal.ts';
import { planLab, planRefusal, planSections } from '../../src/engine/plan.ts';
import { gatherHa, planHa } from '../../src/engine/rollout/ha.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { withDemo } from '../support/demo.ts';
import { addPve1WithK3sVm, LAYER_GRANTS, tokenApi } from '../support/simulator.ts';

const fast = { pollMs: 10, rebootTimeoutMs: 10_000 };

function simulator(policy?: 'freeze' | 'failover' | 'conditional' | 'migrate', grants = LAYER_GRANTS) {
  const state = new SimulatorState({ taskMs: 1, secondMs: 1 });
  addPve1WithK3sVm(state);
  state.addToken('igpu@pve!split', 's', grants);
  state.ha.create('vm:101', { type: 'vm', state: 'started' });
  state.ha.shutdownPolicy = policy;
  return state;
}

test('per shutdown policy: conditional and freeze set nothing; failover and migrate set ignored and put it back', async () => {
  const withConsole = { ...LAYER_GRANTS, '/': ['Sys.Audit', 'Sys.Console'] };
  const turn = { node: 'pve1', reboots: true, vmids: [101] };
  for (const policy of [undefined, 'conditional', 'freeze'] as const) {
    const ha = planHa(
      await gatherHa(tokenApi(simulator(policy, withConsole)), [101]),
      turn,
      'igpu@pve!split',
    );
    assert.deepEqual(ha.steps, [], String(policy));
    assert.equal(ha.checks[0]?.id, 'rollout.101.ha');
    assert.match(ha.checks[0]?.evidence ?? '', /freezes it .* starts it again on pve1; nothing to set/);
  }
  for (const policy of ['failover', 'migrate'] as const) {
    const ha = planHa(
      await gatherHa(tokenApi(simulator(policy, withConsole)), [101]),
      turn,
      'igpu@pve!split',
    );
    assert.equal(ha.refused, undefined);
    assert.deepEqual(
      ha.steps.map((s) => s.command),
      ['ha-manager set vm:101 --state ignored', 'ha-manager set vm:101 --state started'],
    );
    assert.deepEqual(ha.changes, [{ vmid: 101, sid: 'vm:101', from: 'started' }]);
    assert.match(
      ha.checks[0]?.evidence ?? '',
      policy === 'migrate' ? /would try to migrate it/ : /recovers it on another node/,
    );
  }
  // No reboot in the turn, or a VM HA does not manage: nothing at all.
  const read = await gatherHa(tokenApi(simulator('migrate', withConsole)), [101]);
  assert.deepEqual(planHa(read, { ...turn, reboots: false }, 'x').checks, []);
  assert.deepEqual(planHa(read, { ...turn, vmids: [999] }, 'x').checks, []);
});

test('without Sys.Console the turn is refused in one line naming the VM, the privilege and the fix', async () => {
  const ha = planHa(
    await gatherHa(tokenApi(simulator('migrate')), [101]),
    { node: 'pve1', reboots: true, vmids: [101] },
    'igpu@pve!split',
  );
  assert.equal(ha.checks[0]?.status, 'fail');
  assert.ok(ha.refused && !ha.refused.includes('\n'));
  assert.match(
    ha.refused,
    /^VM 101 on pve1: HA would try to migrate it .* lacks Sys\.Console on \/ to set vm:101 to ignored/,
  );
  assert.match(ha.checks[0]?.fix ?? '', /ha-manager set vm:101 --state ignored/);
  // Without Sys.Audit on / HA cannot be read at all: said, not guessed.
  const blind = planHa(
    await gatherHa(tokenApi(simulator('migrate', { '/vms': ['VM.Audit'] })), [101]),
    { node: 'pve1', reboots: true, vmids: [101] },
    'igpu@pve!split',
  );
  assert.match(
    blind.refused ?? '',
    /cannot read Proxmox HA before pve1's reboot \(Sys\.Audit on \/ missing\)/,
  );
});

test('the simulator: a reboot under migrate blocks on a vGPU VM HA manages; ignored, it stops as any VM', () => {
  const state = simulator('migrate');
  state.start(101);
  // What a started vGPU VM's config holds (no mapping is made here: the shutdown reads only the key).
  state.vm(101).config.hostpci0 = 'mapping=iGPU,mdev=i915-GVTg_V5_4';
  const blocked = state.nodeShutdown('pve1', true);
  assert.deepEqual(blocked.blocking, [
    { vmid: 101, message: "can't migrate VM which uses local devices: hostpci0" },
  ]);
  assert.equal(state.vm(101).status, 'running');
  state.ha.update('vm:101', { state: 'ignored' });
  assert.deepEqual(state.nodeShutdown('pve1', true).stopped, [101]);
  state.ha.update('vm:101', { state: 'started' });
  delete state.vm(101).config.hostpci0;
  state.start(101);
  state.ha.shutdownPolicy = 'conditional';
  assert.deepEqual(state.nodeShutdown('pve1', true).frozen, [101]);
});

test('apply sets ignored for the host turn and puts it back; an interrupted restore is finished on resume', async () => {
  await withDemo(async (demo) => {
    demo.proxmox.ha.create('vm:101', { type: 'vm', state: 'started' });
    demo.proxmox.ha.shutdownPolicy = 'migrate';
    // The demo token has no Sys.Console: refused, naming VM 101.
    const refused = await planLab(demo.lab, demo.connections);
    assert.match(planRefusal(refused) ?? '', /Sys\.Console/);
    assert.ok(
      planSections(refused).some((s) =>
        s.checks.some((c) => c.id === 'rollout.101.ha' && c.status === 'fail'),
      ),
    );
    demo.proxmox.acl.get(DEMO_TOKEN_ID)?.get('/')?.add('Sys.Console');
    const plan = await planLab(demo.lab, demo.connections);
    assert.equal(planRefusal(plan), undefined);
    const host = planSections(plan).find((s) => s.title === 'host pve1');
    assert.deepEqual(
      host?.steps.filter((s) => s.id.startsWith('ha/')).map((s) => s.id),
      ['ha/pve1/101/ignore', 'ha/pve1/101/restore'],
    );
    // Seen by the API: ignored before the reboot, then back to started — which this run fails to set.
    const api = demo.connections.proxmox;
    const setHaState = api.setHaState.bind(api);
    const seen: string[] = [];
    api.setHaState = async (sid, state, digest) => {
      seen.push(`${sid}=${state}`);
      if (state === 'started') throw new Error('HA manager busy');
      return setHaState(sid, state, digest);
    };
    const journal = new Journal(demo.labFile);
    await assert.rejects(
      applyLab(demo.lab, demo.connections, { labFile: demo.labFile, journal, ...fast }),
      /HA refused to set vm:101 \(VM 101 on pve1\) to started: .*HA manager busy/,
    );
    assert.deepEqual(seen, ['vm:101=ignored', 'vm:101=started']);
    assert.equal(demo.proxmox.ha.read('vm:101').state, 'ignored');
    api.setHaState = setHaState;
    const resumed = await applyLab(demo.lab, demo.connections, {
      labFile: demo.labFile,
      journal,
      resume: true,
      ...fast,
    });
    assert.ok(
      resumed.done.some((id) => id === 'pve1/host' || id === 'pve1/ha'),
      resumed.done.join(' '),
    );
    assert.equal(demo.proxmox.ha.read('vm:101').state, 'started');
  });
});
