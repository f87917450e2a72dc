// VM apply and verify against the simulator, beyond the golden cases: a start that
// fails puts the config back and the VM running; a guest that ignores shutdown; the
// digest guard; verify with and without a sysfs probe; missing privileges up front.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IgpuSplitError } from '../../src/core/errors.ts';
import type { ProxmoxApi } from '../../src/proxmox/api.ts';
import { mdevUuid } from '../../src/proxmox/api-spec.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { applyVmPlan } from '../../src/vm/apply.ts';
import { type DesiredVm, gatherVmFacts } from '../../src/vm/gather.ts';
import { planVms, readMarker, withMarker } from '../../src/vm/plan.ts';
import { verifyVms } from '../../src/vm/verify.ts';
import { addPve1WithK3sVm, tokenApi, uhd630Entry } from '../support/simulator.ts';

const GRANTS = {
  '/': ['Sys.Audit'],
  '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Options', 'VM.PowerMgmt'],
  '/mapping/pci': ['Mapping.Use', 'Mapping.Audit'],
};

function lab(grants: Record<string, string[]> = GRANTS) {
  const mdevs = new Set<string>();
  const state = new SimulatorState({
    taskMs: 1,
    secondMs: 1,
    onMdev: (e) => (e.action === 'create' ? mdevs.add(e.uuid) : mdevs.delete(e.uuid)),
  });
  addPve1WithK3sVm(state);
  state.mappings.set('iGPU', { mdev: true, map: [uhd630Entry('pve1')] });
  state.addToken('igpu@pve!split', 's', grants);
  state.calls.length = 0;
  const api = tokenApi(state);
  return { state, api, mdevs };
}

/** The error's one line (message, target and fix) must match. */
async function failsWith(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError, String(error));
    assert.match(error.oneLine(), pattern);
    return true;
  });
}

/** Another VM starts with the type between plan and apply and takes the last instance. */
function takeLastInstance(state: SimulatorState, type: string) {
  state.addVm({
    vmid: 300,
    node: 'pve1',
    status: 'stopped',
    config: { machine: 'q35', hostpci0: `mapping=iGPU,mdev=${type}` },
  });
  state.start(300);
}

const desired: DesiredVm[] = [{ vmid: 101, node: 'pve1', vgpu: 'auto' }];
const options = { mapping: 'iGPU', identity: { user: 'igpu@pve', token: 'split' } };
const planFor = async (api: ProxmoxApi) =>
  planVms(await gatherVmFacts(api, desired, 'iGPU'), desired, options);

test('apply then verify: the hook order, and the mdev Proxmox created is found in sysfs', async () => {
  const { api, mdevs } = lab();
  const events: string[] = [];
  const result = await applyVmPlan(api, await planFor(api), {
    beforeStop: async (vm) => void events.push(`drain ${vm.vmid}`),
    afterStart: async (vm) => void events.push(`uncordon ${vm.vmid}`),
    progress: (line) => events.push(line),
  });
  assert.deepEqual(result.changed, [101]);
  assert.deepEqual(events, [
    'drain 101',
    'VM 101: stopped',
    'VM 101: config changed (hostpci0)',
    'VM 101: running with its vGPU',
    'uncordon 101',
  ]);
  const probe = async (_node: string, uuid: string) => mdevs.has(uuid);
  const checks = await verifyVms(api, desired, { mapping: 'iGPU', probe });
  assert.deepEqual(
    checks.map((c) => `${c.id} ${c.status}`),
    ['vm.101.vgpu pass', 'vm.101.mdev pass'],
  );
  assert.match(checks[1]?.evidence ?? '', new RegExp(mdevUuid(101, 0)));
  mdevs.clear();
  const missing = await verifyVms(api, desired, { mapping: 'iGPU', probe });
  assert.equal(missing[1]?.status, 'fail');
});

