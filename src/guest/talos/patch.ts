// The machine-config patch a Talos GPU node gets: the installer built from the schematic
// (so later upgrades keep the extensions) and the GPU node label the device plugin's
// node selector uses. `intel.feature.node.kubernetes.io` is a subdomain of
// node.kubernetes.io, one of the prefixes the NodeRestriction admission plugin lets a
// kubelet set on its own node.

import { stringify } from 'yaml';
import { GPU_NODE_LABEL } from '../../knowledge/pins.ts';

export function machinePatch(installerImage: string): Record<string, unknown> {
  return {
    machine: {
      install: { image: installerImage },
      nodeLabels: { [GPU_NODE_LABEL]: 'true' },
    },
  };
}

export function patchYaml(patch: Record<string, unknown>): string {
  return `# igpu-split: Talos machine-config patch (strategic merge) for a GPU node\n${stringify(patch)}`;
}
