// DRA mode's objects and pre-flight without a cluster: the driver's objects are Intel's
// kustomize base as `kubectl kustomize` renders it (with the image pinned), no object
// igpu-split renders or applies names an image by :latest or no tag, the lab file refuses
// what cannot work, and each pre-flight refusal is one line naming the cluster or node.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { selects } from '../../src/cluster/cel.ts';
import { draDriverObjects } from '../../src/cluster/dra-objects.ts';
import type { KubeObject } from '../../src/cluster/kube.ts';
import { allObjects, desiredObjects, type Manifest } from '../../src/cluster/objects.ts';
import { cdiCheck, type Preflight, preflightChecks } from '../../src/cluster/preflight.ts';
import { renderCluster } from '../../src/cluster/render.ts';
import type { GpuNode } from '../../src/config/derived.ts';
import { KubernetesSchema, type KubernetesSettings } from '../../src/config/lab.ts';
import { DRA_DRIVER, DRA_IMAGE_NAME, PLUGIN_IMAGE_NAME, runsImage } from '../../src/knowledge/dra.ts';
import { GPU_PLUGIN } from '../../src/knowledge/pins.ts';

const BASE = fileURLToPath(
  new URL('../../../shared/data/intel-gpu-resource-driver-gpu-v0.11.0', import.meta.url),
);
const KUBECTL =
  (process.env.PATH ?? '')
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, 'kubectl'))
    .find((candidate) => existsSync(candidate)) ?? '/usr/bin/kubectl';

const dra = (extra: Record<string, unknown> = {}): KubernetesSettings =>
  KubernetesSchema.parse({ allocator: 'dra', ...extra });
const nodes: GpuNode[] = [{ name: 'k3s-1', vgpus: 1 } as GpuNode];

/** Only what Intel's base says: our labels, node selector and the pinned tag taken back out. */
function asIntelWrites(object: Manifest): Manifest {
  const copy = structuredClone(object) as Manifest & { spec?: Record<string, unknown> };
  const labels = { ...copy.metadata.labels };
  delete labels['app.kubernetes.io/managed-by'];
  for (const key of Object.keys(labels))
    if (key.startsWith('pod-security.kubernetes.io/')) delete labels[key];
  if (Object.keys(labels).length > 0) copy.metadata.labels = labels;
  else delete copy.metadata.labels;
  if (copy.kind === 'DaemonSet') {
    const pod = (copy.spec as { template: { spec: Record<string, unknown> } }).template.spec;
    delete pod.nodeSelector;
    delete pod.tolerations;
  }
  return copy;
}

