// Reads a host's facts through HostAccess. Only reads; reads run concurrently so
// an SSH host answers in a few round trips instead of one per file.

import { type HostAccess, HostError, isMissing } from '../access/host.ts';
import { TargetError } from '../core/errors.ts';
import { codePointName, controlAt, isText } from '../core/text.ts';
import { I915_PARAM, MODULE, moduleParametersDir } from '../knowledge/kernel.ts';
import { parseCpuinfo } from '../linux/parse/cpuinfo.ts';
import { parseMdevDescription } from '../linux/parse/mdev.ts';
import { isDisplayClass, parseResource, parseSysfsId } from '../linux/parse/pci.ts';
import {
  parseModuleParam,
  parseModules,
  parseOsRelease,
  parsePveCfg,
  parseSecureBootVar,
} from '../linux/parse/small-files.ts';
import type { BootloaderFacts, DisplayDeviceFacts, HostFacts, IommuFacts, MdevTypeFacts } from './facts.ts';

export const PATHS = {
  cpuinfo: '/proc/cpuinfo',
  cmdline: '/proc/cmdline',
  osrelease: '/proc/sys/kernel/osrelease',
  modules: '/proc/modules',
  pciDevices: '/sys/bus/pci/devices',
  iommuClass: '/sys/class/iommu',
  iommuGroups: '/sys/kernel/iommu_groups',
  acpiTables: '/sys/firmware/acpi/tables',
  efi: '/sys/firmware/efi',
  // EFI global variable GUID 8be4df61-93ca-11d2-aa0d-00e098032b8c (UEFI spec, "Globally Defined Variables").
  secureBoot: '/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c',
  sysModule: '/sys/module',
  i915Params: moduleParametersDir(MODULE.i915),
  grubDefault: '/etc/default/grub',
  grubDropins: '/etc/default/grub.d',
  bootUuids: '/etc/kernel/proxmox-boot-uuids',
  kernelCmdline: '/etc/kernel/cmdline',
  pveCfg: '/usr/share/perl5/PVE/pvecfg.pm',
  modulesFile: '/etc/modules',
  modulesLoadDir: '/etc/modules-load.d',
  ourModprobe: '/etc/modprobe.d/igpu-split.conf',
  osRelease: '/etc/os-release',
} as const;

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

const INTEL = 0x8086;

/** Reads every fact; throws TargetError only when the target is not a Linux host at all. */
export async function gatherHostFacts(host: HostAccess): Promise<HostFacts> {
  const unreadable: HostFacts['unreadable'] = [];
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
    // Reads finish in any order; sort so the same host always gives the same facts.
    unidentified: unidentified.sort((a, b) => (a.bdf < b.bdf ? -1 : a.bdf > b.bdf ? 1 : 0)),
    unreadable: unreadable.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
  };
}

type Read = (path: string) => Promise<string | undefined>;

/**
 * Reads text files: a missing file is undefined; one that cannot be read, or holds what
 * no text file does (NUL bytes, broken UTF-8), is recorded as unreadable and undefined.
 */
function textReader(host: HostAccess, unreadable: HostFacts['unreadable']): Read {
  return async (path) => {
    const data = await readOptional(host, path, unreadable);
    if (data === undefined) return undefined;
    if (!isText(data)) {
      unreadable.push({ path, error: 'not a text file (binary data)' });
      return undefined;
    }
    // A terminal escape or a carriage return is no part of a kernel command line or a
    // config file, and would reach the user's terminal through plans and reports.
    const text = data.toString('utf8');
    const control = controlAt(text);
    if (control >= 0) {
      const line = text.slice(0, control).split('\n').length;
      unreadable.push({
        path,
        error:
          text.slice(control, control + 2) === '\r\n'
            ? `has Windows line endings (CR LF) from line ${line}: save it with Unix line endings (LF)`
            : `holds a control character (${codePointName(text, control)}) at character ${control + 1}`,
      });
      return undefined;
    }
    return text;
  };
}

/**
 * Runs one read; a path that is not there gives undefined, any other failure is recorded
 * and gives undefined. SFTP says "no such file" for a link loop and for a file where a
 * folder should be (errno_to_portable in OpenSSH's sftp-server.c maps ELOOP and ENOTDIR to it;
 * the SSH damaged-host cases of test/bad-input show it with Debian's sshd), so a "missing"
 * path is looked at once more: if something is there, it is damage, not absence.
 */
async function optional<T>(
  host: HostAccess,
  path: string,
  kind: 'read' | 'list' | 'link',
  unreadable: HostFacts['unreadable'],
  read: () => Promise<T>,
) {
  try {
    return await read();
  } catch (error) {
    if (!isMissing(error)) {
      unreadable.push({ path, error: describe(error) });
      return undefined;
    }
    const there = await host.entryType(path);
    if (there === 'link' && kind !== 'link')
      unreadable.push({ path, error: 'a symbolic link that leads nowhere (a loop, or its target is gone)' });
    else if (there === 'file' && kind === 'list') unreadable.push({ path, error: 'a file, not a folder' });
    else if (there === 'dir' && kind === 'read') unreadable.push({ path, error: 'a directory, not a file' });
    return undefined;
  }
}

