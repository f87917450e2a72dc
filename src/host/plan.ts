// Host layer `plan`: desired state for the host's mode, compared with its facts, as
// steps with diffs. Pure: it reads facts only; apply (next) carries the steps out.
//
// Decisions:
// - Our parameters go at the end of the command line (a GRUB drop-in appending to
//   GRUB_CMDLINE_LINUX_DEFAULT, or the end of /etc/kernel/cmdline's single line). The
//   kernel takes the last value of a repeated parameter, so the user's own text is never
//   edited, and rollback removes exactly what we appended.
// - A user value that disagrees with ours (intel_iommu=off, i915.enable_gvt=0) is still
//   planned, marked needsForce: apply refuses it without --force.
// - kvmgt loads through systemd-modules-load from the root file system, so it needs no
//   initramfs rebuild; the initramfs step belongs to passthrough's early vfio-pci binding.

import { createTwoFilesPatch } from 'diff';
import type { LayerPlan, Step } from '../core/model.ts';
import { counted } from '../core/text.ts';
import { IGPU_PLATFORMS, type IgpuPlatform } from '../knowledge/igpu-platforms.ts';
import { MODULE, PARAM, STALE_MODULES, VFIO_PCI_OBJECT } from '../knowledge/kernel.ts';
import { HOST_COMMAND } from '../knowledge/packages.ts';
import { PATHS } from '../linux/paths.ts';
import {
  effectiveGrubCmdline,
  evaluateGrubDefaults,
  type GrubFile,
  sortDropins,
} from './boot/grub-defaults.ts';
import { type ParamPlan, planParams } from './boot/kernel-params.ts';
import type { HostFacts } from './facts.ts';
import { guardSteps, hostGuardSpec } from './guard/plan.ts';
import {
  INITRAMFS_MODULES,
  SRIOV_TMPFILES,
  sriovModprobe,
  sriovTmpfiles,
  withInitramfsDriver,
} from './sriov/files.ts';
import { type DriverInstall, desiredSriov, type SriovDesired, type SriovWishes } from './sriov/plan.ts';
import { type HostVerdict, hostVerdict, type Mode, unreadableIgpu } from './verdict.ts';

export const GRUB_DROPIN = '/etc/default/grub.d/igpu-split.cfg';
export const MODULES_CONF = '/etc/modules-load.d/igpu-split.conf';
export const MODPROBE_CONF = '/etc/modprobe.d/igpu-split.conf';
/** Where dkms keeps the key it signs modules with (S1 docs/secure-boot.md @ 2421d3f). */
export const DKMS_MOK_KEY = '/var/lib/dkms/mok.pub';

export interface HostPlanOptions {
  /** Add PARAM.acsOverride (pcie_acs_override=downstream,multifunction: weakens IOMMU isolation; never needed for mdev). */
  acsOverride?: boolean;
  /** What the lab asks of this host (hosts[].mode, vfs, its VMs, the driver package); absent: `auto`, no VMs known. */
  wishes?: SriovWishes;
}

export interface HostStep extends Step {
  /** A file the step writes whole (atomically, after a backup). */
  write?: { path: string; content: string; mode: number };
  /** Packages apt installs (the SR-IOV driver and what builds it). */
  install?: DriverInstall;
  /** Only the user can take this step (at the host's console): apply stops before it. */
  manual?: { reason: string; commands: string[] };
}

export interface HostPlan extends LayerPlan<HostStep> {
  target: string;
  mode: Mode;
  /**
   * Why this host cannot be planned: its mode is not planned yet, or a file the plan
   * depends on could not be read (nothing is then planned on a guess).
   */
  unsupported?: string;
  params: ParamPlan;
  staleModules: { path: string; line: number; name: string; why: string }[];
  /** What stands in the way of applying, one line each. */
  problems: string[];
  /** What makes the plan less certain; apply checks these on the host. */
  notes: string[];
  /** A reboot is needed for the new state to be live (its step disturbs `host-reboot`). */
  reboot: boolean;
  /** SR-IOV hosts: the route, the VF count and the kernel check the steps were planned from. */
  sriov?: Omit<SriovDesired, 'checks' | 'install'>;
  /** Why apply needs --force besides overridden values (a next kernel that loses the split). */
  forceReasons: string[];
}

