// The Talos guest layer: gather (extensions and /dev/dri through talosctl, when it is
// there), plan (schematic → installer, machine-config patch, upgrade), apply (talosctl
// patch + upgrade, or the files and exact commands when talosctl is absent), verify.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RefusedError, TargetError } from '../../core/errors.ts';
import type { Check, LayerPlan, Step } from '../../core/model.ts';
import type { GuestAttachment } from '../provider.ts';
import type { ImageFactory } from './factory.ts';
import { machinePatch, type PatchDocument, patchSummary, patchYaml } from './patch.ts';
import {
  desiredSchematic,
  I915_EXTENSION,
  parseTalosVersion,
  type Schematic,
  schematicYaml,
  type TalosNodeSpec,
  UCODE_EXTENSION,
} from './schematic.ts';
import { type TalosVfGpu, talosVfGpu } from './sriov.ts';
import { parseExtensions, parseListing, type Talosctl } from './talosctl.ts';
import {
  type OsImageSource,
  type RunningVersion,
  readRunningVersion,
  type VersionChange,
  versionChange,
} from './version.ts';

export interface TalosFacts {
  node: string;
  /** Extension names the node runs (`i915`, `intel-ucode`), when talosctl could tell. */
  extensions: string[] | undefined;
  /** /dev/dri entries, when talosctl could tell. */
  dri: string[] | undefined;
  /** Where `extensions` was read: `talosctl get extensions`, or `node <name> labels` without talosctl. */
  extensionsFrom?: string;
  /** The Talos version the node runs, when talosctl or the Kubernetes node could tell. */
  running?: RunningVersion;
}

export interface TalosPlan extends LayerPlan<Step & { experimental?: boolean }> {
  node: string;
  /** The node's VM has an SR-IOV VF and the plan takes the experimental xe extension route. */
  experimental?: boolean;
  schematic: Schematic;
  schematicId: string;
  /** The version installed, and what it means against the running one. */
  version: VersionChange;
  installer: string;
  /** The machine-config patch's documents, as the Talos version it is applied on expects. */
  patch: PatchDocument[];
  /** The commands apply runs, with `<dir>` where the files go. */
  commands: string[];
}

/** Extension names as the node reports them: the part after `siderolabs/`. */
const shortName = (extension: string) => extension.split('/').pop() as string;

export async function gatherTalosFacts(
  node: string,
  talosctl: Talosctl | undefined,
  osImage?: OsImageSource,
): Promise<TalosFacts> {
  const running = await readRunningVersion(node, talosctl, osImage);
  const known = running ? { running } : {};
  if (!talosctl) {
    // Without talosctl the Kubernetes node tells what Talos runs: the labels it sets per extension.
    const extensions = await osImage?.extensions?.();
    return extensions === undefined || !osImage
      ? { node, extensions: undefined, dri: undefined, ...known }
      : { node, extensions, dri: undefined, extensionsFrom: `node ${osImage.node} labels`, ...known };
  }
  const extensions = await talosctl(['get', 'extensions', '--nodes', node, '-o', 'yaml']);
  if (extensions.code !== 0) {
    throw new TargetError(`talosctl get extensions failed: ${firstLine(extensions.stderr)}`, {
      target: `talos ${node}`,
      fix: 'check talosctl reaches the node (talosconfig, endpoints) with talosctl version --nodes',
    });
  }
  const dri = await talosctl(['ls', '/dev/dri', '--nodes', node]);
  return {
    node,
    extensions: parseExtensions(extensions.stdout),
    dri: dri.code === 0 ? parseListing(dri.stdout) : [],
    extensionsFrom: 'talosctl get extensions',
    ...known,
  };
}

/** What the Image Factory says for the wanted version and schematic: read during gather. */
export interface TalosLookup {
  version: VersionChange;
  schematicId: string;
  installer: string;
  /** On an SR-IOV VF: the xe extension and its kernel arguments (experimental). */
  vf?: TalosVfGpu;
  /** On an SR-IOV VF that Talos cannot drive: why, and what would work (nothing was looked up). */
  refused?: string;
}

