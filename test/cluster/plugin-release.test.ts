// What the pinned plugin release (v0.36.0) takes beyond sharing: device-id allow/deny lists,
// by-path mounts and the monitoring resource, in all three modes. Every fact is checked against
// snapshots/gpu-plugin-v0.36.0.json (scripts/extract-gpu-crd.ts): the GpuDevicePlugin we write
// validates against the v0.36.0 CRD schema with every object closed (a field the release does
// not have fails), the DaemonSet's flags are the ones the operator makes of the same CR fields,
// and the Helm values are keys the pinned chart copies into those fields. The main-branch CRD in
// ../shared/data (94a91bc) is compared with the snapshot: we emit no field only main has.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import {
  deviceArgs,
  gpuDevicePlugin,
  helmValues,
  type Manifest,
  pluginDaemonSet,
} from '../../src/cluster/objects.ts';
import { KubernetesSchema, type KubernetesSettings } from '../../src/config/lab.ts';
import { ConfigError, parseLab } from '../../src/config/load.ts';
import {
  GPU_HELM_CHART,
  GPU_MONITORING_RESOURCE,
  GPU_PLUGIN,
  GPU_PLUGIN_BYPATH_MODES,
  GPU_PLUGIN_PCI_ID,
} from '../../src/knowledge/pins.ts';
import { K, reconcile } from '../../src/sim/kube/controllers.ts';
import { KubeStore } from '../../src/sim/kube/store.ts';

interface Snapshot {
  release: string;
  gpuDevicePlugin: {
    group: string;
    kind: string;
    version: string;
    specFields: string[];
    openAPIV3Schema: Schema;
  };
  plugin: {
    pciIdPattern: string;
    pciIdSeparator: string;
    vendor: string;
    flags: Record<
      'allowIds' | 'denyIds' | 'bypath' | 'enableMonitoring' | 'monitoringMode',
      { flag: string; default: string }
    >;
    bypathModes: string[];
    monitoringResource: string;
  };
  operator: { crFlags: Record<string, string>; webhookPciIdPattern: string };
  helmChart: { commit: string; valueToCrField: Record<string, string>; defaults: Record<string, unknown> };
}
type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: unknown;
  [k: string]: unknown;
};

const snapshot = JSON.parse(
  readFileSync(new URL('../../snapshots/gpu-plugin-v0.36.0.json', import.meta.url), 'utf8'),
) as Snapshot;

const data = (name: string) => fileURLToPath(new URL(`../../../shared/data/${name}`, import.meta.url));
const skipWithout = (name: string) =>
  existsSync(data(name)) ? false : `${data(name)} not found (see ../shared/data/README.md)`;

const settings = (plugin: Record<string, unknown> = {}) => KubernetesSchema.parse({ plugin });
const variants = [
  settings(),
  settings({ allowIds: ['0x4680', '0x46a6'], byPath: 'none', monitoring: true }),
  settings({ denyIds: ['0x56a0'], byPath: 'all', sharedDevNum: 3, allocationPolicy: 'packed' }),
  settings({ mode: 'operator', monitoring: true }),
];
const variant = (i: number) => variants[i] as KubernetesSettings;

/** A copy of a CRD schema with every object that lists its properties closed to others. */
function closed(schema: Schema): Schema {
  const out: Schema = { ...schema };
  if (schema.properties) {
    out.properties = Object.fromEntries(Object.entries(schema.properties).map(([k, v]) => [k, closed(v)]));
    if (schema.additionalProperties === undefined) out.additionalProperties = false;
  }
  if (schema.items) out.items = closed(schema.items);
  // metadata is an open object in a CRD (the API server's own schema checks it).
  return out;
}

/** Strict Ajv that knows the Kubernetes extensions and formats a CRD schema uses. */
function strictValidator(schema: Schema) {
  const ajv = new Ajv({ strict: true, allErrors: true });
  const extensions = new Set<string>();
  JSON.stringify(schema, (key, value) => {
    if (key.startsWith('x-kubernetes-')) extensions.add(key);
    return value;
  });
  for (const keyword of extensions) ajv.addKeyword(keyword);
  for (const format of ['int32', 'int64']) ajv.addFormat(format, true);
  return ajv.compile(closed(schema));
}

