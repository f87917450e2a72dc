// Names the Linux kernel defines that igpu-split writes or reads: boot parameters and the
// option words it puts in them, module names, i915 module parameters, and the sysfs folder
// module parameters appear in. test/knowledge/kernel-pins.test.ts checks each one against
// snapshots/kernel-facts.json (made by scripts/extract-kernel-facts.ts, which names every
// file and commit it read).

/**
 * Module names as the kernel reports them (/proc/modules, /sys/module): kbuild builds
 * KBUILD_MODNAME with '-' turned into '_' (torvalds/linux scripts/Makefile.lib,
 * name-fix-token; read 2026-11-30 in an excerpt whose commit could not be named), so `vfio-pci.o` is the module `vfio_pci`.
 */
export const MODULE = {
  /** obj-$(CONFIG_DRM_I915) += i915.o — torvalds/linux drivers/gpu/drm/i915/Makefile @ c5fb51b7 */
  i915: 'i915',
  /** obj-$(CONFIG_DRM_I915_GVT_KVMGT) += kvmgt.o — same Makefile @ c5fb51b7 */
  kvmgt: 'kvmgt',
  /** obj-$(CONFIG_DRM_XE) += xe.o — drivers/gpu/drm/xe/Makefile @ 00c8efc3 */
  xe: 'xe',
  /** obj-$(CONFIG_VFIO_MDEV) += mdev.o — drivers/vfio/mdev/Makefile @ 254a1420 */
  mdev: 'mdev',
  /** obj-$(CONFIG_VFIO) += vfio.o — drivers/vfio/Makefile @ 0604aa87 */
  vfio: 'vfio',
  /** obj-$(CONFIG_VFIO_IOMMU_TYPE1) += vfio_iommu_type1.o — drivers/vfio/Makefile @ 0604aa87 */
  vfioIommuType1: 'vfio_iommu_type1',
  /** obj-$(CONFIG_VFIO_PCI) += vfio-pci.o — drivers/vfio/pci/Makefile @ 06d07429 */
  vfioPci: 'vfio_pci',
  /** obj-$(CONFIG_KVM_INTEL) += kvm-intel.o — arch/x86/kvm/Makefile @ 00b27a3e */
  kvmIntel: 'kvm_intel',
} as const;

/** vfio-pci as its object file is spelled (drivers/vfio/pci/Makefile @ 06d07429), as modprobe.d lines write it. */
export const VFIO_PCI_OBJECT = 'vfio-pci';

/**
 * Module names old guides still list that no longer exist as modules: virqfd.o is linked
 * into vfio (`vfio-$(CONFIG_VFIO_VIRQFD) += virqfd.o`, drivers/vfio/Makefile @ 0604aa87),
 * and drivers/vfio/mdev/Makefile @ 254a1420 builds only mdev. (When that changed is not
 * said: the files read show only that it has.)
 */
export const STALE_MODULES: Readonly<Record<string, { partOf: string; why: string }>> = {
  vfio_virqfd: { partOf: MODULE.vfio, why: 'now part of vfio' },
  vfio_mdev: { partOf: MODULE.mdev, why: 'now part of mdev' },
};

/** Boot parameter names. */
export const BOOT_PARAM = {
  /** "passing intel_iommu=on to the kernel" — drivers/iommu/intel/Kconfig @ 01dac2d9 (INTEL_IOMMU_DEFAULT_ON help) */
  intelIommu: 'intel_iommu',
  /** early_param("iommu", iommu_setup) — arch/x86/kernel/pci-dma.c @ bcb71abe */
  iommu: 'iommu',
  /**
   * Not in upstream Linux: Proxmox's kernel patch early_param("pcie_acs_override", …) —
   * proxmox/pve-kernel patches/kernel/0004-pci-Enable-overrides-for-missing-ACS-capabilities-4..patch @ 6e44995b
   */
  acsOverride: 'pcie_acs_override',
  /**
   * core_param(module_blacklist, module_blacklist, charp, 0400): a comma-separated list of
   * modules the kernel refuses to load ("Module %s is blacklisted") — torvalds/linux
   * kernel/module/main.c @ 01d5b167 (read as an excerpt, see snapshots/i915-sriov-dkms.json)
   */
  moduleBlacklist: 'module_blacklist',
} as const;

/** Option words, each checked against the parameter's parser in the snapshot. */
export const BOOT_OPTION = {
  intelIommuOn: 'on',
  /** strncmp(p, "pt", 2) in iommu_setup: identity (pass-through) DMA for host devices */
  iommuPassThrough: 'pt',
  /** strncmp(p, "downstream", 10) and strncmp(p, "multifunction", 13) in pcie_acs_override_setup */
  acsDownstream: 'downstream',
  acsMultifunction: 'multifunction',
} as const;