/**
 * The reads the plan needs beyond the node: the version judged against the running one,
 * the factory's release list and the schematic's content-addressed id.
 */
export async function lookUpTalos(
  spec: TalosNodeSpec,
  facts: TalosFacts,
  factory: ImageFactory,
  attachment?: GuestAttachment,
  vm = `talos ${spec.node}`,
): Promise<TalosLookup> {
  // The lab file's version is judged on its own first: a path of upgrades to a version we
  // refuse anyway would be no help.
  const context = { node: spec.node, running: facts.running?.version };
  if (spec.version !== undefined) parseTalosVersion(spec.version, context);
  const version = versionChange(spec.node, spec.version, facts.running, spec.allowDowngrade === true);
  parseTalosVersion(version.version, context);
  // The patch goes to the running version: its minor needs a schema too.
  if (facts.running) parseTalosVersion(facts.running.version, context);
  const vf =
    attachment?.kind === 'vf' ? talosVfGpu(attachment, version.version, spec.extensions, vm) : undefined;
  if (vf && 'refused' in vf) return { version, schematicId: '', installer: '', refused: vf.refused };
  await factory.requireVersion(version.version);
  const schematicId = await factory.schematicId(desiredSchematic(spec, vf));
  return {
    version,
    schematicId,
    installer: factory.installerImage(schematicId, version.version),
    ...(vf ? { vf } : {}),
  };
}

export async function planTalos(
  spec: TalosNodeSpec,
  facts: TalosFacts,
  factory: ImageFactory,
  attachment?: GuestAttachment,
  vm?: string,
): Promise<TalosPlan> {
  return planTalosFrom(spec, facts, await lookUpTalos(spec, facts, factory, attachment, vm));
}

/** The plan from what gather read: pure. */
export function planTalosFrom(spec: TalosNodeSpec, facts: TalosFacts, lookup: TalosLookup): TalosPlan {
  const { version, schematicId, installer, vf } = lookup;
  const schematic = desiredSchematic(spec, vf);
  if (lookup.refused)
    return {
      node: spec.node,
      checks: [],
      steps: [],
      refused: lookup.refused,
      schematic,
      schematicId,
      version,
      installer,
      patch: [],
      commands: [],
    };
  // The patch is applied before the upgrade: to the version the node runs, when it is known.
  const patch = machinePatch(installer, facts.running?.version ?? version.version);
  // Converged: the node runs the wanted version (as far as it can be told) with the extensions.
  const converged =
    (version.kind === 'same' || version.kind === 'unknown') &&
    facts.extensions !== undefined &&
    schematic.customization.systemExtensions.officialExtensions.every((e) =>
      facts.extensions?.includes(shortName(e)),
    );
  const target = `talos ${spec.node}`;
  // A new installer carries only the schematic's extensions: any other the node runs would go.
  const keep = schematic.customization.systemExtensions.officialExtensions.map(shortName);
  const dropped = (facts.extensions ?? []).filter((name) => !keep.includes(name));
  const checks: Check[] =
    dropped.length > 0
      ? [
          {
            id: `guest.${spec.node}.extensions-kept`,
            status: 'fail',
            evidence: `the node runs ${dropped.join(', ')}, which the lab file's talos.extensions does not list: the new installer would drop ${dropped.length === 1 ? 'it' : 'them'}`,
            fix: `add ${dropped.map((name) => `siderolabs/${name}`).join(', ')} (or the extension's full name) to talos.extensions`,
          },
        ]
      : [];
  const commands = [
    `talosctl patch machineconfig --nodes ${spec.node} --patch @<dir>/machine-patch.yaml`,
    `talosctl upgrade --nodes ${spec.node} --image ${installer}`,
  ];
  const steps: Step[] = converged
    ? []
    : [
        {
          id: `guest/${spec.node}/patch`,
          target,
          description: `patch the machine config: ${patchSummary(patch, installer)}`,
          disturbs: [],
          command: commands[0],
        },
        {
          id: `guest/${spec.node}/upgrade`,
          target,
          description: `${version.text}; upgrade to the installer with ${vf ? `${vf.extension}${vf.kernelArgs.length > 0 ? ` and kernel args ${vf.kernelArgs.join(' ')}` : ''}` : I915_EXTENSION} and ${UCODE_EXTENSION} (Talos cordons, drains and reboots the node)${vf ? ' [experimental]' : ''}`,
          // talosctl upgrade cordons and drains the node itself (TALOS_UPGRADE_DRAIN): not the engine.
          disturbs: ['guest-drain', 'guest-reboot'],
          command: commands[1],
          ...(vf ? { experimental: true } : {}),
        },
      ];
  const refused = checks.find((c) => c.status === 'fail')?.evidence;
  return {
    node: spec.node,
    ...(vf ? { experimental: true } : {}),
    checks,
    ...(refused ? { refused } : {}),
    schematic,
    schematicId,
    version,
    installer,
    patch,
    steps,
    commands,
  };
}

