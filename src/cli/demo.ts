// igpu-split demo (what `npm start` runs without a lab file): the built-in demo lab —
// the Proxmox simulator and the Kubernetes API server in this process, three captured
// hosts, an Ubuntu and a Talos node VM — taken through doctor → plan → apply → verify →
// status, visibly, and then what to change to point it at a real lab.

import { rmSync } from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { onInterrupt, stopOnSignal } from '../core/interrupt.ts';
import { renderChains, renderLabPlan } from './lab-run.ts';

const say = (text: string) => process.stdout.write(text);
const heading = (text: string) => say(`\n━━ ${text} ${'━'.repeat(Math.max(3, 72 - text.length))}\n\n`);

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run the whole chain against the built-in demo lab (simulators on this machine; nothing else is touched)',
    )
    .option('--keep', 'keep the demo lab folder afterwards (its lab file shows what a real one looks like)')
    .option(
      '--serve',
      'keep the demo lab running as a playground to try every command from another shell, until Ctrl-C',
    )
    .option('--dir <folder>', 'with --serve: where the lab file and demo.env go', 'igpu-split-demo')
    .action(async (options: { keep?: boolean; serve?: boolean; dir: string }, self: Command) => {
      if (options.serve) return serve(options);
      if (self.getOptionValueSource('dir') === 'cli')
        throw new UsageError('--dir goes with --serve', {
          fix: 'igpu-split demo --serve --dir FOLDER (the one-shot demo uses a temporary folder)',
        });
      const started = Date.now();
      const [
        { startDemoLab, proxmoxSchemaSource },
        { planLab },
        { applyLab },
        { verifyLab, worstOfChains },
        { labStatus, renderStatus },
        { gatherHostFacts },
        { hostVerdict },
        { progressReporter },
        { GPU_RESOURCE },
      ] = await Promise.all([
        import('../demo/lab.ts'),
        import('../engine/plan.ts'),
        import('../engine/apply-lab.ts'),
        import('../engine/verify.ts'),
        import('../engine/status.ts'),
        import('../host/gather.ts'),
        import('../host/verdict.ts'),
        import('./progress.ts'),
        import('../knowledge/pins.ts'),
      ]);
      // Cut short (Ctrl-C, output that cannot be written), the demo still takes its folder away,
      // from the moment it exists.
      let folder: string | undefined;
      const removeFolder = () => {
        if (folder && !options.keep) rmSync(folder, { recursive: true, force: true });
        return undefined;
      };
      const forget = onInterrupt(removeFolder);
      const demo = await startDemoLab((dir) => {
        folder = dir;
      }).catch((error: unknown) => {
        // expected: anything — the folder made so far is removed, and the error rethrown.
        forget();
        removeFolder();
        throw error;
      });
      try {
        say(
          `igpu-split demo — a lab of 3 Proxmox hosts, 2 node VMs (Ubuntu + K3s, Talos) and a 3-node cluster,\nall simulated on this machine. Lab file: ${demo.labFile}\n${
            proxmoxSchemaSource() === 'official'
              ? 'The Proxmox simulator checks every request against the official API schema (../shared/data).\n'
              : 'The Proxmox simulator checks requests against igpu-split’s compact API description (the official schema, ../shared/data/pve-apidata.js, is not beside this checkout).\n'
          }`,
        );
        heading('1. doctor: what each host can do');
        for (const host of demo.lab.hosts) {
          const access = await demo.connections.host(host.node);
          const verdict = hostVerdict(await gatherHostFacts(access));
          const predicted = Object.entries(verdict.vgpu.predicted).map(
            ([type, n]) => `${n} × ${type.replace(/^i915-GVTg_/, '')}`,
          );
          say(
            `  ${host.node}  ${verdict.cpu?.modelName ?? 'unknown CPU'}, ${verdict.gpu?.platformName ?? 'no iGPU'} ${verdict.gpu ? `(${verdict.gpu.vendorId}:${verdict.gpu.deviceId}, ${verdict.gpu.apertureMiB} MB aperture)` : ''}\n`,
          );
          say(
            `         mode ${verdict.mode}: ${verdict.modeReason}${predicted.length ? `; vGPUs: ${predicted.join(' or ')}` : ''}\n`,
          );
        }
        heading('2. plan: what apply will change');
        const plan = await planLab(demo.lab, demo.connections);
        say(await renderLabPlan(plan));
        heading('3. apply: host by host (drain → host → reboot → VM → guest → uncordon), then the cluster');
        // The same engine call as igpu-split apply --yes (the plan was shown above).
        const reporter = await progressReporter({ quiet: false });
        await applyLab(demo.lab, demo.connections, {
          labFile: demo.labFile,
          // Nothing but the demo reaches its simulators: the plan shown above is the one applied.
          plan,
          pollMs: 20,
          rebootTimeoutMs: 20_000,
          reporter,
        }).finally(() => reporter.finish());
        heading('4. verify: every link from host to pod');
        const chains = await verifyLab(demo.lab, demo.connections, { pollMs: 20, timeoutMs: 20_000 });
        say(renderChains(chains));
        heading('5. status (with a Jellyfin pod holding one of the GPUs)');
        await demo.connections.kube.create({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'jellyfin', namespace: 'default' },
          spec: {
            nodeSelector: { 'kubernetes.io/hostname': 'k3s-1' },
            containers: [
              {
                name: 'jellyfin',
                image: 'jellyfin/jellyfin:10.10.7',
                resources: { limits: { [GPU_RESOURCE]: '1' } },
              },
            ],
          },
        });
        say(renderStatus(await labStatus(demo.lab, demo.connections)));
        heading('what next');
        say(
          [
            `Done in ${((Date.now() - started) / 1000).toFixed(1)} s; the chain is ${worstOfChains(chains) === 'fail' ? 'BROKEN (see verify)' : 'complete'}.`,
            'To try every command yourself: bin/igpu-split demo --serve keeps this lab running (README, "Try it").',
            `To run it on your lab: take the demo's lab file (igpu-split demo --keep leaves it at ${demo.labFile}),`,
            'save it as ./igpu-split.yaml and change the proxmox',
            "url, fingerprint and token (its secret in a file or variable), each host's ssh:, each VM's",
            'guest: or talos:, and kubernetes.kubeconfig; then igpu-split plan, apply, verify.',
            'The README lists the Proxmox privileges and what each command changes.',
            '',
          ].join('\n'),
        );
        process.exitCode = worstOfChains(chains) === 'fail' ? 1 : 0;
      } finally {
        forget();
        if (options.keep) say(`kept ${demo.dir} (its simulators are stopped; the lab file is an example)\n`);
        await demo.close({ keepFiles: options.keep === true });
      }
    });
}

/**
 * The playground: the demo lab's servers and machines kept running (src/demo/serve.ts) until
 * SIGINT/SIGTERM; then everything it started stops and its folder goes (unless --keep).
 */
async function serve(options: { keep?: boolean; dir: string }): Promise<void> {
  const { startPlayground } = await import('../demo/serve.ts');
  let folder: string | undefined;
  const forget = onInterrupt(() => {
    if (folder && !options.keep) rmSync(folder, { recursive: true, force: true });
    return undefined;
  });
  const playground = await startPlayground(options.dir, (dir) => {
    folder = dir;
  });
  const stopped = new Promise<string>((resolve) => stopOnSignal(resolve));
  say(
    `igpu-split playground: the demo lab is serving on 127.0.0.1; in another shell run  ${playground.sourceLine}  then  igpu-split plan  (Ctrl-C here stops it)\n`,
  );
  const signal = await stopped;
  forget();
  await playground.close({ keepFiles: options.keep === true });
  say(
    `igpu-split playground stopped (${signal})${options.keep ? `; kept ${playground.dir}` : `; removed ${playground.dir}`}\n`,
  );
}
