// Writes snapshots/gpu-plugin-v0.36.0.json: what Intel's GPU device plugin takes at the pinned
// release, read from git copies of the upstream repositories (the project's `fetch` tool, or
// `git clone --mirror`): the GpuDevicePlugin CRD's v1 openAPIV3Schema and spec field names,
// the plugin's flags for device-id allow/deny lists, by-path mounts and the monitoring
// resource (cmd/gpu_plugin/gpu_plugin.go), how the operator turns the CR into those flags
// (pkg/controllers/gpu/controller.go) and what its webhook refuses, and how Intel's Helm chart
// writes its values into the CR (charts/gpu-device-plugin at the pinned chart commit).
//
//   node scripts/extract-gpu-crd.ts [--mirrors /work/.mirror] [--release v0.36.0] [--chart 110e39e]
//                                   [--out snapshots/gpu-plugin-v0.36.0.json]
//
// Each mirror is <mirrors>/<owner>+<name>/repo. Every file is named by repository, path,
// commit, blob and tag. A file that no longer says what is looked for stops the script with one line.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { refuse } from './snapshot-sources.ts';

const { values } = parseArgs({
  options: {
    mirrors: { type: 'string', default: '/work/.mirror' },
    release: { type: 'string', default: 'v0.36.0' },
    chart: { type: 'string', default: '110e39e' },
    out: { type: 'string' },
  },
});

interface Source {
  repository: string;
  path: string;
  commit: string;
  blob: string;
  tag?: string;
}
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
    // expected: a missing mirror, ref or path; said in one line.
    const said = String((error as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')[0];
    refuse(`cannot read ${repository} (git ${args.join(' ')}) in ${dir}: ${said || 'git failed'}`);
  }
}

function read(repository: string, ref: string, path: string): string {
  const commit = git(repository, ['rev-parse', `${ref}^{commit}`]).trim();
  const blob = git(repository, ['rev-parse', `${commit}:${path}`]).trim();
  sources.push({ repository, path, commit, blob, ...(commit.startsWith(ref) ? {} : { tag: ref }) });
  return git(repository, ['cat-file', 'blob', blob]);
}

function must(value: string | undefined, what: string): string {
  if (value === undefined || value === '') refuse(`not found: ${what}`);
  return value;
}

/** The value of a Go string constant `name = "value"`. */
const goConst = (source: string, name: string, file: string) =>
  must(new RegExp(`^\\s*${name}\\s*=\\s*"([^"]*)"`, 'm').exec(source)?.[1], `${name} in ${file}`);

/** A flag: its name, the option it sets and its default (a Go constant resolved, or a literal). */
function goFlag(source: string, option: string, file: string): { flag: string; default: string } {
  const match = new RegExp(
    `flag\\.(?:String|Bool|Int)Var\\(&opts\\.${option},\\s*"([^"]+)",\\s*([^,]+),`,
  ).exec(source);
  const flag = must(match?.[1], `the flag of opts.${option} in ${file}`);
  const raw = (match?.[2] ?? '').trim();
  const value =
    /^"(.*)"$/.exec(raw)?.[1] ??
    (/^[A-Za-z_]\w*$/.test(raw) && !/^(true|false)$/.test(raw) ? goConst(source, raw, file) : raw);
  return { flag, default: value };
}

