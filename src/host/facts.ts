// Host facts: everything the host layer plans from, read without side effects.
// This is the stable shape `doctor --json` reports on; keep additions backwards compatible.

import type { DisplayDeviceFacts, UnidentifiedDevice, UnreadableFile } from '../linux/facts.ts';

export interface CpuFacts {
  vendor: string;
  family: number;
  model: number;
  stepping: number | undefined;
  modelName: string;
  /** VT-x (Intel `vmx`) or AMD-V (`svm`) offered to the kernel. */
  vmx: boolean;
  svm: boolean;
  /** The `hypervisor` flag: this "host" is itself a virtual machine. */
  hypervisor: boolean;
  logicalCpus: number;
}

export interface IommuFacts {
  /** ACPI DMAR (Intel VT-d) or IVRS (AMD-Vi) table present: the firmware offers an IOMMU. */
  firmwareTable: 'DMAR' | 'IVRS' | undefined;
  /** Entries of /sys/class/iommu, e.g. dmar0: the kernel runs the IOMMU. */
  units: string[];
  groupCount: number;
}

export type BootloaderFacts =
  | { kind: 'grub'; files: { path: string; content: string }[] }
  | {
      kind: 'systemd-boot';
      espUuids: string[];
      /** /etc/kernel/cmdline as read (undefined when absent). */
      cmdline: string | undefined;
    }
  | { kind: 'unknown' };

export interface HostFacts {
  target: string;
  kernelRelease: string | undefined;
  /** /proc/cmdline: what the running kernel was booted with. */
  cmdline: string | undefined;
  cpu: CpuFacts | undefined;
  displayDevices: DisplayDeviceFacts[];
  iommu: IommuFacts;
  /** Present when i915 is loaded (its parameters directory exists). */
  i915:
    | { enableGvt: boolean | undefined; enableGuc: number | undefined; maxVfs: number | undefined }
    | undefined;
  /** Loaded modules from /proc/modules, or from /sys/module when that file is absent. */
  modules: string[];
  /** /etc/modules, /etc/modules-load.d/*.conf and /etc/modprobe.d/igpu-split.conf, as read. */
  moduleFiles: { path: string; content: string }[];
  bootloader: BootloaderFacts;
  proxmox: { version: string | undefined; release: string | undefined } | undefined;
  os: { id: string | undefined; versionId: string | undefined; prettyName: string | undefined } | undefined;
  firmware: { uefi: boolean; secureBoot: boolean | undefined };
  /**
   * PCI functions whose identity (class, vendor or device) could not be read: such a device
   * is never treated as known, and an iGPU slot holding one is an unknown device.
   */
  unidentified: UnidentifiedDevice[];
  /**
   * Files that exist but could not be read or are not what Linux writes there (a
   * directory, a link loop, binary data, a malformed id), so checks and plans can say
   * their evidence is incomplete.
   */
  unreadable: UnreadableFile[];
}
