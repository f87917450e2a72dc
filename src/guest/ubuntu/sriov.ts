// An Ubuntu guest on an SR-IOV virtual function. Stock Ubuntu 24.04 cannot drive a VF
// (upstream i915 has no SR-IOV code; its xe before 6.18 has no has_sriov for gen-12 iGPUs),
// so the guest gets i915-sriov-dkms — the release the lab file names, which must build for
// the guest's kernel — and the parameters a VF needs. On a host whose route is upstream xe,
// the guest uses its own xe when its kernel is new enough.
//
// Facts carried over (strongtz/i915-sriov-dkms @ 2421d3f docs/install-linux-guest.md and
// docs/install-linux-guest-proxmox-cloud-init.md; SRIOV-FACTS §3):
// - packages: build-essential, dkms, the running kernel's headers, and on cloud/minimal images
//   its linux-modules-extra (the module needs drm_display_helper/drm_kms_helper, else
//   "Unknown symbol"). We take linux-generic there, as the GVT-g path does: it brings the
//   generic kernel with modules-extra and headers ("Complete Generic Linux kernel and headers",
//   knowledge/packages.ts) and keeps them through kernel updates.
// - the release .deb is installed with dpkg -i; its debian/postinst (@ dc62d91, release
//   2025.07.22) builds for all kernels (autoinstall_all_kernels=1), runs depmod -a and
//   update-initramfs -u; dkms.conf puts i915 in /lib/modules/<k>/updates/dkms.
// - kernel parameters i915.enable_guc=3 module_blacklist=xe (a VF refuses to start without
//   GuC submission, S1 i915_sriov.c); cloud images override /etc/default/grub in
//   /etc/default/grub.d/50-cloudimg-settings.cfg, so ours is a drop-in sorting after it.
// - Secure Boot: the dkms module is unsigned by Canonical; docs/secure-boot.md enrols
//   /var/lib/dkms/mok.pub with mokutil at the next boot's MOK screen. We refuse instead.
//
// Every step is atomic and the plan is made again from facts on resume: a step whose result
// is there is not planned again. Until the last step (the reboot) the guest boots its
// previous command line, and the running kernel keeps the modules it loaded.

import type { Check, Step } from '../../core/model.ts';
import {
  buildsFor,
  DKMS_PACKAGE,
  describeRange,
  knownRelease,
  releaseOfPackageFile,
} from '../../knowledge/i915-sriov-dkms.ts';
import { UBUNTU_PACKAGE } from '../../knowledge/packages.ts';
import type { VfAttachment } from '../provider.ts';
import { intelGpu, SRIOV_GRUB_DROPIN, type UbuntuGuestFacts } from './gather.ts';
import { guardRemoval, guardSteps, guestGuardChecks } from './guard.ts';

/** Where the release package is put on the guest before dpkg -i. */
export const PACKAGE_DIR = '/var/cache/igpu-split';

/** What apply does for a step, beyond its shown command. */
export type UbuntuAction =
  | { kind: 'run'; command: string; timeoutMs: number }
  /** Copy this machine's file to the guest (atomically), then run `command`. */
  | { kind: 'upload'; from: string; to: string; command: string }
  /** Write a file whole with `mode` (0644 unless said; temp and rename, as root), then run `command` if any. */
  | { kind: 'write'; path: string; content: string; mode?: number; command?: string }
  | { kind: 'reboot' }
  /** After the driver step: dkms must have built i915 for the kernel the guest boots next, or apply stops before the boot changes. */
  | { kind: 'check-built'; release: string; pattern: string };

export interface UbuntuStep extends Step {
  action?: UbuntuAction;
  /** Part of a route marked experimental. */
  experimental?: boolean;
}

export interface VfPlan {
  steps: UbuntuStep[];
  checks: Check[];
  refused?: string;
  notes: string[];
  /** The kernel parameters the VF's driver needs. */
  params: string[];
  driver: 'i915' | 'xe';
}

/** Kernel parameters of the guest's VF driver. */
export function vfParams(attachment: VfAttachment, deviceId: string | undefined): string[] {
  if (attachment.route === 'i915-sriov-dkms') return ['i915.enable_guc=3', 'module_blacklist=xe'];
  return [
    ...(attachment.forceProbe && deviceId ? [`xe.force_probe=${deviceId}`] : []),
    'module_blacklist=i915',
  ];
}