interface Desired {
  params: string[];
  modules: string[];
  /** /etc/modprobe.d content, for passthrough's early vfio-pci binding. */
  modprobe?: string;
  sriov?: SriovDesired;
}

/**
 * The mode to plan: the hardware's (`auto`), or the one the lab asks for when the hardware
 * can do it; a mode it cannot do is refused with the reason.
 */
export function plannedMode(verdict: HostVerdict, wished: SriovWishes['mode'] | undefined): Mode | string {
  if (wished === undefined || wished === 'auto' || wished === verdict.mode) return verdict.mode;
  const platform = verdict.gpu?.platform ? IGPU_PLATFORMS[verdict.gpu.platform as IgpuPlatform] : undefined;
  const refuse = (why: string) => `mode ${wished} cannot be planned here: ${why}`;
  if (verdict.mode === 'none') return refuse(verdict.modeReason);
  if (wished === 'sriov')
    return platform && platform.sriov.length > 0
      ? 'sriov'
      : refuse(`${platform?.name ?? 'this'} iGPU has no SR-IOV (no driver sets has_sriov for it)`);
  if (wished === 'gvt-g')
    return platform?.gvt
      ? 'gvt-g'
      : refuse(
          `${platform?.name ?? 'this'} iGPU has no GVT-g (the kernel's GVT-g supports Broadwell to Comet Lake)`,
        );
  return 'passthrough';
}

function desiredFor(verdict: HostVerdict, facts: HostFacts, options: HostPlanOptions): Desired | string {
  const mode = plannedMode(verdict, options.wishes?.mode);
  if (!['gvt-g', 'sriov', 'passthrough', 'none'].includes(mode)) return mode;
  const acs = options.acsOverride ? [PARAM.acsOverride] : [];
  if (mode === 'gvt-g') {
    const params: string[] = [PARAM.intelIommuOn, PARAM.iommuPassThrough, PARAM.gvtOn, ...acs];
    // GuC submission off only when something turned it on (it blocks GVT-g).
    const guc = facts.i915?.enableGuc;
    if (guc !== undefined && guc > 0 && (guc & 1) === 1) params.push(PARAM.gucOff);
    return { params, modules: [MODULE.kvmgt] };
  }
  if (mode === 'passthrough') {
    const gpu = verdict.gpu;
    return {
      params: [PARAM.intelIommuOn, PARAM.iommuPassThrough, ...acs],
      modules: [MODULE.vfio, MODULE.vfioIommuType1, MODULE.vfioPci],
      // vfio-pci must claim the iGPU before i915 does: by id, and loaded ahead of i915.
      modprobe: [
        '# Written by igpu-split: hand the iGPU to vfio-pci for whole-device passthrough.',
        `options ${VFIO_PCI_OBJECT} ids=${gpu?.vendorId}:${gpu?.deviceId}`,
        `softdep ${MODULE.i915} pre: ${VFIO_PCI_OBJECT}`,
        '',
      ].join('\n'),
    };
  }
  if (mode === 'sriov') {
    const sriov = desiredSriov(facts, verdict, options.wishes ?? { mode: 'auto', vfs: 'auto', vmsOnHost: 0 });
    if (typeof sriov === 'string') return sriov;
    return {
      params: [...sriov.params, ...acs],
      modules: [MODULE.vfio, MODULE.vfioIommuType1, MODULE.vfioPci],
      modprobe: sriovModprobe(sriov.choice.driver),
      sriov,
    };
  }
  return `this host has nothing to share: ${verdict.modeReason}`;
}

/** Files (and folders) whose content the plan is built from. */
const PLAN_INPUTS = [
  PATHS.cmdline,
  PATHS.modules,
  PATHS.i915Params,
  PATHS.pciDevices,
  PATHS.grubDefault,
  PATHS.grubDropins,
  PATHS.bootUuids,
  PATHS.kernelCmdline,
  PATHS.modulesFile,
  PATHS.modulesLoadDir,
  PATHS.ourModprobe,
];

