// The simulator's parameter table and checks against the official Proxmox VE API schema
// (../shared/data/pve-apidata.js; these tests skip, naming it, when it is absent): the
// table holds every parameter of every served endpoint, igpu-split's client sends only
// parameters the simulator acts on, the check words errors as pve-common does, the
// compact fallback still refuses what it must, and the new endpoints answer in the
// shapes the schema's `returns` gives.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ProxmoxApi } from '../../src/proxmox/api.ts';
import { EXTRA_ENDPOINTS, PARAMETERS, SERVED_ENDPOINTS } from '../../src/sim/proxmox/parameters.ts';
import { loadApiSchema, OFFICIAL_SCHEMA_FILE, ParamChecker } from '../../src/sim/proxmox/schema.ts';
import { simulate } from '../../src/sim/proxmox/server.ts';
import { type Caller, SimulatorState } from '../../src/sim/proxmox/state.ts';
import { SimulatorTransport } from '../support/proxmox-transport.ts';
import { addPve1WithK3sVm, LAYER_GRANTS, uhd630Entry } from '../support/simulator.ts';

const schema = loadApiSchema();
const skip = schema
  ? false
  : `official schema not found at ${OFFICIAL_SCHEMA_FILE} (see ../shared/data/README.md)`;
const TOKEN: Caller = { user: 'igpu@pve', token: 'split' };

test('the table lists exactly the official parameters of every served endpoint', { skip }, () => {
  assert.deepEqual(
    Object.keys(PARAMETERS).sort(),
    SERVED_ENDPOINTS.map((e) => `${e.method} ${e.path}`).sort(),
  );
  for (const [endpoint, handled] of Object.entries(PARAMETERS)) {
    const official = schema?.get(endpoint);
    assert.ok(official, `${endpoint}: not in the official schema`);
    assert.deepEqual(
      Object.keys(handled).sort(),
      Object.keys(official.parameters?.properties ?? {}).sort(),
      endpoint,
    );
    for (const [name, handling] of Object.entries(handled))
      assert.match(handling, /^(acted on|ignored: .{10,})$/, `${endpoint} ${name}`);
  }
});

test('the endpoints served beside ours have the official parameters and privilege checks', { skip }, () => {
  for (const endpoint of EXTRA_ENDPOINTS) {
    const official = schema?.get(`${endpoint.method} ${endpoint.path}`);
    const properties = official?.parameters?.properties ?? {};
    for (const [name, spec] of Object.entries(endpoint.params)) {
      assert.equal(spec.type, properties[name]?.type, `${endpoint.path} ${name}: type`);
      assert.equal(spec.optional, properties[name]?.optional === 1, `${endpoint.path} ${name}: optional`);
    }
    const check = (official?.permissions as { check?: unknown[] } | undefined)?.check;
    if (!check) assert.equal(endpoint.permission, undefined, endpoint.path);
    else
      assert.deepEqual(
        [endpoint.permission?.path, endpoint.permission?.privileges],
        [check[1], check[2]],
        endpoint.path,
      );
  }
});

