// The Image Factory schematic a Talos node VM needs for its vGPU. Since Talos 1.9 the
// i915 driver and its firmware ship only as the `siderolabs/i915` system extension, so
// the node must run an installer built from a schematic that has it (plus
// `siderolabs/intel-ucode`; `siderolabs/qemu-guest-agent` when asked). The extensions
// and kernel arguments the node already has are kept.
//
// The schematic is the same for every minor igpu-split supports (1.10 to 1.14): it uses only
// customization.extraKernelArgs and customization.systemExtensions.officialExtensions, both
// in siderolabs/image-factory pkg/schematic/schematic.go@v1.5.0, which builds installers for
// them all; its newer fields (bootloader, secureboot, diskImage) are for boot media igpu-split
// does not make. Kernel arguments go here, never in the machine config: the factory puts them
// in a non-Secure-Boot installer from Talos 1.10 (SupportsUnifiedInstaller,
// internal/profile/profile.go@v1.5.0), and 1.14's config has no machine.install.extraKernelArgs
// (nor do 1.12's and 1.13's). What depends on the version is the driver's extension: xe on a
// VF from 1.12 (sriov.ts). snapshots/talos-versions.json.

import { stringify } from 'yaml';
import { RefusedError, UsageError } from '../../core/errors.ts';
import {
  TALOS_EXTENSIONS,
  TALOS_I915_EXTENSION_SINCE,
  TALOS_NEWEST_PATCH,
  TALOS_SCHEMA_MINORS,
} from '../../knowledge/pins.ts';

export const I915_EXTENSION = TALOS_EXTENSIONS.i915;
export const UCODE_EXTENSION = TALOS_EXTENSIONS.intelUcode;
export const GUEST_AGENT_EXTENSION = TALOS_EXTENSIONS.qemuGuestAgent;

export interface TalosNodeSpec {
  node: string;
  /** The version to install; absent: the one the node runs. */
  version?: string;
  /** A version older than the running one is installed only when this is set. */
  allowDowngrade?: boolean;
  extensions: string[];
  kernelArgs: string[];
  qemuGuestAgent: boolean;
  secureBoot: boolean;
}

export interface Schematic {
  customization: {
    extraKernelArgs?: string[];
    systemExtensions: { officialExtensions: string[] };
  };
}

/**
 * `vf`: the node's VM has an SR-IOV VF, driven by the xe extension instead of i915 (talos/sriov.ts);
 * its kernel arguments join the lab file's.
 */
export function desiredSchematic(
  spec: TalosNodeSpec,
  vf?: { extension: string; kernelArgs: string[] },
): Schematic {
  if (spec.secureBoot) {
    // The lab is sound; what it asks for cannot be done: the plan is refused (exit 1).
    throw new RefusedError(
      `node ${spec.node} boots the Secure Boot installer (installer-secureboot), which only runs with Secure Boot on; the vGPU path turns it off in the VM (vm apply --reset-efi-keys)`,
      {
        fix: 'reinstall the node from the plain installer (metal/nocloud image, not -secureboot), then set secureBoot: false in the lab file',
      },
    );
  }
  const wanted = [
    vf ? vf.extension : I915_EXTENSION,
    UCODE_EXTENSION,
    ...(spec.qemuGuestAgent ? [GUEST_AGENT_EXTENSION] : []),
  ];
  const extensions = [...new Set([...spec.extensions, ...wanted])].sort();
  const kernelArgs = [...new Set([...spec.kernelArgs, ...(vf?.kernelArgs ?? [])])];
  return {
    customization: {
      ...(kernelArgs.length > 0 ? { extraKernelArgs: kernelArgs } : {}),
      systemExtensions: { officialExtensions: extensions },
    },
  };
}

export function schematicYaml(schematic: Schematic): string {
  return stringify(schematic);
}

/**
 * v1.10.9 → [1, 10, 9]; refuses what is not a Talos release, predates the extension, or is of a
 * minor without a config schema (TALOS_SCHEMA_MINORS).
 */
export function parseTalosVersion(
  version: string,
  context: { node?: string; running?: string } = {},
): [number, number, number] {
  const target = context.node ? `talos ${context.node}` : undefined;
  const match = /^v(\d+)\.(\d+)\.(\d+)$/.exec(version);
  if (!match) {
    throw new UsageError(`unknown Talos version ${JSON.stringify(version)}`, {
      target,
      fix: 'give the version the node runs, as talosctl version shows it (e.g. v1.10.9)',
    });
  }
  const parsed = [Number(match[1]), Number(match[2]), Number(match[3])] as [number, number, number];
  const [major, minor] = TALOS_I915_EXTENSION_SINCE;
  if (parsed[0] < major || (parsed[0] === major && parsed[1] < minor)) {
    throw new RefusedError(
      `Talos ${version} predates the i915 system extension path igpu-split sets up (v1.9 and later)`,
      { target, fix: 'upgrade the node to a current Talos release first' },
    );
  }
  refuseWithoutSchema(version, parsed, context);
  return parsed;
}

/**
 * A minor igpu-split has no config schema for (TALOS_SCHEMA_MINORS) is refused: its documents
 * could not be checked. One line naming the node, with what to do; nothing has been changed.
 */
function refuseWithoutSchema(
  version: string,
  [major, minor]: [number, number, number],
  context: { node?: string; running?: string },
): void {
  const minors: readonly string[] = TALOS_SCHEMA_MINORS;
  if (minors.includes(`${major}.${minor}`)) return;
  const first = minors[0] as string;
  const last = minors.at(-1) as string;
  const runsIt = context.running === version;
  const newer =
    major > Number(last.split('.')[0]) ||
    (major === Number(last.split('.')[0]) && minor > Number(last.split('.')[1]));
  const release = TALOS_NEWEST_PATCH[newer ? (minors.at(-2) as string) : first];
  throw new RefusedError(
    `Talos ${version}: igpu-split has no Talos ${major}.${minor} config schema to check its documents against (it knows ${first} to ${last})`,
    {
      target: context.node ? `talos ${context.node}` : undefined,
      fix: runsIt
        ? newer
          ? `set up the ${I915_EXTENSION} extension and the GPU node label by hand (Talos docs), or use an igpu-split that knows Talos ${major}.${minor}`
          : `upgrade the node to Talos ${release} with talosctl upgrade first, then plan again`
        : `set talos.version to a release of Talos ${first} to ${last} (e.g. ${release})`,
    },
  );
}
