// The simulator over HTTPS, through the real client and the typed API: every endpoint,
// TLS trust of its self-signed certificate, auth, privilege and parameter errors.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TargetError } from '../../src/core/errors.ts';
import { ProxmoxApi } from '../../src/proxmox/api.ts';
import { ProxmoxClient, type TlsTrust } from '../../src/proxmox/client.ts';
import { type RunningSimulator, startSimulator } from '../../src/sim/proxmox/server.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { addPve1WithK3sVm, uhd630Entry } from '../support/simulator.ts';

const SECRET = '0d7c6a52-simulator-secret';
const ENTRY = uhd630Entry('pve1');
let state: SimulatorState;
let sim: RunningSimulator;
let dir: string;

before(async () => {
  state = new SimulatorState({ taskMs: 2, secondMs: 2 });
  addPve1WithK3sVm(state);
  state.addToken('igpu@pve!split', SECRET, {
    '/': ['Sys.Audit'],
    '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Options', 'VM.PowerMgmt'],
    '/mapping/pci': ['Mapping.Modify', 'Mapping.Use', 'Mapping.Audit'],
  });
  state.addToken('reader@pve!ro', SECRET, { '/vms': ['VM.Audit'] });
  sim = await startSimulator(state);
  dir = await mkdtemp(join(tmpdir(), 'igpu-sim-'));
});
after(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

function api(tokenId = 'igpu@pve!split', tls: TlsTrust = { fingerprint: sim.fingerprint }, secret = SECRET) {
  return new ProxmoxApi(new ProxmoxClient({ baseUrl: sim.url, tokenId, secret, tls, backoffMs: 1 }), tokenId);
}

async function fails(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TargetError, String(error));
    assert.match(error.oneLine(), pattern);
    assert.ok(!error.oneLine().includes(SECRET), 'secret leaked');
    return true;
  });
}

test('the self-signed certificate is trusted by its fingerprint or as a CA file, and only so', async () => {
  const pinned = api();
  assert.equal((await pinned.version()).release, '8.4');
  await pinned.transport.close();
  const caFile = join(dir, 'sim.pem');
  await writeFile(caFile, sim.certificate);
  const byCa = api(undefined, { caFile });
  assert.deepEqual(
    (await byCa.nodes()).map((n) => n.node),
    ['pve1'],
  );
  await byCa.transport.close();
  const wrong = `${'AA:'.repeat(31)}AA`;
  const wrongPin = api(undefined, { fingerprint: wrong });
  await fails(wrongPin.version(), new RegExp(`fingerprint ${sim.fingerprint} is not the pinned ${wrong}`));
  await wrongPin.transport.close();
  const system = api(undefined, { system: true });
  await fails(system.version(), /not trusted/);
  await system.transport.close();
});

test('hardware: the iGPU and its mdev types with live availability', async () => {
  const client = api();
  const [gpu] = await client.pciDevices('pve1');
  assert.equal(gpu?.id, '0000:00:02.0');
  assert.equal(gpu?.device, '0x3e92');
  assert.equal(gpu?.mdev, true);
  const types = await client.mdevTypes('pve1', '0000:00:02.0');
  assert.deepEqual(
    types.map((t) => [t.type, t.available]),
    [
      ['i915-GVTg_V5_8', 2],
      ['i915-GVTg_V5_4', 1],
    ],
  );
  await client.transport.close();
});

test('mappings: create, read with digest, drift checks for a node, update, delete', async () => {
  const client = api();
  await client.createMapping({ id: 'iGPU', map: [ENTRY], mdev: true, description: 'igpu-split' });
  const config = await client.mapping('iGPU');
  assert.equal(config.mdev, true);
  assert.deepEqual(config.map, [ENTRY]);
  const [listed] = await client.mappings('pve1');
  assert.deepEqual(listed?.checks, []);
  await client.updateMapping('iGPU', {
    map: [ENTRY.replace('iommugroup=1', 'iommugroup=7')],
    digest: config.digest,
  });
  assert.match((await client.mappings('pve1'))[0]?.checks?.[0]?.message ?? '', /'iommugroup' does not match/);
  await fails(
    client.updateMapping('iGPU', { map: [ENTRY], digest: config.digest }),
    /detected modified configuration/,
  );
  await client.updateMapping('iGPU', { map: [ENTRY] });
  // A token without any Mapping privilege sees no mappings at all.
  const reader = api('reader@pve!ro');
  assert.deepEqual(await reader.mappings(), []);
  await reader.transport.close();
  await client.createMapping({ id: 'spare', map: [ENTRY], mdev: true });
  await client.deleteMapping('spare');
  assert.deepEqual(
    (await client.mappings()).map((m) => m.id),
    ['iGPU'],
  );
  await client.transport.close();
});

