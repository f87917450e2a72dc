// Reads a host's facts through HostAccess. Only reads; reads run concurrently so
// an SSH host answers in a few round trips instead of one per file.

import type { HostAccess } from '../access/host.ts';
import { TargetError } from '../core/errors.ts';
import { lookupIgpu } from '../knowledge/igpu-ids.ts';
import { IGPU_PLATFORMS } from '../knowledge/igpu-platforms.ts';
import { I915_PARAM, MODULE } from '../knowledge/kernel.ts';
import { gatherDisplayDevices } from '../linux/display.ts';
import type { UnreadableFile } from '../linux/facts.ts';
import { KERNEL_GUARD_HOOK } from '../linux/kernel-guard/script.ts';
import { parseCpuinfo } from '../linux/parse/cpuinfo.ts';
import {
  parseModuleParam,
  parseModules,
  parseOsRelease,
  parsePveCfg,
  parseSecureBootVar,
} from '../linux/parse/small-files.ts';
import { PATHS } from '../linux/paths.ts';
import { listOptional, type Read, readOptional, textReader } from '../linux/read.ts';
import type { BootloaderFacts, HostFacts, IommuFacts } from './facts.ts';
import { gatherKernels, gatherSriovFacts, NO_SRIOV_FACTS } from './gather-sriov.ts';
import { gatherKernelGuard } from './guard/gather.ts';

/** Modules looked up under /sys/module when /proc/modules is not there. */
const MODULES_OF_INTEREST: string[] = [
  MODULE.i915,
  MODULE.xe,
  MODULE.kvmgt,
  MODULE.mdev,
  MODULE.vfio,
  MODULE.vfioPci,
  MODULE.vfioIommuType1,
  MODULE.kvmIntel,
];

