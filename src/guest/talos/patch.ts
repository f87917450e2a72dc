// The machine-config patch a Talos GPU node gets, as the Talos version it goes to expects.
//
// Up to 1.13 (TALOS_PATCH_NEWEST) one v1alpha1 document: machine.install.image, the installer
// built from the schematic (so later upgrades keep the extensions), and machine.nodeLabels, the
// GPU node label the device plugin's node selector uses. `intel.feature.node.kubernetes.io` is a
// subdomain of node.kubernetes.io, one of the prefixes the NodeRestriction admission plugin
// lets a kubelet set on its own node.
//
// From 1.14 both fields left v1alpha1 (snapshots/talos-versions.json): the label goes in a
// KubeNodeConfig document (k8s.KubeNodeConfigV1Alpha1), which `talosctl patch machineconfig`
// merges into the node's own or appends (pkg/machinery/config/configpatcher/strategic.go
// @v1.14.0-rc.1). The installer gets no document: its replacement, UnattendedInstall, drives
// an install (its provisioning.diskSelector.match is required, so it would name a disk to
// wipe), conflicts with the .machine.install a node upgraded from 1.13 still has
// (pkg/machinery/config/types/runtime/unattended_install.go@v1.14.0-rc.1), and its kind is
// `UnattendedInstall` in the schema but `UnattendedInstallConfig` in the code at that tag. The
// installer is the one `talosctl upgrade --image` names (its default is the factory's default
// schematic, without i915: pkg/images/images.go@v1.14.0-rc.1), so a later upgrade names it
// again. Kernel arguments never go in the machine config: they are the schematic's
// extraKernelArgs (schematic.ts), which the 1.10+ installer carries.

import { stringify } from 'yaml';
import { GPU_NODE_LABEL, TALOS_PATCH_NEWEST } from '../../knowledge/pins.ts';

/** One document of the patch: a v1alpha1 fragment, or a multi-document config kind. */
export type PatchDocument = Record<string, unknown>;

/** The patch's documents for a node on Talos `version` (vX.Y.Z; its minor decides). */
export function machinePatch(installerImage: string, version: string): PatchDocument[] {
  if (takesV1alpha1Patch(version))
    return [
      {
        machine: {
          install: { image: installerImage },
          nodeLabels: { [GPU_NODE_LABEL]: 'true' },
        },
      },
    ];
  return [{ apiVersion: 'v1alpha1', kind: 'KubeNodeConfig', labels: { [GPU_NODE_LABEL]: 'true' } }];
}

/** Whether the version's v1alpha1 config still has machine.install and machine.nodeLabels. */
export function takesV1alpha1Patch(version: string): boolean {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number) as [number, number];
  const [lastMajor, lastMinor] = TALOS_PATCH_NEWEST;
  return major < lastMajor || (major === lastMajor && minor <= lastMinor);
}

/** What the patch sets, for the plan's step (`install image …, GPU node label`). */
export function patchSummary(documents: readonly PatchDocument[], installerImage: string): string {
  return documents.some((d) => d.kind === 'KubeNodeConfig')
    ? 'GPU node label (KubeNodeConfig document)'
    : `install image ${installerImage}, GPU node label`;
}

export function patchYaml(documents: readonly PatchDocument[]): string {
  return `# igpu-split: Talos machine-config patch (strategic merge) for a GPU node\n${documents.map((d) => stringify(d)).join('---\n')}`;
}
