// The Talos guest provider: the node read with talosctl (or its Kubernetes node), the
// Image Factory asked for the schematic and installer, the change made with talosctl —
// or written to files with the commands to run when talosctl is absent.

import { join } from 'node:path';
import type { TalosVm } from '../../config/lab.ts';
import { IgpuSplitError, RefusedError } from '../../core/errors.ts';
import { clip } from '../../core/text.ts';
import { type GuestLayer, type GuestPlan, type GuestProvider, MDEV } from '../provider.ts';
import {
  applyTalosPlan,
  gatherTalosFacts,
  lookUpTalos,
  planTalos,
  planTalosFrom,
  type TalosFacts,
  type TalosLookup,
  type TalosPlan,
  verifyTalos,
  writeTalosFiles,
} from './plan.ts';
import { talosVfGpu } from './sriov.ts';
import type { Talosctl } from './talosctl.ts';
import { readRunningVersion } from './version.ts';

type TalosLayerFacts = TalosFacts & { lookup: TalosLookup };

export const talosProvider: GuestProvider<TalosVm> = {
  os: 'talos',
  // Talos drives a VF only with the official xe extension (talos/sriov.ts).
  gpuDriver: (_vm, attachment) => (attachment.kind === 'vf' ? 'xe' : 'i915'),
  missing: (vm) =>
    vm.talos ? undefined : `VM ${vm.vmid} (talos) has no talos: { node, version } in the lab file`,
  async initLines(vm, { talosctl }) {
    // The address init writes is the VM's name: the one talosctl is asked at.
    const address = vm.name ?? `vm${vm.vmid}`;
    const read = await runningVersion(address, talosctl);
    return [
      'version' in read
        ? `    talos: { node: ${address}, version: ${read.version} }   # the address talosctl uses; the version it runs now`
        : `    talos: { node: ${address} }   # the address talosctl uses; plan reads the version the node runs${
            read.unread ? ` (init could not: ${read.unread})` : ''
          }`,
    ];
  },
  async render(vm, dir, { factory, talosctl, osImage, attachment }) {
    if (!vm.talos) return [];
    // The files are what the lab file asks for; only a version it leaves out is read, as plan reads it.
    const running = vm.talos.version
      ? undefined
      : await readRunningVersion(vm.talos.node, talosctl, osImage?.(vm));
    const plan = await planTalos(
      vm.talos,
      { node: vm.talos.node, extensions: undefined, dri: undefined, ...(running ? { running } : {}) },
      factory,
      attachment,
      `VM ${vm.vmid}`,
    );
    if (plan.refused) throw new RefusedError(plan.refused);
    return writeTalosFiles(plan, dir);
  },
  layer(vm, environment): GuestLayer<TalosLayerFacts, TalosPlan & GuestPlan> {
    const spec = vm.talos;
    if (!spec) throw new Error(`VM ${vm.vmid} has no talos: entry (ask missing() first)`);
    const node = () => gatherTalosFacts(spec.node, environment.talosctl, environment.osImage(vm));
    const attachment = () => environment.attachment?.(vm) ?? MDEV;
    return {
      name: `guest of VM ${vm.vmid} (talos)`,
      gather: async () => {
        const facts = await node();
        return {
          ...facts,
          lookup: await lookUpTalos(spec, facts, environment.factory, attachment(), `VM ${vm.vmid}`),
        };
      },
      plan: (facts) => {
        const plan = planTalosFrom(spec, facts, facts.lookup);
        const notes = [
          ...(facts.lookup.vf ? [facts.lookup.vf.note] : []),
          ...(environment.talosctl
            ? []
            : ['talosctl is not installed: apply will write the files and print the commands']),
        ];
        return {
          ...plan,
          title: `VM ${vm.vmid} — Talos node ${plan.node}: installer ${plan.installer}`,
          notes,
          ...(environment.talosctl ? {} : { manual: true }),
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
      // With talosctl: the extensions and /dev/dri (the running version is not checked).
      // Without it: what the Kubernetes node shows of the change apply left to the user.
      verify: async () => {
        const facts = await gatherTalosFacts(spec.node, environment.talosctl, environment.osImage(vm));
        const given = attachment();
        const version = facts.running?.version ?? spec.version;
        const vf =
          given.kind === 'vf' && version
            ? talosVfGpu(given, version, spec.extensions, `VM ${vm.vmid}`)
            : undefined;
        if (vf && 'refused' in vf)
          return [{ id: `guest.${spec.node}.vf`, status: 'fail', evidence: vf.refused, fix: 'see the plan' }];
        return verifyTalos(
          facts,
          spec,
          environment.talosctl ? undefined : { files: join(environment.outRoot, spec.node) },
          vf,
        );
      },
      close: async () => {},
    };
  },
};

/** The version a node runs as talosctl tells it, why it could not, or nothing without talosctl. */
async function runningVersion(
  address: string,
  talosctl: Talosctl | undefined,
): Promise<{ version: string } | { unread?: string }> {
  if (!talosctl) return {};
  try {
    const running = await readRunningVersion(address, talosctl, undefined);
    return running ? { version: running.version } : {};
  } catch (error) {
    // expected: IgpuSplitError — talosctl failed or answered garbage: a note in the file; the rest is thrown
    if (!(error instanceof IgpuSplitError)) throw error;
    return { unread: clip(error.message, 100) };
  }
}