/** The files a user would commit: the schematic and the patch. */
export async function writeTalosFiles(plan: TalosPlan, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const files = [
    [
      join(dir, 'schematic.yaml'),
      `# igpu-split: Image Factory schematic, id ${plan.schematicId}\n${schematicYaml(plan.schematic)}`,
    ],
    [join(dir, 'machine-patch.yaml'), patchYaml(plan.patch)],
  ] as const;
  for (const [file, text] of files) await writeFile(file, text);
  return files.map(([file]) => file);
}

export interface TalosApplyResult {
  /** False when talosctl is absent: the files were written and `commands` are for the user. */
  applied: boolean;
  files: string[];
  commands: string[];
}

export async function applyTalosPlan(
  plan: TalosPlan,
  talosctl: Talosctl | undefined,
  dir: string,
  progress?: (line: string) => void,
): Promise<TalosApplyResult> {
  if (plan.refused) {
    throw new RefusedError(plan.refused, {
      target: `talos ${plan.node}`,
      fix: plan.checks.find((c) => c.status === 'fail')?.fix,
    });
  }
  if (plan.steps.length === 0) return { applied: true, files: [], commands: [] };
  const files = await writeTalosFiles(plan, dir);
  const commands = plan.commands.map((c) => c.replace('<dir>', dir));
  if (!talosctl) return { applied: false, files, commands };
  const done: string[] = [];
  const run = async (args: string[], what: string) => {
    progress?.(`talos ${plan.node}: ${what}`);
    const result = await talosctl(args);
    if (result.code !== 0) {
      const before = done.length > 0 ? `; done before it: ${done.join(', ')}` : '; nothing was changed';
      throw new TargetError(
        `talosctl ${args[0]} failed: ${firstLine(result.stderr || result.stdout)}${before}`,
        { target: `talos ${plan.node}`, fix: fixFor(plan.node, args, result.stderr || result.stdout) },
      );
    }
    done.push(what);
  };
  await run(
    ['patch', 'machineconfig', '--nodes', plan.node, '--patch', `@${join(dir, 'machine-patch.yaml')}`],
    'patching the machine config',
  );
  await run(['upgrade', '--nodes', plan.node, '--image', plan.installer], `upgrading to ${plan.installer}`);
  return { applied: true, files, commands };
}

