// Every value of src/knowledge/dra.ts against the upstream facts: snapshots/dra-facts.json
// (scripts/extract-dra-facts.ts, always there) and ../shared/data (Intel's kustomize base at
// gpu-v0.11.0 and the driver's release tags; skipped, saying so, when that folder is absent).

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import test from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { draHelmValues } from '../../src/cluster/dra-objects.ts';
import { KubernetesSchema } from '../../src/config/lab.ts';
import {
  CDI,
  DRA_ADMIN_NAMESPACE_LABEL,
  DRA_DRIVER,
  DRA_HELM_CHART,
  DRA_RELEASES,
  DRA_SINCE,
} from '../../src/knowledge/dra.ts';

const shared = (name: string) => fileURLToPath(new URL(`../../../shared/data/${name}`, import.meta.url));
const needs = (name: string) =>
  existsSync(shared(name)) ? false : `${shared(name)} not found (see ../shared/data/README.md)`;

interface DraFacts {
  sources: { repository: string; path: string; commit: string; blob: string; tag?: string }[];
  intelDriver: {
    release: string;
    chart: {
      name: string;
      version: string;
      appVersion: string;
      image: { repository: string; name: string; tag: string };
      valueKeys: string[];
      kubeletPluginKeys: string[];
    };
    base: Record<string, string[]> & { image: string };
    driverName: string;
  };
  kubernetes: { tag: string; adminNamespaceLabel: string };
  talosCriEnablesCdi: Record<string, boolean>;
  talosDefaultKubernetes: Record<string, string>;
}

const facts = JSON.parse(
  readFileSync(new URL('../../snapshots/dra-facts.json', import.meta.url), 'utf8'),
) as DraFacts;
const BASE = 'intel-gpu-resource-driver-gpu-v0.11.0';

