// A third-party client against the simulator: Debian's python3-proxmoxer (run with
// /usr/bin/python3, the system interpreter Debian's package installs into) calls every
// endpoint igpu-split uses and those served beside them, over TLS on 127.0.0.1 verified
// against a test CA, with token authentication as igpu-split uses it. The script
// (proxmoxer_calls.py) reports what proxmoxer got; this test judges it and the state.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { PARAMETERS } from '../../src/sim/proxmox/parameters.ts';
import { type RunningSimulator, startSimulator } from '../../src/sim/proxmox/server.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { addPve1WithK3sVm } from '../support/simulator.ts';
import { makeCertificates, type TestCertificates } from '../support/tls.ts';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('./proxmoxer_calls.py', import.meta.url));
const SECRET = '5f1e9a3c-proxmoxer-secret';

const hasProxmoxer = spawnSync(PYTHON, ['-c', 'import proxmoxer'], { stdio: 'ignore' }).status === 0;
// CI must run this tier: a missing client is a failure unless skipping is asked for.
const skip =
  !hasProxmoxer && process.env.IGPU_SPLIT_ALLOW_SKIP === '1' ? `${PYTHON} has no proxmoxer` : false;

type Result =
  | { ok: true; data: unknown }
  | { ok: false; status: number; reason: string; errors?: Record<string, string> };
type Row = Record<string, unknown>;

let certs: TestCertificates;
let sim: RunningSimulator;
let state: SimulatorState;
let results: Record<string, Result>;
/** `METHOD /path/{template}` → the parameter names proxmoxer sent to it. */
const sent = new Map<string, Set<string>>();

