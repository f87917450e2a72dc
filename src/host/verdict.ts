// What a host's hardware can do (mode) and what stands in the way (checks), from facts alone.
//
// Decisions, written down because no issue settles them:
// - `mode` is what the silicon and firmware allow, not what is configured today: a Coffee
//   Lake host without i915.enable_gvt=1 is still `gvt-g`, with a failing check saying so.
// - `none` when there is no Intel iGPU, or when the only route left (passthrough, SR-IOV)
//   needs an IOMMU and the firmware offers none (no ACPI DMAR table): only a BIOS change helps.
// - VT-x being off in the BIOS is a failing check, not a different mode: it is one switch.
// - Warnings do not fail doctor; they mark things that work but cost capacity or safety.

import type { Check } from '../core/model.ts';
import { coreGenerationFromModelName, lookupIntelCpuModel } from '../knowledge/cpu-models.ts';
import { describeChoices, type GvtPrediction, predictGvtTypes } from '../knowledge/gvt.ts';
import { lookupIgpu } from '../knowledge/igpu-ids.ts';
import { IGPU_PLATFORMS, type IgpuPlatformInfo, type SriovRoute } from '../knowledge/igpu-platforms.ts';
import {
  BOOT_PARAM,
  I915_PARAM,
  MODULE,
  moduleParam,
  moduleParametersDir,
  PARAM,
} from '../knowledge/kernel.ts';
import type { DisplayDeviceFacts } from '../linux/facts.ts';
import { guardChecks } from '../linux/kernel-guard/checks.ts';
import { hex4 } from '../linux/parse/pci.ts';
import { splitCmdline } from '../linux/parse/small-files.ts';
import { PATHS } from '../linux/paths.ts';
import type { HostFacts } from './facts.ts';
import { sriovChecks } from './sriov/checks.ts';
import { chooseRoute } from './sriov/route.ts';

const GUC_PARAM = moduleParam(MODULE.i915, I915_PARAM.enableGuc);
const GVT_PARAM = moduleParam(MODULE.i915, I915_PARAM.enableGvt);

export type Mode = 'gvt-g' | 'sriov' | 'passthrough' | 'none';

export interface HostVerdict {
  mode: Mode;
  /** One sentence: why this mode. */
  modeReason: string;
  cpu: {
    vendor: string;
    family: number;
    model: number;
    stepping: number | null;
    modelName: string;
    codename: string | null;
    coreGeneration: number | null;
    vmx: boolean;
  } | null;
  gpu: {
    bdf: string;
    vendorId: string;
    deviceId: string;
    subsystemId: string | null;
    platform: string | null;
    platformName: string | null;
    graphicsVer: number | null;
    driver: string | null;
    iommuGroup: number | null;
    apertureMiB: number | null;
  } | null;
  vgpu: { predicted: Record<string, number>; live: Record<string, number> };
  checks: Check[];
}

const MiB = 1024 * 1024;