/** Reads every fact; throws TargetError only when the target is not a Linux host at all. */
export async function gatherHostFacts(host: HostAccess): Promise<HostFacts> {
  const unreadable: UnreadableFile[] = [];
  const unidentified: HostFacts['unidentified'] = [];
  const read = textReader(host, unreadable);

  const [cpuinfoText, pciEntries, firmware] = await Promise.all([
    read(PATHS.cpuinfo),
    listOptional(host, PATHS.pciDevices, unreadable),
    gatherFirmware(host, unreadable),
  ]);
  if (cpuinfoText === undefined && pciEntries === undefined) {
    throw new TargetError(
      'does not look like a Linux host: neither /proc/cpuinfo nor /sys/bus/pci/devices is there',
      {
        target: host.target,
        fix: 'point --root at the unpacked capture (the folder holding proc/ and sys/), or --host at a Linux host',
      },
    );
  }
  const cpu = cpuinfoText === undefined ? undefined : parseCpuinfo(cpuinfoText);
  if (cpuinfoText !== undefined && cpu === undefined) {
    unreadable.push({
      path: PATHS.cpuinfo,
      error: 'garbled or truncated: no processor block with vendor, family and model',
    });
  }

  const [
    kernelRelease,
    cmdline,
    modules,
    displayDevices,
    iommu,
    i915,
    bootloader,
    pveCfg,
    osRelease,
    moduleFiles,
  ] = await Promise.all([
    read(PATHS.osrelease).then((text) => text?.trim() || undefined),
    read(PATHS.cmdline).then((text) => text?.trim()),
    gatherModules(host, read),
    gatherDisplayDevices(host, pciEntries ?? [], read, unreadable, unidentified),
    gatherIommu(host, unreadable),
    gatherI915(host, read, unreadable),
    gatherBootloader(host, firmware.uefi, read, unreadable),
    read(PATHS.pveCfg),
    read(PATHS.osRelease),
    gatherModuleFiles(host, read, unreadable),
  ]);
  const igpu = displayDevices.find((d) => d.bdf.endsWith(':00:02.0') && d.vendorId === 0x8086);
  // The SR-IOV reads (dpkg's status, every kernel's modules, the kernel log: a command) only
  // where a route exists: a GVT-g or passthrough host is read as fast as before.
  const platform = igpu ? lookupIgpu(igpu.deviceId)?.platform : undefined;
  let sriov =
    platform !== undefined && IGPU_PLATFORMS[platform].sriov.length > 0
      ? await gatherSriovFacts(host, read, unreadable, igpu?.bdf)
      : NO_SRIOV_FACTS;
  // A GVT-g or passthrough host with the kernel guard: its kernels and pins are read too.
  const hook = await read(KERNEL_GUARD_HOOK);
  if (sriov === NO_SRIOV_FACTS && hook !== undefined)
    sriov = { ...NO_SRIOV_FACTS, kernels: await gatherKernels(host, read, unreadable) };
  const kernelGuard = await gatherKernelGuard(host, read, hook, sriov.kernels);

  const os = osRelease === undefined ? undefined : parseOsRelease(osRelease);
  const pve = pveCfg === undefined ? undefined : parsePveCfg(pveCfg);
  return {
    target: host.target,
    kernelRelease,
    cmdline,
    cpu: cpu && {
      vendor: cpu.vendor,
      family: cpu.family,
      model: cpu.model,
      stepping: cpu.stepping,
      modelName: cpu.modelName,
      vmx: cpu.flags.includes('vmx'),
      svm: cpu.flags.includes('svm'),
      hypervisor: cpu.flags.includes('hypervisor'),
      logicalCpus: cpu.logicalCpus,
    },
    displayDevices,
    iommu,
    i915,
    modules,
    moduleFiles,
    bootloader,
    proxmox: pve && { version: pve.version, release: pve.release },
    os: os && { id: os.ID, versionId: os.VERSION_ID, prettyName: os.PRETTY_NAME },
    firmware,
    ...sriov,
    kernelGuard,
    // Reads finish in any order; sort so the same host always gives the same facts.
    unidentified: unidentified.sort((a, b) => (a.bdf < b.bdf ? -1 : a.bdf > b.bdf ? 1 : 0)),
    unreadable: unreadable.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
}

async function gatherModules(host: HostAccess, read: Read): Promise<string[]> {
  const text = await read(PATHS.modules);
  if (text !== undefined) return parseModules(text);
  const present = await Promise.all(
    MODULES_OF_INTEREST.map(async (name) =>
      (await host.entryType(`${PATHS.sysModule}/${name}`)) ? name : undefined,
    ),
  );
  return present.filter((name): name is string => name !== undefined);
}

/** /etc/modules, /etc/modules-load.d/*.conf and our modprobe.d file: what loads at boot and how. */
async function gatherModuleFiles(
  host: HostAccess,
  read: Read,
  unreadable: UnreadableFile[],
): Promise<HostFacts['moduleFiles']> {
  const entries = (await listOptional(host, PATHS.modulesLoadDir, unreadable)) ?? [];
  const paths = [
    PATHS.modulesFile,
    PATHS.ourModprobe,
    ...entries.filter((e) => e.name.endsWith('.conf')).map((e) => `${PATHS.modulesLoadDir}/${e.name}`),
  ];
  const files = await Promise.all(paths.map(async (path) => ({ path, content: await read(path) })));
  return files.filter((f): f is { path: string; content: string } => f.content !== undefined);
}

async function gatherIommu(host: HostAccess, unreadable: UnreadableFile[]): Promise<IommuFacts> {
  const [dmar, ivrs, units, groups] = await Promise.all([
    host.entryType(`${PATHS.acpiTables}/DMAR`),
    host.entryType(`${PATHS.acpiTables}/IVRS`),
    listOptional(host, PATHS.iommuClass, unreadable),
    listOptional(host, PATHS.iommuGroups, unreadable),
  ]);
  return {
    firmwareTable: dmar ? 'DMAR' : ivrs ? 'IVRS' : undefined,
    units: (units ?? []).map((entry) => entry.name),
    groupCount: groups?.length ?? 0,
  };
}

async function gatherI915(
  host: HostAccess,
  read: Read,
  unreadable: UnreadableFile[],
): Promise<HostFacts['i915']> {
  if (!(await host.entryType(PATHS.i915Params))) return undefined;
  // Each parameter as the module prints it; one that reads as anything else is named.
  const param = async (name: string) => {
    const path = `${PATHS.i915Params}/${name}`;
    const text = await read(path);
    const value = parseModuleParam(text);
    if (text !== undefined && value === undefined)
      unreadable.push({ path, error: 'not a module parameter value (Y, N or a number)' });
    return value;
  };
  const [enableGvt, enableGuc, maxVfs] = await Promise.all([
    param(I915_PARAM.enableGvt),
    param(I915_PARAM.enableGuc),
    param(I915_PARAM.maxVfs),
  ]);
  return {
    enableGvt:
      typeof enableGvt === 'boolean'
        ? enableGvt
        : typeof enableGvt === 'number'
          ? enableGvt !== 0
          : undefined,
    enableGuc: typeof enableGuc === 'number' ? enableGuc : undefined,
    maxVfs: typeof maxVfs === 'number' ? maxVfs : undefined,
  };
}

/**
 * proxmox-boot-tool keeps the ESPs it manages in /etc/kernel/proxmox-boot-uuids;
 * an entry without the `grub` marker on a UEFI boot means systemd-boot, whose
 * kernel command line is /etc/kernel/cmdline. Everything else boots with GRUB,
 * configured in /etc/default/grub plus /etc/default/grub.d/*.cfg.
 */
async function gatherBootloader(
  host: HostAccess,
  uefi: boolean,
  read: Read,
  unreadable: UnreadableFile[],
): Promise<BootloaderFacts> {
  const [uuidsText, cmdline, grub, dropins] = await Promise.all([
    read(PATHS.bootUuids),
    read(PATHS.kernelCmdline),
    read(PATHS.grubDefault),
    listOptional(host, PATHS.grubDropins, unreadable),
  ]);
  const entries = (uuidsText ?? '')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[0] && !fields[0].startsWith('#'));
  const sdboot = entries.filter((fields) => fields[1] !== 'grub').map((fields) => fields[0] as string);
  if (uefi && sdboot.length > 0) return { kind: 'systemd-boot', espUuids: sdboot, cmdline };
  const cfgs = (dropins ?? []).filter((entry) => entry.name.endsWith('.cfg') && entry.type !== 'dir');
  const files = await Promise.all(
    cfgs.map(async (entry) => {
      const path = `${PATHS.grubDropins}/${entry.name}`;
      return { path, content: (await read(path)) ?? '' };
    }),
  );
  if (grub === undefined && files.length === 0) return { kind: 'unknown' };
  return {
    kind: 'grub',
    files: [...(grub === undefined ? [] : [{ path: PATHS.grubDefault, content: grub }]), ...files],
  };
}

async function gatherFirmware(
  host: HostAccess,
  unreadable: UnreadableFile[],
): Promise<HostFacts['firmware']> {
  const uefi = (await host.entryType(PATHS.efi)) !== undefined;
  if (!uefi) return { uefi, secureBoot: undefined };
  const data = await readOptional(host, PATHS.secureBoot, unreadable);
  return { uefi, secureBoot: data === undefined ? undefined : parseSecureBootVar(data) };
}
