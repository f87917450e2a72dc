// Which of a Proxmox node's PCI devices (its /nodes/{node}/hardware/pci listing) is the
// Intel iGPU: shared by the mapping and VM layers, the status view and init.

import type { PciDevice } from './api.ts';

/** The Intel display controller at 00:02.0 (the iGPU's fixed slot on every Intel client platform). */
export function findIgpu(devices: readonly PciDevice[]): PciDevice | undefined {
  return devices.find(
    (d) => d.vendor.toLowerCase() === '0x8086' && /^0x03/.test(d.class) && /00:02\.0$/.test(d.id),
  );
}

/**
 * The virtual functions of an iGPU's physical function, in the order Proxmox should try
 * them: 00:02.1 … 00:02.N (strongtz/i915-sriov-dkms README.md @ 2421d3f: "VFs appear at
 * 00:02.1–00:02.7"; SRIOV-FACTS §2).
 */
export function vfPaths(pfBdf: string, vfs: number): string[] {
  const slot = pfBdf.slice(0, pfBdf.lastIndexOf('.'));
  return Array.from({ length: vfs }, (_, i) => `${slot}.${i + 1}`);
}

/** `00:02.0` or `0000:00:02.0` (any case) as `0000:00:02.0`: how Proxmox's lspci names devices. */
export function fullBdf(id: string): string {
  return (/^[0-9a-f]{4,}:/i.test(id) ? id : `0000:${id}`).toLowerCase();
}
