// Golden tests in the style of qemu-server's config tests: each case in test/vm/golden/
// gives VM configs and what is wanted (YAML); the expected file holds the plan, the API
// calls apply made against the simulator, and the resulting configs. Afterwards the
// second plan must be empty and rollback must give back the original configs.
// UPDATE_GOLDEN=1 rewrites the expected files (review the diff before committing).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { ProxmoxApi } from '../../src/proxmox/api.ts';
import { type Caller, SimulatorState } from '../../src/sim/proxmox/state.ts';
import { applyVmPlan, rollbackVms } from '../../src/vm/apply.ts';
import { type DesiredVm, gatherVmFacts } from '../../src/vm/gather.ts';
import { planVms, type VmPlan, type VmPlanOptions } from '../../src/vm/plan.ts';
import { SimulatorTransport } from '../support/proxmox-transport.ts';
import { UHD630, uhd630Entry } from '../support/simulator.ts';

const DIR = fileURLToPath(new URL('./golden/', import.meta.url));

interface Case {
  identity: Caller;
  /** null: attach the raw address. */
  mapping: string | null;
  consents?: string[];
  aperture?: number;
  vms: {
    vmid: number;
    vgpu: string;
    status: 'running' | 'stopped';
    ignoresShutdown?: boolean;
    config: Record<string, string>;
  }[];
  /** VMs outside the plan, already running with a vGPU. */
  others?: { vmid: number; config: Record<string, string> }[];
  /** pve1 is an SR-IOV host (an N100) that made this many VFs, pooled in mapping iGPU-VF. */
  sriov?: { vfs: number };
}

/** An N100 (Alder Lake-N): 8086:46d1, up to 7 VFs; its VFs carry the PF's ids. */
const N100 = {
  ...UHD630,
  vendorDevice: '8086:46d1',
  subsystem: '8086:7270',
  iommuGroup: 0,
  graphicsVer: 12,
  totalVfs: 7,
};
const vfEntry = (fn: number) =>
  `node=pve1,path=0000:00:02.${fn},id=8086:46d1,subsystem-id=8086:7270,iommugroup=${fn},description=igpu-split`;

function lab(spec: Case) {
  const state = new SimulatorState({ taskMs: 1, secondMs: 1 });
  if (spec.sriov) {
    state.addNode('pve1', { ...N100 });
    state.setVirtualFunctions('pve1', spec.sriov.vfs);
    state.mappings.set('iGPU-VF', {
      mdev: false,
      map: Array.from({ length: spec.sriov.vfs }, (_, i) => vfEntry(i + 1)),
    });
  } else {
    state.addNode('pve1', { ...UHD630, apertureMiB: spec.aperture ?? 256 });
    state.mappings.set('iGPU', { mdev: true, map: [uhd630Entry('pve1')] });
  }
  for (const other of spec.others ?? []) {
    state.addVm({ vmid: other.vmid, node: 'pve1', status: 'stopped', config: { ...other.config } });
    state.start(other.vmid);
  }
  for (const vm of spec.vms) {
    state.addVm({
      vmid: vm.vmid,
      node: 'pve1',
      status: 'stopped',
      config: { ...vm.config },
      ignoresShutdown: vm.ignoresShutdown,
    });
    if (vm.status === 'running') state.start(vm.vmid);
  }
  if (spec.identity.token) {
    state.addToken(`${spec.identity.user}!${spec.identity.token}`, 'golden', {
      '/': ['Sys.Audit'],
      '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Disk', 'VM.Config.Options', 'VM.PowerMgmt'],
      '/mapping/pci': ['Mapping.Use', 'Mapping.Audit'],
      '/storage': ['Datastore.AllocateSpace'],
    });
  }
  state.calls.length = 0;
  const name = spec.identity.token ? `${spec.identity.user}!${spec.identity.token}` : spec.identity.user;
  const api = new ProxmoxApi(new SimulatorTransport(state, spec.identity), name, { pollMs: 1 });
  return { state, api };
}