/** Our drop-in: appends to what /etc/default/grub and earlier drop-ins (the cloud image's) set. */
export function grubDropin(params: string[]): string {
  return [
    '# Written by igpu-split: kernel parameters for the SR-IOV virtual function (see igpu-split guest plan).',
    `GRUB_CMDLINE_LINUX_DEFAULT="\${GRUB_CMDLINE_LINUX_DEFAULT} ${params.join(' ')}"`,
    '',
  ].join('\n');
}

/** Every parameter is a word of the text (a command line, or grub.cfg's linux lines). */
const hasParams = (text: string | undefined, params: string[]) => {
  if (text === undefined) return false;
  const words = new Set(text.split(/\s+/));
  return params.every((p) => words.has(p));
};

/** The kernel the guest boots next: Ubuntu's GRUB puts the newest installed kernel first. */
export function nextGuestKernel(facts: UbuntuGuestFacts): string {
  return facts.sriov.kernels.at(-1) ?? facts.kernel.release;
}

interface Release {
  release: string;
  pattern: string;
  /** Where the package comes from; undefined when the guest already has it installed. */
  source?: { file: string } | { url: string; sha256?: string };
  fileName: string;
}

/** The release the guest gets: the lab's package (sriov.guestDriver, else hostDriver), else the one installed. */
function releaseFor(
  facts: UbuntuGuestFacts,
  attachment: VfAttachment,
): Release | { refused: string; fix: string } {
  const pkg = attachment.guestPackage;
  const installed = facts.packages.get(DKMS_PACKAGE);
  const name = pkg?.file ?? pkg?.url;
  if (!name) {
    const known = installed === undefined ? undefined : knownRelease(installed);
    if (known) return { release: known.release, pattern: known.buildExclusiveKernel, fileName: '' };
    return {
      refused: `no i915-sriov-dkms package is named for the guest${installed ? ` (installed ${installed} is not a release igpu-split knows)` : ''}`,
      fix: 'name the release .deb in the lab file: sriov.guestDriver: { url: …/i915-sriov-dkms_<release>_amd64.deb, sha256: … } (or { file: … })',
    };
  }
  const fileName = name.slice(name.lastIndexOf('/') + 1);
  const release = releaseOfPackageFile(fileName);
  const known = release === undefined ? undefined : knownRelease(release);
  if (!release || !known)
    return {
      refused: `${fileName} is not an i915-sriov-dkms release igpu-split knows (i915-sriov-dkms_<release>_amd64.deb)`,
      fix: 'name a release asset as the project publishes it; its kernel range must hold the guest kernel',
    };
  const source = pkg?.file
    ? { file: pkg.file }
    : { url: pkg?.url as string, ...(pkg?.sha256 ? { sha256: pkg.sha256 } : {}) };
  return {
    release,
    pattern: known.buildExclusiveKernel,
    fileName,
    ...(installed === release ? {} : { source }),
  };
}

/** One line: what is wrong on this VM, and the fix. */
const refusal = (vm: string, why: string) => `${vm}: ${why}`;

/** The steps that make an Ubuntu guest drive its VF, or why not. */
export function planUbuntuVf(facts: UbuntuGuestFacts, attachment: VfAttachment, vm: string): VfPlan {
  const gpu = intelGpu(facts);
  const deviceId = attachment.pfDeviceId ?? gpu?.device.deviceId.toString(16).padStart(4, '0');
  const params = vfParams(attachment, deviceId);
  const driver = attachment.route === 'i915-sriov-dkms' ? 'i915' : 'xe';
  const target = facts.target;
  const notes: string[] = [];
  const base = { params, driver, notes } as const;
  if (facts.secureBoot === true)
    return {
      ...base,
      steps: [],
      checks: [],
      refused: refusal(
        vm,
        `Secure Boot is on in the guest and ${driver === 'i915' ? 'the i915-sriov-dkms module is not signed by Canonical, so it would not load' : 'xe.force_probe needs a kernel parameter'}; fix: turn Secure Boot off in the VM (igpu-split vm apply --reset-efi-keys), or enrol the dkms key (mokutil --import /var/lib/dkms/mok.pub) and plan again`,
      ),
    };
  if (driver === 'xe') return planXe(facts, attachment, vm, base);
  const chosen = releaseFor(facts, attachment);
  if ('refused' in chosen)
    return { ...base, steps: [], checks: [], refused: refusal(vm, `${chosen.refused}; fix: ${chosen.fix}`) };
  const next = nextGuestKernel(facts);
  for (const kernel of new Set([facts.kernel.release, next])) {
    if (!buildsFor(chosen.pattern, kernel))
      return {
        ...base,
        steps: [],
        checks: [],
        refused: refusal(
          vm,
          `i915-sriov-dkms ${chosen.release} builds only for kernels ${describeRange(chosen.pattern)}, not the guest's ${kernel === facts.kernel.release ? 'running' : 'next-boot'} kernel ${kernel}; fix: name a release whose range holds ${kernel} in sriov.guestDriver (Ubuntu 24.04's 6.8 kernel needs 2025.07.22)`,
        ),
      };
  }
  const steps: UbuntuStep[] = [...packageSteps(facts, next), ...driverSteps(facts, chosen, next, notes)];
  // The guard once the module is built and checked: from here on a new kernel must keep it.
  steps.push(...guardSteps(facts.guard, attachment, target));
  steps.push(...cmdlineSteps(facts, params, target));
  steps.push(...rebootStep(facts, params, target, 'i915', next));
  return { ...base, steps, checks: [] };
}

