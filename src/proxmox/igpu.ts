// Which of a Proxmox node's PCI devices (its /nodes/{node}/hardware/pci listing) is the
// Intel iGPU: shared by the mapping and VM layers, the status view and init.

import type { PciDevice } from './api.ts';

/** The Intel display controller at 00:02.0 (the iGPU's fixed slot on every Intel client platform). */
export function findIgpu(devices: readonly PciDevice[]): PciDevice | undefined {
  return devices.find(
    (d) => d.vendor.toLowerCase() === '0x8086' && /^0x03/.test(d.class) && /00:02\.0$/.test(d.id),
  );
}