/** The first file the plan depends on that could not be read, as `path: why`. */
function unreadableInput(facts: HostFacts, gpuBdf: string | undefined): string | undefined {
  const gpuDir = gpuBdf ? `${PATHS.pciDevices}/${gpuBdf}/` : undefined;
  const hit = facts.unreadable.find(
    (u) =>
      PLAN_INPUTS.some((input) => u.path === input || u.path.startsWith(`${input}/`)) &&
      // Other PCI devices do not matter to the plan; the iGPU's own files do.
      (!u.path.startsWith(`${PATHS.pciDevices}/`) || (gpuDir !== undefined && u.path.startsWith(gpuDir))),
  );
  return hit && `${hit.path}: ${hit.error}`;
}

/**
 * proxmox-boot-tool takes only the first line of /etc/kernel/cmdline and stops when it has
 * no root= (proxmox-kernel-helper src/proxmox-boot/zz-proxmox-boot and functions
 * get_first_line, at 8.1.0, commit 7007b33c); without the file it falls back to
 * /proc/cmdline. Parameters added to a second line would be silently lost.
 */
function kernelCmdlineProblem(content: string | undefined): string | undefined {
  if (content === undefined)
    return `${PATHS.kernelCmdline} is missing (proxmox-boot-tool then boots with /proc/cmdline): create it from /proc/cmdline without initrd= first, then plan again`;
  const lines = content.replace(/\n+$/, '').split('\n').length;
  if (lines > 1)
    return `${PATHS.kernelCmdline} has ${lines} lines, and proxmox-boot-tool uses only the first: join them into one line, then plan again`;
  if (!/(^|\s)root=/.test(content))
    return `${PATHS.kernelCmdline} has no root= parameter, so proxmox-boot-tool refresh would fail: fix it first`;
  return undefined;
}

export function planHost(facts: HostFacts, options: HostPlanOptions = {}): HostPlan {
  const plan = planHostSteps(facts, options);
  // The host cannot be applied when nothing could be planned or something stands in the way.
  const refused = plan.unsupported ?? (plan.problems.length > 0 ? plan.problems.join('; ') : undefined);
  return refused === undefined ? plan : { ...plan, refused };
}

function planHostSteps(facts: HostFacts, options: HostPlanOptions): HostPlan {
  const verdict = hostVerdict(facts);
  const empty: ParamPlan = { add: [], present: [], conflicts: [] };
  const problems: string[] = [];
  const notes: string[] = [];
  const base = {
    target: facts.target,
    mode: verdict.mode,
    checks: [],
    params: empty,
    staleModules: staleModules(facts),
    problems,
    notes,
    steps: [],
    reboot: false,
    forceReasons: [] as string[],
  };
  const unreadable = unreadableRefusal(facts, verdict);
  if (unreadable) return { ...base, unsupported: unreadable };
  const desired = desiredFor(verdict, facts, options);
  if (typeof desired === 'string') return { ...base, unsupported: desired };
  const mode = plannedMode(verdict, options.wishes?.mode) as Mode;
  const bootProblem = bootloaderRefusal(facts.bootloader);
  if (bootProblem) return { ...base, mode, unsupported: bootProblem };

  // The driver comes first (nothing of the boot configuration changes if it does not
  // build); modules and the initramfs next: proxmox-boot-tool refresh copies the initramfs
  // to the ESPs, so it must see the rebuilt one.
  const steps: HostStep[] = [];
  const sriov = desired.sriov;
  if (sriov?.install) steps.push(installStep(facts.target, sriov.install));
  // More VMs than VFs (and the like) is a problem: nothing is applied half-way.
  for (const check of sriov?.checks ?? [])
    if (check.status === 'fail') problems.push(`${check.evidence}: ${check.fix}`);
  const modules = modulesStep(facts, desired.modules);
  if (modules) steps.push(modules);
  steps.push(
    ...modprobeSteps(facts, desired.modprobe, sriov ? initramfsModulesStep(facts, sriov) : undefined),
  );
  if (sriov) {
    const tmpfiles = tmpfilesStep(facts, sriov);
    if (tmpfiles) steps.push(tmpfiles);
  }
  const boot = facts.bootloader;
  const cmdline =
    boot.kind === 'grub'
      ? grubSteps(facts.target, boot.files, desired.params, notes, problems)
      : boot.kind === 'systemd-boot'
        ? systemdBootSteps(facts.target, boot.cmdline, desired.params)
        : { params: empty, steps: [] };
  steps.push(...cmdline.steps);
  const reboot = rebootStep(facts, verdict, desired);
  const forceReasons: string[] = [];
  if (sriov && !sriov.kernel.ok && reboot) {
    // Plan warns; apply refuses the reboot without --force (the host would come back without VFs).
    forceReasons.push(`${sriov.kernel.why} (${sriov.kernel.fix})`);
    reboot.needsForce = true;
  }
  // The kernel guard, before the reboot: it checks every kernel installed after this apply.
  const guardSpec = hostGuardSpec(mode, sriov?.choice);
  if (guardSpec) steps.push(...guardSteps(facts, guardSpec, options.wishes?.guard));
  if (reboot && sriov?.mokEnrolment) steps.push(mokStep(facts.target));
  else if (reboot) steps.push(reboot);
  return {
    ...base,
    mode,
    checks: [...(sriov?.checks ?? []), ...kernelChecks(sriov)],
    params: cmdline.params,
    steps,
    reboot: reboot !== undefined,
    forceReasons,
    ...(sriov ? { sriov: withoutPlanParts(sriov) } : {}),
  };
}