/**
 * i915 module parameters (`i915.<name>=` on the command line, files under
 * /sys/module/i915/parameters): enable_gvt (bool) and enable_guc (int) from
 * i915_param_named(…) in torvalds/linux drivers/gpu/drm/i915/i915_params.c @ 010e85f9;
 * max_vfs (uint) exists only in the SR-IOV DKMS i915 (strongtz/i915-sriov-dkms
 * drivers/gpu/drm/i915/i915_params.c @ 2421d3ff).
 */
export const I915_PARAM = {
  enableGvt: 'enable_gvt',
  enableGuc: 'enable_guc',
  maxVfs: 'max_vfs',
} as const;

/**
 * xe module parameters (strongtz/i915-sriov-dkms drivers/gpu/drm/xe/xe_module.c @ 2421d3ff,
 * the v7.0 xe): module_param_named(max_vfs, …, uint, 0400) under CONFIG_PCI_IOV, and
 * module_param_named_unsafe(force_probe, …, charp, 0400) taking device ids.
 */
export const XE_PARAM = {
  maxVfs: 'max_vfs',
  forceProbe: 'force_probe',
} as const;

export const XE_PARAM_TYPE: Readonly<Record<(typeof XE_PARAM)[keyof typeof XE_PARAM], string>> = {
  max_vfs: 'uint',
  force_probe: 'charp',
};

/**
 * What the kernel logs when a module is given a parameter it does not declare:
 * pr_warn("%s: unknown parameter '%s' ignored\n", modname, param) in unknown_module_param_cb,
 * torvalds/linux kernel/module/main.c @ 01d5b167. The stock i915 logs it for max_vfs
 * (SRIOV-FACTS §5, issues #150, #334).
 */
export const unknownParameterMessage = (module: string, param: string) =>
  `${module}: unknown parameter '${param}' ignored`;

/** The type each i915 parameter was declared with, as the snapshot records it. */
export const I915_PARAM_TYPE: Readonly<Record<(typeof I915_PARAM)[keyof typeof I915_PARAM], string>> = {
  enable_gvt: 'bool',
  enable_guc: 'int',
  max_vfs: 'uint',
};

/** `<module>.<parameter>`: how a module parameter is given on the kernel command line. */
export const moduleParam = (module: string, name: string) => `${module}.${name}`;

/** The parameters igpu-split adds, whole. */
export const PARAM = {
  intelIommuOn: `${BOOT_PARAM.intelIommu}=${BOOT_OPTION.intelIommuOn}`,
  iommuPassThrough: `${BOOT_PARAM.iommu}=${BOOT_OPTION.iommuPassThrough}`,
  gvtOn: `${moduleParam(MODULE.i915, I915_PARAM.enableGvt)}=1`,
  gucOff: `${moduleParam(MODULE.i915, I915_PARAM.enableGuc)}=0`,
  acsOverride: `${BOOT_PARAM.acsOverride}=${BOOT_OPTION.acsDownstream},${BOOT_OPTION.acsMultifunction}`,
} as const;

/**
 * The SR-IOV parameters, built from the names above: i915.enable_guc=3 (GuC submission and
 * HuC load, the bitmask in the DKMS i915_params.c enable_guc description; a VF refuses to start
 * without GuC submission), i915.max_vfs / xe.max_vfs (how many VFs the PF may enable),
 * xe.force_probe=<device id> and module_blacklist=<the other driver>. Routes use these
 * (src/host/sriov/route.ts routeParams).
 */
export const SRIOV_PARAM = {
  i915GucSubmission: `${moduleParam(MODULE.i915, I915_PARAM.enableGuc)}=3`,
  i915MaxVfs: (vfs: number) => `${moduleParam(MODULE.i915, I915_PARAM.maxVfs)}=${vfs}`,
  xeMaxVfs: (vfs: number) => `${moduleParam(MODULE.xe, XE_PARAM.maxVfs)}=${vfs}`,
  xeForceProbe: (deviceId: string) => `${moduleParam(MODULE.xe, XE_PARAM.forceProbe)}=${deviceId}`,
  moduleBlacklist: (...modules: string[]) => `${BOOT_PARAM.moduleBlacklist}=${modules.join(',')}`,
} as const;

/**
 * Where a loaded module's parameters are: "/sys/module/[mod->name]/parameters/"
 * (torvalds/linux kernel/params.c @ 94bd217e, module_param_sysfs_setup).
 */
export const moduleParametersDir = (module: string) => `/sys/module/${module}/parameters`;