test('the driver pin is the newest GPU release of Intel’s resource drivers', {
  skip: needs('intel-resource-drivers-gpu-release-tags.tsv'),
}, () => {
  const tags = readFileSync(shared('intel-resource-drivers-gpu-release-tags.tsv'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => line.split('\t')[0] as string)
    .filter((tag) => /^gpu-v\d+\.\d+\.\d+$/.test(tag));
  const newest = tags
    .sort((a, b) => {
      const [x, y] = [a, b].map((t) => t.slice(5).split('.').map(Number)) as [number[], number[]];
      return (
        (x[0] as number) - (y[0] as number) ||
        (x[1] as number) - (y[1] as number) ||
        (x[2] as number) - (y[2] as number)
      );
    })
    .at(-1);
  assert.equal(DRA_DRIVER.release, newest);
  assert.equal(facts.intelDriver.release, DRA_DRIVER.release, 'the snapshot was read at the pinned tag');
});

test('the image is the one Intel’s chart names at that tag, never the base’s :latest', () => {
  const { chart } = facts.intelDriver;
  assert.equal(DRA_DRIVER.image, `${chart.image.repository}/${chart.image.name}`);
  assert.equal(DRA_DRIVER.tag, chart.image.tag);
  assert.equal(DRA_HELM_CHART.name, chart.name);
  assert.equal(DRA_HELM_CHART.version, chart.version);
  assert.equal(`v${DRA_HELM_CHART.version}`, chart.appVersion);
  assert.match(facts.intelDriver.base.image, /:latest$/, 'the base pins :latest: the reason igpu-split pins');
  assert.equal(facts.intelDriver.base.image.replace(/:latest$/, ''), DRA_DRIVER.image);
  const defaults = KubernetesSchema.parse({ allocator: 'dra' });
  assert.equal(`${defaults.dra.image}:${defaults.dra.version}`, `${DRA_DRIVER.image}:${DRA_DRIVER.tag}`);
});

test('every value written for the chart is a key of its values.yaml', () => {
  const { chart } = facts.intelDriver;
  for (const key of DRA_HELM_CHART.valueKeys) assert.ok(chart.valueKeys.includes(key), key);
  for (const key of DRA_HELM_CHART.kubeletPluginKeys) assert.ok(chart.kubeletPluginKeys.includes(key), key);
  const values = parseAllDocuments(draHelmValues(KubernetesSchema.parse({ allocator: 'dra' })))[0]?.toJS();
  assert.deepEqual(Object.keys(values).sort(), [...DRA_HELM_CHART.valueKeys].sort());
  assert.deepEqual(Object.keys(values.kubeletPlugin).sort(), [...DRA_HELM_CHART.kubeletPluginKeys].sort());
  assert.deepEqual(values.image, { ...facts.intelDriver.chart.image });
});

test('the names igpu-split uses are the base’s, in the snapshot and in ../shared/data', {
  skip: needs(BASE),
}, () => {
  const { base, driverName } = facts.intelDriver;
  assert.equal(DRA_DRIVER.driverName, driverName);
  assert.deepEqual(base.namespaces, [DRA_DRIVER.namespace]);
  assert.ok(base.deviceClasses?.includes(DRA_DRIVER.deviceClass));
  assert.deepEqual(base.daemonSets, [DRA_DRIVER.daemonSet]);
  assert.deepEqual(base.serviceAccounts, [DRA_DRIVER.serviceAccount]);
  assert.deepEqual(base.clusterRoles, [DRA_DRIVER.clusterRole]);
  assert.deepEqual(base.clusterRoleBindings, [DRA_DRIVER.clusterRoleBinding]);
  assert.deepEqual(base.validatingAdmissionPolicies, [DRA_DRIVER.admissionPolicy]);
  // The copy in ../shared/data is the same base.
  const names = ['device-class.yaml', 'namespace.yaml', 'resource-driver.yaml'].flatMap((file) =>
    parseAllDocuments(readFileSync(shared(`${BASE}/${file}`), 'utf8'))
      .map((doc) => doc.toJS())
      .filter(Boolean)
      .map((o: { kind: string; metadata: { name: string } }) => `${o.kind}/${o.metadata.name}`),
  );
  for (const name of [
    `Namespace/${DRA_DRIVER.namespace}`,
    `DeviceClass/${DRA_DRIVER.deviceClass}`,
    `DaemonSet/${DRA_DRIVER.daemonSet}`,
    `ServiceAccount/${DRA_DRIVER.serviceAccount}`,
  ])
    assert.ok(names.includes(name), name);
});

test('the adminAccess namespace label is Kubernetes’ own', () => {
  assert.equal(facts.kubernetes.tag, 'v0.34.1');
  assert.equal(DRA_ADMIN_NAMESPACE_LABEL, facts.kubernetes.adminNamespaceLabel);
});

test('Talos turns CDI on from the release the snapshot shows, not before', () => {
  const on = Object.entries(facts.talosCriEnablesCdi)
    .filter(([, enabled]) => enabled)
    .map(([tag]) => tag.slice(1).split('.').map(Number) as [number, number, number]);
  const first = on.sort((a, b) => a[0] - b[0] || a[1] - b[1])[0];
  assert.deepEqual(first?.slice(0, 2), [...CDI.talosOnSince]);
  assert.equal(facts.talosCriEnablesCdi['v1.12.11'], false);
});

test('every fact names its file by commit and blob', () => {
  assert.ok(facts.sources.length >= 8);
  for (const source of facts.sources) {
    assert.match(source.commit, /^[0-9a-f]{40}$/);
    assert.match(source.blob, /^[0-9a-f]{40}$/);
  }
});

test('the releases the version refusal names: Talos 1.11 defaults to Kubernetes 1.34, 1.10 to an older one', () => {
  const defaults = facts.talosDefaultKubernetes;
  assert.ok(DRA_RELEASES.talosChecked.startsWith(`${DRA_RELEASES.talos}.`));
  assert.equal(defaults[DRA_RELEASES.talosChecked], DRA_RELEASES.talosKubernetes);
  assert.match(DRA_RELEASES.talosKubernetes, new RegExp(`^${DRA_SINCE.join('\\.')}\\.`));
  assert.ok(
    !(defaults['v1.10.9'] ?? '').startsWith(DRA_SINCE.join('.')),
    'Talos 1.10 ships an older Kubernetes',
  );
  assert.match(DRA_RELEASES.k3s, new RegExp(`^v${DRA_SINCE.join('\\.')}\\.x\\+k3s1$`));
});