export function hostVerdict(facts: HostFacts): HostVerdict {
  const checks: Check[] = [];
  const igpu = primaryIntelGpu(facts);
  const known = igpu ? lookupIgpu(igpu.deviceId) : undefined;
  const platform = known ? IGPU_PLATFORMS[known.platform] : undefined;
  const cmdline = splitCmdline(facts.cmdline ?? '');

  checks.push(...readabilityChecks(facts), cpuCheck(facts));
  const unknown = unreadableIgpu(facts);
  if (unknown) {
    // Nothing is decided on a guess: a device we cannot name is never a passthrough target.
    checks.push({
      id: 'gpu.intel-igpu',
      status: 'fail',
      evidence: `unknown device at ${unknown.bdf}: its identity cannot be read (${unknown.problem})`,
      fix: 'read the host live (doctor --host) or capture it again; a sysfs file that reads wrong on a live host points at a kernel or hardware fault',
    });
    return {
      mode: 'none',
      modeReason: `unknown device at ${unknown.bdf}: its PCI identity cannot be read (${unknown.problem}), so nothing is planned for it`,
      cpu: cpuSummary(facts),
      gpu: null,
      vgpu: { predicted: {}, live: {} },
      checks,
    };
  }
  const choice = platform && platform.sriov.length > 0 ? chooseRoute(platform, 'auto') : undefined;
  const { mode, reason } = decideMode(facts, igpu, platform, choice);
  checks.push(gpuCheck(facts, igpu, platform));

  let vgpu: HostVerdict['vgpu'] = { predicted: {}, live: {} };
  if (mode !== 'none') checks.push(...iommuChecks(facts, igpu, mode, cmdline));
  if (igpu && platform?.graphicsVer && mode === 'gvt-g') {
    const gvt = gvtChecks(facts, igpu, platform.graphicsVer, cmdline);
    checks.push(...gvt.checks);
    vgpu = gvt.vgpu;
  } else if (igpu && mode === 'sriov' && choice && 'route' in choice) {
    const sriov = sriovChecks(facts, igpu, choice);
    checks.push(...sriov.checks);
    vgpu = sriov.vgpu;
  } else if (igpu && mode === 'passthrough') {
    checks.push(passthroughCheck(igpu));
    vgpu = { predicted: { passthrough: 1 }, live: {} };
  }
  checks.push(...platformChecks(facts, mode));
  if (mode !== 'none')
    checks.push(
      ...guardChecks({
        guard: facts.kernelGuard,
        installed: facts.kernels.installed,
        pinned: facts.kernels.pinned,
        nextBootPin: facts.kernels.nextBootPin,
        // A host igpu-split set up (its module files are there) should have the guard.
        wanted: facts.moduleFiles.some(
          (f) => f.path === PATHS.ourModprobe || f.path === `${PATHS.modulesLoadDir}/igpu-split.conf`,
        ),
      }),
    );

  return {
    mode,
    modeReason: reason,
    cpu: cpuSummary(facts),
    gpu: igpu
      ? {
          bdf: igpu.bdf,
          vendorId: hex4(igpu.vendorId),
          deviceId: hex4(igpu.deviceId),
          subsystemId:
            igpu.subsystemVendorId !== undefined && igpu.subsystemDeviceId !== undefined
              ? `${hex4(igpu.subsystemVendorId)}:${hex4(igpu.subsystemDeviceId)}`
              : null,
          platform: known?.platform ?? null,
          platformName: platform ? withVariant(platform.name, known?.variant) : null,
          graphicsVer: platform?.graphicsVer ?? null,
          driver: igpu.driver ?? null,
          iommuGroup: igpu.iommuGroup ?? null,
          apertureMiB: igpu.apertureBytes === undefined ? null : Math.round(igpu.apertureBytes / MiB),
        }
      : null,
    vgpu,
    checks,
  };
}

function cpuSummary(facts: HostFacts): HostVerdict['cpu'] {
  if (!facts.cpu) return null;
  const cpuModel =
    facts.cpu.vendor === 'GenuineIntel'
      ? lookupIntelCpuModel(facts.cpu.family, facts.cpu.model, facts.cpu.stepping)
      : undefined;
  return {
    vendor: facts.cpu.vendor,
    family: facts.cpu.family,
    model: facts.cpu.model,
    stepping: facts.cpu.stepping ?? null,
    modelName: facts.cpu.modelName,
    codename: cpuModel?.codename ?? null,
    coreGeneration: coreGeneration(facts.cpu.modelName, cpuModel?.coreGeneration),
    vmx: facts.cpu.vmx,
  };
}

/**
 * A device whose identity could not be read, where the iGPU would be: at 00:02.0 (where
 * Intel iGPUs sit) when no Intel iGPU was identified there, or anywhere when none was
 * identified at all.
 */
export function unreadableIgpu(facts: HostFacts): { bdf: string; problem: string } | undefined {
  const igpu = primaryIntelGpu(facts);
  if (igpu?.bdf.endsWith(':00:02.0')) return undefined;
  const slot = facts.unidentified.find((u) => u.bdf.endsWith(':00:02.0'));
  if (slot) return slot;
  return igpu ? undefined : facts.unidentified[0];
}

/**
 * The name says it best (i5-8500T is 8th gen); the model table only speaks for parts sold
 * as Core: a Xeon, Pentium or Celeron on the same silicon has no Core generation.
 */
function coreGeneration(modelName: string, fromModel: number | undefined): number | null {
  return coreGenerationFromModelName(modelName) ?? (/\bCore\b/.test(modelName) ? (fromModel ?? null) : null);
}

function withVariant(name: string, variant: string | undefined): string {
  return variant ? `${name} (${variant})` : name;
}