/** build-essential, dkms, and a kernel with modules-extra and headers for the kernel booted next. */
function packageSteps(facts: UbuntuGuestFacts, next: string): UbuntuStep[] {
  const target = facts.target;
  const steps: UbuntuStep[] = [];
  // Packages: build tools, dkms, and a kernel with modules-extra and headers.
  const needKernel = !facts.i915Available && facts.kernelsWithI915.length === 0;
  const headers = `linux-headers-${next}`;
  const wanted = [
    ...['build-essential', 'dkms'].filter((p) => !facts.packages.has(p)),
    ...(needKernel ? [UBUNTU_PACKAGE.kernel] : facts.packages.has(headers) ? [] : [headers]),
  ];
  if (wanted.length > 0)
    steps.push({
      id: `guest/${target}/sriov-packages`,
      target,
      description: `install ${wanted.join(', ')}: dkms builds i915-sriov-dkms against the kernel's headers${needKernel ? `; ${UBUNTU_PACKAGE.kernel} brings linux-modules-extra (the DRM helpers the module links to) and headers, kept through kernel updates` : ''}`,
      disturbs: [],
      command: `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${wanted.join(' ')}`,
      action: {
        kind: 'run',
        command: `apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y ${wanted.join(' ')}`,
        timeoutMs: 30 * 60_000,
      },
    });
  return steps;
}

/** The release package put on the guest and installed (dkms builds it), then the check that it built. */
function driverSteps(facts: UbuntuGuestFacts, chosen: Release, next: string, notes: string[]): UbuntuStep[] {
  const target = facts.target;
  const steps: UbuntuStep[] = [];
  const builtForNext = facts.sriov.dkmsI915.includes(next);
  if (chosen.source || !builtForNext) {
    const deb = `${PACKAGE_DIR}/${chosen.fileName || `${DKMS_PACKAGE}_${chosen.release}_amd64.deb`}`;
    const install = `dpkg -i ${deb}`;
    const source = chosen.source;
    if (source && 'url' in source && !source.sha256)
      notes.push(`sriov.guestDriver has no sha256: ${chosen.fileName} is installed unchecked`);
    const fetch =
      source && 'url' in source
        ? `mkdir -p ${PACKAGE_DIR} && wget -q -O ${deb}.part '${source.url}'${source.sha256 ? ` && echo '${source.sha256}  ${deb}.part' | sha256sum -c --quiet` : ''} && mv -f ${deb}.part ${deb} && ${install}`
        : undefined;
    steps.push({
      id: `guest/${target}/sriov-driver`,
      target,
      description: source
        ? `install i915-sriov-dkms ${chosen.release} (${'url' in source ? 'downloaded from the lab file’s url' : 'copied from the lab file’s file'}${'url' in source && source.sha256 ? ', sha256 checked' : ''}); dkms builds i915 for ${next} (kernels ${describeRange(chosen.pattern)})`
        : `rebuild i915-sriov-dkms ${chosen.release} for ${next} (dkms has no i915 for it)`,
      disturbs: [],
      command: source ? (fetch ?? `${install}`) : `dkms autoinstall -k ${next}`,
      action: !source
        ? { kind: 'run', command: `dkms autoinstall -k ${next}`, timeoutMs: 30 * 60_000 }
        : 'url' in source
          ? { kind: 'run', command: fetch as string, timeoutMs: 30 * 60_000 }
          : { kind: 'upload', from: source.file, to: deb, command: install },
    });
    steps.push({
      id: `guest/${target}/sriov-built`,
      target,
      description: `check dkms built i915 for the kernel the guest boots next (/lib/modules/<kernel>/updates/dkms) before the boot changes`,
      disturbs: [],
      action: { kind: 'check-built', release: chosen.release, pattern: chosen.pattern },
    });
  }
  return steps;
}