test('VM: config with digest, stop, change, start through tasks, status', async () => {
  const client = api();
  const before = await client.vmConfig('pve1', 101);
  assert.equal(before.values.name, 'k3s-1');
  assert.match(before.digest, /^[0-9a-f]{40}$/);
  // A running VM's hostpci cannot be hot-plugged: Proxmox keeps the change pending.
  await client.updateVmConfig('pve1', 101, { set: { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_8' } });
  assert.equal((await client.vmConfig('pve1', 101)).values.hostpci0, 'mapping=iGPU,mdev=i915-GVTg_V5_8');
  const current = await client.transport.get<Record<string, unknown>>('/nodes/pve1/qemu/101/config', {
    current: 1,
  });
  assert.equal(current.hostpci0, undefined);
  await fails(
    client.updateVmConfig('pve1', 101, { set: { description: 'x' }, digest: before.digest }),
    /checksum mismatch \(file change by other user\?\)/,
  );
  await client.waitTask(await client.vmPower('pve1', 101, 'shutdown', { timeout: 60 }), 5_000);
  assert.equal((await client.vmStatus('pve1', 101)).status, 'stopped');
  const stopped = await client.vmConfig('pve1', 101);
  await client.updateVmConfig('pve1', 101, {
    set: { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1' },
    digest: stopped.digest,
  });
  await client.waitTask(await client.vmPower('pve1', 101, 'start'), 5_000);
  assert.equal((await client.vmStatus('pve1', 101)).status, 'running');
  assert.deepEqual(
    (await client.mdevTypes('pve1', '0000:00:02.0')).map((t) => t.available),
    [0, 0],
  );
  await client.waitTask(await client.vmPower('pve1', 101, 'stop'), 5_000);
  assert.equal((await client.vmStatus('pve1', 101)).status, 'stopped');
  await client.transport.close();
});

test('a start that fails in its task is an error naming the exit status', async () => {
  const client = api();
  state.addVm({
    vmid: 150,
    node: 'pve1',
    status: 'stopped',
    config: { machine: 'q35', hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_1' },
  });
  await fails(
    client.vmPower('pve1', 150, 'start').then((upid) => client.waitTask(upid, 5_000)),
    /task qmstart on pve1 failed: .*no available instances of 'i915-GVTg_V5_1'/,
  );
  await client.transport.close();
});

test('privileges: the permissions dump, an explained refusal before a change, and the 403 itself', async () => {
  const reader = api('reader@pve!ro');
  assert.ok((await reader.privileges('/vms/101')).has('VM.Audit'));
  await fails(
    reader.requirePrivileges([
      { path: '/vms/101', privilege: 'VM.Config.HWType' },
      { path: '/mapping/pci/iGPU', privilege: 'Mapping.Use' },
      { path: '/vms/101', privilege: 'VM.Audit' },
    ]),
    /token reader@pve!ro lacks VM.Config.HWType on \/vms\/101, Mapping.Use on \/mapping\/pci\/iGPU.*pveum acl modify/,
  );
  await fails(reader.vmPower('pve1', 101, 'start'), /permission denied — VM.PowerMgmt on \/vms\/101/);
  await fails(reader.pciDevices('pve1'), /permission denied — Sys.Audit\|Sys.Modify on \//);
  await reader.transport.close();
});

test('a wrong secret is 401, an unknown parameter 400 naming it, an unknown VM an error', async () => {
  const wrong = api(undefined, undefined, 'not-the-secret');
  await fails(wrong.version(), /authentication failed for token igpu@pve!split/);
  await wrong.transport.close();
  const client = api();
  await fails(
    client.transport.post('/nodes/pve1/qemu/101/config', { colour: 'red' }),
    /HTTP 400 Parameter verification failed. \(colour: property is not defined/,
  );
  await fails(
    client.transport.post('/nodes/pve1/qemu/101/config', { hostpci0: 'mapping=iGPU,speed=9' }),
    /hostpci0: invalid format - invalid key in comma-separated list property: speed/,
  );
  await fails(client.vmConfig('pve1', 999), /no VM 999 on node pve1 — check vmid and host in the lab file/);
  await fails(client.vmConfig('pve9', 101), /no node pve9 in the Proxmox cluster — check the host names/);
  await client.transport.close();
});