/** The Intel iGPU: an Intel display-class physical function, preferring 00:02.0 where iGPUs live. */
function primaryIntelGpu(facts: HostFacts): DisplayDeviceFacts | undefined {
  const intel = facts.displayDevices.filter((d) => d.vendorId === 0x8086 && !d.virtualFunction);
  return (
    intel.find((d) => d.bdf.endsWith(':00:02.0')) ?? intel.find((d) => lookupIgpu(d.deviceId)) ?? intel[0]
  );
}

function decideMode(
  facts: HostFacts,
  igpu: DisplayDeviceFacts | undefined,
  platform: IgpuPlatformInfo | undefined,
  choice: ReturnType<typeof chooseRoute> | undefined,
): { mode: Mode; reason: string } {
  if (!igpu) {
    const others = facts.displayDevices.map((d) => `${hex4(d.vendorId)}:${hex4(d.deviceId)}`).join(', ');
    return {
      mode: 'none',
      reason: `no Intel integrated GPU on this host${others ? ` (display devices: ${others})` : ''}; only a host with an Intel iGPU can be split`,
    };
  }
  const firmwareIommu = facts.iommu.firmwareTable !== undefined || facts.iommu.units.length > 0;
  if (platform?.gvt) {
    return { mode: 'gvt-g', reason: `${platform.name} iGPU: GVT-g mediated devices share it between VMs` };
  }
  const routes = platform?.sriov ?? [];
  if (platform && choice && 'route' in choice) {
    const how = describeRoute({
      route: choice.route,
      experimental: choice.experimental,
      forceProbe: choice.forceProbe,
      note: choice.note,
    });
    if (!firmwareIommu) return noIommu(`${platform.name} iGPU: SR-IOV virtual functions (${how})`);
    return {
      mode: 'sriov',
      reason: `${platform.name} iGPU: SR-IOV virtual functions share it between VMs, through ${how}`,
    };
  }
  const what = platform
    ? `${platform.name} iGPU`
    : `Intel display device ${hex4(igpu.deviceId)} (not in our tables)`;
  if (!firmwareIommu) return noIommu(`${what}: whole-device passthrough`);
  if (platform && routes.length > 0) {
    // chooseRoute refused: `auto` never picks an experimental route.
    return {
      mode: 'passthrough',
      reason: `${what}: SR-IOV possible through ${routes.map(describeRoute).join(' or ')}; planned as whole-device passthrough (an experimental route is never chosen on its own)`,
    };
  }
  return {
    mode: 'passthrough',
    reason: `${what} supports neither GVT-g nor SR-IOV: the whole device can go to one VM`,
  };
}

function describeRoute(route: SriovRoute): string {
  const name = route.route === 'xe' ? 'upstream xe' : route.route;
  const flags = [route.experimental ? 'experimental' : '', route.forceProbe ? 'needs xe.force_probe' : ''];
  const said = flags.filter(Boolean).join(', ');
  return said ? `${name} (${said})` : name;
}

function noIommu(route: string): { mode: Mode; reason: string } {
  return {
    mode: 'none',
    reason: `${route} would need VT-d, and the firmware offers no IOMMU (no ACPI DMAR table): enable VT-d in the BIOS to make it possible`,
  };
}

/** One line per file that could not be read or is not what Linux writes there. */
function readabilityChecks(facts: HostFacts): Check[] {
  return facts.unreadable.map((entry) => ({
    id: 'host.readable',
    status: 'warn' as const,
    evidence: `${entry.path}: ${entry.error}`,
    fix:
      entry.error === 'permission denied'
        ? 'run as root (or capture as root) so every file can be read; verdicts below may miss facts'
        : 'this file is damaged or not what Linux writes there: check it on the host, or capture the host again',
  }));
}

function cpuCheck(facts: HostFacts): Check {
  const cpu = facts.cpu;
  if (!cpu) {
    return {
      id: 'cpu.virtualization',
      status: 'fail',
      evidence: '/proc/cpuinfo missing or unreadable',
      fix: 'capture again from a running Linux host',
    };
  }
  if (cpu.vmx || cpu.svm) {
    return {
      id: 'cpu.virtualization',
      status: 'pass',
      evidence: `${cpu.modelName}: ${cpu.vmx ? 'vmx' : 'svm'} flag set`,
    };
  }
  return {
    id: 'cpu.virtualization',
    status: 'fail',
    evidence: `${cpu.modelName}: no vmx/svm flag in /proc/cpuinfo${cpu.hypervisor ? ' (this is a virtual machine)' : ''}`,
    fix: cpu.hypervisor
      ? 'run doctor on the Proxmox host itself, not inside a VM'
      : 'enable Intel VT-x (Virtualization Technology) in the BIOS',
  };
}