/** A file's bytes; a folder where a file should be is named as such (SFTP only says "Failure"). */
const readOptional = (host: HostAccess, path: string, unreadable: HostFacts['unreadable']) =>
  optional(host, path, 'read', unreadable, async () => {
    try {
      return await host.readFile(path);
    } catch (error) {
      if (!isMissing(error) && (await host.entryType(path)) === 'dir')
        throw new HostError('EISDIR', path, `${path}: a directory, not a file`, error);
      throw error;
    }
  });

/** A folder's entries; a plain file where a folder should be is recorded, not taken for absent. */
const listOptional = (host: HostAccess, path: string, unreadable: HostFacts['unreadable']) =>
  optional(host, path, 'list', unreadable, () => host.list(path));

/**
 * The last part of a sysfs link's target, when the target has the shape the kernel gives
 * it (`…/<parent>/<name>`, e.g. `../../../bus/pci/drivers/i915`); anything else is recorded.
 */
async function linkName(
  host: HostAccess,
  path: string,
  parent: string,
  unreadable: HostFacts['unreadable'],
): Promise<string | undefined> {
  const target = await optional(host, path, 'link', unreadable, () => host.readLink(path));
  if (target === undefined) return undefined;
  const parts = target.split('/').filter(Boolean);
  if (parts.length < 2 || parts[parts.length - 2] !== parent) {
    unreadable.push({ path, error: `not a link into ${parent}/ (a link loop or a damaged tree)` });
    return undefined;
  }
  return parts[parts.length - 1];
}