test('a start that fails restores the old config and starts the VM again', async () => {
  const { state, api } = lab();
  const plan = await planFor(api);
  takeLastInstance(state, plan.types.pve1 as string);
  await failsWith(
    applyVmPlan(api, plan),
    /VM 101: task qmstart on pve1 failed: pci device '0000:00:02.0' has no available instances.*its config was restored, it runs again/,
  );
  assert.equal(state.vm(101).status, 'running');
  assert.deepEqual(state.vm(101).config, { name: 'k3s-1', machine: 'q35', bios: 'ovmf' });
});

test('a guest that ignores shutdown: a clear error and the VM untouched, or powered off with --force-stop', async () => {
  const { state, api } = lab();
  state.vm(101).ignoresShutdown = true;
  const plan = await planFor(api);
  await failsWith(
    applyVmPlan(api, plan, { shutdownTimeoutSeconds: 3 }),
    /VM 101 did not shut down within 3 s: task qmshutdown on pve1 failed: VM quit\/powerdown failed - got timeout.*--force-stop/,
  );
  assert.equal(state.vm(101).status, 'running');
  assert.equal(state.vm(101).config.hostpci0, undefined);
  await applyVmPlan(api, plan, { shutdownTimeoutSeconds: 3, forceStop: true });
  assert.equal(state.vm(101).status, 'running');
  assert.match(state.vm(101).config.hostpci0 ?? '', /mdev=/);
});