test('every parameter igpu-split’s client sends is one the simulator acts on', async () => {
  const sent = new Map<string, Set<string>>();
  const state = new SimulatorState({
    taskMs: 1,
    secondMs: 1,
    onRequest: (endpoint, params) => {
      sent.set(endpoint, new Set([...(sent.get(endpoint) ?? []), ...params]));
    },
  });
  addPve1WithK3sVm(state);
  state.addToken('igpu@pve!split', 's', {
    ...LAYER_GRANTS,
    '/vms': [...(LAYER_GRANTS['/vms'] ?? []), 'VM.Config.Disk'],
    '/storage': ['Datastore.AllocateSpace'],
  });
  const api = new ProxmoxApi(new SimulatorTransport(state, TOKEN), 'igpu@pve!split', { pollMs: 1 });
  // Every method of the typed API, with every option it has.
  await api.version();
  await api.nodes();
  await api.pciDevices('pve1');
  await api.mdevTypes('pve1', '0000:00:02.0');
  await api.createMapping({ id: 'iGPU', map: [uhd630Entry('pve1')], mdev: true, description: 'igpu-split' });
  await api.mappings('pve1');
  const { digest } = await api.mapping('iGPU');
  await api.updateMapping('iGPU', { map: [uhd630Entry('pve1')], mdev: true, digest });
  await api.vms('pve1');
  await api.waitTask(await api.vmPower('pve1', 101, 'shutdown', { timeout: 30, forceStop: 1 }), 5_000);
  // The VM layer's keys (src/vm/plan.ts, apply.ts): hostpciN, machine, description, efidisk0.
  const config = await api.vmConfig('pve1', 101);
  await api.updateVmConfig('pve1', 101, {
    set: { hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1', machine: 'q35', description: 'x' },
    digest: config.digest,
  });
  await api.updateVmConfig('pve1', 101, { set: { efidisk0: 'local-lvm:1,efitype=4m,pre-enrolled-keys=0' } });
  await api.updateVmConfig('pve1', 101, { set: {}, delete: ['description'] });
  await api.waitTask(await api.vmPower('pve1', 101, 'start'), 5_000);
  await api.vmStatus('pve1', 101);
  await api.waitTask(await api.vmPower('pve1', 101, 'stop'), 5_000);
  await api.privileges('/vms/101');
  await api.deleteMapping('iGPU');
  const acted: string[] = [];
  for (const [endpoint, names] of sent) {
    for (const name of names) {
      const table = PARAMETERS[endpoint] ?? {};
      const key = table[name] !== undefined ? name : `${name.replace(/\d+$/, '')}[n]`;
      assert.equal(table[key], 'acted on', `${endpoint} ${name}`);
      acted.push(`${endpoint} ${name}`);
    }
  }
  for (const expected of [
    'PUT /cluster/mapping/pci/{id} digest',
    'POST /nodes/{node}/qemu/{vmid}/config hostpci0',
    'POST /nodes/{node}/qemu/{vmid}/config delete',
    'POST /nodes/{node}/qemu/{vmid}/status/shutdown forceStop',
  ])
    assert.ok(acted.includes(expected), expected);
});

test('parameters are checked as pve-common words it: names, types, patterns, enumerations, formats', {
  skip,
}, () => {
  const checker = new ParamChecker(SERVED_ENDPOINTS, PARAMETERS);
  assert.equal(checker.schemaSource, 'official');
  const config = 'POST /nodes/{node}/qemu/{vmid}/config';
  const base = { node: 'pve1', vmid: '101' };
  assert.deepEqual(
    checker.check(config, { ...base, memory: '4096', net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr0' }),
    {},
  );
  assert.deepEqual(checker.check(config, { ...base, cores: 'two' }), {
    cores: "type check ('integer') failed - got 'two'",
  });
  assert.deepEqual(checker.check(config, { ...base, cores: '0' }), {
    cores: 'value must have a minimum value of 1',
  });
  assert.deepEqual(checker.check(config, { ...base, bios: 'uefi' }), {
    bios: "value 'uefi' does not have a value in the enumeration 'seabios, ovmf'",
  });
  assert.deepEqual(checker.check(config, { ...base, hostpci99: 'mapping=iGPU,colour=red' }), {
    hostpci99: 'invalid format - invalid key in comma-separated list property: colour\n',
  });
  assert.deepEqual(checker.check(config, { ...base, delete: 'hostpci0,9bad' }), {
    delete: "invalid format - invalid configuration ID '9bad'\n",
  });
  assert.deepEqual(checker.check(config, { vmid: '99' }), {
    node: 'property is missing and it is not optional',
    // The format is checked before the range, as check_prop does.
    vmid: 'invalid format - value does not look like a valid VM ID\n',
  });
  const mdev = 'GET /nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev';
  assert.deepEqual(checker.check(mdev, { node: 'pve1', 'pci-id-or-mapping': '0000:00:02.0' }), {});
  assert.deepEqual(checker.check(mdev, { node: 'pve1', 'pci-id-or-mapping': '0:2' }), {
    'pci-id-or-mapping': 'value does not match the regex pattern',
  });
  // A lone value for an array parameter counts as a one-element array (RESTHandler.pm).
  const create = { id: 'iGPU', map: 'node=pve1,path=0000:00:02.0,id=8086:3e92' };
  assert.deepEqual(checker.check('POST /cluster/mapping/pci', create), {});
  assert.deepEqual(create.map, ['node=pve1,path=0000:00:02.0,id=8086:3e92']);
  assert.deepEqual(
    checker.check('POST /cluster/mapping/pci', { id: 'iGPU', map: ['node=pve1,path=0000:00:02.0'] }),
    {
      'map[0]': 'invalid format - format error\nmap[0].id: property is missing and it is not optional\n',
    },
  );
});

test('without the official schema the compact check still refuses unknown names and wrong types', () => {
  const checker = new ParamChecker(SERVED_ENDPOINTS, PARAMETERS, '/nonexistent/pve-apidata.js');
  assert.equal(checker.schemaSource, 'compact');
  const config = 'POST /nodes/{node}/qemu/{vmid}/config';
  assert.deepEqual(
    checker.check(config, { node: 'pve1', vmid: '101', cores: '2', hostpci3: 'mapping=iGPU' }),
    {},
  );
  assert.deepEqual(checker.check(config, { node: 'pve1', vmid: 'x', colour: 'red' }), {
    vmid: "type check ('integer') failed - got 'x'",
    colour: 'property is not defined in schema and the schema does not allow additional properties',
  });
});

/** Every field of the answer is one the schema's `returns` names, and every required one is there. */
function conforms(endpoint: string, answer: unknown) {
  const returns = schema?.get(endpoint)?.returns as {
    type: string;
    items?: { properties: Record<string, { optional?: number }> };
    properties?: Record<string, { optional?: number }>;
    additionalProperties?: number;
  };
  const rows =
    returns.type === 'array' ? (answer as Record<string, unknown>[]) : [answer as Record<string, unknown>];
  const properties = (returns.type === 'array' ? returns.items?.properties : returns.properties) ?? {};
  assert.ok(rows.length > 0, `${endpoint}: empty answer`);
  for (const row of rows) {
    for (const [name, spec] of Object.entries(properties))
      if (!spec.optional) assert.ok(row[name] !== undefined, `${endpoint}: ${name} missing`);
    if (!returns.additionalProperties)
      for (const name of Object.keys(row)) assert.ok(properties[name], `${endpoint}: ${name} not in returns`);
  }
}

test('node status, resources, task list and status, pending and PCI answer in the schema’s shapes', {
  skip,
}, async () => {
  const state = new SimulatorState({ taskMs: 1, secondMs: 1 });
  addPve1WithK3sVm(state);
  state.mappings.set('iGPU', { mdev: true, map: [uhd630Entry('pve1')] });
  const root: Caller = { user: 'root@pam' };
  const call = (method: string, path: string, params: Record<string, unknown> = {}) => {
    const reply = simulate(state, root, method, path, params);
    assert.equal(reply.status, 200, `${method} ${path}: ${reply.reason} ${JSON.stringify(reply.errors)}`);
    return reply;
  };
  call('POST', '/nodes/pve1/qemu/101/config', {
    hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4',
    delete: 'bios',
  });
  conforms('GET /nodes/{node}/qemu/{vmid}/pending', call('GET', '/nodes/pve1/qemu/101/pending').data);
  const upid = String(call('POST', '/nodes/pve1/qemu/101/status/stop').data);
  await new Promise((resolve) => setTimeout(resolve, 20));
  conforms(
    'GET /nodes/{node}/tasks/{upid}/status',
    call('GET', `/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`).data,
  );
  const tasks = call('GET', '/nodes/pve1/tasks', { source: 'all' });
  conforms('GET /nodes/{node}/tasks', tasks.data);
  assert.equal(tasks.total, 2);
  conforms('GET /nodes/{node}/status', call('GET', '/nodes/pve1/status').data);
  conforms('GET /cluster/resources', call('GET', '/cluster/resources').data);
  conforms('GET /nodes/{node}/hardware/pci', call('GET', '/nodes/pve1/hardware/pci').data);
  // Still pending after the stop: Proxmox applies pending changes at the next start.
  const pending = call('GET', '/nodes/pve1/qemu/101/pending').data as { key: string; delete?: number }[];
  assert.deepEqual(pending.find((p) => p.key === 'bios')?.delete, 1);
});

test('task status: unknown and malformed UPIDs are parameter errors; errors name the node', () => {
  const state = new SimulatorState();
  addPve1WithK3sVm(state);
  const root: Caller = { user: 'root@pam' };
  assert.deepEqual(simulate(state, root, 'GET', '/nodes/pve1/tasks/nonsense/status', {}).errors, {
    upid: 'unable to parse worker upid',
  });
  const other = 'UPID:pve1:0000AAAA:0000BBBB:66000000:qmstart:101:root@pam:';
  assert.deepEqual(simulate(state, root, 'GET', `/nodes/pve1/tasks/${other}/status`, {}).errors, {
    upid: 'no such task',
  });
  assert.equal(
    simulate(state, root, 'GET', '/nodes/pve1/qemu/555/pending', {}).reason,
    "Configuration file 'nodes/pve1/qemu-server/555.conf' does not exist",
  );
  assert.throws(() => state.digest(555), /nodes\/pve1\/qemu-server\/555\.conf/);
});