function render(plan: VmPlan): string[] {
  const lines = plan.checks.map(
    (c) => `  ${c.status} ${c.id}: ${c.evidence}${c.fix ? ` — fix: ${c.fix}` : ''}`,
  );
  for (const change of plan.changes) {
    for (const step of change.steps) {
      lines.push(
        `  step ${step.id}: ${step.description}${step.consents?.length ? ` [needs ${step.consents.join(' ')}]` : ''}`,
      );
      if (step.command) lines.push(`    $ ${step.command}`);
      for (const line of (step.diff ?? '').split('\n').filter(Boolean)) lines.push(`    ${line}`);
    }
  }
  if (plan.refused) lines.push(`  refused: ${plan.refused}`);
  return lines;
}

const configText = (config: Record<string, string>) =>
  Object.keys(config)
    .sort()
    .map((key) => `  ${key}: ${config[key]?.replace(/\n/g, '\\n')}`);

async function run(name: string): Promise<string> {
  const spec = parse(readFileSync(`${DIR}${name}.yaml`, 'utf8')) as Case;
  const { state, api } = lab(spec);
  const desired: DesiredVm[] = spec.vms.map((vm) => ({
    vmid: vm.vmid,
    node: 'pve1',
    vgpu: vm.vgpu,
    ...(spec.sriov ? { attach: 'vf' as const } : {}),
  }));
  const vfPool = spec.sriov ? 'iGPU-VF' : undefined;
  const options: VmPlanOptions = {
    mapping: spec.mapping ?? undefined,
    identity: spec.identity,
    changeMachine: spec.consents?.includes('--change-machine'),
    resetEfiKeys: spec.consents?.includes('--reset-efi-keys'),
    ...(spec.sriov
      ? { vfPool, vfHosts: { pve1: { node: 'pve1', pfBdf: '0000:00:02.0', vfs: spec.sriov.vfs } } }
      : {}),
  };
  const plan = planVms(await gatherVmFacts(api, desired, options.mapping), desired, options);
  const out = ['plan', ...render(plan)];
  try {
    await applyVmPlan(api, plan, { consents: spec.consents, shutdownTimeoutSeconds: 5 });
  } catch (error) {
    assert.ok(error instanceof IgpuSplitError, String(error));
    out.push(`apply refused: ${error.oneLine()}`);
  }
  out.push(
    'api calls',
    ...(state.calls.length > 0 ? state.calls.map((c) => `  ${c.replace(/\n/g, '\\n')}`) : ['  none']),
  );
  for (const vm of spec.vms)
    out.push(`config ${vm.vmid} (${state.vm(vm.vmid).status})`, ...configText(state.vm(vm.vmid).config));
  if (spec.sriov)
    out.push('VFs held', ...[...state.heldDevices('pve1')].map(([bdf, vmid]) => `  ${bdf}: VM ${vmid}`));

  // Converged: planning again changes nothing.
  if (!plan.refused) {
    const again = planVms(await gatherVmFacts(api, desired, options.mapping), desired, options);
    assert.deepEqual(again.changes, [], `${name}: second plan is not empty`);
    assert.equal(again.refused, undefined, `${name}: second plan refused`);
  }
  // Rollback gives back each original value (a replaced EFI disk stays as unusedN).
  await rollbackVms(api, desired, { shutdownTimeoutSeconds: 5, vfPool });
  for (const vm of spec.vms) {
    const after = state.vm(vm.vmid);
    for (const [key, value] of Object.entries(vm.config))
      assert.equal(after.config[key], value, `${name}: rollback ${vm.vmid} ${key}`);
    for (const key of Object.keys(after.config))
      assert.ok(key in vm.config || /^unused\d+$/.test(key), `${name}: rollback left ${vm.vmid} ${key}`);
    assert.equal(after.status, vm.status, `${name}: rollback power state of ${vm.vmid}`);
  }
  return `${out.join('\n')}\n`;
}

const cases = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => f.slice(0, -5))
  .sort();

test('there are golden cases', () => assert.ok(cases.length >= 10, `${cases.length} cases`));

for (const name of cases) {
  test(`golden: ${name}`, async () => {
    const actual = await run(name);
    const file = `${DIR}${name}.expected`;
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
    assert.equal(actual, readFileSync(file, 'utf8'));
  });
}
