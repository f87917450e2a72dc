// Shared pieces for tests against the Proxmox simulator: the iGPU of the i5-8500T
// fixture host (UHD 630, as its sysfs capture has it), its mapping entry, and an API
// client that calls the simulator in-process as a token.

import { ProxmoxApi } from '../../src/proxmox/api.ts';
import type { SimGpu, SimulatorState } from '../../src/sim/proxmox/state.ts';
import { SimulatorTransport } from './proxmox-transport.ts';

/** test/fixtures/hosts/i5-8500t-gvt: 00:02.0, 8086:3e92, subsystem 17aa:3136, IOMMU group 1, 256 MB aperture. */
export const UHD630: Readonly<SimGpu> = {
  bdf: '0000:00:02.0',
  vendorDevice: '8086:3e92',
  subsystem: '17aa:3136',
  iommuGroup: 1,
  apertureMiB: 256,
  graphicsVer: 9,
};

/** Where the one-host tests start: pve1 with the UHD 630, and VM 101 (k3s-1: q35, OVMF, no vGPU yet) running. */
export function addPve1WithK3sVm(state: SimulatorState): void {
  state.addNode('pve1', { ...UHD630 });
  state.addVm({
    vmid: 101,
    node: 'pve1',
    status: 'stopped',
    config: { name: 'k3s-1', machine: 'q35', bios: 'ovmf' },
  });
  state.start(101);
}

export const uhd630Entry = (node: string) =>
  `node=${node},path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=1`;

/** The privileges a token needs for the mapping and VM layers (README, "Proxmox privileges"). */
export const LAYER_GRANTS: Record<string, string[]> = {
  '/': ['Sys.Audit'],
  '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Options', 'VM.PowerMgmt'],
  '/mapping/pci': ['Mapping.Modify', 'Mapping.Use', 'Mapping.Audit'],
};

/** A typed API over the in-process simulator as `user@realm!token`, polling tasks every ms. */
export function tokenApi(state: SimulatorState, tokenId = 'igpu@pve!split'): ProxmoxApi {
  const [user, token] = tokenId.split('!') as [string, string];
  return new ProxmoxApi(new SimulatorTransport(state, { user, token }), tokenId, { pollMs: 1 });
}
