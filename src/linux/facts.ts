// Facts read from the Linux files every machine has (a Proxmox host, or a guest
// looking for its vGPU): PCI display devices and the mediated-device types they offer.

export interface MdevTypeFacts {
  /** Directory name under mdev_supported_types, e.g. `i915-GVTg_V5_4`. */
  id: string;
  /** The `name` attribute, e.g. `GVTg_V5_4`. */
  name: string | undefined;
  lowGmMiB: number | undefined;
  highGmMiB: number | undefined;
  fences: number | undefined;
  resolution: string | undefined;
  weight: number | undefined;
  availableInstances: number | undefined;
  /** Mediated devices of this type that exist now (entries of its `devices/`). */
  instancesInUse: number;
}

export interface DisplayDeviceFacts {
  /** `0000:00:02.0` */
  bdf: string;
  vendorId: number;
  deviceId: number;
  subsystemVendorId: number | undefined;
  subsystemDeviceId: number | undefined;
  classCode: number;
  driver: string | undefined;
  iommuGroup: number | undefined;
  /** Every PCI function in that IOMMU group (they can only be passed through together). */
  iommuGroupDevices: string[];
  /** BAR 2 (GMADR) of an Intel iGPU: the CPU-visible graphics aperture. */
  apertureBytes: number | undefined;
  mdevTypes: MdevTypeFacts[];
  /** `numVfs` is undefined when sriov_numvfs could not be read (never taken for 0). */
  sriov: { totalVfs: number; numVfs: number | undefined } | undefined;
  /** True for SR-IOV virtual functions (they carry a `physfn` link). */
  virtualFunction: boolean;
}

/** A file that exists but could not be read, or is not what Linux writes there. */
export interface UnreadableFile {
  path: string;
  error: string;
}

/** A PCI function whose identity (class, vendor or device) could not be read. */
export interface UnidentifiedDevice {
  bdf: string;
  problem: string;
}