function withoutPlanParts({ checks: _checks, install: _install, ...rest }: SriovDesired): HostPlan['sriov'] {
  return rest;
}

/** The kernel the host boots next, checked against the route (a warning: apply needs --force to reboot into it). */
function kernelChecks(sriov: SriovDesired | undefined) {
  if (!sriov) return [];
  const kernel = sriov.kernel;
  return [
    kernel.ok
      ? { id: 'sriov.next-kernel', status: 'pass' as const, evidence: kernel.evidence }
      : {
          id: 'sriov.next-kernel',
          status: 'warn' as const,
          evidence: `next boot (${sriov.nextKernel ?? 'unknown kernel'}): ${kernel.why}`,
          fix: `${kernel.fix}; apply reboots into it only with --force`,
        },
  ];
}

/** apt installs the driver package and what builds it; the package file goes to the host first. */
function installStep(target: string, install: DriverInstall): HostStep {
  const names = [...install.packages, ...(install.release ? [install.release.hostPath] : [])];
  const from = install.release
    ? install.release.file
      ? `, from ${install.release.file}`
      : `, downloaded from ${install.release.url}`
    : '';
  return {
    id: `host/${target}/sriov-driver`,
    target,
    description: `install ${[...install.packages, ...(install.release ? [`i915-sriov-dkms ${install.release.release}`] : [])].join(', ')}${from} (apt-get --simulate first; dkms builds i915 for every installed kernel)`,
    command: `apt-get install --no-install-recommends ${names.join(' ')}`,
    install,
    disturbs: [],
  };
}

/** The iGPU driver listed for the initramfs, so it binds the PF before the VFs are created. */
function initramfsModulesStep(facts: HostFacts, sriov: SriovDesired): HostStep | undefined {
  const current = facts.sriovFiles.find((f) => f.path === INITRAMFS_MODULES)?.content ?? '';
  const wanted = withInitramfsDriver(current, sriov.choice.driver);
  if (wanted === current) return undefined;
  return {
    id: `host/${facts.target}/initramfs-modules`,
    target: facts.target,
    description: `${INITRAMFS_MODULES}: add ${sriov.choice.driver} (it binds the iGPU before the VFs are created)`,
    diff: createTwoFilesPatch(`a${INITRAMFS_MODULES}`, `b${INITRAMFS_MODULES}`, current, wanted),
    write: { path: INITRAMFS_MODULES, content: wanted, mode: 0o644 },
    disturbs: [],
  };
}