test('a config edited after the plan is refused, not overwritten', async () => {
  const { state, api } = lab();
  const plan = await planFor(api);
  state.vm(101).config.memory = '8192';
  await failsWith(applyVmPlan(api, plan), /VM 101's config changed since the plan was made/);
  assert.equal(state.vm(101).status, 'running');
});

test('missing privileges are named before anything is stopped', async () => {
  const { state, api } = lab({ ...GRANTS, '/vms': ['VM.Audit', 'VM.Config.HWType'] });
  await failsWith(
    applyVmPlan(api, await planFor(api)),
    /lacks VM.Config.Options on \/vms\/101, VM.PowerMgmt on \/vms\/101/,
  );
  assert.equal(state.vm(101).status, 'running');
  assert.deepEqual(state.calls, []);
});

test('a step that needs consent is refused without the option', async () => {
  const { state, api } = lab();
  state.vm(101).config.machine = 'pc-i440fx-9.0';
  const plan = planVms(await gatherVmFacts(api, desired, 'iGPU'), desired, options);
  // Even a plan whose checks were overridden keeps its consent requirement.
  await failsWith(applyVmPlan(api, { ...plan, refused: undefined }), /needs your consent.*--change-machine/);
});

test('an HA-managed VM: apply waits until it has really stopped, so nothing is left pending', async () => {
  const { state, api } = lab();
  state.vm(101).haStopDelayMs = 30;
  await applyVmPlan(api, await planFor(api));
  assert.ok(!state.calls.some((call) => call.includes('(pending)')), state.calls.join('\n'));
  assert.equal(state.vm(101).status, 'running');
  assert.match(state.vm(101).config.hostpci0 ?? '', /mdev=i915-GVTg_V5_4/);
});

test('a failed start after an EFI reset puts the original EFI disk back as well', async () => {
  const { state, api } = lab({
    ...GRANTS,
    '/vms': [...(GRANTS['/vms'] ?? []), 'VM.Config.Disk'],
    '/storage': ['Datastore.AllocateSpace'],
  });
  const original = 'local-lvm:vm-101-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M';
  state.vm(101).config.efidisk0 = original;
  const plan = planVms(await gatherVmFacts(api, desired, 'iGPU'), desired, {
    ...options,
    resetEfiKeys: true,
  });
  takeLastInstance(state, plan.types.pve1 as string);
  await failsWith(
    applyVmPlan(api, plan, { consents: ['--reset-efi-keys'] }),
    /its config was restored, it runs again/,
  );
  const config = state.vm(101).config;
  assert.equal(config.efidisk0, original);
  assert.equal(config.hostpci0, undefined);
  assert.equal(config.description, undefined);
  // The new disk is kept, unattached (deleting an unusedN would destroy it).
  assert.deepEqual(
    Object.entries(config).filter(([key]) => key.startsWith('unused')),
    [['unused1', 'local-lvm:vm-101-disk-1']],
  );
  assert.equal(state.vm(101).status, 'running');
});

test('when the shutdown fails, the drain is undone through the afterStart hook', async () => {
  const { state, api } = lab();
  state.vm(101).ignoresShutdown = true;
  const events: string[] = [];
  await failsWith(
    applyVmPlan(api, await planFor(api), {
      shutdownTimeoutSeconds: 2,
      beforeStop: async () => void events.push('drain'),
      afterStart: async () => void events.push('uncordon'),
    }),
    /did not shut down/,
  );
  assert.deepEqual(events, ['drain', 'uncordon']);
});

test("the notes line keeps the user's own text exactly, blank lines included", () => {
  const notes = 'Para one\n\nPara two';
  const marked = withMarker(notes, { key: 'hostpci0' });
  assert.equal(marked, 'Para one\n\nPara two\nigpu-split: {"format":2,"key":"hostpci0"}');
  assert.deepEqual(readMarker(marked), { key: 'hostpci0' });
  assert.equal(withMarker(marked, undefined), notes);
  assert.equal(withMarker(undefined, undefined), '');
});

test('rollback acts only on a notes line igpu-split could have written: an edited one is refused, nothing changed', async () => {
  const { rollbackVms } = await import('../../src/vm/apply.ts');
  const cases: [string, Record<string, unknown>, Record<string, string>, RegExp][] = [
    [
      'a whole passthrough put back',
      { key: 'hostpci3', was: 'mapping=iGPU,x-vga=1' },
      {},
      /would put back on hostpci3 what is no vGPU/,
    ],
    ['a key that is not hostpci', { key: 'args' }, {}, /names args, which igpu-split never changes/],
    [
      'a key holding a passthrough now',
      { key: 'hostpci1' },
      { hostpci1: '0000:01:00.0' },
      /names hostpci1, which holds no vGPU now/,
    ],
    [
      "another VM's disk as the EFI disk",
      { key: 'hostpci0', efidisk0: 'local-lvm:vm-999-disk-0,efitype=4m' },
      {},
      /would put back an EFI disk that is not among this VM's unused disks/,
    ],
  ];
  for (const [what, marker, extra, pattern] of cases) {
    const { state, api } = lab();
    const vm = state.vms.get(101);
    assert.ok(vm, what);
    Object.assign(vm.config, extra, { description: withMarker('my notes', marker as never) });
    const before = JSON.stringify(vm.config);
    state.calls.length = 0;
    await failsWith(rollbackVms(api, [{ vmid: 101, node: 'pve1' }]), pattern);
    assert.equal(JSON.stringify(vm.config), before, `${what}: nothing changed`);
    assert.deepEqual(state.calls, [], `${what}: no change asked for`);
  }
});

test('rollback puts a machine type back only where apply recorded the change it made, and the VM still has it', async () => {
  const { rollbackVms } = await import('../../src/vm/apply.ts');
  // VM 101 has machine q35, as the simulator's lab gives it; each line is what notes might say.
  const refused: [string, string, RegExp][] = [
    [
      'an old machine with no record of what apply set (a forged line)',
      '{"format":2,"key":"hostpci0","machine":"pc-i440fx-8.1"}',
      /names a machine type without the change igpu-split made/,
    ],
    [
      'what apply set, with nothing to put back',
      '{"key":"hostpci0","machineSet":"q35"}',
      /names a machine type without the change igpu-split made/,
    ],
    [
      'an old value Proxmox would not take',
      '{"key":"hostpci0","machine":"pc-i440fx-2.0; rm -rf /","machineSet":"q35"}',
      /would put back a machine type that is not one/,
    ],
    [
      'an unknown vIOMMU',
      '{"key":"hostpci0","machine":"q35,viommu=amd","machineSet":"q35"}',
      /would put back a machine type that is not one/,
    ],
    [
      'a change apply never makes (q35 to i440fx)',
      '{"key":"hostpci0","machine":"q35","machineSet":"pc-i440fx-9.0"}',
      /names a machine change igpu-split never makes/,
    ],
    [
      'a machine apply would not have touched',
      '{"key":"hostpci0","machine":"pc-q35-9.0","machineSet":"q35"}',
      /names a machine change igpu-split never makes/,
    ],
    [
      'a VM whose machine changed since',
      '{"key":"hostpci0","machine":"pc-q35-9.0,viommu=intel","machineSet":"pc-q35-9.0"}',
      /the VM's machine is no longer the one igpu-split set \(pc-q35-9.0\)/,
    ],
    ['a line that is not JSON', '{not json', /is damaged \(not JSON\)/],
    ['a line that is JSON but no object', '["hostpci0"]', /is damaged \(not a JSON object\)/],
    ['a line without its key', '{"was":"mapping=iGPU,mdev=i915-GVTg_V5_4"}', /is damaged \(key is missing\)/],
    ['a key that is not text', '{"key":7}', /is damaged \(key is not text\)/],
  ];
  for (const [what, line, pattern] of refused) {
    const { state, api } = lab();
    const vm = state.vm(101);
    Object.assign(vm.config, {
      hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1',
      description: `my notes\nigpu-split: ${line}`,
    });
    const before = JSON.stringify(vm.config);
    state.calls.length = 0;
    await failsWith(
      rollbackVms(api, [{ vmid: 101, node: 'pve1' }]),
      new RegExp(
        `^VM 101 on pve1: VM 101: the igpu-split line in its notes (.* )?${pattern.source}.*: nothing was rolled back`,
      ),
    );
    assert.equal(JSON.stringify(vm.config), before, `${what}: nothing changed`);
    assert.deepEqual(state.calls, [], `${what}: no change asked for`);
    // vm plan names the same line before anyone runs rollback.
    const plan = await planFor(api);
    const notes = plan.checks.find((c) => c.id === 'vm.101.notes');
    assert.equal(notes?.status, 'warn', what);
    assert.match(
      notes?.evidence ?? '',
      new RegExp(`VM 101: the igpu-split line in its notes .*${pattern.source}`),
      what,
    );
  }
  // The line apply writes with --change-machine is acted on.
  const { state, api } = lab();
  Object.assign(state.vm(101).config, {
    hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1',
    description: 'igpu-split: {"key":"hostpci0","machine":"pc-i440fx-9.0","machineSet":"q35"}',
  });
  assert.equal(
    (await planFor(api)).checks.find((c) => c.id === 'vm.101.notes'),
    undefined,
  );
  const result = await rollbackVms(api, [{ vmid: 101, node: 'pve1' }]);
  assert.deepEqual(result.log, ['VM 101: hostpci0 removed, machine put back']);
  assert.equal(state.vm(101).config.machine, 'pc-i440fx-9.0');
});

test('rollback checks every VM before it touches one: a damaged line on the second leaves the first as it was', async () => {
  const { rollbackVms } = await import('../../src/vm/apply.ts');
  const { state, api } = lab();
  Object.assign(state.vm(101).config, {
    hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1',
    description: 'igpu-split: {"key":"hostpci0"}',
  });
  state.addVm({
    vmid: 102,
    node: 'pve1',
    status: 'stopped',
    config: {
      machine: 'q35',
      hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4',
      description: 'igpu-split: {"key":',
    },
  });
  state.calls.length = 0;
  await failsWith(
    rollbackVms(api, [
      { vmid: 101, node: 'pve1' },
      { vmid: 102, node: 'pve1' },
    ]),
    /^VM 102 on pve1: VM 102: the igpu-split line in its notes is damaged \(not JSON\): nothing was rolled back/,
  );
  assert.deepEqual(state.calls, []);
  assert.equal(state.vm(101).config.hostpci0, 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1');
});