export function verifyTalos(
  facts: TalosFacts,
  spec: TalosNodeSpec,
  manual?: { files: string },
  vf?: TalosVfGpu,
): Check[] {
  if (manual && facts.extensions !== undefined) return [manualStepCheck(facts, spec, manual.files, vf)];
  if (facts.extensions === undefined) {
    return [
      {
        id: `guest.${spec.node}.talosctl`,
        status: 'warn',
        evidence: 'talosctl is not installed here, so the node cannot be asked',
        fix: `install talosctl, or check by hand: talosctl get extensions --nodes ${spec.node}`,
      },
    ];
  }
  const wanted = desiredSchematic(spec, vf).customization.systemExtensions.officialExtensions.map(shortName);
  const missing = wanted.filter((name) => !facts.extensions?.includes(name));
  const render = (facts.dri ?? []).filter((name) => /^renderD\d+$/.test(name));
  return [
    missing.length === 0
      ? {
          id: `guest.${spec.node}.extensions`,
          status: 'pass',
          evidence: `extensions running: ${wanted.join(', ')}`,
        }
      : {
          id: `guest.${spec.node}.extensions`,
          status: 'fail',
          evidence: `missing extensions: ${missing.join(', ')} (running: ${facts.extensions.join(', ') || 'none'})`,
          fix: 'run igpu-split guest apply (upgrade to the factory installer)',
        },
    render.length > 0
      ? { id: `guest.${spec.node}.dri`, status: 'pass', evidence: `/dev/dri has ${render.join(', ')}` }
      : {
          id: `guest.${spec.node}.dri`,
          status: 'fail',
          evidence: `/dev/dri has no render node (${(facts.dri ?? []).join(', ') || 'empty'})`,
          fix: `check the VM has its ${vf ? 'VF' : 'vGPU'} (igpu-split vm verify) and talosctl dmesg --nodes for ${vf ? 'xe' : 'i915'}`,
        },
  ];
}

/**
 * Without talosctl the change is the user's to make (apply wrote the files and printed the
 * commands): the Kubernetes node shows when it is made — its osImage says the planned Talos
 * version and its labels the extensions. Until then the link is pending, not failed.
 */
function manualStepCheck(facts: TalosFacts, spec: TalosNodeSpec, files: string, vf?: TalosVfGpu): Check {
  const wanted = desiredSchematic(spec, vf).customization.systemExtensions.officialExtensions.map(shortName);
  const missing = wanted.filter((name) => !facts.extensions?.includes(name));
  const running = facts.running?.version;
  const versionOk = spec.version === undefined || running === spec.version;
  const seen = `${facts.extensionsFrom ?? 'the node'}: ${facts.extensions?.join(', ') || 'no extension'}; osImage Talos ${running ?? '(unread)'}`;
  if (missing.length === 0 && versionOk)
    return {
      id: `guest.${spec.node}.extensions`,
      status: 'pass',
      evidence: `the manual step is done: ${seen}`,
    };
  const lacking = [
    ...(missing.length > 0 ? [`extensions ${missing.join(', ')}`] : []),
    ...(versionOk ? [] : [`Talos ${spec.version}`]),
  ];
  return {
    id: `guest.${spec.node}.manual`,
    status: 'pending',
    evidence: `waiting for a manual step (talosctl is not installed here): the node does not show ${lacking.join(' and ')} yet (${seen})`,
    fix: `run the talosctl commands igpu-split apply printed (files in ${files}), or install talosctl and run igpu-split apply`,
  };
}

/**
 * What to do when talosctl refuses a step. Talos 1.14 refuses a KubeNodeConfig document while
 * the v1alpha1 config still sets the field it replaces (".machine.nodeLabels is already set in
 * v1alpha1 config": siderolabs/talos pkg/machinery/config/types/k8s/node.go@v1.14.0-rc.1), as
 * a node upgraded from 1.13 may.
 */
function fixFor(node: string, args: readonly string[], said: string): string {
  const legacy = /\.(machine\.[\w.]+) is already set in v1alpha1 config/.exec(said)?.[1];
  if (legacy)
    return `move .${legacy} into the node's KubeNodeConfig document (talosctl edit machineconfig --nodes ${node}), then apply again`;
  return `run it by hand to see more: talosctl ${args.join(' ')}`;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 200) || 'no output';
}