/** The tmpfiles line that creates the VFs at every boot. */
function tmpfilesStep(facts: HostFacts, sriov: SriovDesired): HostStep | undefined {
  const current = facts.sriovFiles.find((f) => f.path === SRIOV_TMPFILES)?.content ?? '';
  const wanted = sriovTmpfiles(sriov.pfBdf, sriov.vfs);
  if (wanted === current) return undefined;
  return {
    id: `host/${facts.target}/sriov-vfs`,
    target: facts.target,
    description: `create ${counted(sriov.vfs, 'virtual function')} of ${sriov.pfBdf} at every boot, kept off the host (${SRIOV_TMPFILES})`,
    diff: createTwoFilesPatch(`a${SRIOV_TMPFILES}`, `b${SRIOV_TMPFILES}`, current, wanted),
    write: { path: SRIOV_TMPFILES, content: wanted, mode: 0o644 },
    disturbs: [],
  };
}

/** Secure Boot with the dkms key not enrolled: enrolment needs the console, so the reboot is the user's. */
function mokStep(target: string): HostStep {
  return {
    id: `host/${target}/mok-enrol`,
    target,
    description:
      'enrol the dkms signing key and reboot at the console (Secure Boot is on): two reboots, into the MOK manager and out of it',
    manual: {
      reason: 'Secure Boot is on and the dkms signing key is not enrolled; enrolment needs the console',
      commands: [
        `mokutil --import ${DKMS_MOK_KEY}   # on ${target}: choose a one-time password`,
        `igpu-split cluster drain <the node VMs of ${target}>`,
        `reboot ${target} at its console, choose "Enroll MOK", enter the password, reboot`,
        'igpu-split apply   # then: verifies the VFs and uncordons',
      ],
    },
    disturbs: [],
  };
}

/** Why the host cannot be planned from what was read: an iGPU that cannot be named, or an input file that does not read. */
function unreadableRefusal(facts: HostFacts, verdict: HostVerdict): string | undefined {
  const unknown = unreadableIgpu(facts);
  if (unknown)
    return `cannot plan: unknown device at ${unknown.bdf}: ${unknown.problem} (its identity cannot be read)`;
  const unreadable = unreadableInput(facts, verdict.gpu?.bdf);
  return unreadable && `cannot plan: ${unreadable}`;
}

/** Why the boot loader's command line cannot be changed, or undefined. */
function bootloaderRefusal(boot: HostFacts['bootloader']): string | undefined {
  if (boot.kind === 'systemd-boot') {
    const problem = kernelCmdlineProblem(boot.cmdline);
    return problem && `cannot plan: ${problem}`;
  }
  if (boot.kind === 'unknown')
    return `cannot plan: no boot loader configuration to change (neither ${PATHS.grubDefault} nor a systemd-boot list in ${PATHS.bootUuids})`;
  return undefined;
}

/** GRUB: our drop-in with the parameters the evaluated defaults lack, then update-grub. */
function grubSteps(
  target: string,
  files: { path: string; content: string }[],
  desiredParams: string[],
  notes: string[],
  problems: string[],
): { params: ParamPlan; steps: HostStep[] } {
  const ours = files.find((f) => f.path === GRUB_DROPIN);
  const others = files.filter((f) => f.path !== GRUB_DROPIN);
  const evaluated = evaluateGrubDefaults(others);
  for (const u of evaluated.unsupported) {
    notes.push(
      `${u.path}:${u.line}: cannot evaluate "${u.text}" without a shell; apply checks the result with the host's shell`,
    );
  }
  const params = planParams(effectiveGrubCmdline(evaluated) ?? '', desiredParams);
  const wanted = [...params.add, ...params.conflicts.map((c) => c.want)];
  const content = wanted.length > 0 ? grubDropin(wanted) : '';
  if (content !== '') problems.push(...overriddenBy(others, content, desiredParams));
  if ((wanted.length === 0 && !ours) || content === (ours?.content ?? '')) return { params, steps: [] };
  return {
    params,
    steps: [
      writeStep(target, 'grub-dropin', GRUB_DROPIN, ours?.content ?? '', content, params),
      {
        id: `host/${target}/update-grub`,
        target,
        description: 'regenerate /boot/grub/grub.cfg so the next boot uses the new command line',
        command: HOST_COMMAND.updateGrub,
        disturbs: [],
      },
    ],
  };
}