test('the driver’s objects are Intel’s base as kubectl kustomize renders it, image pinned to the release', {
  skip: !existsSync(BASE)
    ? `${BASE} not found (see ../shared/data/README.md)`
    : !existsSync(KUBECTL) && process.env.IGPU_SPLIT_ALLOW_SKIP === '1'
      ? 'kubectl not found (IGPU_SPLIT_ALLOW_SKIP=1)'
      : false,
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-dra-kustomize-'));
  try {
    for (const file of ['device-class.yaml', 'namespace.yaml', 'resource-driver.yaml'])
      await writeFile(join(dir, file), await readFile(join(BASE, file)));
    // The same override a user would add to Intel's kustomization.yaml.
    await writeFile(
      join(dir, 'kustomization.yaml'),
      `resources: [device-class.yaml, namespace.yaml, resource-driver.yaml]\nimages:\n  - name: ${DRA_DRIVER.image}\n    newTag: ${DRA_DRIVER.tag}\n`,
    );
    const rendered = parseAllDocuments(execFileSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8' }))
      .map((doc) => doc.toJS() as Manifest)
      // Cluster-scoped kinds: the base gives its ClusterRole(Binding) a namespace the API server drops.
      .map((o) =>
        ['ClusterRole', 'ClusterRoleBinding'].includes(o.kind)
          ? { ...o, metadata: { ...o.metadata, namespace: undefined } }
          : o,
      )
      .map((o) => JSON.parse(JSON.stringify(o)) as Manifest);
    const key = (o: Manifest) => `${o.kind}/${o.metadata.name}`;
    const ours = new Map(draDriverObjects(dra()).map((o) => [key(o), asIntelWrites(o)]));
    const intels = new Map(rendered.map((o) => [key(o), o]));
    // The one object not taken: the class for VMs in pods (vfio-bound GPUs).
    assert.deepEqual(
      [...intels.keys()].filter((k) => !ours.has(k)),
      ['DeviceClass/gpu-vfio.intel.com'],
    );
    for (const [name, object] of ours) assert.deepEqual(object, intels.get(name), name);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Every `image` anywhere in an object. */
function images(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(images);
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) =>
    k === 'image' && typeof v === 'string' ? [v] : images(v),
  );
}

test('no object igpu-split applies or renders names an image by :latest or no tag', async () => {
  const labs = [
    {},
    { plugin: { mode: 'operator' } },
    { plugin: { mode: 'helm-values' } },
    { allocator: 'dra' },
    { allocator: 'dra', plugin: { mode: 'helm-values' } },
  ].map((k) => KubernetesSchema.parse(k));
  const tagged = (image: string) => /:[0-9A-Za-z._-]+$/.test(image) && !image.endsWith(':latest');
  for (const settings of labs) {
    const found = [...desiredObjects(settings), ...allObjects(settings)].flatMap(images);
    assert.ok(found.length > 0 || settings.plugin.mode !== 'daemonset');
    for (const image of found)
      assert.ok(tagged(image), `${image} (${settings.allocator}/${settings.plugin.mode})`);
    const dir = await mkdtemp(join(tmpdir(), 'igpu-dra-render-'));
    try {
      const files = await renderCluster(settings, nodes, dir);
      for (const file of files.filter((f) => f.endsWith('.yaml'))) {
        const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS());
        for (const image of docs.flatMap(images)) assert.ok(tagged(image), `${image} in ${file}`);
      }
      // Helm values give the tag apart from the image.
      if (settings.plugin.mode === 'helm-values') {
        const values = parse(await readFile(join(dir, 'values.yaml'), 'utf8'));
        assert.match(values.image.tag, /^v?\d+\.\d+\.\d+$/);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
});

test('the lab file refuses latest, an untagged smoke image and DRA through Intel’s operator', () => {
  const issue = (input: Record<string, unknown>) => {
    const result = KubernetesSchema.safeParse(input);
    assert.equal(result.success, false, JSON.stringify(input));
    return result.error?.issues[0];
  };
  assert.match(issue({ dra: { version: 'latest' } })?.message ?? '', /not latest/);
  assert.match(issue({ plugin: { version: 'latest' } })?.message ?? '', /not latest/);
  assert.match(issue({ smokeImage: 'busybox' })?.message ?? '', /tag or digest/);
  assert.match(issue({ smokeImage: 'busybox:latest' })?.message ?? '', /tag or digest/);
  const operator = issue({ allocator: 'dra', plugin: { mode: 'operator' } });
  assert.deepEqual(operator?.path, ['plugin', 'mode']);
  assert.match(operator?.message ?? '', /device plugin only/);
  assert.equal(
    KubernetesSchema.safeParse({ smokeImage: 'registry:5000/jellyfin/jellyfin:10.10' }).success,
    true,
  );
  assert.equal(KubernetesSchema.safeParse({ smokeImage: `busybox@sha256:${'a'.repeat(64)}` }).success, true);
});

test('render writes the class with the objects and the claim examples beside them, not in the kustomization', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-dra-render-'));
  try {
    await renderCluster(dra(), nodes, dir);
    const kustomization = parse(await readFile(join(dir, 'kustomization.yaml'), 'utf8'));
    assert.ok(kustomization.resources.includes('deviceclass-gpu.intel.com.yaml'));
    assert.ok(!kustomization.resources.some((r: string) => r.startsWith('examples/')));
    assert.deepEqual((await readdir(join(dir, 'examples'))).sort(), [
      'claim-template.yaml',
      'shared-claim.yaml',
    ]);
    const template = parse(await readFile(join(dir, 'examples/claim-template.yaml'), 'utf8'));
    const request = template.spec.spec.devices.requests[0];
    assert.equal(request.exactly.deviceClassName, DRA_DRIVER.deviceClass);
    // No memory selector: an iGPU reports 0.
    assert.equal(request.exactly.selectors, undefined);
    const [claim, ...pods] = parseAllDocuments(
      await readFile(join(dir, 'examples/shared-claim.yaml'), 'utf8'),
    ).map((d) => d.toJS());
    assert.equal(claim.kind, 'ResourceClaim');
    assert.equal(pods.length, 2);
    for (const pod of pods) {
      assert.equal(pod.spec.resourceClaims[0].resourceClaimName, claim.metadata.name);
      assert.deepEqual(pod.spec.containers[0].resources.claims, [{ name: pod.spec.resourceClaims[0].name }]);
    }
    // The lab namespace lets verify's claims ask for adminAccess.
    const namespace = parse(await readFile(join(dir, 'namespace-igpu-split.yaml'), 'utf8'));
    assert.equal(namespace.metadata.labels['resource.kubernetes.io/admin-access'], 'true');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the CEL subset: what it can tell, and "cannot tell" for the rest', () => {
  const device = {
    name: '0000-00-02-0-0x4680',
    attributes: {
      driver: { string: 'i915' },
      sriov: { bool: false },
      'resource.kubernetes.io/pciBusID': { string: '0000:00:02.0' },
    },
  };
  assert.equal(selects('device.driver == "gpu.intel.com"', 'gpu.intel.com', device), true);
  assert.equal(selects("device.driver == 'other.example.com'", 'gpu.intel.com', device), false);
  assert.equal(selects('device.attributes["gpu.intel.com"].driver == "i915"', 'gpu.intel.com', device), true);
  assert.equal(
    selects(
      'device.driver == "gpu.intel.com" && device.attributes["gpu.intel.com"].sriov == true',
      'gpu.intel.com',
      device,
    ),
    false,
  );
  assert.equal(
    selects(
      'device.attributes["resource.kubernetes.io"].pciBusID == "0000:00:02.0"',
      'gpu.intel.com',
      device,
    ),
    true,
  );
  assert.equal(
    selects(
      'device.capacity["gpu.intel.com"].memory.compareTo(quantity("1Gi")) >= 0',
      'gpu.intel.com',
      device,
    ),
    undefined,
  );
  assert.equal(selects('device.driver == "a" || device.driver == "b"', 'gpu.intel.com', device), undefined);
});

const node = (runtime: string, osImage = 'Ubuntu 24.04.3 LTS'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Node',
  metadata: { name: 'k3s-1' },
  status: { nodeInfo: { containerRuntimeVersion: runtime, osImage } },
});
const pre = (over: Partial<Preflight> = {}): Preflight => ({
  server: { gitVersion: 'v1.34.1+k3s1', major: 1, minor: 34 },
  servesDra: true,
  devicePlugin: [],
  draDriver: [],
  ...over,
});
const failures = (p: Preflight, settings = dra(), runtime = 'containerd://2.1.4-k3s1') =>
  preflightChecks(p, settings, { 'k3s-1': node(runtime) }, nodes, 'https://10.0.0.1:6443').filter(
    (c) => c.status === 'fail',
  );

test('pre-flight: a cluster below 1.34, or one that does not serve resource.k8s.io/v1, is refused in one line', () => {
  const [old] = failures(
    pre({ server: { gitVersion: 'v1.33.5+k3s1', major: 1, minor: 33 }, servesDra: false }),
  );
  assert.match(
    old?.evidence ?? '',
    /^cluster https:\/\/10\.0\.0\.1:6443 runs Kubernetes v1\.33\.5\+k3s1; allocator dra needs 1\.34/,
  );
  assert.match(
    old?.fix ?? '',
    /K3s v1\.34\.x\+k3s1; Talos v1\.11: v1\.11\.6 installs Kubernetes 1\.34\.1\), or set kubernetes\.allocator: device-plugin/,
  );
  assert.ok(!`${old?.evidence}${old?.fix}`.includes('\n'));
  const [off] = failures(pre({ servesDra: false }));
  assert.match(off?.evidence ?? '', /does not serve resource\.k8s\.io\/v1/);
  // The device plugin needs none of it.
  assert.deepEqual(
    failures(
      pre({ server: { gitVersion: 'v1.30.0', major: 1, minor: 30 }, servesDra: false }),
      KubernetesSchema.parse({}),
    ),
    [],
  );
});

test('pre-flight: both allocators are refused, whichever is asked for', () => {
  const plugin = failures(pre({ devicePlugin: ['DaemonSet kube-system/intel-gpu-plugin'] }));
  assert.equal(plugin[0]?.id, 'cluster.allocator');
  assert.match(plugin[0]?.fix ?? '', /remove the device plugin first/);
  const ours = failures(pre({ devicePlugin: ['DaemonSet igpu-split/intel-gpu-plugin (igpu-split’s)'] }));
  assert.match(ours[0]?.fix ?? '', /igpu-split cluster rollback/);
  const driver = failures(
    pre({ draDriver: ['ResourceSlices of gpu.intel.com on k3s-1'] }),
    KubernetesSchema.parse({}),
  );
  assert.equal(driver[0]?.id, 'cluster.allocator');
  assert.match(driver[0]?.evidence ?? '', /already runs Intel's GPU DRA driver/);
});

test('pre-flight: a DeviceClass of the same name from another driver, or an install not ours', () => {
  const deviceClass = (expression: string, managedBy?: string): KubeObject => ({
    apiVersion: 'resource.k8s.io/v1',
    kind: 'DeviceClass',
    metadata: {
      name: 'gpu.intel.com',
      ...(managedBy ? { labels: { 'app.kubernetes.io/managed-by': managedBy } } : {}),
    },
    spec: { selectors: [{ cel: { expression } }] },
  });
  const other = failures(pre({ deviceClass: deviceClass('device.driver == "gpu.example.com"') }));
  assert.match(other[0]?.evidence ?? '', /another driver uses the name/);
  const helm = deviceClass('device.driver == "gpu.intel.com"', 'Helm');
  assert.match(failures(pre({ deviceClass: helm }))[0]?.fix ?? '', /helm-values/);
  assert.deepEqual(failures(pre({ deviceClass: helm }), dra({ plugin: { mode: 'helm-values' } })), []);
  assert.deepEqual(
    failures(pre({ deviceClass: deviceClass('device.driver == "gpu.intel.com"', 'igpu-split') })),
    [],
  );
});

test('pre-flight: CDI is judged from the runtime each node reports, and says where to turn it on', () => {
  assert.equal(cdiCheck('k3s-1', node('containerd://2.1.4-k3s1')).status, 'pass');
  const k3s = cdiCheck('k3s-1', node('containerd://1.7.27-k3s1'));
  assert.equal(k3s.status, 'fail');
  assert.match(k3s.fix ?? '', /\/var\/lib\/rancher\/k3s\/agent\/etc\/containerd\/config\.toml\.tmpl/);
  const talos = cdiCheck('talos-1', node('containerd://1.7.22', 'Talos (v1.10.9)'));
  assert.match(talos.fix ?? '', /\/etc\/cri\/conf\.d .* Talos 1\.13/);
  assert.equal(cdiCheck('k3s-1', node('cri-o://1.33.0')).status, 'warn');
  assert.deepEqual(
    failures(pre(), dra(), 'containerd://1.7.27-k3s1').map((c) => c.id),
    ['cluster.k3s-1.cdi'],
  );
});

test('pre-flight: a version that names no release, and a device-plugin look the cluster refused', () => {
  const [odd] = failures(
    pre({ server: { gitVersion: 'custom-build', major: Number.NaN, minor: Number.NaN } }),
  );
  assert.match(odd?.evidence ?? '', /reports version "custom-build", which names no Kubernetes release/);
  const refused = preflightChecks(
    pre({ unread: 'list DaemonSet: forbidden' }),
    KubernetesSchema.parse({}),
    {},
    nodes,
    'https://10.0.0.1:6443',
  );
  assert.deepEqual(
    refused.map((c) => `${c.id} ${c.status}`),
    ['cluster.allocator warn'],
  );
  assert.match(
    refused[0]?.evidence ?? '',
    /could not look for Intel's GPU DRA driver in cluster https:\/\/10\.0\.0\.1:6443: list DaemonSet: forbidden/,
  );
  const stale = failures(
    pre({ draDriver: ['ResourceSlices of gpu.intel.com on k3s-1'] }),
    KubernetesSchema.parse({}),
  );
  assert.match(stale[0]?.fix ?? '', /only its slices are left/);
});

test('an allocator is recognised by the lab’s image or by Intel’s image name, any registry or tag', () => {
  const driver = DRA_DRIVER.image;
  assert.ok(runsImage(`${driver}:v0.11.0`, driver, DRA_IMAGE_NAME));
  assert.ok(
    runsImage('registry.lan:5000/mirror/intel-gpu-resource-driver@sha256:abc', 'x/y', DRA_IMAGE_NAME),
  );
  assert.ok(
    runsImage('registry.lan:5000/mirror/renamed:v1', 'registry.lan:5000/mirror/renamed', DRA_IMAGE_NAME),
  );
  assert.ok(!runsImage('intel/intel-gpu-plugin:0.36.0', driver, DRA_IMAGE_NAME));
  assert.ok(runsImage('intel/intel-gpu-plugin:0.36.0', 'intel/intel-gpu-plugin', PLUGIN_IMAGE_NAME));
  assert.equal(DRA_IMAGE_NAME, DRA_DRIVER.image.split('/').pop());
  assert.equal(PLUGIN_IMAGE_NAME, GPU_PLUGIN.image.split('/').pop());
});
