// Host facts: everything the host layer plans from, read without side effects.
// This is the stable shape `doctor --json` reports on; keep additions backwards compatible.

import type { DisplayDeviceFacts, UnidentifiedDevice, UnreadableFile } from '../linux/facts.ts';
import type { KernelGuardFacts } from '../linux/kernel-guard/state.ts';

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

/**
 * What decides whether SR-IOV works on this host now and after the next boot: the
 * out-of-tree driver's sources and builds, the kernels, the running kernel's log, the
 * GuC firmware, module signing. Filled by gather; every field is "unknown" (undefined or
 * empty) where the host does not say.
 */
export interface SriovDriverFacts {
  /** i915-sriov-dkms releases whose sources are installed: /usr/src/i915-sriov-dkms-<release>/dkms.conf. */
  dkmsSources: { release: string; buildExclusiveKernel: string | undefined }[];
  /** Per installed kernel release: module files dkms installed for it (/lib/modules/<kernel>/updates/dkms), e.g. i915.ko. */
  dkmsModules: Record<string, string[]>;
  /** Lines of the running boot's kernel log about i915/xe, SR-IOV, GuC or max_vfs; undefined when it cannot be read. */
  kernelLog: string[] | undefined;
  /** GuC firmware version the kernel log reports for the iGPU, e.g. 70.36.0. */
  gucVersion: string | undefined;
  /** The dkms signing key (/var/lib/dkms/mok.pub) is enrolled in MOK; undefined when unknown or there is no key. */
  mokEnrolled: boolean | undefined;
  /** The iGPU's sriov_drivers_autoprobe (false: new VFs get no host driver). */
  driversAutoprobe: boolean | undefined;
}

export interface KernelFacts {
  /** Kernel releases with a /lib/modules/<release>/modules.dep (installed). */
  installed: string[];
  /** Installed kernels whose headers are there too (/lib/modules/<release>/build exists): dkms can build for them. */
  withHeaders: string[];
  /** proxmox-boot-tool's pin (/etc/kernel/proxmox-boot-pin) and next-boot pin, when set. */
  pinned: string | undefined;
  nextBootPin: string | undefined;
}

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
  kernels: KernelFacts;
  /** Installed Debian packages of interest (dpkg status: name → version). */
  packages: Record<string, string>;
  sriovDriver: SriovDriverFacts;
  /** Files of ours the SR-IOV setup writes outside the module and boot files (tmpfiles, udev), as read. */
  sriovFiles: { path: string; content: string }[];
  /** The kernel guard's hook, settings and record, and kernel packages left unfinished. */
  kernelGuard: KernelGuardFacts;
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
