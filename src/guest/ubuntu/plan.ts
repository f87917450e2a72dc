// The Ubuntu guest's plan: what stands between the vGPU and a render node a pod can
// use, and the steps that close the gap — the kernel package that carries i915, then a
// reboot into it.
//
// Package choice: `linux-generic`. Ubuntu 24.04 cloud images install linux-image-virtual,
// whose kernel comes without linux-modules-extra, where i915 lives. linux-generic pulls
// the generic kernel with its modules-extra and linux-firmware (the GuC/HuC/DMC blobs)
// and keeps both through kernel updates; installing only linux-modules-extra-$(uname -r)
// would work until the next kernel update and then lose i915 again.

import type { Check, LayerPlan } from '../../core/model.ts';
import { UBUNTU_PACKAGE } from '../../knowledge/packages.ts';
import { type GuestAttachment, MDEV } from '../provider.ts';
import { intelGpu, type UbuntuGuestFacts } from './gather.ts';
import { planUbuntuVf, type UbuntuStep, vfChecks } from './sriov.ts';

export const KERNEL_PACKAGE = UBUNTU_PACKAGE.kernel;
export const INSTALL_COMMAND = `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${KERNEL_PACKAGE}`;

/** `refused` is set when this is no Ubuntu guest: nothing is planned. */
export interface UbuntuPlan extends LayerPlan<UbuntuStep> {
  target: string;
  install: boolean;
  reboot: boolean;
  /** What the VM is given: the steps follow from it (an SR-IOV VF needs i915-sriov-dkms). */
  attachment: GuestAttachment;
  notes?: string[];
  /** Some step belongs to a route marked experimental. */
  experimental?: boolean;
}

export interface UbuntuPlanOptions {
  attachment?: GuestAttachment;
  /** How refusals name the VM: `VM 101`. */
  vm?: string;
}

export function planUbuntu(facts: UbuntuGuestFacts, options: UbuntuPlanOptions = {}): UbuntuPlan {
  const target = facts.target;
  const attachment = options.attachment ?? MDEV;
  if (facts.os.id !== 'ubuntu') {
    return {
      target,
      checks: [],
      steps: [],
      install: false,
      reboot: false,
      attachment,
      refused: `${facts.os.prettyName ?? facts.os.id ?? 'this OS'} is not Ubuntu; the Ubuntu guest path does not apply`,
    };
  }
  const checks = ubuntuChecks(facts, attachment);
  if (attachment.kind === 'vf') {
    const vf = planUbuntuVf(facts, attachment, options.vm ?? `guest ${target}`);
    const experimental = vf.steps.some((s) => s.experimental);
    return {
      target,
      checks,
      steps: vf.steps,
      install: vf.steps.some((s) => s.id.endsWith('/sriov-packages') || s.id.endsWith('/sriov-driver')),
      reboot: vf.steps.some((s) => s.action?.kind === 'reboot'),
      attachment,
      ...(vf.notes.length > 0 ? { notes: vf.notes } : {}),
      ...(experimental ? { experimental } : {}),
      ...(vf.refused ? { refused: vf.refused } : {}),
    };
  }
  const install = !facts.i915Available && facts.kernelsWithI915.length === 0;
  const reboot = !facts.i915Available;
  const steps: UbuntuStep[] = [];
  if (install) {
    steps.push({
      id: `guest/${target}/kernel`,
      target,
      description: `install ${KERNEL_PACKAGE}: the generic kernel with linux-modules-extra (i915) and linux-firmware, kept through kernel updates (the running ${facts.kernel.release} has no i915)`,
      disturbs: [],
      command: INSTALL_COMMAND,
    });
  }
  if (reboot) {
    steps.push({
      id: `guest/${target}/reboot`,
      target,
      description: `reboot into the kernel with i915${install ? '' : ` (${facts.kernelsWithI915.at(-1)} is installed, ${facts.kernel.release} runs)`}`,
      disturbs: ['node-drain', 'guest-reboot'],
      command: 'systemctl reboot',
    });
  }
  return { target, checks, steps, install, reboot, attachment };
}

/** The checks plan and verify share; after a good apply every one passes or warns. */
export function ubuntuChecks(facts: UbuntuGuestFacts, attachment: GuestAttachment = MDEV): Check[] {
  const checks: Check[] = [osCheck(facts)];
  if (attachment.kind === 'vf') return [...checks, ...vfChecks(facts, attachment), k3sCheck(facts)];
  checks.push(...mdevChecks(facts));
  checks.push(k3sCheck(facts));
  return checks;
}

function osCheck(facts: UbuntuGuestFacts): Check {
  return facts.os.versionId === '24.04'
    ? { id: 'guest.os', status: 'pass', evidence: `${facts.os.prettyName} (/etc/os-release)` }
    : {
        id: 'guest.os',
        status: 'warn',
        evidence: `${facts.os.prettyName ?? 'unknown release'}: igpu-split is built and tested on Ubuntu 24.04`,
        fix: 'expect the same steps to work on other Ubuntu releases; report what differs',
      };
}

