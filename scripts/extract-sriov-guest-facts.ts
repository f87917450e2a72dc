// Writes snapshots/sriov-guest-facts.json: the upstream facts behind the SR-IOV guest and
// cluster pins (src/knowledge/pins.ts TALOS_EXTENSIONS.xe, TALOS_XE_EXTENSION_SINCE,
// TALOS_KERNEL_SERIES, GPU_RESOURCE_OF), read from git copies of the upstream repositories.
//
//   node scripts/extract-sriov-guest-facts.ts [--mirrors /work/.mirror] [--out snapshots/sriov-guest-facts.json]
//
// Each mirror is <mirrors>/<owner>+<name>/repo. A file that no longer says what is looked for
// stops the script with one line.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { refuse } from './snapshot-sources.ts';

const { values } = parseArgs({
  options: {
    mirrors: { type: 'string', default: '/work/.mirror' },
    out: { type: 'string', default: 'snapshots/sriov-guest-facts.json' },
  },
});

const sources: (
  | { repository: string; path: string; commit: string; blob: string; tag?: string }
  | { repository: string; refs: 'tags'; commit: string }
)[] = [];

function git(repository: string, args: string[]): string {
  const dir = join(values.mirrors as string, repository.replace('/', '+'), 'repo');
  try {
    return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const said = String((error as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')[0];
    refuse(`cannot read ${repository} (git ${args.join(' ')}): ${said || 'git failed'}`);
  }
}

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

const semver = (tag: string) => tag.replace(/^v/, '').split('.').map(Number);
const byVersion = (a: string, b: string) => {
  const [x, y] = [semver(a), semver(b)];
  for (let i = 0; i < 3; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
};

function main(): void {
  // Intel's GPU plugin: the resource is namespace/<driver bound to the card>.
  const PLUGINS = 'intel/intel-device-plugins-for-kubernetes';
  const plugin = read(PLUGINS, 'v0.36.0', 'cmd/gpu_plugin/gpu_plugin.go');
  const namespace = must(/\bnamespace\s*=\s*"([^"]+)"/.exec(plugin)?.[1], 'namespace in gpu_plugin.go');
  const i915 = must(/\bdeviceTypeI915\s*=\s*"([^"]+)"/.exec(plugin)?.[1], 'deviceTypeI915');
  const xe = must(/\bdeviceTypeXe\s*=\s*"([^"]+)"/.exec(plugin)?.[1], 'deviceTypeXe');
  must(/AddDevice\(devProps\.driver\(\)/.test(plugin) ? 'yes' : undefined, 'AddDevice(devProps.driver(), …)');
  const props = read(PLUGINS, 'v0.36.0', 'cmd/gpu_plugin/device_props.go');
  must(
    /ReadDeviceDriver\(cardPath\)/.test(props) ? 'yes' : undefined,
    'driver read from the card in device_props.go',
  );

  // siderolabs/extensions: the xe extension's name and the first release tag that has it.
  const EXTENSIONS = 'siderolabs/extensions';
  const manifest = read(EXTENSIONS, 'HEAD', 'drm/xe/manifest.yaml.tmpl');
  const name = must(/^\s*name:\s*(\S+)\s*$/m.exec(manifest)?.[1], 'drm/xe name');
  const modules = read(EXTENSIONS, 'HEAD', 'drm/xe/files/modules.txt');
  must(
    /drivers\/gpu\/drm\/xe\/xe\.ko/.test(modules) ? 'yes' : undefined,
    'xe.ko in drm/xe/files/modules.txt',
  );
  const extensionTags = git(EXTENSIONS, ['tag', '--list', 'v1.*'])
    .split('\n')
    .filter((t) => /^v1\.\d+\.\d+$/.test(t))
    .sort(byVersion);
  sources.push({
    repository: EXTENSIONS,
    refs: 'tags',
    commit: git(EXTENSIONS, ['rev-parse', 'HEAD']).trim(),
  });
  const firstWithXe = must(
    extensionTags.find((t) =>
      git(EXTENSIONS, ['ls-tree', '--name-only', t, 'drm/']).split('\n').includes('drm/xe'),
    ),
    'a siderolabs/extensions tag with drm/xe',
  );

  // siderolabs/talos: the Linux version each release ships (hack/release.toml, "Linux: x.y.z").
  const TALOS = 'siderolabs/talos';
  const talosTags = git(TALOS, ['tag', '--list', 'v1.*'])
    .split('\n')
    .filter((t) => /^v1\.(1[0-9])\.\d+$/.test(t))
    .sort(byVersion);
  sources.push({ repository: TALOS, refs: 'tags', commit: git(TALOS, ['rev-parse', 'HEAD']).trim() });
  const linux: Record<string, string> = {};
  for (const tag of talosTags) {
    const toml = git(TALOS, ['show', `${tag}:hack/release.toml`]);
    const version = /^\s*Linux:\s*(\d+\.\d+\.\d+)\s*$/m.exec(toml)?.[1];
    if (version) linux[tag] = version;
  }
  const lowestSeries: Record<string, string> = {};
  for (const [tag, version] of Object.entries(linux)) {
    const minor = tag.replace(/^v/, '').split('.').slice(0, 2).join('.');
    const series = version.split('.').slice(0, 2).join('.');
    const had = lowestSeries[minor];
    if (had === undefined || byVersion(series, had) < 0) lowestSeries[minor] = series;
  }

  const snapshot = {
    sources,
    producedBy: 'scripts/extract-sriov-guest-facts.ts',
    gpuPlugin: { release: 'v0.36.0', resources: { i915: `${namespace}/${i915}`, xe: `${namespace}/${xe}` } },
    talos: {
      xeExtension: name,
      xeExtensionFirstTag: firstWithXe,
      linuxByRelease: linux,
      lowestLinuxSeriesByMinor: lowestSeries,
    },
  };
  writeFileSync(values.out as string, `${JSON.stringify(snapshot, null, 2)}\n`);
  console.log(
    `${values.out}: ${sources.length} sources, ${Object.keys(linux).length} Talos releases with a Linux line`,
  );
}

main();
