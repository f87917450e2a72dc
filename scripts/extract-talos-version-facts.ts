// Writes snapshots/talos-versions.json: what each Talos minor igpu-split supports expects of
// the guest layer (src/knowledge/pins.ts TALOS_SCHEMA_MINORS, TALOS_PATCH_NEWEST,
// TALOS_UPGRADE_DRAIN; src/guest/talos/patch.ts), read from a git copy of siderolabs/talos at
// the tag of each schema in ../shared/data:
//   - the machine-config schema (pkg/machinery/config/schemas/config.schema.json): its $id, the
//     document kinds it knows, whether v1alpha1 still has machine.install (and its
//     extraKernelArgs) and machine.nodeLabels, the fields of KubeNodeConfig where it exists;
//   - where `talosctl upgrade` drains the node: machined's Upgrade sequence
//     (internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go, its "drain" phase) and,
//     where it exists, talosctl's own drain (cmd/talosctl/cmd/talos/upgrade.go, --drain);
//   - the Linux each tag ships (hack/release.toml), v1.14.0-rc.1 included.
//
//   node scripts/extract-talos-version-facts.ts [--mirrors /work/.mirror] [--out snapshots/talos-versions.json]
//
// The mirror is <mirrors>/siderolabs+talos/repo. A file that no longer says what is looked for
// stops the script with one line.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { refuse } from './snapshot-sources.ts';

const { values } = parseArgs({
  options: {
    mirrors: { type: 'string', default: '/work/.mirror' },
    out: { type: 'string', default: 'snapshots/talos-versions.json' },
  },
});

const TALOS = 'siderolabs/talos';
/** The tags of the schemas in ../shared/data (talos-<tag>-config.schema.json). */
const TAGS = ['v1.10.9', 'v1.11.6', 'v1.12.11', 'v1.13.9', 'v1.14.0-rc.1'];

const sources: { repository: string; path: string; commit: string; blob: string; tag: string }[] = [];

