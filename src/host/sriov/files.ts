// The files an SR-IOV host gets besides the boot loader's: what they hold and why.
//
// Decisions:
// - VFs are created at boot by a systemd-tmpfiles `w` line, not sysfsutils: systemd-tmpfiles
//   is on every Proxmox VE host (no package to add, nothing to remove on rollback), the
//   i915-sriov-dkms project moved to the same mechanism (strongtz/i915-sriov-dkms 5389e1f,
//   "Use systemd-tmpfiles instead of a systemd unit"; its i915-set-sriov-numvfs.conf), and
//   the real `systemd-tmpfiles --root=… --create` can write it into a test root.
//   systemd-tmpfiles-setup.service runs Before=sysinit.target (systemd 252's unit, read in the
//   boot-chain root), and pve-guests.service, which starts the on-boot VMs, keeps the default
//   dependencies (After=basic.target; proxmox/pve-manager services/pve-guests.service @ 14a22df3).
// - The VFs are kept off the host: the same file first writes 0 to sriov_drivers_autoprobe,
//   so no host driver probes the new VFs (the PF attribute sriov_drivers_autoprobe,
//   DEVICE_ATTR_RW in sriov_pf_dev_attrs of the kernel's drivers/pci/iov.c, read 2026-12-01); Proxmox binds a VF to vfio-pci itself when a VM starts with
//   it (qemu-server src/PVE/QemuServer/PCI.pm). A modprobe.d softdep loads vfio-pci before
//   the iGPU driver, and it goes into the initramfs (initramfs-tools copies /etc/modprobe.d).
// - The PF must be bound by its driver before the tmpfiles line runs, or the write finds no
//   sriov_numvfs. Proxmox loads i915 through udev's coldplug, which
//   systemd-tmpfiles-setup.service does not wait for; so the driver is listed in
//   /etc/initramfs-tools/modules (mkinitramfs adds every module that file names: pexip/
//   os-initramfs-tools mkinitramfs @ 6a8f96b, "MODULES=list case. Always honour.") and binds
//   the PF in the initramfs, before the root file system's systemd starts. That file is the
//   user's: our line carries a marker and rollback removes exactly that line. Verify checks
//   that the VFs exist rather than trusting the order.

import { VFIO_PCI_OBJECT } from '../../knowledge/kernel.ts';
import { PATHS } from '../../linux/paths.ts';

/** Our tmpfiles.d file: the VF count written at every boot. */
export const SRIOV_TMPFILES = '/etc/tmpfiles.d/igpu-split-sriov.conf';

/** initramfs-tools' module list (CONFDIR/modules): one module name per line. */
export const INITRAMFS_MODULES = '/etc/initramfs-tools/modules';
/** The comment that marks our line in it (rollback removes the line and the comment). */
export const INITRAMFS_MARKER = '# igpu-split: the iGPU driver binds the PF before the VFs are created';

/** The module list with our line for `driver` added (unchanged when the user lists it already). */
export function withInitramfsDriver(content: string, driver: 'i915' | 'xe'): string {
  const lines = withoutInitramfsDriver(content).split('\n');
  if (lines.some((line) => line.replace(/#.*/, '').trim().split(/\s+/)[0] === driver)) return content;
  const body = content === '' || content.endsWith('\n') ? content : `${content}\n`;
  return `${withoutInitramfsDriver(body)}${INITRAMFS_MARKER}\n${driver}\n`;
}

/** The module list without our marked line. */
export function withoutInitramfsDriver(content: string): string {
  const lines = content.split('\n');
  const at = lines.indexOf(INITRAMFS_MARKER);
  if (at < 0) return content;
  lines.splice(at, 2);
  return lines.join('\n');
}

/** Every SR-IOV file of ours gather reads back (the modprobe and modules-load files are read with the others). */
export const SRIOV_FILES: readonly string[] = [SRIOV_TMPFILES, INITRAMFS_MODULES];

/** The sysfs path of a PCI function as tmpfiles addresses it (through /sys/bus/pci/devices). */
const sysfsOf = (bdf: string, attribute: string) => `${PATHS.pciDevices}/${bdf}/${attribute}`;

/**
 * tmpfiles.d lines: `w PATH - - - - ARGUMENT` writes ARGUMENT to PATH (tmpfiles.d(5), type
 * `w`; mode, user, group and age are `-`). Autoprobe off first, then the count.
 */
export function sriovTmpfiles(pfBdf: string, vfs: number): string {
  return [
    '# Written by igpu-split: create the iGPU virtual functions at boot, with no host driver',
    '# probing them (Proxmox binds each to vfio-pci when its VM starts).',
    `w ${sysfsOf(pfBdf, 'sriov_drivers_autoprobe')} - - - - 0`,
    `w ${sysfsOf(pfBdf, 'sriov_numvfs')} - - - - ${vfs}`,
    '',
  ].join('\n');
}

/** /etc/modprobe.d content for an SR-IOV host: vfio-pci ready before the iGPU driver. */
export function sriovModprobe(driver: 'i915' | 'xe'): string {
  return [
    '# Written by igpu-split: vfio-pci loads before the iGPU driver, for the virtual functions.',
    `softdep ${driver} pre: ${VFIO_PCI_OBJECT}`,
    '',
  ].join('\n');
}