function gpuCheck(
  facts: HostFacts,
  igpu: DisplayDeviceFacts | undefined,
  platform: IgpuPlatformInfo | undefined,
): Check {
  if (!igpu) {
    const others = facts.displayDevices
      .map((d) => `${d.bdf} ${hex4(d.vendorId)}:${hex4(d.deviceId)}`)
      .join(', ');
    return {
      id: 'gpu.intel-igpu',
      status: 'fail',
      evidence: others ? `no Intel display device; found ${others}` : 'no display-class PCI device at all',
      fix: 'use a host whose CPU has Intel integrated graphics (and keep it enabled in the BIOS)',
    };
  }
  const id = `${igpu.bdf} 8086:${hex4(igpu.deviceId)}`;
  if (!platform) {
    return {
      id: 'gpu.intel-igpu',
      status: 'warn',
      evidence: `${id} is not in our device table (Linux i915/xe PCI id lists)`,
      fix: 'treated as passthrough-only; report the id so the table can learn it',
    };
  }
  return {
    id: 'gpu.intel-igpu',
    status: 'pass',
    evidence: `${id} ${platform.name}, graphics version ${platform.graphicsVer ?? 'read from the hardware'}, driver ${igpu.driver ?? 'none'}`,
  };
}

function has(cmdline: readonly string[], parameter: string): string | undefined {
  const name = parameter.split('=')[0] as string;
  return [...cmdline].reverse().find((p) => p === parameter || p.split('=')[0] === name);
}

function iommuChecks(
  facts: HostFacts,
  igpu: DisplayDeviceFacts | undefined,
  mode: Mode,
  cmdline: string[],
): Check[] {
  const checks: Check[] = [];
  const intel = facts.cpu?.vendor !== 'AuthenticAMD';
  // GVT-g vGPUs register with VFIO as emulated-IOMMU devices (kvmgt.c intel_vgpu_probe:
  // vfio_register_emulated_iommu_dev), so they work without VT-d: a warning. The other
  // routes hand a real PCI function to the VM through VFIO, which needs the IOMMU.
  const needed = mode !== 'gvt-g';
  const missing = needed ? 'fail' : 'warn';
  if (!facts.iommu.firmwareTable && facts.iommu.units.length === 0) {
    checks.push({
      id: 'iommu.firmware',
      status: missing,
      evidence: 'no ACPI DMAR table (/sys/firmware/acpi/tables/DMAR): VT-d is off or absent in the firmware',
      fix: 'enable VT-d (Intel Virtualization Technology for Directed I/O) in the BIOS',
    });
    return checks;
  }
  checks.push({
    id: 'iommu.firmware',
    status: 'pass',
    evidence: `ACPI ${facts.iommu.firmwareTable ?? 'IOMMU'} table present`,
  });
  if (facts.iommu.units.length > 0 && facts.iommu.groupCount > 0) {
    checks.push({
      id: 'iommu.kernel',
      status: 'pass',
      evidence: `IOMMU active: ${facts.iommu.units.join(', ')}, ${facts.iommu.groupCount} groups`,
    });
  } else {
    // Only Intel's IOMMU is turned on from the command line here; for any other, the BIOS.
    const want = intel ? PARAM.intelIommuOn : undefined;
    const given = intel ? has(cmdline, BOOT_PARAM.intelIommu) : undefined;
    checks.push({
      id: 'iommu.kernel',
      status: missing,
      evidence: given
        ? `IOMMU not active although the kernel command line has ${given}`
        : 'IOMMU not active: /sys/class/iommu is empty and there are no IOMMU groups',
      fix: !want
        ? 'enable the IOMMU in the BIOS, then look for IOMMU errors in dmesg'
        : given === want
          ? 'the kernel rejected the IOMMU: look for DMAR or IOMMU errors in dmesg and update the BIOS'
          : given
            ? `replace ${given} with ${want} on the kernel command line and reboot`
            : `add ${want} ${PARAM.iommuPassThrough} to the kernel command line and reboot`,
    });
  }
  if (igpu && needed && igpu.iommuGroup === undefined && facts.iommu.groupCount > 0) {
    checks.push({
      id: 'iommu.gpu-group',
      status: 'warn',
      evidence: `${igpu.bdf} has no iommu_group link`,
      fix: 'check dmesg for DMAR errors about the graphics device (some BIOSes exclude it: igfx_off)',
    });
  }
  return checks;
}

