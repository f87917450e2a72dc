// Writes snapshots/upstream-pins.json: the upstream facts behind the pins in
// src/knowledge/pins.ts that ../shared/data does not cover, read from git copies of the
// upstream repositories (the project's `fetch` tool, or `git clone --mirror`).
//
//   node scripts/extract-upstream-pins.ts [--mirrors /work/.mirror] [--out snapshots/upstream-pins.json]
//
// Each mirror is <mirrors>/<owner>+<name>/repo. Every fact names the file it came from by
// repository, path, commit and git blob; tag lists name the commit they were read at.
// A file that is missing or no longer says what is looked for stops the script with one line.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { refuse } from './snapshot-sources.ts';

const { values } = parseArgs({
  options: {
    mirrors: { type: 'string', default: '/work/.mirror' },
    out: { type: 'string', default: 'snapshots/upstream-pins.json' },
    'plugins-release': { type: 'string' },
  },
});

/** A file read (path and blob), or a repository's tag list read at a commit (`refs: 'tags'`). */
type Source =
  | { repository: string; path: string; commit: string; blob: string; tag?: string }
  | { repository: string; refs: 'tags'; commit: string };

const sources: Source[] = [];

function git(repository: string, args: string[]): string {
  const dir = join(values.mirrors as string, repository.replace('/', '+'), 'repo');
  try {
    return execFileSync('git', ['-C', dir, ...args], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const said = String((error as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')[0];
    refuse(`cannot read ${repository} (git ${args.join(' ')}) in ${dir}: ${said || 'git failed'}`);
  }
}

/** A file's text at a ref, recorded as a source with its commit and blob. */
function read(repository: string, ref: string, path: string): string {
  const commit = git(repository, ['rev-parse', `${ref}^{commit}`]).trim();
  const blob = git(repository, ['rev-parse', `${commit}:${path}`]).trim();
  sources.push({ repository, path, commit, blob, ...(ref === commit || ref === 'HEAD' ? {} : { tag: ref }) });
  return git(repository, ['cat-file', 'blob', blob]);
}

function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null || value === '') refuse(`not found: ${what}`);
  return value;
}

function tagsWithDates(repository: string, pattern: RegExp): { tag: string; date: string }[] {
  sources.push({ repository, refs: 'tags', commit: git(repository, ['rev-parse', 'HEAD^{commit}']).trim() });
  const lines = git(repository, [
    'for-each-ref',
    '--format=%(refname:short) %(creatordate:short)',
    'refs/tags',
  ]).split('\n');
  return lines
    .map((line) => line.split(' '))
    .filter(([tag]) => tag !== undefined && pattern.test(tag))
    .map(([tag, date]) => ({ tag: tag as string, date: must(date, `date of ${tag}`) }));
}

const semver = (tag: string) => tag.replace(/^v/, '').split('.').map(Number);
const byVersion = (a: string, b: string) => {
  const [x, y] = [semver(a), semver(b)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
};

function main(): void {
  // Intel's device plugins: the release, its image tag and the objects the project writes.
  const PLUGINS = 'intel/intel-device-plugins-for-kubernetes';
  const releases = tagsWithDates(PLUGINS, /^v\d+\.\d+\.\d+$/).map((r) => r.tag);
  const release =
    (values['plugins-release'] as string | undefined) ??
    must(releases.sort(byVersion).at(-1), 'a release tag');
  const daemonSet = read(PLUGINS, release, 'deployments/gpu_plugin/base/intel-gpu-plugin.yaml');
  const image = must(
    /^\s*image:\s*(\S+)\s*$/m.exec(daemonSet)?.[1],
    `image: in the GPU plugin DaemonSet at ${release}`,
  );
  const pluginSource = read(PLUGINS, release, 'cmd/gpu_plugin/gpu_plugin.go');
  const resourceNamespace = must(
    /\bnamespace\s*=\s*"([^"]+)"/.exec(pluginSource)?.[1],
    'namespace = "…" in gpu_plugin.go',
  );
  const deviceType = must(
    /\bdeviceTypeI915\s*=\s*"([^"]+)"/.exec(pluginSource)?.[1],
    'deviceTypeI915 in gpu_plugin.go',
  );
  const crd = parse(
    read(PLUGINS, release, 'deployments/operator/crd/bases/deviceplugin.intel.com_gpudeviceplugins.yaml'),
  ) as {
    spec?: { group?: string; names?: { kind?: string; plural?: string }; versions?: { name?: string }[] };
  };

  const certificate = parseAllDocuments(
    read(PLUGINS, release, 'deployments/operator/certmanager/certificate.yaml'),
  )
    .map((doc) => doc.toJS() as { apiVersion?: string; kind?: string } | null)
    .find((doc) => doc?.kind === 'Certificate');
  const rules = parse(
    read(PLUGINS, release, 'deployments/nfd/overlays/node-feature-rules/node-feature-rules.yaml').split(
      /^---$/m,
    )[0] ?? '',
  ) as { apiVersion?: string; kind?: string } | undefined;
  const ruleLabels = [
    ...read(PLUGINS, release, 'deployments/nfd/overlays/node-feature-rules/node-feature-rules.yaml').matchAll(
      /"(intel\.feature\.node\.kubernetes\.io\/[a-z0-9-]+)"/g,
    ),
  ].map((m) => m[1]);

  // Intel's Helm chart for the plugin: name, version and the values it takes.
  const CHARTS = 'intel/helm-charts';
  const chart = parse(read(CHARTS, 'HEAD', 'charts/gpu-device-plugin/Chart.yaml')) as Record<string, unknown>;
  const chartValues = parse(read(CHARTS, 'HEAD', 'charts/gpu-device-plugin/values.yaml')) as Record<
    string,
    unknown
  >;

  // Talos: releases, the extension names, the Image Factory and the documented upgrade path.
  const TALOS = 'siderolabs/talos';
  const talosReleases = tagsWithDates(TALOS, /^v1\.\d+\.\d+$/).sort((a, b) => byVersion(a.tag, b.tag));
  const whatIsNew = read(TALOS, 'v1.9.0', 'website/content/v1.9/introduction/what-is-new/index.md');
  const extensionSince = must(
    /Starting with Talos (\d+\.\d+), the `i915`/.exec(whatIsNew)?.[1],
    'the Talos release that moved i915 into an extension',
  );
  const upgrading = read(TALOS, 'v1.11.0', 'website/content/v1.11/talos-guides/upgrading-talos.md');
  must(
    /only tested between adjacent minor releases/.test(upgrading) ? 'yes' : undefined,
    'the adjacent-minor upgrade rule in upgrading-talos.md',
  );
  const bootAssets = read(TALOS, 'v1.10.9', 'website/content/v1.10/talos-guides/install/boot-assets.md');
  const factoryUrl = must(
    /https:\/\/factory\.talos\.dev/.exec(bootAssets)?.[0],
    'the Image Factory URL in boot-assets.md',
  );
  const installerImage = must(
    /factory\.talos\.dev\/([a-z-]+)\/[0-9a-f]{64}:/.exec(bootAssets)?.[1],
    'the installer reference in boot-assets.md',
  );
  // The node labels Talos publishes per extension: the prefix, and that it keys labels by
  // the extension's name.
  const talosConstants = read(TALOS, 'v1.10.9', 'pkg/machinery/constants/constants.go');
  const extensionLabelPrefix = must(
    /^\s*K8sExtensionPrefix\s*=\s*"([^"]+)"/m.exec(talosConstants)?.[1],
    'K8sExtensionPrefix in constants.go',
  );
  must(
    /constants\.K8sExtensionPrefix \+ extensionStatus\.TypedSpec\(\)\.Metadata\.Name/.test(
      read(TALOS, 'v1.10.9', 'internal/app/machined/pkg/controllers/k8s/node_label_spec.go'),
    )
      ? 'yes'
      : undefined,
    'node labels keyed K8sExtensionPrefix + the extension name in node_label_spec.go',
  );
  const officialNames = [...bootAssets.matchAll(/^\s*-\s*(siderolabs\/[a-z0-9-]+)\s*$/gm)].map((m) => m[1]);
  const EXTENSIONS = 'siderolabs/extensions';
  const extensionName = (dir: string) =>
    must(
      /^\s*name:\s*(\S+)\s*$/m.exec(read(EXTENSIONS, 'HEAD', `${dir}/manifest.yaml.tmpl`))?.[1],
      `${dir} name`,
    );

  // The smoke pod's image: the tags Docker's official busybox image publishes.
  const busybox = read('docker-library/official-images', 'HEAD', 'library/busybox');
  const busyboxTags = [...busybox.matchAll(/^Tags:\s*(.+)$/gm)].flatMap((m) =>
    (m[1] as string).split(/,\s*/),
  );

  const snapshot = {
    sources,
    producedBy: 'scripts/extract-upstream-pins.ts',
    intelDevicePlugins: {
      release,
      gpuPluginImage: image,
      resource: `${resourceNamespace}/${deviceType}`,
      operator: {
        group: must(crd.spec?.group, 'CRD group'),
        kind: must(crd.spec?.names?.kind, 'CRD kind'),
        plural: must(crd.spec?.names?.plural, 'CRD plural'),
        versions: (crd.spec?.versions ?? []).map((v) => must(v.name, 'CRD version name')),
      },
      certManagerCertificate: {
        apiVersion: must(certificate?.apiVersion, 'apiVersion of certificate.yaml'),
        kind: must(certificate?.kind, 'kind of certificate.yaml'),
      },
      nodeFeatureRule: {
        apiVersion: must(rules?.apiVersion, 'apiVersion of node-feature-rules.yaml'),
        kind: must(rules?.kind, 'kind of node-feature-rules.yaml'),
        labels: [...new Set(ruleLabels)],
      },
    },
    helmChart: {
      name: must(chart.name as string, 'chart name'),
      version: must(chart.version as string, 'chart version'),
      valueKeys: Object.keys(chartValues).sort(),
      imageKeys: Object.keys((chartValues.image as Record<string, unknown>) ?? {}).sort(),
    },
    talos: {
      releases: talosReleases,
      i915ExtensionSince: extensionSince,
      upgradeOnlyAdjacentMinors: true,
      imageFactory: factoryUrl,
      installerImage,
      officialExtensionExamples: [...new Set(officialNames)],
      extensionLabelPrefix,
      extensions: {
        i915: extensionName('drm/i915'),
        intelUcode: extensionName('firmware/intel-ucode'),
        qemuGuestAgent: extensionName('guest-agents/qemu-guest-agent'),
      },
    },
    busybox: { tags: busyboxTags },
  };
  writeFileSync(values.out as string, `${JSON.stringify(snapshot, null, 2)}\n`);
  console.log(
    `${values.out}: ${sources.length} upstream files, plugins ${release}, ${talosReleases.length} Talos releases`,
  );
}

main();
