// The objects the cluster layer writes, against official schemas: core and apps objects
// with kubernetes-models (generated from Kubernetes' OpenAPI), the GpuDevicePlugin
// against Intel's CRD schema, and our DaemonSet against Intel's reference DaemonSet for
// what the plugin needs (mounts, security context, environment). The reference files
// are read from ../shared/data and the tests skip, saying so, when they are absent.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { DaemonSet } from 'kubernetes-models/apps/v1';
import { Namespace, Pod } from 'kubernetes-models/v1';
import { parse, parseAllDocuments } from 'yaml';
import {
  gpuDevicePlugin,
  helmValues,
  namespaceObject,
  nodeFeatureRule,
  pluginDaemonSet,
} from '../../src/cluster/objects.ts';
import { SMOKE_SCRIPT } from '../../src/cluster/smoke.ts';
import { KubernetesSchema } from '../../src/config/lab.ts';
import { GPU_PLUGIN, SMOKE_IMAGE } from '../../src/knowledge/pins.ts';

const PINNED_IMAGE = (
  JSON.parse(readFileSync(new URL('../../snapshots/upstream-pins.json', import.meta.url), 'utf8')) as {
    intelDevicePlugins: { gpuPluginImage: string };
  }
).intelDevicePlugins.gpuPluginImage;

const data = (name: string) => fileURLToPath(new URL(`../../../shared/data/${name}`, import.meta.url));
const skipWithout = (name: string) =>
  existsSync(data(name)) ? false : `${data(name)} not found (see ../shared/data/README.md)`;

const settings = KubernetesSchema.parse({});
const variants = [
  settings,
  KubernetesSchema.parse({
    namespace: 'gpu',
    plugin: {
      sharedDevNum: 4,
      allocationPolicy: 'balanced',
      tolerations: [
        { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
      ],
    },
  }),
];

test('Namespace and DaemonSet validate against the Kubernetes schemas, and a broken one does not', () => {
  for (const s of variants) {
    new Namespace(namespaceObject(s) as never).validate();
    new DaemonSet(pluginDaemonSet(s) as never).validate();
  }
  const broken = pluginDaemonSet(settings) as unknown as {
    spec: { template: { spec: { containers: { name?: unknown }[] } } };
  };
  broken.spec.template.spec.containers[0] = { ...broken.spec.template.spec.containers[0], name: 42 };
  assert.throws(() => new DaemonSet(broken as never).validate());
});

test('the smoke pod validates too', () => {
  new Pod({
    metadata: { name: 'igpu-split-smoke-k3s-1', namespace: 'igpu-split' },
    spec: {
      restartPolicy: 'Never',
      containers: [
        {
          name: 'smoke',
          image: SMOKE_IMAGE,
          command: ['sh', '-c', SMOKE_SCRIPT],
          resources: { limits: { 'gpu.intel.com/i915': '1' } },
        },
      ],
    },
  }).validate();
});

test('the DaemonSet mounts, secures and configures the plugin as Intel’s reference does', {
  skip: skipWithout('intel-gpu-plugin.daemonset.yaml'),
}, () => {
  type Spec = { template: { spec: { containers: Record<string, unknown>[]; volumes: unknown[] } } };
  const reference = (parse(readFileSync(data('intel-gpu-plugin.daemonset.yaml'), 'utf8')) as { spec: Spec })
    .spec.template.spec;
  const ours = (pluginDaemonSet(settings) as unknown as { spec: Spec }).spec.template.spec;
  const [theirs, mine] = [reference.containers[0], ours.containers[0]] as Record<string, unknown>[];
  assert.deepEqual(mine?.volumeMounts, theirs?.volumeMounts);
  assert.deepEqual(mine?.securityContext, theirs?.securityContext);
  assert.deepEqual(mine?.env, theirs?.env);
  assert.deepEqual(ours.volumes, reference.volumes);
  // The pinned release's image, as Intel's DaemonSet at that tag names it (snapshots/upstream-pins.json).
  assert.equal(mine?.image, PINNED_IMAGE);
  assert.deepEqual(mine?.args, ['-shared-dev-num=1']);
});

test('the GpuDevicePlugin validates against Intel’s CRD schema, and a wrong one does not', {
  skip: skipWithout('intel-gpudeviceplugins.crd.yaml'),
}, () => {
  const crd = parseAllDocuments(readFileSync(data('intel-gpudeviceplugins.crd.yaml'), 'utf8'))
    .map((d) => d.toJS())
    .find((d) => d?.spec?.names?.kind === 'GpuDevicePlugin');
  const schema = crd.spec.versions.find((v: { name: string }) => v.name === 'v1').schema.openAPIV3Schema;
  const validate = new Ajv({ strict: false, allErrors: true }).compile(schema);
  for (const s of variants) assert.ok(validate(gpuDevicePlugin(s)), JSON.stringify(validate.errors));
  const wrong = gpuDevicePlugin(settings) as unknown as { spec: Record<string, unknown> };
  wrong.spec.preferredAllocationPolicy = 'random';
  assert.equal(validate(wrong), false);
});

test('the NodeFeatureRule asks for what Intel’s GPU rule asks for, Talos built-in modules included', {
  skip: skipWithout('intel-nfd-node-feature-rules.yaml'),
}, () => {
  const reference = parse(readFileSync(data('intel-nfd-node-feature-rules.yaml'), 'utf8')).spec.rules.find(
    (r: { name: string }) => r.name === 'intel.gpu',
  );
  const ours = (nodeFeatureRule() as unknown as { spec: { rules: Record<string, unknown>[] } }).spec.rules[0];
  assert.deepEqual(ours?.labels, reference.labels);
  assert.deepEqual(ours?.matchFeatures, reference.matchFeatures);
  assert.deepEqual(ours?.matchAny, reference.matchAny);
});

test('Helm values carry the same settings', () => {
  const values = parse(helmValues(variants[1] as typeof settings));
  assert.equal(values.sharedDevNum, 4);
  assert.equal(values.allocationPolicy, 'balanced');
  assert.deepEqual(values.image, { hub: 'intel', tag: GPU_PLUGIN.tag });
});