const validateV036 = strictValidator(snapshot.gpuDevicePlugin.openAPIV3Schema);
const specOf = (o: unknown) => (o as { spec: Record<string, unknown> }).spec;

test('the pins name the plugin’s own id form, by-path modes and monitoring resource at the pinned release', () => {
  assert.equal(snapshot.release, GPU_PLUGIN.release);
  assert.equal(GPU_PLUGIN_PCI_ID.source, snapshot.plugin.pciIdPattern);
  assert.equal(GPU_PLUGIN_PCI_ID.source, snapshot.operator.webhookPciIdPattern);
  assert.equal(snapshot.plugin.pciIdSeparator, ',');
  assert.deepEqual([...GPU_PLUGIN_BYPATH_MODES].sort(), [...snapshot.plugin.bypathModes].sort());
  // The first mode is ours and the plugin's default, so it is left out of the args.
  assert.equal(GPU_PLUGIN_BYPATH_MODES[0], snapshot.plugin.flags.bypath.default);
  assert.equal(GPU_MONITORING_RESOURCE, snapshot.plugin.monitoringResource);
  assert.equal(snapshot.plugin.flags.monitoringMode.default, 'single', 'one monitoring resource by default');
  assert.equal(snapshot.plugin.flags.enableMonitoring.default, 'false');
});

test('the DaemonSet’s flags are the plugin’s, and what the operator makes of the same CR fields', () => {
  const flags = snapshot.plugin.flags;
  assert.deepEqual(deviceArgs(variant(0)), []);
  assert.deepEqual(deviceArgs(variant(1)), [
    `-${flags.allowIds.flag}=0x4680,0x46a6`,
    `-${flags.bypath.flag}=none`,
    `-${flags.enableMonitoring.flag}`,
  ]);
  assert.deepEqual(deviceArgs(variant(2)), [`-${flags.denyIds.flag}=0x56a0`, `-${flags.bypath.flag}=all`]);
  const ds = pluginDaemonSet(variant(2)) as unknown as {
    spec: { template: { spec: { containers: { args: string[] }[] } } };
  };
  assert.deepEqual(ds.spec.template.spec.containers[0]?.args, [
    '-shared-dev-num=3',
    '-allocation-policy=packed',
    '-deny-ids=0x56a0',
    '-bypath=all',
  ]);
  // The operator (controller.go getPodArgs) turns each CR field into the flag we pass ourselves.
  const goField: Record<string, string> = {
    allowIDs: 'AllowIDs',
    denyIDs: 'DenyIDs',
    bypathMode: 'ByPathMode',
    enableMonitoring: 'EnableMonitoring',
  };
  for (const s of variants) {
    const spec = specOf(gpuDevicePlugin(s));
    const fromCr = Object.keys(goField)
      .filter((field) => spec[field] !== undefined)
      .map((field) => snapshot.operator.crFlags[goField[field] as string]);
    assert.deepEqual(
      fromCr,
      deviceArgs(s).map((arg) => arg.split('=')[0]),
    );
  }
});

test('the GpuDevicePlugin validates against the v0.36.0 CRD with every object closed, and a field it lacks fails', () => {
  for (const s of variants) {
    const cr = gpuDevicePlugin(s);
    assert.ok(validateV036(cr), JSON.stringify(validateV036.errors));
    for (const field of Object.keys(specOf(cr)))
      assert.ok(snapshot.gpuDevicePlugin.specFields.includes(field), field);
  }
  assert.deepEqual(specOf(gpuDevicePlugin(variant(1))), {
    image: `${GPU_PLUGIN.image}:${GPU_PLUGIN.tag}`,
    sharedDevNum: 1,
    preferredAllocationPolicy: 'none',
    nodeSelector: { 'intel.feature.node.kubernetes.io/gpu': 'true' },
    allowIDs: '0x4680,0x46a6',
    bypathMode: 'none',
    enableMonitoring: true,
  });
  const unknown = gpuDevicePlugin(variant(0));
  specOf(unknown).byPathMode = 'none'; // the Go name, not the JSON one
  assert.equal(validateV036(unknown), false);
  const badMode = gpuDevicePlugin(variant(0));
  specOf(badMode).bypathMode = 'some';
  assert.equal(validateV036(badMode), false);
  const badType = gpuDevicePlugin(variant(0));
  specOf(badType).allowIDs = ['0x4680'];
  assert.equal(validateV036(badType), false);
});

