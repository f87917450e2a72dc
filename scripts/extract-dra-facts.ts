// Writes snapshots/dra-facts.json: the upstream facts behind DRA mode (src/knowledge/dra.ts)
// read from git copies of the upstream repositories (the project's `fetch` tool, or
// `git clone --mirror`):
//   - Intel's GPU DRA driver at its release tag: the Helm chart (name, version, image
//     repository, name and tag, the value keys), the kustomize base's names (namespace,
//     DeviceClass, DaemonSet, ServiceAccount) and the driver name the kubelet plugin uses;
//   - Kubernetes' API: the namespace label that allows adminAccess (k8s.io/api);
//   - Talos: in which release the base CRI configuration turns CDI on.
//
//   node scripts/extract-dra-facts.ts [--mirrors /work/.mirror] [--out snapshots/dra-facts.json]
//
// Each mirror is <mirrors>/<owner>+<name>/repo. Every fact names its file by repository,
// path, commit and blob. A file that no longer says what is looked for stops the script.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { type GitSource, refuse } from './snapshot-sources.ts';

const { values } = parseArgs({
  options: {
    mirrors: { type: 'string', default: '/work/.mirror' },
    out: { type: 'string', default: 'snapshots/dra-facts.json' },
    release: { type: 'string', default: 'gpu-v0.11.0' },
    'kubernetes-api': { type: 'string', default: 'v0.34.1' },
  },
});

const sources: GitSource[] = [];

function git(repository: string, args: string[]): string {
  const dir = join(values.mirrors as string, repository.replace('/', '+'), 'repo');
  try {
    return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const said = String((error as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')[0];
    refuse(`cannot read ${repository} (git ${args.join(' ')}) in ${dir}: ${said || 'git failed'}`);
  }
}

/** A file's text at a tag, recorded as a source; undefined when the tag has no such file. */
function read(repository: string, tag: string, path: string, optional = false): string | undefined {
  const commit = git(repository, ['rev-parse', `${tag}^{commit}`]).trim();
  const listed = git(repository, ['ls-tree', commit, path]).trim();
  if (!listed) {
    if (optional) return undefined;
    refuse(`${repository}@${tag} has no ${path}`);
  }
  const blob = git(repository, ['rev-parse', `${commit}:${path}`]).trim();
  sources.push({ repository, path, commit, blob, tag });
  return git(repository, ['cat-file', 'blob', blob]);
}

function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null || value === '') refuse(`not found: ${what}`);
  return value;
}

const INTEL = 'intel/intel-resource-drivers-for-kubernetes';

function intelDriver(release: string) {
  const chart = parse(read(INTEL, release, 'charts/intel-gpu-resource-driver/Chart.yaml') as string);
  const chartValues = parse(read(INTEL, release, 'charts/intel-gpu-resource-driver/values.yaml') as string);
  const image = must(chartValues.image as Record<string, string>, 'values image');
  const kubeletPlugin = must(chartValues.kubeletPlugin as Record<string, unknown>, 'values kubeletPlugin');
  const base = ['device-class.yaml', 'namespace.yaml', 'resource-driver.yaml'].flatMap((file) =>
    parseAllDocuments(read(INTEL, release, `deployments/gpu/base/${file}`) as string)
      .map((doc) => doc.toJS() as { kind?: string; metadata?: { name?: string }; spec?: unknown })
      .filter((doc) => doc?.kind),
  );
  const named = (kind: string) =>
    base.filter((d) => d.kind === kind).map((d) => must(d.metadata?.name, kind));
  const daemonSet = must(
    base.find((d) => d.kind === 'DaemonSet'),
    'the base DaemonSet',
  ) as { spec: { template: { spec: { containers: { image: string }[] } } } };
  const device = read(INTEL, release, 'pkg/gpu/device/device.go') as string;
  const cdiClass = must(/CDIGPUClass\s*=\s*"([^"]+)"/.exec(device)?.[1], 'CDIGPUClass');
  const cdiVendor = must(/CDIVendor\s*=\s*"([^"]+)"/.exec(device)?.[1], 'CDIVendor');
  return {
    release,
    chart: {
      name: must(chart.name as string, 'chart name'),
      version: must(chart.version as string, 'chart version'),
      appVersion: must(chart.appVersion as string, 'chart appVersion'),
      image: { repository: image.repository, name: image.name, tag: image.tag },
      valueKeys: Object.keys(chartValues).sort(),
      kubeletPluginKeys: Object.keys(kubeletPlugin).sort(),
    },
    base: {
      namespaces: named('Namespace'),
      deviceClasses: named('DeviceClass'),
      daemonSets: named('DaemonSet'),
      serviceAccounts: named('ServiceAccount'),
      clusterRoles: named('ClusterRole'),
      clusterRoleBindings: named('ClusterRoleBinding'),
      validatingAdmissionPolicies: named('ValidatingAdmissionPolicy'),
      validatingAdmissionPolicyBindings: named('ValidatingAdmissionPolicyBinding'),
      image: must(daemonSet.spec.template.spec.containers[0]?.image, 'the base image'),
    },
    // device.go: DriverName = CDIGPUClass + "." + CDIVendor
    driverName: `${cdiClass}.${cdiVendor}`,
  };
}

function kubernetesApi(tag: string) {
  const types = read('kubernetes/api', tag, 'resource/v1/types.go') as string;
  return {
    tag,
    adminNamespaceLabel: must(
      /DRAAdminNamespaceLabelKey\s*=\s*"([^"]+)"/.exec(types)?.[1],
      'DRAAdminNamespaceLabelKey',
    ),
  };
}

/** The Talos releases whose base CRI configuration (hack/cri-plugin.part) sets enable_cdi = true. */
function talosCdi(tags: string[]) {
  return Object.fromEntries(
    tags.map((tag) => {
      const part = read('siderolabs/talos', tag, 'hack/cri-plugin.part', true) ?? '';
      return [tag, /^\s*enable_cdi\s*=\s*true\s*$/m.test(part)];
    }),
  );
}

/** The Kubernetes release each Talos release installs by default (DefaultKubernetesVersion). */
function talosKubernetes(tags: string[]) {
  return Object.fromEntries(
    tags.map((tag) => {
      const constants = read('siderolabs/talos', tag, 'pkg/machinery/constants/constants.go') as string;
      return [
        tag,
        must(/DefaultKubernetesVersion = "([^"]+)"/.exec(constants)?.[1], `${tag} DefaultKubernetesVersion`),
      ];
    }),
  );
}

function main() {
  const snapshot = {
    sources,
    producedBy: 'scripts/extract-dra-facts.ts',
    intelDriver: intelDriver(values.release as string),
    kubernetes: kubernetesApi(values['kubernetes-api'] as string),
    talosCriEnablesCdi: talosCdi(['v1.10.9', 'v1.11.6', 'v1.12.11', 'v1.13.9', 'v1.14.0-rc.1']),
    talosDefaultKubernetes: talosKubernetes(['v1.10.9', 'v1.11.6']),
  };
  writeFileSync(values.out as string, `${JSON.stringify(snapshot, null, 2)}\n`);
  console.log(`${values.out}: ${sources.length} upstream files, Intel driver ${values.release}`);
}

main();