function gvtChecks(
  facts: HostFacts,
  igpu: DisplayDeviceFacts,
  graphicsVer: number,
  cmdline: string[],
): { checks: Check[]; vgpu: HostVerdict['vgpu'] } {
  const enabled = facts.i915?.enableGvt === true;
  const kvmgt = facts.modules.includes(MODULE.kvmgt);
  const checks: Check[] = [
    i915BoundCheck(igpu),
    gucSubmissionCheck(facts, cmdline),
    gvtEnabledCheck(facts, cmdline),
    kvmgtCheck(kvmgt),
  ];

  const live: Record<string, number> = {};
  for (const type of igpu.mdevTypes)
    if (type.availableInstances !== undefined) live[type.id] = type.availableInstances;

  if (igpu.apertureBytes === undefined) {
    checks.push({
      id: 'gvt.aperture',
      status: 'warn',
      evidence: `${igpu.bdf}: BAR 2 (aperture) not readable from its resource file`,
      fix: 'capture again as root so the vGPU count can be predicted',
    });
    return { checks, vgpu: { predicted: {}, live } };
  }
  const apertureMiB = Math.round(igpu.apertureBytes / MiB);
  const fresh = predictGvtTypes({ apertureMiB, graphicsVer });
  const predicted = Object.fromEntries(fresh.map((p) => [p.id, p.instances]));
  checks.push(apertureCheck(apertureMiB, graphicsVer, fresh));
  if (enabled) checks.push(...mdevTypesChecks(igpu, kvmgt, apertureMiB, graphicsVer));
  return { checks, vgpu: { predicted, live } };
}

function i915BoundCheck(igpu: DisplayDeviceFacts): Check {
  if (igpu.driver === 'i915')
    return { id: 'gvt.i915-bound', status: 'pass', evidence: `${igpu.bdf} is bound to i915` };
  return {
    id: 'gvt.i915-bound',
    status: 'fail',
    evidence: `${igpu.bdf} is bound to ${igpu.driver ?? 'no driver'}`,
    fix:
      igpu.driver === 'vfio-pci'
        ? 'GVT-g needs the host i915 driver: remove the vfio-pci ids/blacklist for the iGPU and reboot'
        : 'load i915 on the host (check it is not blacklisted in /etc/modprobe.d) and reboot',
  };
}

/** An i915 parameter that is there but could not be read (never taken for its default). */
function unreadI915Param(facts: HostFacts, name: string): boolean {
  return facts.unreadable.some((u) => u.path === `${moduleParametersDir(MODULE.i915)}/${name}`);
}

// enable_guc: -1 auto, bit 0 GuC submission, bit 1 HuC loading. GVT-g refuses to run
// with GuC submission (i915 turns enable_gvt off and logs so).
function gucSubmissionCheck(facts: HostFacts, cmdline: string[]): Check {
  const params = facts.i915;
  const guc = params?.enableGuc;
  const gucOnCmdline = has(cmdline, GUC_PARAM);
  if (guc !== undefined && guc > 0 && (guc & 1) === 1) {
    return {
      id: 'gvt.guc-submission',
      status: 'fail',
      evidence: `i915 enable_guc=${guc} (GuC submission on)${gucOnCmdline ? `, set by ${gucOnCmdline}` : ''}`,
      fix: `GuC submission blocks GVT-g: ${gucOnCmdline ? `remove ${gucOnCmdline} from` : `set ${PARAM.gucOff} on`} the kernel command line and reboot`,
    };
  }
  if (params && guc === undefined && unreadI915Param(facts, I915_PARAM.enableGuc)) {
    // Nothing is made up for a value that could not be read.
    return {
      id: 'gvt.guc-submission',
      status: 'warn',
      evidence: 'i915 enable_guc could not be read (see host.readable)',
      fix: 'read the host again; GuC submission would block GVT-g',
    };
  }
  return {
    id: 'gvt.guc-submission',
    status: 'pass',
    evidence:
      guc === undefined
        ? 'i915 not loaded: GuC setting unknown'
        : `i915 enable_guc=${guc} (no GuC submission)`,
  };
}

