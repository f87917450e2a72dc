// GitOps: the files a user commits instead of letting igpu-split change the guests —
// per node VM of the lab file, what its guest provider renders (cloud-init user-data for
// Ubuntu; the Image Factory schematic and the machine-config patch for Talos).

import { join } from 'node:path';
import type { Lab } from '../config/lab.ts';
import { attachmentOf } from './attachment.ts';
import type { RenderTools } from './provider.ts';
import { providerOf } from './providers.ts';
import { ImageFactory } from './talos/factory.ts';

export async function renderGuests(
  lab: Lab,
  out: string,
  timeouts: { connectTimeoutMs?: number; requestTimeoutMs?: number } = {},
  readers: Omit<RenderTools, 'factory'> = {},
): Promise<string[]> {
  const written: string[] = [];
  const factory = new ImageFactory(lab.imageFactory, timeouts);
  try {
    for (const vm of lab.vms)
      written.push(
        ...(await providerOf(vm).render(vm, join(out, vm.kubernetesNode ?? `vm-${vm.vmid}`), {
          factory,
          attachment: attachmentOf(lab, vm),
          ...readers,
        })),
      );
    return written;
  } finally {
    await factory.close();
  }
}