function cmdlineSteps(facts: UbuntuGuestFacts, params: string[], target: string): UbuntuStep[] {
  const content = grubDropin(params);
  const written = facts.sriov.grubDropin === content;
  // Done once grub.cfg (or the running command line) has them; a drop-in written before a
  // kill point without update-grub is written again, harmlessly.
  if (written && (hasParams(facts.sriov.grubCfg, params) || hasParams(facts.sriov.cmdline, params)))
    return [];
  const command = 'update-grub && update-initramfs -u';
  return [
    {
      id: `guest/${target}/sriov-cmdline`,
      target,
      description: `kernel parameters ${params.join(' ')} in ${SRIOV_GRUB_DROPIN} (after the cloud image's 50-cloudimg-settings.cfg), then update-grub and update-initramfs -u`,
      diff: `+++ ${SRIOV_GRUB_DROPIN}\n${content
        .trimEnd()
        .split('\n')
        .map((l) => `+${l}`)
        .join('\n')}`,
      disturbs: [],
      command,
      action: { kind: 'write', path: SRIOV_GRUB_DROPIN, content, command },
    },
  ];
}

function rebootStep(
  facts: UbuntuGuestFacts,
  params: string[],
  target: string,
  driver: 'i915' | 'xe',
  next: string,
): UbuntuStep[] {
  const gpu = intelGpu(facts);
  const live =
    hasParams(facts.sriov.cmdline, params) &&
    facts.kernel.release === next &&
    gpu?.device.driver === driver &&
    (driver === 'xe' || facts.sriov.dkmsI915.includes(facts.kernel.release));
  if (live) return [];
  return [
    {
      id: `guest/${target}/reboot`,
      target,
      description: `reboot into ${next} with ${params.join(' ')}: ${driver === 'i915' ? 'i915 from dkms' : 'xe'} binds the VF`,
      disturbs: ['node-drain', 'guest-reboot'],
      command: 'systemctl reboot',
      action: { kind: 'reboot' },
    },
  ];
}

/** Stock xe drives a VF from kernel 6.17 (Panther Lake) or 6.18 (force_probe: TGL/ADL/RPL), SRIOV-FACTS §1b. */
function planXe(
  facts: UbuntuGuestFacts,
  attachment: VfAttachment,
  vm: string,
  base: Pick<VfPlan, 'params' | 'driver' | 'notes'>,
): VfPlan {
  const next = nextGuestKernel(facts);
  const [major, minor] = attachment.forceProbe ? [6, 18] : [6, 17];
  const series = /^(\d+)\.(\d+)/.exec(next);
  const newEnough =
    series !== null &&
    (Number(series[1]) > major || (Number(series[1]) === major && Number(series[2]) >= minor));
  if (!newEnough || !facts.sriov.withXe.includes(next))
    return {
      ...base,
      steps: [],
      checks: [],
      refused: refusal(
        vm,
        `the host's route is upstream xe, and the guest kernel ${next} ${newEnough ? 'has no xe module' : `is older than ${major}.${minor}, whose xe first drives this VF`}; fix: boot a guest kernel ${major}.${minor} or newer with xe (e.g. Ubuntu's HWE kernel), then plan again`,
      ),
    };
  if (attachment.forceProbe)
    base.notes.push(
      'experimental: upstream xe drives this VF only behind xe.force_probe (not officially supported)',
    );
  const steps = [
    // A guard left from the DKMS route would judge kernels by a module this route does not use.
    ...guardRemoval(facts.guard, facts.target),
    ...cmdlineSteps(facts, base.params, facts.target),
    ...rebootStep(facts, base.params, facts.target, 'xe', next),
  ].map((s) => (attachment.forceProbe ? { ...s, experimental: true } : s));
  return { ...base, steps, checks: [] };
}

