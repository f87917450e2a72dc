// The Ubuntu guest provider: facts read over SSH, the kernel package installed with apt,
// a reboot when i915 needs one.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HostAccess } from '../../access/host.ts';
import type { UbuntuVm } from '../../config/lab.ts';
import { type GuestLayer, type GuestPlan, type GuestProvider, MDEV } from '../provider.ts';
import { applyUbuntuPlan, isRoot, rootCommand } from './apply.ts';
import { ubuntuUserData } from './cloud-init.ts';
import { gatherUbuntuFacts, type UbuntuGuestFacts } from './gather.ts';
import { rollbackGuestGuard } from './guard.ts';
import { planUbuntu, type UbuntuPlan, ubuntuChecks } from './plan.ts';

export const ubuntuProvider: GuestProvider<UbuntuVm> = {
  os: 'ubuntu',
  missing: (vm) =>
    vm.guest ? undefined : `VM ${vm.vmid} (ubuntu) has no guest: ssh://user@address in the lab file`,
  initLines: async (vm) => [`    guest: "ssh://ubuntu@${vm.name ?? `vm${vm.vmid}`}"`],
  // A VF on the DKMS route is driven by i915-sriov-dkms's i915; on the xe route by the guest's xe.
  gpuDriver: (_vm, attachment) => (attachment.kind === 'vf' && attachment.route === 'xe' ? 'xe' : 'i915'),
  async render(vm, dir, { attachment }) {
    await mkdir(dir, { recursive: true });
    const file = join(dir, 'user-data.yaml');
    await writeFile(file, ubuntuUserData({ hostname: vm.kubernetesNode, attachment, vm: `VM ${vm.vmid}` }));
    return [file];
  },
  layer(vm, environment): GuestLayer<UbuntuGuestFacts, UbuntuPlan & GuestPlan> {
    // One connection for gather and apply; a reboot hands over a new one.
    let shell: HostAccess | undefined;
    const open = async () => {
      shell ??= await environment.openShell(vm);
      return shell;
    };
    return {
      name: `guest of VM ${vm.vmid} (ubuntu)`,
      gather: async () => gatherUbuntuFacts(await open()),
      plan: (facts) => {
        const attachment = environment.attachment?.(vm) ?? MDEV;
        const plan = planUbuntu(facts, { attachment, vm: `VM ${vm.vmid}` });
        const what = attachment.kind === 'vf' ? ' on an SR-IOV VF' : '';
        return { ...plan, title: `VM ${vm.vmid} — Ubuntu guest ${facts.target}${what}` };
      },
      apply: async (plan, { say }) => {
        const result = await applyUbuntuPlan(await open(), plan, {
          reconnect: () => environment.openShell(vm),
          rebootTimeoutMs: environment.rebootTimeoutMs,
          pollMs: environment.pollMs,
          progress: say,
        });
        shell = result.guest;
        return {
          applied: true,
          files: [],
          commands: [],
          detail: { installed: result.installed, rebooted: result.rebooted },
        };
      },
      verify: async () =>
        ubuntuChecks(await gatherUbuntuFacts(await open()), environment.attachment?.(vm) ?? MDEV),
      rollback: async () => {
        const guest = await open();
        const { removed } = await rollbackGuestGuard(guest, async (command) =>
          rootCommand(await isRoot(guest), command),
        );
        return removed;
      },
      close: async () => {
        const open = shell;
        shell = undefined;
        await open?.close();
      },
    };
  },
};