function gvtEnabledCheck(facts: HostFacts, cmdline: string[]): Check {
  const params = facts.i915;
  if (params && params.enableGvt === undefined && unreadI915Param(facts, I915_PARAM.enableGvt)) {
    return {
      id: 'gvt.enabled',
      status: 'fail',
      evidence: 'i915 enable_gvt could not be read (see host.readable)',
      fix: 'read the host again; nothing is concluded from a file that does not read',
    };
  }
  if (params?.enableGvt === true) return { id: 'gvt.enabled', status: 'pass', evidence: 'i915 enable_gvt=Y' };
  const gvtParam = has(cmdline, GVT_PARAM);
  const asked = gvtParam !== undefined && !/=(0|n|no|off)$/i.test(gvtParam);
  return {
    id: 'gvt.enabled',
    status: 'fail',
    evidence: `${params ? 'i915 enable_gvt=N' : 'i915 is not loaded'}${gvtParam ? ` although the kernel command line has ${gvtParam}` : ''}`,
    fix: asked
      ? 'i915 turned GVT-g off at boot: fix the failing checks above (GuC submission, driver) and reboot'
      : gvtParam
        ? `replace ${gvtParam} with ${PARAM.gvtOn} on the kernel command line and reboot`
        : `add ${PARAM.gvtOn} to the kernel command line and reboot (igpu-split apply does this)`,
  };
}

function kvmgtCheck(kvmgt: boolean): Check {
  return kvmgt
    ? { id: 'gvt.kvmgt', status: 'pass', evidence: 'kvmgt module loaded' }
    : {
        id: 'gvt.kvmgt',
        status: 'fail',
        evidence: 'kvmgt module not loaded',
        fix: 'load kvmgt at boot (a line "kvmgt" in /etc/modules-load.d/) and reboot',
      };
}

/** With GVT-g on: the types the device offers, and whether their counts match the prediction. */
function mdevTypesChecks(
  igpu: DisplayDeviceFacts,
  kvmgt: boolean,
  apertureMiB: number,
  graphicsVer: number,
): Check[] {
  if (igpu.mdevTypes.length === 0) {
    return [
      {
        id: 'gvt.mdev-types',
        status: 'fail',
        evidence: `enable_gvt=Y but ${igpu.bdf} has no mdev_supported_types`,
        fix: kvmgt
          ? 'check dmesg for "gvt:" errors (GuC submission, unsupported aperture)'
          : 'load kvmgt and reboot',
      },
    ];
  }
  return [
    {
      id: 'gvt.mdev-types',
      status: 'pass',
      evidence: `${igpu.mdevTypes.length} types: ${igpu.mdevTypes.map((t) => t.id).join(', ')}`,
    },
    instancesCheck(igpu, apertureMiB, graphicsVer),
  ];
}

function apertureCheck(apertureMiB: number, graphicsVer: number, fresh: GvtPrediction[]): Check {
  const choices = describeChoices(fresh);
  if (fresh.every((p) => p.instances === 0)) {
    return {
      id: 'gvt.aperture',
      status: 'fail',
      evidence: `${apertureMiB} MB aperture leaves no room for a vGPU after the host's 128 MB`,
      fix: 'raise "Aperture Size" in the BIOS graphics settings to 512 MB or more (DVMT pre-allocation does not matter)',
    };
  }
  const largest = fresh.filter((p) => p.instances > 0).at(-1) as GvtPrediction;
  const bigger = apertureMiB < 1024 ? apertureMiB * 2 : undefined;
  const better = bigger
    ? predictGvtTypes({ apertureMiB: bigger, graphicsVer }).find((p) => p.id === largest.id)
    : undefined;
  const hint =
    bigger && better && better.instances > largest.instances
      ? `; ${bigger} MB aperture would give ${better.instances} × ${largest.name.replace('GVTg_', '')}`
      : '';
  const evidence = `${apertureMiB} MB aperture → ${choices}${hint}`;
  if (apertureMiB < 512) {
    return {
      id: 'gvt.aperture',
      status: 'warn',
      evidence,
      fix: `raise "Aperture Size" in the BIOS graphics settings to ${bigger} MB or more for more vGPUs (this is the aperture, not DVMT pre-allocated memory)`,
    };
  }
  return { id: 'gvt.aperture', status: 'pass', evidence };
}