/** Spec fields of the main-branch CRD that v0.36.0 does not have. */
function mainOnly(main: Schema, release: string[]): string[] {
  return Object.keys(main.properties?.spec?.properties ?? {}).filter((f) => !release.includes(f));
}

test('no field that only Intel’s main branch has is written (../shared/data’s CRD is main at 94a91bc)', {
  skip: skipWithout('intel-gpudeviceplugins.crd.yaml'),
}, () => {
  const crd = parseAllDocuments(readFileSync(data('intel-gpudeviceplugins.crd.yaml'), 'utf8'))
    .map((d) => d.toJS())
    .find((d) => d?.spec?.names?.kind === 'GpuDevicePlugin');
  const main = crd.spec.versions.find((v: { name: string }) => v.name === 'v1').schema
    .openAPIV3Schema as Schema;
  const onlyMain = mainOnly(main, snapshot.gpuDevicePlugin.specFields);
  // At 94a91bc the CRD file is the same blob as at v0.36.0 (c5b1b89): nothing is main-only yet.
  assert.equal(onlyMain.join(', '), '', 'fields only main has');
  for (const s of variants) {
    const emitted = Object.keys(specOf(gpuDevicePlugin(s)));
    assert.deepEqual(
      emitted.filter((f) => onlyMain.includes(f)),
      [],
    );
  }
  // The check does find a field main would add.
  const later = structuredClone(main);
  (later.properties?.spec?.properties as Record<string, Schema>).draMode = { type: 'boolean' };
  assert.deepEqual(mainOnly(later, snapshot.gpuDevicePlugin.specFields), ['draMode']);
});

test('Helm values: keys the pinned chart copies into the same CR fields, monitoring off said out loud', () => {
  assert.equal(snapshot.helmChart.commit.slice(0, 7), '110e39e');
  for (const s of variants) {
    const values = parse(helmValues(s)) as Record<string, unknown>;
    for (const key of Object.keys(values))
      assert.ok((GPU_HELM_CHART.valueKeys as readonly string[]).includes(key), key);
    // The chart's own default is monitoring on: we always say what the lab says.
    assert.equal(snapshot.helmChart.defaults.enableMonitoring, true);
    assert.equal(values.enableMonitoring, s.plugin.monitoring);
    // Each value lands in the CR field the operator mode writes directly, with the same value.
    const spec = specOf(gpuDevicePlugin(s));
    for (const key of ['allowIDs', 'denyIDs', 'bypathMode', 'enableMonitoring']) {
      assert.equal(snapshot.helmChart.valueToCrField[key], key);
      if (spec[key] !== undefined) assert.equal(values[key], spec[key], key);
    }
    assert.equal(values.bypathMode, s.plugin.byPath);
  }
  const values = parse(helmValues(variant(1)));
  assert.equal(values.allowIDs, '0x4680,0x46a6');
  assert.equal(values.denyIDs, undefined);
});

const LAB = (plugin: string) => `proxmox:
  url: https://pve1.lan:8006
  token: igpu-split@pve!lab
  tokenSecretFile: /root/token
hosts:
  - node: pve1
kubernetes:
  plugin:
${plugin}
`;

