// The Talos guest provider: the node read with talosctl (or its Kubernetes node), the
// Image Factory asked for the schematic and installer, the change made with talosctl —
// or written to files with the commands to run when talosctl is absent.

import { join } from 'node:path';
import type { TalosVm } from '../../config/lab.ts';
import type { GuestLayer, GuestPlan, GuestProvider } from '../provider.ts';
import {
  applyTalosPlan,
  gatherTalosFacts,
  lookUpTalos,
  planTalosFrom,
  type TalosFacts,
  type TalosLookup,
  type TalosPlan,
  verifyTalos,
} from './plan.ts';

type TalosLayerFacts = TalosFacts & { lookup: TalosLookup };

export const talosProvider: GuestProvider<TalosVm> = {
  os: 'talos',
  missing: (vm) =>
    vm.talos ? undefined : `VM ${vm.vmid} (talos) has no talos: { node, version } in the lab file`,
  layer(vm, environment): GuestLayer<TalosLayerFacts, TalosPlan & GuestPlan> {
    const spec = vm.talos;
    if (!spec) throw new Error(`VM ${vm.vmid} has no talos: entry (ask missing() first)`);
    const node = () => gatherTalosFacts(spec.node, environment.talosctl, environment.osImage(vm));
    return {
      name: `guest of VM ${vm.vmid} (talos)`,
      gather: async () => {
        const facts = await node();
        return { ...facts, lookup: await lookUpTalos(spec, facts, environment.factory) };
      },
      plan: (facts) => {
        const plan = planTalosFrom(spec, facts, facts.lookup);
        const notes = environment.talosctl
          ? []
          : ['talosctl is not installed: apply will write the files and print the commands'];
        return {
          ...plan,
          title: `VM ${vm.vmid} — Talos node ${plan.node}: installer ${plan.installer}`,
          notes,
        };
      },
      apply: async (plan, { say }) => {
        const result = await applyTalosPlan(
          plan,
          environment.talosctl,
          join(environment.outRoot, spec.node),
          say,
        );
        const manual = result.applied
          ? {}
          : {
              manual: {
                reason: 'talosctl is not installed',
                target: `talos ${spec.node}`,
                change: 'the Talos change',
              },
            };
        return { ...result, ...manual, detail: {} };
      },
      // The running version is not checked: only the extensions and /dev/dri.
      verify: async () => verifyTalos(await gatherTalosFacts(spec.node, environment.talosctl), spec),
      close: async () => {},
    };
  },
};
