// Where Linux (and Proxmox on top of it) keeps what the tool reads: one table, so
// gather, plan and capture name the same files.

import { MODULE, moduleParametersDir } from '../knowledge/kernel.ts';

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
  dpkgStatus: '/var/lib/dpkg/status',
  libModules: '/lib/modules',
  usrSrc: '/usr/src',
  /** proxmox-kernel-helper src/proxmox-boot/functions @ 7007b33 (PINNED_KERNEL_CONF, NEXT_BOOT_PIN). */
  kernelPin: '/etc/kernel/proxmox-boot-pin',
  kernelNextBootPin: '/etc/kernel/next-boot-pin',
} as const;
