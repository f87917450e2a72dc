// The PCI display devices of any Linux machine (a host, or a guest looking for its
// vGPU), read from sysfs: identity, driver, IOMMU group, aperture, GVT-g types, SR-IOV.

import type { HostAccess } from '../access/host.ts';
import type { DisplayDeviceFacts, MdevTypeFacts, UnidentifiedDevice, UnreadableFile } from './facts.ts';
import { parseMdevDescription } from './parse/mdev.ts';
import { isDisplayClass, parseResource, parseSysfsId } from './parse/pci.ts';
import { PATHS } from './paths.ts';
import { linkName, listOptional, type Read, textReader } from './read.ts';

const INTEL = 0x8086;

/** The PCI display devices; what cannot be read is left out (a guest only looks for its vGPU). */
export async function readDisplayDevices(host: HostAccess): Promise<DisplayDeviceFacts[]> {
  const unreadable: UnreadableFile[] = [];
  const entries = (await listOptional(host, PATHS.pciDevices, unreadable)) ?? [];
  return gatherDisplayDevices(host, entries, textReader(host, unreadable), unreadable, []);
}

/** One sysfs id file, read strictly; a malformed or missing one is recorded and undefined. */
async function readId(
  read: Read,
  path: string,
  digits: 4 | 6,
  unreadable: UnreadableFile[],
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

/** The display devices among the entries of /sys/bus/pci/devices. */
export async function gatherDisplayDevices(
  host: HostAccess,
  entries: { name: string; type: string }[],
  read: Read,
  unreadable: UnreadableFile[],
  unidentified: UnidentifiedDevice[],
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
  unreadable: UnreadableFile[],
  unidentified: UnidentifiedDevice[],
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
  const groupNumber = group !== undefined && /^\d+$/.test(group) ? Number(group) : undefined;
  const intel =
    vendorId === INTEL
      ? await gatherIntelParts(host, dir, groupNumber, read, unreadable)
      : { apertureBytes: undefined, mdevTypes: [], sriov: undefined, groupDevices: undefined };
  return {
    bdf,
    vendorId,
    deviceId,
    subsystemVendorId: subVendor.value,
    subsystemDeviceId: subDevice.value,
    classCode,
    driver,
    iommuGroup: groupNumber,
    iommuGroupDevices: (intel.groupDevices ?? []).map((entry) => entry.name),
    apertureBytes: intel.apertureBytes,
    mdevTypes: intel.mdevTypes,
    sriov: intel.sriov,
    virtualFunction: physfn !== undefined,
  };
}

/** What only an Intel device is read for: its aperture, GVT-g types, SR-IOV counts and IOMMU group. */
async function gatherIntelParts(
  host: HostAccess,
  dir: string,
  groupNumber: number | undefined,
  read: Read,
  unreadable: UnreadableFile[],
) {
  const [resource, mdevTypes, totalVfs, numVfs, groupDevices] = await Promise.all([
    read(`${dir}/resource`),
    gatherMdevTypes(host, `${dir}/mdev_supported_types`, read, unreadable),
    read(`${dir}/sriov_totalvfs`),
    read(`${dir}/sriov_numvfs`),
    groupNumber === undefined
      ? undefined
      : listOptional(host, `${PATHS.iommuGroups}/${groupNumber}/devices`, unreadable),
  ]);
  const regions = resource === undefined ? undefined : parseResource(resource);
  // The kernel writes 7 or more `start end flags` rows; garbage yields none that parse.
  if (resource !== undefined && !regions?.some((size) => size > 0))
    unreadable.push({ path: `${dir}/resource`, error: 'not a PCI resource table (start end flags rows)' });
  const total = readCount(`${dir}/sriov_totalvfs`, totalVfs, unreadable);
  const enabled = readCount(`${dir}/sriov_numvfs`, numVfs, unreadable);
  return {
    apertureBytes: regions?.[2] || undefined,
    mdevTypes,
    sriov: total === undefined ? undefined : { totalVfs: total, numVfs: enabled },
    groupDevices,
  };
}

/** A sysfs count; anything but digits is recorded as unreadable and undefined (never 0). */
function readCount(path: string, text: string | undefined, unreadable: UnreadableFile[]): number | undefined {
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim());
  unreadable.push({ path, error: 'not a count' });
  return undefined;
}

async function gatherMdevTypes(
  host: HostAccess,
  dir: string,
  read: Read,
  unreadable: UnreadableFile[],
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