/** What verify checks on a guest with a VF, beyond the OS and K3s. */
export function vfChecks(facts: UbuntuGuestFacts, attachment: VfAttachment): Check[] {
  const gpu = intelGpu(facts);
  const deviceId = attachment.pfDeviceId ?? gpu?.device.deviceId.toString(16).padStart(4, '0');
  const params = vfParams(attachment, deviceId);
  const driver = attachment.route === 'i915-sriov-dkms' ? 'i915' : 'xe';
  const checks: Check[] = [];
  const hex = (n: number) => n.toString(16).padStart(4, '0');
  checks.push(
    gpu
      ? {
          id: 'guest.gpu',
          status: 'pass',
          evidence: `SR-IOV virtual function ${gpu.device.bdf} (${hex(gpu.device.vendorId)}:${hex(gpu.device.deviceId)}, the PF's id)`,
        }
      : {
          id: 'guest.gpu',
          status: 'fail',
          evidence: 'no Intel display device in /sys/bus/pci/devices: the VM has no VF',
          fix: 'give the VM its VF first: igpu-split vm apply, then vm verify',
        },
  );
  if (driver === 'i915') {
    const built = facts.sriov.dkmsI915.includes(facts.kernel.release);
    checks.push(
      built
        ? {
            id: 'guest.sriov-driver',
            status: 'pass',
            evidence:
              `i915-sriov-dkms ${facts.packages.get(DKMS_PACKAGE) ?? ''} built for ${facts.kernel.release} (/lib/modules/${facts.kernel.release}/updates/dkms)`.replace(
                '  ',
                ' ',
              ),
          }
        : {
            id: 'guest.sriov-driver',
            status: 'fail',
            evidence: `no i915 from dkms for the running kernel ${facts.kernel.release} (/lib/modules/${facts.kernel.release}/updates/dkms): the stock i915 cannot drive a VF`,
            fix: 'run igpu-split guest apply (installs i915-sriov-dkms for this kernel)',
          },
    );
  }
  checks.push(
    hasParams(facts.sriov.cmdline, params)
      ? { id: 'guest.cmdline', status: 'pass', evidence: `/proc/cmdline has ${params.join(' ')}` }
      : {
          id: 'guest.cmdline',
          status: 'fail',
          evidence: `/proc/cmdline lacks ${params.filter((p) => !hasParams(facts.sriov.cmdline, [p])).join(' ')}`,
          fix: 'run igpu-split guest apply (GRUB drop-in, then a reboot)',
        },
  );
  if (gpu) {
    checks.push(
      gpu.device.driver === driver
        ? {
            id: 'guest.driver',
            status: 'pass',
            evidence: `${driver} is bound to the VF ${gpu.device.bdf} (/sys/bus/pci/devices/${gpu.device.bdf}/driver)`,
          }
        : {
            id: 'guest.driver',
            status: 'fail',
            evidence: `the VF ${gpu.device.bdf} has ${gpu.device.driver ? `driver ${gpu.device.driver}` : 'no driver bound'}, not ${driver}`,
            fix: `check \`journalctl -k | grep -i ${driver}\` (GuC/VF messages), then igpu-split guest apply`,
          },
    );
    checks.push(
      gpu.render?.devNode
        ? {
            id: 'guest.render',
            status: 'pass',
            evidence: `the VF's render node /dev/dri/${gpu.render.name} (/dev/dri/by-path/pci-${gpu.device.bdf}-render)`,
          }
        : {
            id: 'guest.render',
            status: 'fail',
            evidence: `no render node for the VF ${gpu.device.bdf} in /sys/class/drm and /dev/dri`,
            fix: `it appears once ${driver} is bound to the VF`,
          },
    );
  }
  checks.push(
    facts.secureBoot === true
      ? {
          id: 'guest.secure-boot',
          status: driver === 'i915' ? 'fail' : 'pass',
          evidence:
            driver === 'i915'
              ? 'Secure Boot is on: the unsigned i915-sriov-dkms module does not load'
              : 'Secure Boot is on; xe is signed by Canonical',
          ...(driver === 'i915'
            ? { fix: 'turn Secure Boot off in the VM (igpu-split vm apply --reset-efi-keys)' }
            : {}),
        }
      : {
          id: 'guest.secure-boot',
          status: 'pass',
          evidence:
            facts.secureBoot === false ? 'Secure Boot is off' : 'no UEFI Secure Boot variable (BIOS boot)',
        },
  );
  // The guard's verdict on kernels installed since (unattended-upgrades' output is read by no one).
  checks.push(...guestGuardChecks(facts.guard, attachment));
  return checks;
}
