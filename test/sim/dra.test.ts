// Dynamic Resource Allocation in the project's Kubernetes API server, over its HTTPS API:
// resource.k8s.io/v1 served by version, the DRAAdminAccess gate and the admin namespace
// label, Intel's GPU DRA driver publishing its ResourceSlices, and the scheduler
// allocating devices to claims (exclusive for ordinary claims, shared for admin ones),
// claims made from templates, and the release after pods.

import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, test } from 'node:test';
import { SMOKE_MARK } from '../../src/cluster/smoke.ts';
import { DRA_DRIVER_IMAGE } from '../../src/sim/kube/dra-driver.ts';
import { type RunningKubeSimulator, startKubeSimulator } from '../../src/sim/kube/server.ts';

const sims: RunningKubeSimulator[] = [];
after(async () => {
  for (const sim of sims) await sim.close();
});

// biome-ignore lint/suspicious/noExplicitAny: JSON answers, read field by field in assertions
type Json = Record<string, any>;

async function start(options: Partial<Parameters<typeof startKubeSimulator>[0]> = {}) {
  const sim = await startKubeSimulator({ nodes: [{ name: 'n1', gpus: 1 }], ...options });
  sims.push(sim);
  const ca = Buffer.from(/certificate-authority-data: (\S+)/.exec(sim.kubeconfig)?.[1] ?? '', 'base64');
  const call = (method: string, path: string, body?: unknown) =>
    new Promise<{ code: number; body: Json }>((resolve, reject) => {
      const req = request(
        `${sim.url}${path}`,
        {
          method,
          ca,
          headers: {
            authorization: `Bearer ${sim.token}`,
            'content-type': 'application/json',
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ code: res.statusCode ?? 0, body: text.startsWith('{') ? JSON.parse(text) : { text } });
          });
        },
      );
      req.on('error', reject);
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  const ok = async (method: string, path: string, body?: unknown) => {
    const answer = await call(method, path, body);
    assert.ok(answer.code < 300, `${method} ${path}: ${answer.code} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  return { sim, call, ok };
}

const R = '/apis/resource.k8s.io/v1';
const ns = (name: string, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name, labels },
});
const CLASS = {
  apiVersion: 'resource.k8s.io/v1',
  kind: 'DeviceClass',
  metadata: { name: 'gpu.intel.com' },
  spec: { selectors: [{ cel: { expression: 'device.driver == "gpu.intel.com"' } }] },
};
const claim = (name: string, exactly: Json = {}) => ({
  apiVersion: 'resource.k8s.io/v1',
  kind: 'ResourceClaim',
  metadata: { name },
  spec: {
    devices: {
      requests: [
        {
          name: 'gpu',
          exactly: { deviceClassName: 'gpu.intel.com', allocationMode: 'ExactCount', count: 1, ...exactly },
        },
      ],
    },
  },
});
const pod = (name: string, podClaim: Json, labels: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, labels },
  spec: {
    resourceClaims: [{ name: 'gpu', ...podClaim }],
    containers: [{ name: 'c', image: 'busybox', resources: { claims: [{ name: 'gpu' }] } }],
  },
});
/** Intel's kubelet plugin DaemonSet as its base has it (the parts the simulator reads). */
const driverDaemonSet = (namespace: string) => ({
  apiVersion: 'apps/v1',
  kind: 'DaemonSet',
  metadata: { name: 'intel-gpu-resource-driver-kubelet-plugin', namespace },
  spec: {
    selector: { matchLabels: { app: 'intel-gpu-resource-driver-kubelet-plugin' } },
    template: {
      metadata: { labels: { app: 'intel-gpu-resource-driver-kubelet-plugin' } },
      spec: {
        containers: [
          {
            name: 'kubelet-plugin',
            image: `${DRA_DRIVER_IMAGE}:v0.11.0`,
            securityContext: { privileged: true },
          },
        ],
      },
    },
  },
});

/** A cluster with the driver installed (privileged namespace) and Intel's DeviceClass. */
async function withDriver(options: Partial<Parameters<typeof startKubeSimulator>[0]> = {}) {
  const kube = await start(options);
  await kube.ok(
    'POST',
    '/api/v1/namespaces',
    ns('dra', { 'pod-security.kubernetes.io/enforce': 'privileged' }),
  );
  await kube.ok('POST', '/apis/apps/v1/namespaces/dra/daemonsets', driverDaemonSet('dra'));
  await kube.ok('POST', `${R}/deviceclasses`, CLASS);
  await kube.ok('POST', '/api/v1/namespaces', ns('work'));
  await kube.ok('POST', '/api/v1/namespaces', ns('admin', { 'resource.kubernetes.io/admin-access': 'true' }));
  return kube;
}

test('resource.k8s.io/v1 is served at 1.34 (discovery, OpenAPI, REST) and not at 1.33', async () => {
  const v34 = await start();
  assert.equal((await v34.ok('GET', '/version')).minor, '34');
  const resources = (await v34.ok('GET', R)).resources.map((r: Json) => `${r.name}:${r.namespaced}`);
  assert.deepEqual(resources, [
    'deviceclasses:false',
    'resourceslices:false',
    'resourceclaims:true',
    'resourceclaims/status:true',
    'resourceclaimtemplates:true',
  ]);
  assert.ok((await v34.ok('GET', '/apis')).groups.some((g: Json) => g.name === 'resource.k8s.io'));
  assert.ok('apis/resource.k8s.io/v1' in (await v34.ok('GET', '/openapi/v3')).paths);
  await v34.ok('GET', `${R}/resourceslices`);
  for (const gv of ['rbac.authorization.k8s.io', 'admissionregistration.k8s.io'])
    assert.ok(
      (await v34.ok('GET', '/apis')).groups.some((g: Json) => g.name === gv),
      gv,
    );
  const sa = (await v34.ok('GET', '/api/v1')).resources.find((r: Json) => r.name === 'serviceaccounts');
  assert.deepEqual(sa.shortNames, ['sa']);

  const v33 = await start({ version: '1.33' });
  const version = await v33.ok('GET', '/version');
  assert.equal(version.minor, '33');
  assert.match(version.gitVersion, /^v1\.33\./);
  assert.equal((await v33.call('GET', R)).code, 404);
  assert.equal((await v33.call('GET', `${R}/resourceslices`)).code, 404);
  assert.ok(!(await v33.ok('GET', '/apis')).groups.some((g: Json) => g.name === 'resource.k8s.io'));
  assert.ok(!('apis/resource.k8s.io/v1' in (await v33.ok('GET', '/openapi/v3')).paths));
  assert.equal((await v33.call('GET', '/openapi/v3/apis/resource.k8s.io/v1')).code, 404);
});

test('DRAAdminAccess off: adminAccess is dropped from claims and templates, as the strategy does', async () => {
  const kube = await start({ features: { draAdminAccess: false } });
  await kube.ok('POST', '/api/v1/namespaces', ns('admin', { 'resource.kubernetes.io/admin-access': 'true' }));
  await kube.ok('POST', `${R}/namespaces/admin/resourceclaims`, claim('c', { adminAccess: true }));
  const read = await kube.ok('GET', `${R}/namespaces/admin/resourceclaims/c`);
  assert.equal(read.spec.devices.requests[0].exactly.adminAccess, undefined);
  assert.equal(read.spec.devices.requests[0].exactly.count, 1);
  // Off, even an unlabelled namespace takes it (nothing is checked; the field is gone).
  await kube.ok('POST', '/api/v1/namespaces', ns('work'));
  await kube.ok('POST', `${R}/namespaces/work/resourceclaims`, claim('c', { adminAccess: true }));

  const on = await start();
  await on.ok('POST', '/api/v1/namespaces', ns('admin', { 'resource.kubernetes.io/admin-access': 'true' }));
  await on.ok('POST', `${R}/namespaces/admin/resourceclaims`, claim('c', { adminAccess: true }));
  const kept = await on.ok('GET', `${R}/namespaces/admin/resourceclaims/c`);
  assert.equal(kept.spec.devices.requests[0].exactly.adminAccess, true);
});

test('adminAccess in a namespace without the admin label: 422 with the registry message', async () => {
  const kube = await start();
  await kube.ok('POST', '/api/v1/namespaces', ns('work'));
  const refused = await kube.call(
    'POST',
    `${R}/namespaces/work/resourceclaims`,
    claim('c', { adminAccess: true }),
  );
  assert.equal(refused.code, 422);
  assert.equal(refused.body.reason, 'Invalid');
  assert.equal(
    refused.body.message,
    'ResourceClaim.resource.k8s.io "c" is invalid: spec.devices.requests[0].adminAccess: Forbidden: admin access to devices requires the `resource.kubernetes.io/admin-access: true` label on the containing namespace',
  );
  assert.equal(refused.body.details.causes[0].field, 'spec.devices.requests[0].adminAccess');
  assert.equal((await kube.call('GET', `${R}/namespaces/work/resourceclaims/c`)).code, 404);
  const template = {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaimTemplate',
    metadata: { name: 't' },
    spec: { spec: claim('x', { adminAccess: true }).spec },
  };
  const refusedTemplate = await kube.call('POST', `${R}/namespaces/work/resourceclaimtemplates`, template);
  assert.equal(refusedTemplate.code, 422);
  assert.match(
    refusedTemplate.body.message,
    /^ResourceClaimTemplate\.resource\.k8s\.io "t" is invalid: spec\.devices\.requests\[0\]\.adminAccess: Forbidden: admin access/,
  );
  // Without adminAccess the same namespace is fine.
  await kube.ok('POST', `${R}/namespaces/work/resourceclaims`, claim('c'));
});

test("Intel's driver publishes one slice per node with GPUs, with Intel's attributes; field selectors; removed with the DaemonSet", async () => {
  const kube = await withDriver({
    nodes: [
      { name: 'n1', gpus: 1 },
      { name: 'n2', gpus: 2, driver: 'xe' },
      { name: 'n3', gpus: 0 },
      { name: 'n4', gpus: 1, draSlice: false },
    ],
  });
  const slices = (await kube.ok('GET', `${R}/resourceslices`)).items;
  assert.deepEqual(slices.map((s: Json) => s.spec.nodeName).sort(), ['n1', 'n2']);
  const n1 = slices.find((s: Json) => s.spec.nodeName === 'n1');
  assert.match(n1.metadata.name, /^n1-gpu\.intel\.com-[a-z0-9]{5}$/);
  assert.deepEqual(n1.spec.pool, { name: 'n1', generation: 1, resourceSliceCount: 1 });
  assert.equal(n1.spec.driver, 'gpu.intel.com');
  assert.deepEqual(n1.spec.devices, [
    {
      name: '0000-00-02-0-0x46d1',
      attributes: {
        model: { string: 'Unknown' },
        family: { string: 'Unknown' },
        driver: { string: 'i915' },
        sriov: { bool: false },
        type: { string: 'gpu' },
        pciId: { string: '0x46d1' },
        pciAddress: { string: '0000:00:02.0' },
        health: { string: 'Unknown' },
        pciRoot: { string: '00' },
        'resource.kubernetes.io/pcieRoot': { string: 'pci0000:00' },
        'resource.kubernetes.io/pciBusID': { string: '0000:00:02.0' },
      },
      capacity: { memory: { value: '0' }, millicores: { value: '1k' } },
    },
  ]);
  const n2 = slices.find((s: Json) => s.spec.nodeName === 'n2');
  assert.deepEqual(
    n2.spec.devices.map((d: Json) => [d.name, d.attributes.driver.string]),
    [
      ['0000-00-02-0-0x46d1', 'xe'],
      ['0000-00-03-0-0x46d1', 'xe'],
    ],
  );
  // The driver pod runs on n4 (and n3) all the same.
  const pods = (await kube.ok('GET', '/api/v1/namespaces/dra/pods')).items.map((p: Json) => p.spec.nodeName);
  assert.deepEqual(pods.sort(), ['n1', 'n2', 'n3', 'n4']);
  const byNode = await kube.ok('GET', `${R}/resourceslices?fieldSelector=spec.nodeName%3Dn2`);
  assert.deepEqual(
    byNode.items.map((s: Json) => s.spec.nodeName),
    ['n2'],
  );
  const both = await kube.ok(
    'GET',
    `${R}/resourceslices?fieldSelector=spec.nodeName%3Dn1,spec.driver%3Dgpu.intel.com`,
  );
  assert.deepEqual(
    both.items.map((s: Json) => s.spec.nodeName),
    ['n1'],
  );
  const other = await kube.ok('GET', `${R}/resourceslices?fieldSelector=spec.driver%3Dother.example.com`);
  assert.equal(other.items.length, 0);

  kube.sim.setDraSlice('n4', true);
  assert.equal(
    (await kube.ok('GET', `${R}/resourceslices?fieldSelector=spec.nodeName%3Dn4`)).items.length,
    1,
  );
  kube.sim.setDraSlice('n1', false);
  assert.equal(
    (await kube.ok('GET', `${R}/resourceslices?fieldSelector=spec.nodeName%3Dn1`)).items.length,
    0,
  );

  await kube.ok('DELETE', '/apis/apps/v1/namespaces/dra/daemonsets/intel-gpu-resource-driver-kubelet-plugin');
  assert.equal((await kube.ok('GET', `${R}/resourceslices`)).items.length, 0);
  assert.equal((await kube.ok('GET', '/api/v1/namespaces/dra/pods')).items.length, 0);
});

test('Pod Security refuses the privileged driver in a baseline namespace: no pod, no slice', async () => {
  const kube = await start({ defaultPodSecurity: 'baseline' });
  await kube.ok('POST', '/api/v1/namespaces', ns('dra'));
  await kube.ok('POST', '/apis/apps/v1/namespaces/dra/daemonsets', driverDaemonSet('dra'));
  assert.equal((await kube.ok('GET', `${R}/resourceslices`)).items.length, 0);
  const ds = await kube.ok(
    'GET',
    '/apis/apps/v1/namespaces/dra/daemonsets/intel-gpu-resource-driver-kubelet-plugin',
  );
  assert.deepEqual([ds.status.desiredNumberScheduled, ds.status.numberReady], [1, 0]);
});

test('ordinary claims hold a device exclusively; an admin claim shares it and leaves the others as they were', async () => {
  const kube = await withDriver();
  await kube.ok('POST', `${R}/namespaces/work/resourceclaims`, claim('a'));
  await kube.ok('POST', '/api/v1/namespaces/work/pods', pod('pa', { resourceClaimName: 'a' }));
  const a = await kube.ok('GET', `${R}/namespaces/work/resourceclaims/a`);
  assert.deepEqual(a.status.allocation.devices.results, [
    { request: 'gpu', driver: 'gpu.intel.com', pool: 'n1', device: '0000-00-02-0-0x46d1' },
  ]);
  assert.deepEqual(a.status.allocation.nodeSelector, {
    nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['n1'] }] }],
  });
  const pa = await kube.ok('GET', '/api/v1/namespaces/work/pods/pa');
  assert.equal(pa.spec.nodeName, 'n1');
  assert.deepEqual(a.status.reservedFor, [{ resource: 'pods', name: 'pa', uid: pa.metadata.uid }]);

  await kube.ok('POST', `${R}/namespaces/work/resourceclaims`, claim('b'));
  await kube.ok('POST', '/api/v1/namespaces/work/pods', pod('pb', { resourceClaimName: 'b' }));
  const pb = await kube.ok('GET', '/api/v1/namespaces/work/pods/pb');
  assert.equal(pb.spec.nodeName, undefined);
  assert.deepEqual(pb.status.conditions, [
    {
      type: 'PodScheduled',
      status: 'False',
      reason: 'Unschedulable',
      message: '0/1 nodes are available: 1 cannot allocate all claims.',
    },
  ]);
  assert.equal((await kube.ok('GET', `${R}/namespaces/work/resourceclaims/b`)).status, undefined);

  await kube.ok('POST', `${R}/namespaces/admin/resourceclaims`, claim('watch', { adminAccess: true }));
  await kube.ok('POST', '/api/v1/namespaces/admin/pods', pod('monitor', { resourceClaimName: 'watch' }));
  const watch = await kube.ok('GET', `${R}/namespaces/admin/resourceclaims/watch`);
  assert.deepEqual(watch.status.allocation.devices.results, [
    { request: 'gpu', driver: 'gpu.intel.com', pool: 'n1', device: '0000-00-02-0-0x46d1', adminAccess: true },
  ]);
  assert.equal((await kube.ok('GET', '/api/v1/namespaces/admin/pods/monitor')).spec.nodeName, 'n1');

  await kube.ok('DELETE', '/api/v1/namespaces/admin/pods/monitor');
  const after = await kube.ok('GET', `${R}/namespaces/work/resourceclaims/a`);
  assert.deepEqual(after.status, a.status);
  const released = await kube.ok('GET', `${R}/namespaces/admin/resourceclaims/watch`);
  assert.equal(released.status?.allocation, undefined, 'an unreserved claim is deallocated');
  assert.equal(released.status?.reservedFor, undefined);
  assert.equal((await kube.ok('GET', '/api/v1/namespaces/work/pods/pb')).spec.nodeName, undefined);

  // The holder goes: its claim is deallocated and the waiting pod gets the device.
  await kube.ok('DELETE', '/api/v1/namespaces/work/pods/pa');
  assert.equal((await kube.ok('GET', `${R}/namespaces/work/resourceclaims/a`)).status?.allocation, undefined);
  assert.equal((await kube.ok('GET', '/api/v1/namespaces/work/pods/pb')).spec.nodeName, 'n1');
});

test('a claim from a template: named <pod>-<claim>-<random>, owned by the pod, deleted with it', async () => {
  const kube = await withDriver();
  await kube.ok('POST', `${R}/namespaces/work/resourceclaimtemplates`, {
    apiVersion: 'resource.k8s.io/v1',
    kind: 'ResourceClaimTemplate',
    metadata: { name: 'gpu' },
    spec: { spec: claim('x').spec },
  });
  await kube.ok('POST', '/api/v1/namespaces/work/pods', pod('p', { resourceClaimTemplateName: 'gpu' }));
  const p = await kube.ok('GET', '/api/v1/namespaces/work/pods/p');
  const [generated] = (await kube.ok('GET', `${R}/namespaces/work/resourceclaims`)).items;
  assert.match(generated.metadata.name, /^p-gpu-[a-z0-9]{5}$/);
  assert.deepEqual(p.status.resourceClaimStatuses, [
    { name: 'gpu', resourceClaimName: generated.metadata.name },
  ]);
  assert.equal(generated.metadata.ownerReferences[0].uid, p.metadata.uid);
  assert.equal(generated.metadata.annotations['resource.kubernetes.io/pod-claim-name'], 'gpu');
  assert.equal(generated.status.reservedFor[0].name, 'p');
  assert.equal(p.spec.nodeName, 'n1');
  await kube.ok('DELETE', '/api/v1/namespaces/work/pods/p');
  assert.equal((await kube.ok('GET', `${R}/namespaces/work/resourceclaims`)).items.length, 0);
});

test('a selector the simulator cannot evaluate, and a claim no slice can satisfy, leave the pod pending', async () => {
  const kube = await withDriver();
  await kube.ok(
    'POST',
    `${R}/namespaces/work/resourceclaims`,
    claim('odd', {
      selectors: [
        { cel: { expression: 'device.capacity["gpu.intel.com"].memory.compareTo(quantity("1Gi")) >= 0' } },
      ],
    }),
  );
  await kube.ok('POST', '/api/v1/namespaces/work/pods', pod('odd', { resourceClaimName: 'odd' }));
  const odd = await kube.ok('GET', '/api/v1/namespaces/work/pods/odd');
  assert.match(
    odd.status.conditions[0].message,
    /^igpu-split simulator: CEL expression .* is not one the simulator evaluates/,
  );

  await kube.ok(
    'POST',
    `${R}/namespaces/work/resourceclaims`,
    claim('arc', {
      selectors: [{ cel: { expression: `device.attributes["gpu.intel.com"].family == 'Arc A-Series'` } }],
    }),
  );
  await kube.ok('POST', '/api/v1/namespaces/work/pods', pod('arc', { resourceClaimName: 'arc' }));
  const arc = await kube.ok('GET', '/api/v1/namespaces/work/pods/arc');
  assert.equal(arc.status.conditions[0].message, '0/1 nodes are available: 1 cannot allocate all claims.');

  await kube.ok(
    'POST',
    `${R}/namespaces/work/resourceclaims`,
    claim('pci', {
      selectors: [
        { cel: { expression: `device.attributes["resource.kubernetes.io"].pciBusID == "0000:00:02.0"` } },
      ],
    }),
  );
  await kube.ok('POST', '/api/v1/namespaces/work/pods', pod('pci', { resourceClaimName: 'pci' }));
  assert.equal((await kube.ok('GET', '/api/v1/namespaces/work/pods/pci')).spec.nodeName, 'n1');
});

test('the smoke pod with a claim sees the render node of its allocated device, and none without one', async () => {
  const kube = await withDriver({
    nodes: [
      { name: 'n1', gpus: 1 },
      { name: 'n2', gpus: 0, labels: { bare: 'yes' } },
    ],
  });
  const smoke = { 'app.kubernetes.io/component': 'smoke' };
  await kube.ok('POST', `${R}/namespaces/admin/resourceclaims`, claim('s', { adminAccess: true }));
  await kube.ok('POST', '/api/v1/namespaces/admin/pods', pod('smoke', { resourceClaimName: 's' }, smoke));
  const log = (await kube.ok('GET', '/api/v1/namespaces/admin/pods/smoke/log')).text as string;
  assert.match(log, new RegExp(`${SMOKE_MARK} dri: by-path card0 renderD128 `));
  assert.match(log, /open \/dev\/dri\/renderD128 ok/);
  // Done: the claim is released (the resourceclaim controller drops done pods' reservations).
  assert.equal(
    (await kube.ok('GET', `${R}/namespaces/admin/resourceclaims/s`)).status?.allocation,
    undefined,
  );

  const bare = pod('bare', {}, smoke);
  (bare.spec as Json).resourceClaims = [];
  (bare.spec as Json).containers[0].resources = {};
  (bare.spec as Json).nodeSelector = { bare: 'yes' };
  await kube.ok('POST', '/api/v1/namespaces/admin/pods', bare);
  const bareLog = (await kube.ok('GET', '/api/v1/namespaces/admin/pods/bare/log')).text as string;
  assert.match(bareLog, new RegExp(`${SMOKE_MARK} dri: \n`));
});

test('a ResourceClaim status changes only through /status', async () => {
  const kube = await start();
  await kube.ok('POST', '/api/v1/namespaces', ns('work'));
  const created = await kube.ok('POST', `${R}/namespaces/work/resourceclaims`, {
    ...claim('c'),
    status: { devices: [{ driver: 'gpu.intel.com', pool: 'n1', device: 'x' }] },
  });
  assert.equal(created.status, undefined);
  const put = await kube.ok('PUT', `${R}/namespaces/work/resourceclaims/c`, {
    ...created,
    status: { devices: [{ driver: 'gpu.intel.com', pool: 'n1', device: 'x' }] },
  });
  assert.equal(put.status, undefined);
  const status = await kube.ok('PUT', `${R}/namespaces/work/resourceclaims/c/status`, {
    ...created,
    metadata: { ...created.metadata, labels: { ignored: 'yes' } },
    status: { devices: [{ driver: 'gpu.intel.com', pool: 'n1', device: 'x' }] },
  });
  assert.deepEqual(status.status.devices, [{ driver: 'gpu.intel.com', pool: 'n1', device: 'x' }]);
  assert.equal(status.metadata.labels, undefined);
});