function problems(text: string): string[] {
  try {
    parseLab(text, 'lab.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

test('a device id the plugin would refuse is one line naming the key; both lists together are refused', () => {
  for (const bad of ['0x4680', '4680']) {
    assert.deepEqual(problems(LAB(`    allowIds: [${bad}]`)), [
      "lab.yaml:9:16: kubernetes.plugin.allowIds[0]: must be a quoted PCI device id such as '0x4680' (YAML reads 0x4680 unquoted as a number)",
    ]);
  }
  for (const bad of ["'4680'", "'0X4680'", "'0x46A6'", "'0x468'", "'0x46800'", "'0x4680 '", "''"]) {
    const found = problems(LAB(`    allowIds: [${bad}]`));
    assert.equal(found.length, 1, bad);
    assert.match(
      found[0] as string,
      /^lab\.yaml:9:\d+: kubernetes\.plugin\.allowIds\[0\]: must be a PCI device id as the plugin reads it from sysfs: 0x and 4 lower-case hex digits, e\.g\. 0x4680$/,
      bad,
    );
    assert.doesNotMatch(found[0] as string, /\n/);
    // What we refuse, the plugin refuses too (and the reverse).
    assert.equal(new RegExp(snapshot.plugin.pciIdPattern).test(bad.slice(1, -1)), false, bad);
  }
  assert.deepEqual(problems(LAB("    allowIds: ['0x4680']\n    denyIds: ['0x46a6']")), [
    'lab.yaml:10:14: kubernetes.plugin.denyIds: give allowIds or denyIds, not both (the plugin refuses the two together)',
  ]);
  assert.match(
    problems(LAB('    byPath: some'))[0] as string,
    /kubernetes\.plugin\.byPath: must be one of: single, none, all$/,
  );
  assert.match(problems(LAB('    monitoring: yes please'))[0] as string, /kubernetes\.plugin\.monitoring/);
  const lab = parseLab(LAB("    allowIds: ['0x4680', '0xa7a0']\n    byPath: all"), 'lab.yaml');
  assert.deepEqual(lab.kubernetes.plugin.allowIds, ['0x4680', '0xa7a0']);
  assert.equal(lab.kubernetes.plugin.byPath, 'all');
  assert.equal(lab.kubernetes.plugin.monitoring, false);
});

/** The simulated cluster after its controllers ran on one object: each node's allocatable. */
function simulate(object: Manifest, gpus: Record<string, number>): Record<string, Record<string, string>> {
  const store = new KubeStore();
  for (const name of Object.keys(gpus))
    store.update(K.Node, {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        labels: { 'kubernetes.io/arch': 'amd64', 'intel.feature.node.kubernetes.io/gpu': 'true' },
      },
      status: { allocatable: { pods: '110' }, capacity: { pods: '110' } },
    });
  store.update(K.CRD, {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'gpudeviceplugins.deviceplugin.intel.com' },
  });
  store.update(object.kind === 'DaemonSet' ? K.DaemonSet : K.GpuDevicePlugin, object as never);
  reconcile(store, { defaultPodSecurity: 'privileged', gpus, vainfo: false });
  return Object.fromEntries(
    store
      .list(K.Node)
      .map((n) => [n.metadata.name, (n.status as { allocatable: Record<string, string> }).allocatable]),
  );
}

test('the simulated plugin advertises one monitoring resource per GPU node when asked, as the plugin does', () => {
  const on = settings({ monitoring: true, sharedDevNum: 4 });
  for (const object of [pluginDaemonSet(on), gpuDevicePlugin(on)]) {
    const nodes = simulate(object, { 'k3s-1': 1, 'cp-1': 0 });
    // One device "all", not one per share; none where no GPU was found.
    assert.deepEqual(
      nodes['k3s-1'],
      { pods: '110', 'gpu.intel.com/i915': '4', [GPU_MONITORING_RESOURCE]: '1' },
      object.kind,
    );
    assert.deepEqual(nodes['cp-1'], { pods: '110' }, object.kind);
  }
  assert.deepEqual(simulate(pluginDaemonSet(settings()), { 'k3s-1': 1 })['k3s-1'], {
    pods: '110',
    'gpu.intel.com/i915': '1',
  });
  // Split mode (which igpu-split never writes) has no combined resource; false is off.
  const split = pluginDaemonSet(on) as unknown as {
    spec: { template: { spec: { containers: { args: string[] }[] } } };
  };
  const container = split.spec.template.spec.containers[0] as { args: string[] };
  container.args = [...container.args, '-monitoring-mode=split'];
  assert.equal(
    simulate(split as unknown as Manifest, { 'k3s-1': 1 })['k3s-1']?.[GPU_MONITORING_RESOURCE],
    undefined,
  );
  container.args = ['-enable-monitoring=false'];
  assert.equal(
    simulate(split as unknown as Manifest, { 'k3s-1': 1 })['k3s-1']?.[GPU_MONITORING_RESOURCE],
    undefined,
  );
});
