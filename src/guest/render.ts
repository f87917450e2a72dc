// GitOps: the files a user commits instead of letting igpu-split change the guests —
// per node VM of the lab file, cloud-init user-data (Ubuntu) or the Image Factory
// schematic and the machine-config patch (Talos).

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Lab } from '../config/lab.ts';
import { ImageFactory } from './talos/factory.ts';
import { planTalos, writeTalosFiles } from './talos/plan.ts';
import { ubuntuUserData } from './ubuntu/cloud-init.ts';

export async function renderGuests(
  lab: Lab,
  out: string,
  timeouts: { connectTimeoutMs?: number; requestTimeoutMs?: number } = {},
): Promise<string[]> {
  const written: string[] = [];
  const factory = new ImageFactory(lab.imageFactory, timeouts);
  try {
    return await renderEach(lab, out, factory, written);
  } finally {
    await factory.close();
  }
}

async function renderEach(
  lab: Lab,
  out: string,
  factory: ImageFactory,
  written: string[],
): Promise<string[]> {
  for (const vm of lab.vms) {
    const dir = join(out, vm.kubernetesNode ?? `vm-${vm.vmid}`);
    if (vm.os === 'ubuntu') {
      await mkdir(dir, { recursive: true });
      const file = join(dir, 'user-data.yaml');
      await writeFile(file, ubuntuUserData({ hostname: vm.kubernetesNode }));
      written.push(file);
    } else if (vm.talos) {
      const plan = await planTalos(
        vm.talos,
        { node: vm.talos.node, extensions: undefined, dri: undefined },
        factory,
      );
      written.push(...(await writeTalosFiles(plan, dir)));
    }
  }
  return written;
}
