// Every pin in src/knowledge/pins.ts against the upstream facts: the release tags and
// reference objects in ../shared/data (skipped, saying so, when that folder is absent) and
// snapshots/upstream-pins.json (always there). A pin naming a release that does not exist
// fails here, and so the build.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { gpuDevicePlugin, helmValues, nodeFeatureRule } from '../../src/cluster/objects.ts';
import { KubernetesSchema } from '../../src/config/lab.ts';
import {
  CERT_MANAGER_CERTIFICATE,
  GPU_HELM_CHART,
  GPU_NODE_LABEL,
  GPU_OPERATOR,
  GPU_PLUGIN,
  GPU_RESOURCE,
  NFD_RULE,
  SMOKE_IMAGE,
  TALOS_EXTENSION_LABEL_PREFIX,
  TALOS_EXTENSIONS,
  TALOS_I915_EXTENSION_SINCE,
  TALOS_IMAGE_FACTORY,
  TALOS_INSTALLER_IMAGE,
  TALOS_NEWEST_PATCH,
} from '../../src/knowledge/pins.ts';

const shared = (name: string) => fileURLToPath(new URL(`../../../shared/data/${name}`, import.meta.url));
const needs = (name: string) =>
  existsSync(shared(name)) ? false : `${shared(name)} not found (see ../shared/data/README.md)`;

interface UpstreamPins {
  intelDevicePlugins: {
    release: string;
    gpuPluginImage: string;
    resource: string;
    certManagerCertificate: { apiVersion: string; kind: string };
    nodeFeatureRule: { apiVersion: string; kind: string; labels: string[] };
  };
  helmChart: { name: string; version: string; valueKeys: string[]; imageKeys: string[] };
  talos: {
    releases: { tag: string; date: string }[];
    i915ExtensionSince: string;
    imageFactory: string;
    installerImage: string;
    extensions: Record<'i915' | 'intelUcode' | 'qemuGuestAgent', string>;
    extensionLabelPrefix: string;
  };
  busybox: { tags: string[] };
}

const upstream = JSON.parse(
  readFileSync(new URL('../../snapshots/upstream-pins.json', import.meta.url), 'utf8'),
) as UpstreamPins;

const defaults = { kubernetes: KubernetesSchema.parse({}) };

