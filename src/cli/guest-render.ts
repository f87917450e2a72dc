// igpu-split guest render --out DIR: the files a GitOps user commits (cloud-init
// user-data for Ubuntu VMs; the schematic and machine-config patch for Talos nodes).

import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import {
  addConnectTimeout,
  addLabOption,
  addRequestTimeout,
  type TimeoutOptions,
  timeoutsOf,
} from './option-checks.ts';

export function registerGuestRender(guest: Command): void {
  const command = guest
    .command('render')
    .description('write cloud-init user-data (Ubuntu) and the schematic and patch (Talos) for every node VM')
    .option(
      '--out <dir>',
      'the folder to write into (one subfolder per VM); not the folder of cluster render, which a GitOps sync applies whole',
      'gitops/guests',
    );
  addRequestTimeout(addLabOption(addConnectTimeout(command))).action(
    async (options: { out: string; lab: string } & TimeoutOptions) => {
      const [{ loadLab }, { renderGuests }, { findTalosctl, talosctlAt }, { openLabKube, osImageOf }] =
        await Promise.all([
          import('../config/load.ts'),
          import('../guest/render.ts'),
          import('../guest/talos/talosctl.ts'),
          import('../engine/connections.ts'),
        ]);
      await refuseKustomizeFolder(options.out);
      const lab = await loadLab(options.lab);
      // A Talos version the lab file leaves out is read as plan reads it; the cluster only if asked.
      const bin = await findTalosctl();
      let kube: ReturnType<typeof openLabKube> | undefined;
      const files = await renderGuests(lab, options.out, timeoutsOf(options), {
        talosctl: bin ? talosctlAt(bin) : undefined,
        osImage: (vm) =>
          osImageOf(() => {
            kube ??= openLabKube(lab, timeoutsOf(options));
            return kube;
          }, vm),
      });
      process.stdout.write(`${files.map((f) => `wrote ${f}`).join('\n')}\n`);
    },
  );
}

/**
 * Guest files are not Kubernetes objects: written into a folder a GitOps tool applies (one
 * with a kustomization.yaml, such as cluster render's), the sync would try to apply them.
 */
async function refuseKustomizeFolder(out: string): Promise<void> {
  const [{ existsSync }, { join }] = await Promise.all([import('node:fs'), import('node:path')]);
  const found = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].find((name) =>
    existsSync(join(out, name)),
  );
  if (found)
    throw new UsageError(`${out} holds ${found}: guest files there would be applied as Kubernetes objects`, {
      fix: 'render the guests into a folder of their own (the default is gitops/guests; cluster render writes gitops/cluster)',
    });
}