function instancesCheck(igpu: DisplayDeviceFacts, apertureMiB: number, graphicsVer: number): Check {
  const inUse: Record<string, number> = {};
  for (const type of igpu.mdevTypes) if (type.instancesInUse > 0) inUse[type.id] = type.instancesInUse;
  const expected = predictGvtTypes({ apertureMiB, graphicsVer, inUse });
  const expectedById = new Map(expected.map((p) => [p.id, p.instances]));
  const used = Object.entries(inUse).map(([id, n]) => `${n} × ${id}`);
  const usedText = used.length > 0 ? ` with ${used.join(', ')} in use` : '';
  const differences: string[] = [];
  for (const type of igpu.mdevTypes) {
    const want = expectedById.get(type.id);
    if (want !== type.availableInstances)
      differences.push(
        `${type.id} live ${type.availableInstances ?? '?'}, predicted ${want ?? 'no such type'}`,
      );
  }
  for (const p of expected) {
    if (!igpu.mdevTypes.some((t) => t.id === p.id)) differences.push(`${p.id} predicted but missing`);
  }
  if (differences.length === 0) {
    return {
      id: 'gvt.instances',
      status: 'pass',
      evidence: `live available_instances match the prediction for a ${apertureMiB} MB aperture${usedText}`,
    };
  }
  return {
    id: 'gvt.instances',
    status: 'warn',
    evidence: `live differs from prediction${usedText}: ${differences.join('; ')}`,
    fix: 'the prediction assumes a 4 GiB global GTT and 32 fences; a smaller GTT (BIOS "GTT size"), another GVT user or a different kernel changes the numbers — check dmesg for "gvt:" lines',
  };
}

function passthroughCheck(igpu: DisplayDeviceFacts): Check {
  if (igpu.iommuGroup === undefined) {
    return {
      id: 'passthrough.group',
      status: 'fail',
      evidence: `${igpu.bdf} is in no IOMMU group`,
      fix: 'turn the IOMMU on (see iommu checks) and reboot',
    };
  }
  // Functions of the iGPU's own slot (00:02.x) may share its group; anything else goes along.
  const slot = igpu.bdf.slice(0, -1);
  const others = igpu.iommuGroupDevices.filter((bdf) => !bdf.startsWith(slot));
  if (others.length > 0) {
    return {
      id: 'passthrough.group',
      status: 'warn',
      evidence: `${igpu.bdf} shares IOMMU group ${igpu.iommuGroup} with ${others.join(', ')}`,
      fix: 'those devices would go to the VM too; move them to another slot, or accept the risk with --acs-override',
    };
  }
  return {
    id: 'passthrough.group',
    status: 'pass',
    evidence: `${igpu.bdf} alone in IOMMU group ${igpu.iommuGroup}, driver ${igpu.driver ?? 'none'}`,
  };
}

function platformChecks(facts: HostFacts, mode: Mode): Check[] {
  const checks: Check[] = [];
  checks.push(
    facts.proxmox?.version
      ? { id: 'host.proxmox', status: 'pass', evidence: `Proxmox VE ${facts.proxmox.version}` }
      : {
          id: 'host.proxmox',
          status: 'warn',
          evidence: `no Proxmox VE found (/usr/share/perl5/PVE/pvecfg.pm)${facts.os?.prettyName ? ` on ${facts.os.prettyName}` : ''}`,
          fix: 'igpu-split configures Proxmox VE hosts; facts above still describe the hardware',
        },
  );
  if (mode === 'none') return checks;
  const boot = facts.bootloader;
  const unreadBoot = facts.unreadable.find((u) =>
    ['/etc/default/grub', '/etc/kernel/proxmox-boot-uuids', '/etc/kernel/cmdline'].some(
      (path) => u.path === path || u.path.startsWith(`${path}.d`),
    ),
  );
  checks.push(
    boot.kind === 'unknown'
      ? {
          id: 'host.bootloader',
          status: 'warn',
          evidence: unreadBoot
            ? `the boot loader configuration cannot be read (${unreadBoot.path}: ${unreadBoot.error})`
            : 'neither /etc/default/grub nor proxmox-boot-tool ESPs found',
          fix: unreadBoot
            ? 'see the host.readable check above'
            : 'kernel parameters must be set by hand for this boot loader',
        }
      : {
          id: 'host.bootloader',
          status: 'pass',
          evidence:
            boot.kind === 'grub'
              ? `GRUB (${boot.files.map((f) => f.path).join(', ')})`
              : `systemd-boot via proxmox-boot-tool (${boot.espUuids.length} ESP${boot.espUuids.length === 1 ? '' : 's'}, /etc/kernel/cmdline)`,
        },
  );
  return checks;
}