/** systemd-boot: the missing parameters appended to /etc/kernel/cmdline, then proxmox-boot-tool refresh. */
function systemdBootSteps(
  target: string,
  cmdline: string | undefined,
  desiredParams: string[],
): { params: ParamPlan; steps: HostStep[] } {
  const line = (cmdline ?? '').trim();
  const params = planParams(line, desiredParams);
  const wanted = [...params.add, ...params.conflicts.map((c) => c.want)];
  if (wanted.length === 0) return { params, steps: [] };
  return {
    params,
    steps: [
      writeStep(
        target,
        'kernel-cmdline',
        PATHS.kernelCmdline,
        `${line}\n`,
        `${[line, ...wanted].join(' ').trim()}\n`,
        params,
      ),
      {
        id: `host/${target}/proxmox-boot-tool-refresh`,
        target,
        description: 'copy the new command line and kernels to every ESP proxmox-boot-tool manages',
        command: HOST_COMMAND.proxmoxBootToolRefresh,
        disturbs: [],
      },
    ],
  };
}

/** Live state decides the reboot: parameters missing from /proc/cmdline or modules not loaded. */
function rebootStep(facts: HostFacts, verdict: HostVerdict, desired: Desired): HostStep | undefined {
  const running = planParams(facts.cmdline ?? '', desired.params);
  const notLoaded = desired.modules.filter((m) => !facts.modules.includes(m));
  const gpu = verdict.gpu;
  // Passthrough hands the whole iGPU to vfio-pci; SR-IOV keeps the PF on its driver and needs the VFs.
  const unbound =
    desired.modprobe !== undefined && !desired.sriov && gpu?.driver !== 'vfio-pci'
      ? [`${gpu?.bdf} on vfio-pci`]
      : [];
  const live = [
    ...running.add,
    ...running.conflicts.map((c) => c.want),
    ...notLoaded,
    ...unbound,
    ...missingVfs(facts, desired.sriov),
  ];
  if (live.length === 0) return undefined;
  return {
    id: `host/${facts.target}/reboot`,
    target: facts.target,
    description: `reboot to make live: ${live.join(', ')}`,
    command: 'systemctl reboot',
    disturbs: ['host-reboot'],
  };
}

/** The VFs the host should have live and does not (a count of 0 or another count). */
function missingVfs(facts: HostFacts, sriov: SriovDesired | undefined): string[] {
  if (!sriov) return [];
  const live = facts.displayDevices.find((d) => d.bdf === sriov.pfBdf)?.sriov?.numVfs;
  return live === sriov.vfs ? [] : [`${counted(sriov.vfs, 'virtual function')} (now ${live ?? 'none'})`];
}

/** Drop-ins sorting after ours that set the variable again would undo our parameters. */
function overriddenBy(others: GrubFile[], content: string, wanted: string[]): string[] {
  const [main, ...dropins] = others[0]?.path === PATHS.grubDefault ? others : [undefined, ...others];
  const files = [
    ...(main ? [main] : []),
    ...sortDropins([...dropins.filter((f) => f !== undefined), { path: GRUB_DROPIN, content }]),
  ];
  const result = effectiveGrubCmdline(evaluateGrubDefaults(files));
  if (result === undefined) return [];
  const lost = planParams(result, wanted);
  if (lost.add.length === 0 && lost.conflicts.length === 0) return [];
  const later = files.slice(files.findIndex((f) => f.path === GRUB_DROPIN) + 1).map((f) => f.path);
  return [
    `${later.join(', ')} set${later.length === 1 ? 's' : ''} the kernel command line again after ${GRUB_DROPIN}, dropping ${[...lost.add, ...lost.conflicts.map((c) => c.want)].join(' ')}: make ${later.length === 1 ? 'it' : 'them'} append ("$GRUB_CMDLINE_LINUX_DEFAULT …") instead`,
  ];
}

function grubDropin(params: string[]): string {
  return [
    '# Written by igpu-split: kernel parameters for sharing the Intel iGPU.',
    '# Appended to the value the files before this one set. Delete this file',
    '# (or run igpu-split rollback) and run update-grub to undo.',
    `GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT ${params.join(' ')}"`,
    '',
  ].join('\n');
}