test('the plugin pin is the newest release of Intel’s device plugins, tagged as Intel’s DaemonSet pins it', {
  skip: needs('intel-device-plugins-release-tags.tsv'),
}, () => {
  const tags = readFileSync(shared('intel-device-plugins-release-tags.tsv'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split('\t')[0] as string);
  assert.ok(
    tags.includes(GPU_PLUGIN.release),
    `${GPU_PLUGIN.release} is not a release (tags: ${tags.join(', ')})`,
  );
  const newest = tags
    .filter((t) => /^v\d+\.\d+\.\d+$/.test(t))
    .sort(byVersion)
    .at(-1);
  assert.equal(GPU_PLUGIN.release, newest);
  assert.equal(GPU_PLUGIN.tag, GPU_PLUGIN.release.replace(/^v/, ''));
});

test('the plugin image and resource are what Intel ships at the pinned release', () => {
  assert.equal(upstream.intelDevicePlugins.release, GPU_PLUGIN.release);
  assert.equal(upstream.intelDevicePlugins.gpuPluginImage, `${GPU_PLUGIN.image}:${GPU_PLUGIN.tag}`);
  assert.equal(upstream.intelDevicePlugins.resource, GPU_RESOURCE);
  // The lab file's defaults are the pins, not copies of them.
  assert.equal(defaults.kubernetes.plugin.image, GPU_PLUGIN.image);
  assert.equal(defaults.kubernetes.plugin.version, GPU_PLUGIN.tag);
  assert.deepEqual(defaults.kubernetes.plugin.nodeSelector, { [GPU_NODE_LABEL]: 'true' });
  assert.equal(defaults.kubernetes.smokeImage, SMOKE_IMAGE);
});

test('the operator API is the one in Intel’s GpuDevicePlugin CRD', {
  skip: needs('intel-gpudeviceplugins.crd.yaml'),
}, () => {
  const crd = parse(readFileSync(shared('intel-gpudeviceplugins.crd.yaml'), 'utf8')) as {
    spec: {
      group: string;
      names: { kind: string; plural: string };
      versions: { name: string; served: boolean }[];
    };
  };
  assert.equal(crd.spec.group, GPU_OPERATOR.group);
  assert.equal(crd.spec.names.kind, GPU_OPERATOR.kind);
  assert.equal(crd.spec.names.plural, GPU_OPERATOR.plural);
  assert.ok(crd.spec.versions.some((v) => v.name === GPU_OPERATOR.version && v.served));
  assert.equal(gpuDevicePlugin(defaults.kubernetes).apiVersion, `${crd.spec.group}/${GPU_OPERATOR.version}`);
});

test('the NFD rule API and the GPU label are the ones Intel’s rules use', {
  skip: needs('intel-nfd-node-feature-rules.yaml'),
}, () => {
  const text = readFileSync(shared('intel-nfd-node-feature-rules.yaml'), 'utf8');
  const rule = parseAllDocuments(text)[0]?.toJS() as { apiVersion: string; kind: string };
  assert.equal(rule.apiVersion, `${NFD_RULE.group}/${NFD_RULE.version}`);
  assert.equal(rule.kind, NFD_RULE.kind);
  assert.ok(text.includes(`"${GPU_NODE_LABEL}"`), `${GPU_NODE_LABEL} is not a label Intel's rules set`);
  assert.equal(nodeFeatureRule().apiVersion, rule.apiVersion);
  assert.deepEqual(upstream.intelDevicePlugins.nodeFeatureRule.apiVersion, rule.apiVersion);
  assert.ok(upstream.intelDevicePlugins.nodeFeatureRule.labels.includes(GPU_NODE_LABEL));
});

test('cert-manager’s Certificate is the kind Intel’s operator asks for', () => {
  const { apiVersion, kind } = upstream.intelDevicePlugins.certManagerCertificate;
  assert.equal(apiVersion.split('/')[0], CERT_MANAGER_CERTIFICATE.group);
  assert.equal(kind, CERT_MANAGER_CERTIFICATE.kind);
});

test('the Helm chart pin follows the plugin release and every value we write is one the chart takes', () => {
  assert.equal(GPU_HELM_CHART.name, upstream.helmChart.name);
  assert.equal(GPU_HELM_CHART.version, upstream.helmChart.version);
  assert.equal(GPU_HELM_CHART.version, GPU_PLUGIN.tag);
  for (const key of GPU_HELM_CHART.valueKeys) assert.ok(upstream.helmChart.valueKeys.includes(key), key);
  // Every key is written by some lab file (the id lists only when given), and none other.
  const all = KubernetesSchema.parse({ plugin: { allowIds: ['0x4680'] } });
  const written = parse(helmValues(defaults.kubernetes)) as Record<string, unknown>;
  const keys = new Set([
    ...Object.keys(written),
    ...Object.keys(parse(helmValues(all)) as object),
    ...Object.keys(parse(helmValues(KubernetesSchema.parse({ plugin: { denyIds: ['0x4680'] } }))) as object),
  ]);
  assert.deepEqual([...keys].sort(), [...GPU_HELM_CHART.valueKeys].sort());
  assert.deepEqual(Object.keys(written.image as object).sort(), upstream.helmChart.imageKeys);
});

test('the smoke image is a tag Docker’s official busybox publishes, not one marked unstable', () => {
  const [name, tag] = SMOKE_IMAGE.split(':');
  assert.equal(name, 'busybox');
  assert.ok(upstream.busybox.tags.includes(tag as string), `busybox:${tag} is not published`);
  const unstable = upstream.busybox.tags.indexOf('unstable');
  const series = upstream.busybox.tags.slice(Math.max(0, unstable - 3), unstable);
  assert.ok(!series.includes(tag as string), `busybox:${tag} is the unstable series`);
});

test('Talos extension names, the Image Factory and the first extension release are Sidero’s', () => {
  assert.equal(TALOS_EXTENSIONS.i915, `siderolabs/${upstream.talos.extensions.i915}`);
  assert.equal(TALOS_EXTENSIONS.intelUcode, `siderolabs/${upstream.talos.extensions.intelUcode}`);
  assert.equal(TALOS_EXTENSIONS.qemuGuestAgent, `siderolabs/${upstream.talos.extensions.qemuGuestAgent}`);
  assert.equal(TALOS_I915_EXTENSION_SINCE.join('.'), upstream.talos.i915ExtensionSince);
  assert.equal(TALOS_IMAGE_FACTORY, upstream.talos.imageFactory);
  assert.equal(TALOS_INSTALLER_IMAGE, upstream.talos.installerImage);
});

test('the node label a Talos extension shows up as is the one Talos sets (K8sExtensionPrefix + its name)', () => {
  assert.equal(TALOS_EXTENSION_LABEL_PREFIX, upstream.talos.extensionLabelPrefix);
  // The names the labels carry are the extensions' manifest names, which the snapshot also holds.
  assert.equal(
    `${TALOS_EXTENSION_LABEL_PREFIX}${upstream.talos.extensions.i915}`,
    'extensions.talos.dev/i915',
  );
});

test('the newest patch of each Talos minor is the one the tags show', () => {
  const newest: Record<string, string> = {};
  for (const { tag } of upstream.talos.releases) {
    const minor = tag.slice(1).split('.').slice(0, 2).join('.');
    if (!newest[minor] || byVersion(tag, newest[minor]) > 0) newest[minor] = tag;
  }
  for (const [minor, tag] of Object.entries(TALOS_NEWEST_PATCH)) assert.equal(tag, newest[minor], minor);
  const [major, since] = TALOS_I915_EXTENSION_SINCE;
  const expected = Object.keys(newest).filter((m) => {
    const [a, b] = m.split('.').map(Number) as [number, number];
    return a > major || (a === major && b >= since);
  });
  assert.deepEqual(Object.keys(TALOS_NEWEST_PATCH).sort(), expected.sort());
});

test('every Talos config schema in ../shared/data belongs to a release the tags know', {
  skip: needs('talos-v1.10.9-config.schema.json'),
}, () => {
  const tags = new Set(upstream.talos.releases.map((r) => r.tag));
  for (const version of ['v1.10.9', 'v1.11.6', 'v1.12.11', 'v1.13.9']) assert.ok(tags.has(version), version);
});

function byVersion(a: string, b: string): number {
  const [x, y] = [a, b].map((t) => t.replace(/^v/, '').split('.').map(Number)) as [number[], number[]];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}