function git(args: string[], repository = TALOS): string {
  const dir = join(values.mirrors as string, repository.replace('/', '+'), 'repo');
  try {
    return execFileSync('git', ['--git-dir', dir, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (error) {
    const said = String((error as { stderr?: unknown }).stderr ?? '')
      .trim()
      .split('\n')[0];
    refuse(`cannot read ${repository} (git ${args.join(' ')}): ${said || 'git failed'}`);
  }
}

function read(tag: string, path: string, repository = TALOS): string {
  const commit = git(['rev-parse', `${tag}^{commit}`], repository).trim();
  if (git(['ls-tree', '--name-only', commit, '--', path], repository).trim() === '')
    refuse(`${repository}@${tag}: no ${path}`);
  const blob = git(['rev-parse', `${commit}:${path}`], repository).trim();
  sources.push({ repository, path, commit, blob, tag });
  return git(['cat-file', 'blob', blob], repository);
}

function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null || value === '') refuse(`not found: ${what}`);
  return value;
}

type Defs = Record<string, { properties?: Record<string, { $ref?: string; enum?: string[] }> }>;

function schemaFacts(tag: string) {
  const path = 'pkg/machinery/config/schemas/config.schema.json';
  const schema = JSON.parse(read(tag, path)) as {
    $id: string;
    $defs: Defs;
    oneOf: { $ref: string }[];
  };
  const defs = schema.$defs;
  const machine = must(defs['v1alpha1.MachineConfig']?.properties, `${tag} v1alpha1.MachineConfig`);
  const installRef = machine.install?.$ref?.replace('#/$defs/', '');
  const documents: Record<string, string> = {};
  for (const { $ref } of schema.oneOf) {
    const name = $ref.replace('#/$defs/', '');
    const kind = defs[name]?.properties?.kind?.enum?.[0];
    documents[name] = kind ?? '(v1alpha1 root: no kind)';
  }
  const kubeNode = defs['k8s.KubeNodeConfigV1Alpha1']?.properties;
  return {
    blob: sources.at(-1)?.blob,
    id: schema.$id,
    documents,
    v1alpha1: {
      install: installRef !== undefined,
      installImage: installRef ? 'image' in (defs[installRef]?.properties ?? {}) : false,
      installExtraKernelArgs: installRef ? 'extraKernelArgs' in (defs[installRef]?.properties ?? {}) : false,
      nodeLabels: 'nodeLabels' in machine,
    },
    ...(kubeNode ? { kubeNodeConfigFields: Object.keys(kubeNode) } : {}),
  };
}

function drainFacts(tag: string) {
  const sequencerPath = 'internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go';
  const sequencer = read(tag, sequencerPath);
  const upgrade = must(
    /func \(\*Sequencer\) Upgrade\([^)]*\)[^{]*\{([\s\S]*?)\n\}\n/.exec(sequencer)?.[1],
    `${tag} Sequencer.Upgrade`,
  );
  const machined = /"drain",\s*CordonAndDrainNode/.test(upgrade);
  const line = sequencer.slice(0, sequencer.indexOf(upgrade)).split('\n').length;
  const cliPath = 'cmd/talosctl/cmd/talos/upgrade.go';
  const cli = read(tag, cliPath);
  const flagDefault = /Flags\(\)\.BoolVar\(&upgradeCmdFlags\.drain, "drain", (true|false)/.exec(cli)?.[1];
  const range = /talosUpgradeAPIVersionRange = semver\.MustParseRange\("([^"]+)"\)/.exec(cli)?.[1];
  return {
    machined: { path: sequencerPath, upgradeFuncLine: line, drainPhase: machined },
    talosctl: {
      path: cliPath,
      drainFlagDefault: flagDefault === undefined ? null : flagDefault === 'true',
      drainsBeforeReboot: /nodeNames, err = drainNodes\(/.test(cli),
      lifecycleApiServerRange: range ?? null,
    },
  };
}

function main(): void {
  const schemas: Record<string, ReturnType<typeof schemaFacts>> = {};
  const drains: Record<string, ReturnType<typeof drainFacts>> = {};
  // The Linux each tag ships (the `Linux:` line of hack/release.toml), pre-releases included.
  const linux: Record<string, string> = {};
  for (const tag of TAGS) {
    schemas[tag] = schemaFacts(tag);
    drains[tag] = drainFacts(tag);
    linux[tag] = must(
      /^\s*Linux:\s*(\d+\.\d+\.\d+)\s*$/m.exec(read(tag, 'hack/release.toml'))?.[1],
      `${tag} hack/release.toml Linux:`,
    );
  }
  // 1.14: a patch document of a kind the config lacks is appended (talosctl patch machineconfig).
  const strategicPath = 'pkg/machinery/config/configpatcher/strategic.go';
  const strategic = read('v1.14.0-rc.1', strategicPath);
  must(
    /If the document on the right doesn't exist on the left, it is appended\./.test(strategic) ? 'y' : '',
    'strategic.go: documents appended',
  );
  // 1.14: the UnattendedInstall document: the kind the code registers and the conflict with .machine.install.
  const unattendedPath = 'pkg/machinery/config/types/runtime/unattended_install.go';
  const unattended = read('v1.14.0-rc.1', unattendedPath);
  const registered = must(
    /UnattendedInstallConfigKind = "([^"]+)"/.exec(unattended)?.[1],
    'UnattendedInstallConfigKind',
  );
  const kubeNodePath = 'pkg/machinery/config/types/k8s/node.go';
  const kubeNode = read('v1.14.0-rc.1', kubeNodePath);
  // The schematic igpu-split sends (customization.extraKernelArgs, .systemExtensions.officialExtensions)
  // and when the Image Factory bakes its kernel arguments into a (non-Secure-Boot) installer.
  const FACTORY = 'siderolabs/image-factory';
  const schematicGo = read('v1.5.0', 'pkg/schematic/schematic.go', FACTORY);
  const fields = (type: string) =>
    [
      ...must(new RegExp(`type ${type} struct \\{([\\s\\S]*?)\\n\\}`).exec(schematicGo)?.[1], type).matchAll(
        /yaml:"([^",]+)/g,
      ),
    ].map((m) => m[1]);
  const profileGo = read('v1.5.0', 'internal/profile/profile.go', FACTORY);
  const installerArgs = must(
    /case profile\.OutKindInstaller, profile\.OutKindUKI:\s*\n\s*if (prof\.SecureBootEnabled\(\) \|\| quirks\.New\(versionTag\)\.SupportsUnifiedInstaller\(\))/.exec(
      profileGo,
    )?.[1],
    'profile.go: installer kernel args behind SupportsUnifiedInstaller',
  );
  const quirksPath = 'pkg/machinery/imager/quirks/quirks.go';
  const quirks = read('v1.14.0-rc.1', quirksPath);
  const unifiedSince = must(
    /minTalosVersionUnifiedInstaller = semver\.MustParse\("([^"]+)"\)/.exec(quirks)?.[1],
    'minTalosVersionUnifiedInstaller',
  );
  const snapshot = {
    sources,
    producedBy: 'scripts/extract-talos-version-facts.ts',
    schemas,
    drains,
    linux,
    imageFactory: {
      release: 'v1.5.0',
      customizationFields: fields('Customization'),
      systemExtensionsFields: fields('SystemExtensions'),
      installerKernelArgsWhen: installerArgs,
      unifiedInstallerSince: { path: quirksPath, tag: 'v1.14.0-rc.1', version: unifiedSince },
    },
    v1_14: {
      patchAppendsNewDocuments: { path: strategicPath, tag: 'v1.14.0-rc.1' },
      unattendedInstall: {
        path: unattendedPath,
        registeredKind: registered,
        conflictsWithMachineInstall: /incompatible with v1alpha1 config \(\.machine\.install\)/.test(
          unattended,
        ),
        provisioningMatchRequired: /provisioning\.volumeSelector\.match is required/.test(unattended),
      },
      kubeNodeConfig: {
        path: kubeNodePath,
        conflictsWithMachineNodeLabels: /\.machine\.nodeLabels is already set in v1alpha1 config/.test(
          kubeNode,
        ),
      },
    },
  };
  writeFileSync(values.out as string, `${JSON.stringify(snapshot, null, 2)}\n`);
  console.log(`${values.out}: ${sources.length} sources, ${TAGS.length} Talos schemas and upgrade sequences`);
}

main();