function writeStep(
  target: string,
  name: string,
  path: string,
  before: string,
  after: string,
  params: ParamPlan,
): HostStep {
  const changes = [
    ...params.add.map((p) => `add ${p}`),
    ...params.conflicts.map((c) => `override the user's ${c.have} with ${c.want}`),
  ];
  return {
    id: `host/${target}/${name}`,
    target,
    description: after === '' ? `remove ${path}` : `${path}: ${changes.join(', ') || 'rewrite'}`,
    diff: createTwoFilesPatch(`a${path}`, `b${path}`, before, after),
    write: { path, content: after, mode: 0o644 },
    disturbs: [],
    needsForce: params.conflicts.length > 0,
  };
}

function configuredModules(facts: HostFacts): Set<string> {
  const names = new Set<string>();
  for (const file of facts.moduleFiles.filter((f) => f.path !== MODPROBE_CONF)) {
    for (const line of file.content.split('\n')) {
      const name = line.replace(/#.*/, '').trim().split(/\s+/)[0];
      if (name) names.add(name.replaceAll('-', '_'));
    }
  }
  return names;
}

function modulesStep(facts: HostFacts, wanted: string[]): HostStep | undefined {
  const ours = facts.moduleFiles.find((f) => f.path === MODULES_CONF);
  const elsewhere = configuredModules({ ...facts, moduleFiles: facts.moduleFiles.filter((f) => f !== ours) });
  const missing = wanted.filter((m) => !elsewhere.has(m));
  const content =
    missing.length > 0
      ? `# Written by igpu-split: modules the iGPU sharing needs at boot.\n${missing.join('\n')}\n`
      : '';
  if (content === (ours?.content ?? '')) return undefined;
  return {
    id: `host/${facts.target}/modules-load`,
    target: facts.target,
    description: content === '' ? `remove ${MODULES_CONF}` : `load ${missing.join(', ')} at boot`,
    diff: createTwoFilesPatch(`a${MODULES_CONF}`, `b${MODULES_CONF}`, ours?.content ?? '', content),
    write: { path: MODULES_CONF, content, mode: 0o644 },
    disturbs: [],
  };
}

/**
 * modprobe.d is copied into the initramfs, where vfio-pci must already win the iGPU, so
 * changing it means rebuilding the initramfs for every installed kernel.
 */
function modprobeSteps(
  facts: HostFacts,
  content: string | undefined,
  alsoInInitramfs?: HostStep,
): HostStep[] {
  const ours = facts.moduleFiles.find((f) => f.path === MODPROBE_CONF);
  const wanted = content ?? '';
  const extra = alsoInInitramfs ? [alsoInInitramfs] : [];
  if (wanted === (ours?.content ?? ''))
    return extra.length > 0 ? [...extra, updateInitramfsStep(facts.target)] : [];
  const id = `host/${facts.target}/modprobe`;
  return [
    ...extra,
    {
      id,
      target: facts.target,
      description:
        wanted === ''
          ? `remove ${MODPROBE_CONF}`
          : wanted.includes('softdep') && !wanted.includes('ids=')
            ? 'load vfio-pci before the iGPU driver (for the virtual functions)'
            : 'bind the iGPU to vfio-pci at boot (before i915)',
      diff: createTwoFilesPatch(`a${MODPROBE_CONF}`, `b${MODPROBE_CONF}`, ours?.content ?? '', wanted),
      write: { path: MODPROBE_CONF, content: wanted, mode: 0o644 },
      disturbs: [],
    },
    updateInitramfsStep(facts.target),
  ];
}

function updateInitramfsStep(target: string): HostStep {
  return {
    id: `host/${target}/update-initramfs`,
    target,
    description: 'rebuild the initramfs of every kernel so the vfio-pci binding applies at early boot',
    command: HOST_COMMAND.updateInitramfsAll,
    disturbs: [],
  };
}

function staleModules(facts: HostFacts): HostPlan['staleModules'] {
  const stale: HostPlan['staleModules'] = [];
  for (const file of facts.moduleFiles) {
    file.content.split('\n').forEach((line, index) => {
      const name = line.replace(/#.*/, '').trim().split(/\s+/)[0]?.replaceAll('-', '_');
      const why = name ? STALE_MODULES[name]?.why : undefined;
      if (name && why) stale.push({ path: file.path, line: index + 1, name, why });
    });
  }
  return stale;
}