function mdevChecks(facts: UbuntuGuestFacts): Check[] {
  const checks: Check[] = [];
  const gpu = intelGpu(facts);
  if (!gpu) {
    checks.push({
      id: 'guest.gpu',
      status: 'fail',
      evidence: `no Intel display device in /sys/bus/pci/devices (seen: ${facts.display.map((d) => `${d.bdf} ${hex(d.vendorId)}:${hex(d.deviceId)}`).join(', ') || 'none'})`,
      fix: 'give the VM its vGPU first: igpu-split vm apply, then vm verify',
    });
  } else {
    checks.push({
      id: 'guest.gpu',
      status: 'pass',
      evidence: `Intel display device ${gpu.device.bdf} (${hex(gpu.device.vendorId)}:${hex(gpu.device.deviceId)})`,
    });
  }
  checks.push(
    facts.i915Available
      ? {
          id: 'guest.kernel',
          status: 'pass',
          evidence: `${facts.kernel.release} has i915 (/lib/modules/${facts.kernel.release}/kernel/drivers/gpu/drm/i915)`,
        }
      : {
          id: 'guest.kernel',
          status: 'fail',
          evidence: `${facts.kernel.release} has no i915 module${facts.packages.has(UBUNTU_PACKAGE.cloudImageKernel) ? ' (the cloud image kernel, without linux-modules-extra)' : ''}`,
          fix:
            facts.kernelsWithI915.length > 0
              ? `reboot into ${facts.kernelsWithI915.at(-1)}, which has it`
              : `install ${KERNEL_PACKAGE} and reboot (igpu-split guest apply)`,
        },
  );
  if (gpu) {
    checks.push(
      gpu.device.driver === 'i915'
        ? {
            id: 'guest.driver',
            status: 'pass',
            evidence: `i915 is bound to ${gpu.device.bdf} (/sys/bus/pci/devices/${gpu.device.bdf}/driver)`,
          }
        : {
            id: 'guest.driver',
            status: 'fail',
            evidence: `${gpu.device.bdf} has ${gpu.device.driver ? `driver ${gpu.device.driver}` : 'no driver bound'}`,
            fix: facts.i915Available
              ? 'check `journalctl -k | grep i915` for why it did not bind (a blacklist in /etc/modprobe.d, or i915.enable_guc set)'
              : 'the kernel step above gives it i915',
          },
    );
    checks.push(renderCheck(facts, gpu));
  }
  checks.push(
    facts.secureBoot
      ? {
          id: 'guest.secure-boot',
          status: 'pass',
          evidence: "Secure Boot is on; Ubuntu's i915 is signed by Canonical and loads with it",
        }
      : {
          id: 'guest.secure-boot',
          status: 'pass',
          evidence:
            facts.secureBoot === false ? 'Secure Boot is off' : 'no UEFI Secure Boot variable (BIOS boot)',
        },
  );
  return checks;
}

function k3sCheck(facts: UbuntuGuestFacts): Check {
  return facts.k3s
    ? { id: 'guest.k3s', status: 'pass', evidence: 'K3s is installed (/usr/local/bin/k3s)' }
    : {
        id: 'guest.k3s',
        status: 'warn',
        evidence: 'no K3s here',
        fix: 'the cluster layer expects this VM to be a Kubernetes node',
      };
}

function renderCheck(facts: UbuntuGuestFacts, gpu: NonNullable<ReturnType<typeof intelGpu>>): Check {
  if (!gpu.render?.devNode) {
    return {
      id: 'guest.render',
      status: 'fail',
      evidence: `no render node for ${gpu.device.bdf} in /sys/class/drm and /dev/dri`,
      fix: 'it appears once i915 is bound to the device',
    };
  }
  const byPath = `/dev/dri/by-path/pci-${gpu.device.bdf}-render`;
  if (gpu.render.name === 'renderD128') {
    return {
      id: 'guest.render',
      status: 'pass',
      evidence: `Intel render node /dev/dri/renderD128 (${byPath})`,
    };
  }
  const first = facts.drm.find((n) => n.name === 'renderD128');
  return {
    id: 'guest.render',
    status: 'warn',
    evidence: `the Intel GPU is /dev/dri/${gpu.render.name}${gpu.card ? ` (${gpu.card.name})` : ''}; renderD128 is ${first?.bdf ?? 'another device'} (the VM's virtual display)`,
    fix: `point applications at /dev/dri/${gpu.render.name} or ${byPath} (e.g. Jellyfin's VA-API device), or set the VM's display to none/std so the Intel GPU comes first`,
  };
}

const hex = (n: number) => n.toString(16).padStart(4, '0');