/** Why a read failed, in words, without repeating the path. */
function describe(error: unknown): string {
  if (!(error instanceof HostError)) return String(error);
  const cause = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  if (error.code === 'EACCES') return 'permission denied';
  if (error.code === 'EISDIR' || cause === 'EISDIR') return 'a directory, not a file';
  if (cause === 'ELOOP' || /too many symbolic links/.test(error.message)) return 'a loop of symbolic links';
  const prefix = `${error.path}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
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
  unreadable: HostFacts['unreadable'],
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

/** The PCI display devices of any Linux machine (a host, or a guest looking for its vGPU). */
export async function readDisplayDevices(host: HostAccess): Promise<DisplayDeviceFacts[]> {
  const unreadable: HostFacts['unreadable'] = [];
  const entries = (await listOptional(host, PATHS.pciDevices, unreadable)) ?? [];
  return gatherDisplayDevices(host, entries, textReader(host, unreadable), unreadable, []);
}

/** One sysfs id file, read strictly; a malformed or missing one is recorded and undefined. */
async function readId(
  read: Read,
  path: string,
  digits: 4 | 6,
  unreadable: HostFacts['unreadable'],
): Promise<{ value?: number; problem?: string }> {
  const text = await read(path);
  if (text === undefined) {
    const recorded = unreadable.find((u) => u.path === path);
    return { problem: `${path}: ${recorded?.error ?? 'missing'}` };
  }
  const parsed = parseSysfsId(text, digits);
  if (parsed.problem !== undefined) {
    unreadable.push({ path, error: parsed.problem });
    return { problem: `${path}: ${parsed.problem}` };
  }
  return { value: parsed.value };
}

async function gatherDisplayDevices(
  host: HostAccess,
  entries: { name: string; type: string }[],
  read: Read,
  unreadable: HostFacts['unreadable'],
  unidentified: HostFacts['unidentified'],
): Promise<DisplayDeviceFacts[]> {
  // Every entry is a link to the device's folder; a plain file there is damage.
  const devices = entries.filter((entry) => {
    if (entry.type !== 'file') return true;
    unreadable.push({ path: `${PATHS.pciDevices}/${entry.name}`, error: 'a file, not a device folder' });
    unidentified.push({ bdf: entry.name, problem: `${PATHS.pciDevices}/${entry.name} is a file` });
    return false;
  });
  // Read every device's class first; only display devices get the full treatment.
  const classes = await Promise.all(
    devices.map(async (entry) => {
      const read6 = await readId(read, `${PATHS.pciDevices}/${entry.name}/class`, 6, unreadable);
      if (read6.problem) unidentified.push({ bdf: entry.name, problem: read6.problem });
      return { bdf: entry.name, classCode: read6.value };
    }),
  );
  const display = classes.filter(
    (device) => device.classCode !== undefined && isDisplayClass(device.classCode),
  );
  const found = await Promise.all(
    display.map((device) =>
      gatherDisplayDevice(host, device.bdf, device.classCode as number, read, unreadable, unidentified),
    ),
  );
  return found.filter((device): device is DisplayDeviceFacts => device !== undefined);
}

async function gatherDisplayDevice(
  host: HostAccess,
  bdf: string,
  classCode: number,
  read: Read,
  unreadable: HostFacts['unreadable'],
  unidentified: HostFacts['unidentified'],
): Promise<DisplayDeviceFacts | undefined> {
  const dir = `${PATHS.pciDevices}/${bdf}`;
  const [vendor, device, subVendor, subDevice, driver, group, physfn] = await Promise.all([
    readId(read, `${dir}/vendor`, 4, unreadable),
    readId(read, `${dir}/device`, 4, unreadable),
    readId(read, `${dir}/subsystem_vendor`, 4, unreadable),
    readId(read, `${dir}/subsystem_device`, 4, unreadable),
    linkName(host, `${dir}/driver`, 'drivers', unreadable),
    linkName(host, `${dir}/iommu_group`, 'iommu_groups', unreadable),
    host.entryType(`${dir}/physfn`),
  ]);
  const vendorId = vendor.value;
  const deviceId = device.value;
  if (vendorId === undefined || deviceId === undefined) {
    // Never a guess: a device we cannot name is not planned for.
    unidentified.push({ bdf, problem: (vendor.problem ?? device.problem) as string });
    return undefined;
  }
  const isIntel = vendorId === INTEL;
  const [resource, mdevTypes, totalVfs, numVfs] = isIntel
    ? await Promise.all([
        read(`${dir}/resource`),
        gatherMdevTypes(host, `${dir}/mdev_supported_types`, read, unreadable),
        read(`${dir}/sriov_totalvfs`),
        read(`${dir}/sriov_numvfs`),
      ])
    : [undefined, [], undefined, undefined];
  const groupNumber = group !== undefined && /^\d+$/.test(group) ? Number(group) : undefined;
  const groupDevices =
    isIntel && groupNumber !== undefined
      ? await listOptional(host, `${PATHS.iommuGroups}/${groupNumber}/devices`, unreadable)
      : undefined;
  const regions = resource === undefined ? undefined : parseResource(resource);
  // The kernel writes 7 or more `start end flags` rows; garbage yields none that parse.
  if (resource !== undefined && !regions?.some((size) => size > 0))
    unreadable.push({ path: `${dir}/resource`, error: 'not a PCI resource table (start end flags rows)' });
  const aperture = regions?.[2];
  const count = (path: string, text: string | undefined) => {
    if (text === undefined) return undefined;
    if (/^\d+$/.test(text.trim())) return Number(text.trim());
    unreadable.push({ path, error: 'not a count' });
    return undefined;
  };
  const total = count(`${dir}/sriov_totalvfs`, totalVfs);
  const enabled = count(`${dir}/sriov_numvfs`, numVfs);
  return {
    bdf,
    vendorId,
    deviceId,
    subsystemVendorId: subVendor.value,
    subsystemDeviceId: subDevice.value,
    classCode,
    driver,
    iommuGroup: groupNumber,
    iommuGroupDevices: (groupDevices ?? []).map((entry) => entry.name),
    apertureBytes: aperture || undefined,
    mdevTypes,
    sriov: total === undefined ? undefined : { totalVfs: total, numVfs: enabled },
    virtualFunction: physfn !== undefined,
  };
}

async function gatherMdevTypes(
  host: HostAccess,
  dir: string,
  read: Read,
  unreadable: HostFacts['unreadable'],
): Promise<MdevTypeFacts[]> {
  const types = await listOptional(host, dir, unreadable);
  if (!types) return [];
  return Promise.all(
    types.map(async ({ name: id }) => {
      const [name, description, available, devices] = await Promise.all([
        read(`${dir}/${id}/name`),
        read(`${dir}/${id}/description`),
        read(`${dir}/${id}/available_instances`),
        listOptional(host, `${dir}/${id}/devices`, unreadable),
      ]);
      const parsed = parseMdevDescription(description ?? '');
      if (description !== undefined && parsed.lowGmMiB === undefined && parsed.fences === undefined)
        unreadable.push({ path: `${dir}/${id}/description`, error: 'not a GVT-g type description' });
      const availableText = available?.trim();
      const availableInstances =
        availableText && /^\d+$/.test(availableText) ? Number(availableText) : undefined;
      if (available !== undefined && availableInstances === undefined)
        unreadable.push({ path: `${dir}/${id}/available_instances`, error: 'not a count' });
      return {
        id,
        name: name?.trim() || undefined,
        ...parsed,
        availableInstances,
        instancesInUse: devices?.length ?? 0,
      };
    }),
  );
}

async function gatherIommu(host: HostAccess, unreadable: HostFacts['unreadable']): Promise<IommuFacts> {
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
  unreadable: HostFacts['unreadable'],
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
  unreadable: HostFacts['unreadable'],
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
  unreadable: HostFacts['unreadable'],
): Promise<HostFacts['firmware']> {
  const uefi = (await host.entryType(PATHS.efi)) !== undefined;
  if (!uefi) return { uefi, secureBoot: undefined };
  const data = await readOptional(host, PATHS.secureBoot, unreadable);
  return { uefi, secureBoot: data === undefined ? undefined : parseSecureBootVar(data) };
}
