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
  /** The key dkms signs modules with (strongtz/i915-sriov-dkms docs/secure-boot.md @ 2421d3f: mokutil --import it). */
  dkmsMokPub: '/var/lib/dkms/mok.pub',
  /**
   * shim's runtime copy of the enrolled MOK list: the kernel's "mok-variables" sysfs folder
   * (torvalds/linux drivers/firmware/efi/mokvar-table.c), else the EFI variable MokListRT
   * under shim's GUID (EFI_SHIM_LOCK_GUID 605dab50-e046-4300-abb6-3dd810dd8b23, include/linux/efi.h).
   */
  mokListRt: '/sys/firmware/efi/mok-variables/MokListRT',
  mokListRtVar: '/sys/firmware/efi/efivars/MokListRT-605dab50-e046-4300-abb6-3dd810dd8b23',
  /**
   * Not a Linux file: where `capture` puts the kernel log lines doctor read on the live host
   * (a captured tree cannot run journalctl), so doctor --root reads the same lines.
   */
  kernelLogCapture: '/run/igpu-split/kernel-log',
} as const;