function main(): void {
  const PLUGINS = 'intel/intel-device-plugins-for-kubernetes';
  const release = values.release as string;
  const CRD_PATH = 'deployments/operator/crd/bases/deviceplugin.intel.com_gpudeviceplugins.yaml';
  const crd = parse(read(PLUGINS, release, CRD_PATH)) as {
    spec?: {
      group?: string;
      names?: { kind?: string };
      versions?: { name?: string; schema?: { openAPIV3Schema?: { properties?: Record<string, unknown> } } }[];
    };
  };
  const v1 = crd.spec?.versions?.find((v) => v.name === 'v1');
  const schema = v1?.schema?.openAPIV3Schema;
  const spec = (schema?.properties?.spec ?? {}) as { properties?: Record<string, unknown> };
  if (!schema || !spec.properties)
    refuse(`no v1 openAPIV3Schema with spec properties in ${CRD_PATH}@${release}`);

  const PLUGIN = 'cmd/gpu_plugin/gpu_plugin.go';
  const plugin = read(PLUGINS, release, PLUGIN);
  const validate = must(
    /func validatePCIDeviceIDs\([\s\S]*?\n}\n/.exec(plugin)?.[0],
    `func validatePCIDeviceIDs in ${PLUGIN}`,
  );
  const pciId = must(
    /regexp\.MustCompile\(`([^`]+)`\)/.exec(validate)?.[1],
    `the PCI id pattern of validatePCIDeviceIDs in ${PLUGIN}`,
  );
  const separator = must(
    /strings\.SplitSeq\(pciIDList, "([^"]+)"\)/.exec(validate)?.[1],
    `the list separator of validatePCIDeviceIDs in ${PLUGIN}`,
  );
  must(
    /cannot use both allow-ids and deny-ids/.test(plugin) ? 'yes' : undefined,
    `the allow-ids/deny-ids exclusion in ${PLUGIN}`,
  );
  const bypathModes = [...plugin.matchAll(/^\s*bypathOption\w+\s*=\s*"([^"]+)"/gm)].map(
    (m) => m[1] as string,
  );
  if (bypathModes.length === 0) refuse(`no bypathOption constants in ${PLUGIN}`);

  const CONTROLLER = 'pkg/controllers/gpu/controller.go';
  const controller = read(PLUGINS, release, CONTROLLER);
  const getPodArgs = must(
    /func getPodArgs\([\s\S]*?\n}\n/.exec(controller)?.[0],
    `func getPodArgs in ${CONTROLLER}`,
  );
  // Which CR field becomes which flag: `if gdp.Spec.X … args = append(args, "-flag"…`.
  const crFlags = Object.fromEntries(
    [...getPodArgs.matchAll(/if gdp\.Spec\.(\w+)[^{]*\{\s*args = append\(args, "(-[\w-]+)/g)].map((m) => [
      m[1] as string,
      m[2] as string,
    ]),
  );

  const WEBHOOK = 'pkg/apis/deviceplugin/v1/gpudeviceplugin_webhook.go';
  const webhook = read(PLUGINS, release, WEBHOOK);
  const webhookPciId = must(
    /pciIDRegex = \*regexp\.MustCompile\(`([^`]+)`\)/.exec(webhook)?.[1],
    `pciIDRegex in ${WEBHOOK}`,
  );
  must(
    /AllowIDs and DenyIDs cannot be used together/.test(webhook) ? 'yes' : undefined,
    `the AllowIDs/DenyIDs exclusion in ${WEBHOOK}`,
  );

  const CHARTS = 'intel/helm-charts';
  const chartRef = values.chart as string;
  const template = read(CHARTS, chartRef, 'charts/gpu-device-plugin/templates/gpu.yaml');
  // `crField: {{ .Values.key … }}` lines of the spec of the GpuDevicePlugin the chart renders.
  const chartSpec = must(
    /^spec:\n[\s\S]*?(?=^---$)/m.exec(template)?.[0],
    "spec: of the chart's GpuDevicePlugin",
  );
  const chartFields = Object.fromEntries(
    [...chartSpec.matchAll(/^\s{2}(\w+):\s*\{\{-?\s*\.Values\.(\w+)/gm)].map((m) => [
      m[2] as string,
      m[1] as string,
    ]),
  );
  const chartDefaults = parse(read(CHARTS, chartRef, 'charts/gpu-device-plugin/values.yaml')) as Record<
    string,
    unknown
  >;

  const snapshot = {
    sources,
    producedBy: 'scripts/extract-gpu-crd.ts',
    release,
    gpuDevicePlugin: {
      group: must(crd.spec?.group, 'CRD group'),
      kind: must(crd.spec?.names?.kind, 'CRD kind'),
      version: 'v1',
      specFields: Object.keys(spec.properties).sort(),
      openAPIV3Schema: schema,
    },
    plugin: {
      pciIdPattern: pciId,
      pciIdSeparator: separator,
      allowDenyExclusive: true,
      vendor: goConst(plugin, 'vendorString', PLUGIN),
      flags: {
        allowIds: goFlag(plugin, 'allowIDs', PLUGIN),
        denyIds: goFlag(plugin, 'denyIDs', PLUGIN),
        bypath: goFlag(plugin, 'bypathMount', PLUGIN),
        enableMonitoring: goFlag(plugin, 'enableMonitoring', PLUGIN),
        monitoringMode: goFlag(plugin, 'monitoringMode', PLUGIN),
      },
      bypathModes,
      monitoringResource: `${goConst(plugin, 'namespace', PLUGIN)}/${goConst(plugin, 'monitorResourceCombined', PLUGIN)}`,
      monitoringDeviceId: goConst(plugin, 'monitorID', PLUGIN),
    },
    operator: { crFlags, webhookPciIdPattern: webhookPciId, allowDenyExclusive: true },
    helmChart: {
      commit: git(CHARTS, ['rev-parse', `${chartRef}^{commit}`]).trim(),
      valueToCrField: chartFields,
      defaults: Object.fromEntries(
        ['allowIDs', 'denyIDs', 'bypathMode', 'enableMonitoring', 'monitoringMode'].map((k) => [
          k,
          chartDefaults[k],
        ]),
      ),
    },
  };
  const out = (values.out as string | undefined) ?? `snapshots/gpu-plugin-${release}.json`;
  writeFileSync(out, `${JSON.stringify(snapshot, null, 2)}\n`);
  console.log(
    `${out}: ${sources.length} upstream files, ${snapshot.gpuDevicePlugin.specFields.length} spec fields`,
  );
}

main();