before(async () => {
  if (skip) return;
  if (!hasProxmoxer) assert.fail('python3-proxmoxer not found: install it (.ci/run does)');
  certs = await makeCertificates();
  state = new SimulatorState({
    taskMs: 2,
    secondMs: 2,
    onRequest: (endpoint, params) => {
      const names = sent.get(endpoint) ?? new Set();
      for (const name of params) names.add(name);
      sent.set(endpoint, names);
    },
  });
  addPve1WithK3sVm(state);
  // An N100 node whose iGPU made two VFs (what writing 2 to sriov_numvfs leaves), three stopped VMs.
  state.addNode('pve4', {
    bdf: '0000:00:02.0',
    vendorDevice: '8086:46d1',
    subsystem: '8086:7270',
    iommuGroup: 1,
    apertureMiB: 256,
    graphicsVer: 12,
    totalVfs: 7,
  });
  state.setVirtualFunctions('pve4', 2);
  for (const vmid of [104, 105, 106])
    state.addVm({
      vmid,
      node: 'pve4',
      status: 'stopped',
      config: { name: `k3s-${vmid}`, machine: 'q35', bios: 'ovmf' },
    });
  state.addToken('igpu@pve!split', SECRET, {
    '/': ['Sys.Audit', 'Sys.Console'],
    '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Options', 'VM.PowerMgmt'],
    '/mapping/pci': ['Mapping.Modify', 'Mapping.Use', 'Mapping.Audit'],
  });
  sim = await startSimulator(state, { tls: { key: certs.key, cert: certs.cert } });
  const secretFile = join(certs.dir, 'token-secret');
  await writeFile(secretFile, `${SECRET}\n`, { mode: 0o600 });
  // Asynchronous: the simulator answers from this process's event loop.
  const run = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(
      PYTHON,
      [SCRIPT, new URL(sim.url).host, 'igpu@pve', 'split', secretFile, certs.caFile, 'pve1'],
      { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  assert.equal(run.code, 0, `proxmoxer_calls.py failed:\n${run.stderr}`);
  results = JSON.parse(run.stdout) as Record<string, Result>;
});
after(async () => {
  await sim?.close();
  if (certs) await rm(certs.dir, { recursive: true, force: true });
});

const data = <T>(name: string): T => {
  const result = results[name];
  assert.ok(result, `${name}: not run`);
  assert.ok(result.ok, `${name}: ${JSON.stringify(result)}`);
  return result.data as T;
};
const failure = (name: string) => {
  const result = results[name];
  assert.ok(result && !result.ok, `${name} should have failed: ${JSON.stringify(result)}`);
  return result;
};

test('proxmoxer makes, reads and sets an HA resource, and reads the datacenter options', { skip }, () => {
  for (const name of ['ha create', 'ha list', 'ha get', 'ha ignore', 'ha after ignore', 'options'])
    assert.equal(results[name]?.ok, true, `${name}: ${JSON.stringify(results[name])}`);
  const after = (results['ha after ignore'] as { data?: unknown } | undefined)?.data as
    | { sid?: string; state?: string }
    | undefined;
  assert.equal(after?.sid, 'vm:101');
  assert.equal(after?.state, 'ignored');
  const listed = (results['ha list'] as { data?: unknown } | undefined)?.data as { sid: string }[];
  assert.deepEqual(
    listed.map((r) => r.sid),
    ['vm:101'],
  );
});

test('proxmoxer reads version, nodes, node status, PCI devices and mdev types', { skip }, () => {
  assert.equal(data<Row>('version').release, '8.4');
  assert.deepEqual(
    data<Row[]>('nodes').map((n) => n.node),
    ['pve1', 'pve4'],
  );
  const status = data<Row>('node status');
  assert.equal((status.cpuinfo as Row).model, 'Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz');
  assert.match(String(status.pveversion), /^pve-manager\/8\.4\.1\//);
  const [gpu] = data<Row[]>('pci');
  assert.equal(gpu?.id, '0000:00:02.0');
  assert.equal(gpu?.subsystem_device, '0x3136');
  const [brief] = data<Row[]>('pci verbose=0');
  assert.equal(brief?.id, '0000:00:02.0');
  assert.equal(brief?.subsystem_device, undefined, 'verbose=0 leaves the subsystem out');
  assert.deepEqual(data('pci blacklist 03'), [], 'class 03 (display) is blacklisted');
  assert.deepEqual(
    data<Row[]>('mdev types').map((t) => [t.type, t.available]),
    [
      ['i915-GVTg_V5_8', 2],
      ['i915-GVTg_V5_4', 1],
    ],
  );
});

test('proxmoxer on an SR-IOV node: the VFs listed, a VF pool mapping, the first free VF per VM, none left for the third', {
  skip,
}, () => {
  const vfs = data<Row[]>('vf pci').filter((d) => /^0000:00:02\.[1-7]$/.test(String(d.id)));
  assert.deepEqual(
    vfs.map((d) => [d.id, d.vendor, d.device, d.iommugroup]),
    [
      ['0000:00:02.1', '0x8086', '0x46d1', 2],
      ['0000:00:02.2', '0x8086', '0x46d1', 3],
    ],
  );
  const pool = data<Row>('vf pool get');
  assert.equal(pool.mdev, undefined, 'a VF pool is no mdev mapping');
  assert.equal((pool.map as string[]).length, 2);
  const checked = data<Row[]>('vf pool check-node').find((m) => m.id === 'iGPU-VF');
  assert.deepEqual(checked?.checks, [], 'Proxmox finds both entries valid on pve4');
  for (const vmid of [104, 105]) assert.equal(data<Row>(`vf start task ${vmid}`).exitstatus, 'OK');
  // qemu-server PCI.pm (e6352be6) choose_hostpci_devices: every pooled VF is in use, so the
  // start worker dies with its message (the API call itself only returns the task).
  assert.match(
    String(data<Row>('vf start task 106').exitstatus),
    /could not find a free device for 'hostpci0'/,
  );
});

test('proxmoxer updates a mapping: description, delete, digest, and Proxmox refusals', { skip }, () => {
  assert.equal(data<Row>('mapping get').description, 'first');
  assert.equal(data<Row>('mapping after describe').description, 'igpu-split vGPU pool');
  assert.match(
    failure('mapping stale digest').reason,
    /^update hardware mapping failed: detected modified configuration/,
  );
  assert.equal(
    failure('mapping delete map').reason,
    "update hardware mapping failed: unable to delete required option 'map'",
  );
  assert.equal(
    failure('mapping set and delete').reason,
    "update hardware mapping failed: cannot set and delete property 'description' at the same time!",
  );
  const after = data<Row>('mapping after delete');
  assert.equal(after.description, undefined);
  assert.equal(after.mdev, 1);
  const [listed] = data<Row[]>('mapping list check-node');
  assert.deepEqual(listed?.checks, []);
  assert.equal(data('mapping spare delete'), null);
  assert.deepEqual([...state.mappings.keys()], ['iGPU', 'iGPU-VF']);
});

test('proxmoxer changes a VM config; pending, tasks and power follow through', { skip }, () => {
  assert.match(String(data('config change')), /^UPID:pve1:/);
  // Running: hostpci cannot be hot-plugged, so it waits as pending.
  const pending = data<Row[]>('pending');
  assert.deepEqual(
    pending.find((p) => p.key === 'hostpci0'),
    { key: 'hostpci0', pending: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' },
  );
  assert.equal(data<Row>('config current').hostpci0, undefined);
  assert.equal(data<Row>('config after shutdown').hostpci0, 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1');
  assert.deepEqual(
    data<Row[]>('mdev types while running').map((t) => t.available),
    [0, 0],
  );
  assert.equal(data<Row>('status after stop').status, 'stopped');
  for (const name of ['config change task', 'shutdown task', 'start task', 'stop task']) {
    const task = data<Row>(name);
    assert.equal(task.status, 'stopped', name);
    assert.equal(task.exitstatus, 'OK', name);
    assert.equal(task.node, 'pve1', name);
    assert.equal(task.user, 'igpu@pve', name);
    assert.equal(task.tokenid, 'split', name);
    assert.ok(Number(task.pid) > 0 && Number(task.pstart) > 0, `${name}: pid and pstart`);
    // pve-common UPID.pm encode: the UPID carries pid, pstart and starttime in hex.
    const hex = (n: unknown) => Number(n).toString(16).toUpperCase().padStart(8, '0');
    assert.equal(
      task.upid,
      `UPID:pve1:${hex(task.pid)}:${hex(task.pstart)}:${hex(task.starttime)}:${task.type}:101:igpu@pve!split:`,
    );
  }
  const tasks = data<Row[]>('tasks');
  assert.equal(tasks.length, 3);
  assert.deepEqual(
    tasks.map((t) => [t.type, t.status]),
    [
      ['qmstop', 'OK'],
      ['qmstart', 'OK'],
      ['qmshutdown', 'OK'],
    ],
  );
  assert.deepEqual(
    data<Row[]>('tasks typefilter').map((t) => t.type),
    ['qmstop'],
  );
  const [vm] = data<Row[]>('resources vm');
  assert.deepEqual([vm?.id, vm?.type, vm?.status, vm?.name], ['qemu/101', 'qemu', 'stopped', 'k3s-1']);
  assert.deepEqual(
    data<Row[]>('resources').map((r) => r.id),
    ['qemu/101', 'qemu/104', 'qemu/105', 'qemu/106', 'node/pve1', 'node/pve4'],
  );
  assert.equal((data<Row>('permissions')['/vms/101'] as Row)['VM.PowerMgmt'], 1);
});

test('proxmoxer gets Proxmox errors: unknown and mistyped parameters, unknown VM, root-only options', {
  skip,
}, () => {
  const unknown = failure('unknown parameter');
  assert.equal(unknown.status, 400);
  assert.equal(unknown.reason, 'Parameter verification failed.');
  const errorsOf = (name: string) => {
    const answer = data<{ status: number; body: { data: unknown; errors?: Record<string, string> } }>(name);
    assert.equal(answer.status, 400, name);
    assert.equal(answer.body.data, null, name);
    return answer.body.errors;
  };
  assert.deepEqual(errorsOf('unknown parameter body'), {
    colour: 'property is not defined in schema and the schema does not allow additional properties',
  });
  assert.equal(failure('type error').status, 400);
  assert.deepEqual(errorsOf('type error body'), { timeout: "type check ('integer') failed - got 'soon'" });
  assert.deepEqual(errorsOf('boolean error body'), { current: "type check ('boolean') failed - got 'yes'" });
  assert.equal(failure('skiplock as token').status, 400);
  assert.deepEqual(errorsOf('skiplock body'), { skiplock: 'Only root may use this option.' });
  const missing = failure('unknown vm');
  assert.equal(missing.status, 500);
  assert.equal(missing.reason, "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist");
});

test('every parameter proxmoxer sent is one the simulator acts on; the calls counted', { skip }, (t) => {
  const refusedOnPurpose = new Set(['colour', 'skiplock']);
  for (const [endpoint, names] of sent) {
    const table = PARAMETERS[endpoint];
    assert.ok(table, `${endpoint}: not in the parameter table`);
    for (const name of names) {
      if (refusedOnPurpose.has(name)) continue;
      const key: string = table[name] !== undefined ? name : `${name.replace(/\d+$/, '')}[n]`;
      assert.equal(table[key], 'acted on', `${endpoint} ${name}`);
    }
  }
  // Every endpoint the simulator serves was called.
  assert.deepEqual([...sent.keys()].sort(), Object.keys(PARAMETERS).sort());
  t.diagnostic(`proxmoxer exercised ${sent.size} distinct method+path calls`);
});
