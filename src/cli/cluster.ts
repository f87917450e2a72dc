// igpu-split cluster …: node labels, the namespace and the Intel GPU plugin, the
// allocatable check and smoke pods, drain/uncordon, rollback, and the GitOps render.

import type { Command } from 'commander';
import { gpuNodesOf } from '../config/derived.ts';
import { RefusedError, UsageError } from '../core/errors.ts';
import { counted } from '../core/text.ts';
import { confirm, NOTHING_DISTURBED } from './confirm.ts';
import {
  addConnectTimeout,
  addLabOption,
  addRequestTimeout,
  addVerifyTimeout,
  JSON_HELP,
  jsonNeedsYes,
  NODE_HELP,
  numberOption,
  type TimeoutOptions,
  timeoutsOf,
  YES_HELP,
} from './option-checks.ts';
import { jsonText, warn } from './output.ts';
import { renderChecks } from './render-doctor.ts';
import { renderLayerPlan } from './render-plan.ts';

interface ClusterOptions extends TimeoutOptions {
  lab: string;
  json?: boolean;
  node?: string[];
}

const addOptions = (command: Command) =>
  addConnectTimeout(addRequestTimeout(addLabOption(command).option('--json', JSON_HELP)));

async function open(options: ClusterOptions) {
  const [{ loadLab }, { openLabKube }] = await Promise.all([
    import('../config/load.ts'),
    import('../engine/connections.ts'),
  ]);
  const lab = await loadLab(options.lab);
  const gpuNodes = gpuNodesOf(lab).filter((node) => !options.node || options.node.includes(node.name));
  for (const name of options.node ?? []) {
    if (!gpuNodes.some((n) => n.name === name))
      throw new UsageError(`--node ${name}: no VM of the lab file has kubernetesNode ${name}`, {
        fix: 'check the lab file',
      });
  }
  if (gpuNodes.length === 0)
    throw new UsageError('no VM in the lab file names its kubernetesNode', {
      fix: 'add kubernetesNode to each node VM',
    });
  return {
    lab,
    settings: lab.kubernetes,
    gpuNodes,
    kube: openLabKube(lab, timeoutsOf(options)),
  };
}

async function plan(options: ClusterOptions) {
  const { gatherClusterFacts, planCluster } = await import('../cluster/plan.ts');
  const opened = await open(options);
  const result = planCluster(
    await gatherClusterFacts(opened.kube, opened.settings, opened.gpuNodes),
    opened.settings,
    opened.gpuNodes,
  );
  return { ...opened, plan: result };
}

export function registerCluster(program: Command): void {
  const cluster = program
    .command('cluster')
    .description(
      'the Kubernetes side: GPU node labels, the Intel GPU plugin, allocatable and smoke pods, drain',
    );

  addOptions(
    cluster.command('plan').description('show the objects and labels apply would write; changes nothing'),
  ).action(async (options: ClusterOptions) => {
    const { plan: result } = await plan(options);
    process.stdout.write(
      options.json
        ? jsonText('cluster plan', result)
        : renderLayerPlan('igpu-split cluster plan', result.checks, result.steps),
    );
    process.exitCode = result.refused ? 1 : 0;
  });

  addOptions(
    cluster
      .command('apply')
      .description('apply them with server-side apply as igpu-split (asks unless --yes)'),
  )
    .option('--yes', YES_HELP)
    .action(async (options: ClusterOptions & { yes?: boolean }) => {
      jsonNeedsYes(options);
      const { plan: result, kube, settings } = await plan(options);
      if (!options.json)
        process.stdout.write(renderLayerPlan('igpu-split cluster plan', result.checks, result.steps));
      // Said in one line on stderr as well, so a --json run says why it changed nothing.
      if (result.refused)
        throw new RefusedError(`the cluster plan cannot be applied: ${result.refused}`, {
          fix: 'see igpu-split cluster plan',
        });
      if (result.steps.length > 0 && !options.yes) {
        const { disturbanceSummary, stepDisturbances } = await import('../engine/disturbances.ts');
        await confirm(
          `apply ${counted(result.steps.length, 'change')} to ${kube.target}?`,
          'igpu-split cluster plan',
          disturbanceSummary(stepDisturbances(result.steps)),
        );
      }
      const { applyClusterPlan } = await import('../cluster/apply.ts');
      const done = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
        applyClusterPlan(
          kube,
          result,
          options.json ? undefined : (line) => process.stdout.write(`  ${line}\n`),
        ),
      );
      if (settings.plugin.mode === 'helm-values' && !options.json)
        process.stdout.write(
          `  helm-values mode: install Intel's chart with the values from igpu-split cluster render --out DIR\n`,
        );
      if (options.json) process.stdout.write(jsonText('cluster apply', { plan: result, done }));
    });

  const verify = addOptions(
    cluster
      .command('verify')
      .description('plugin ready, allocatable = vGPUs × sharedDevNum, and a smoke pod per GPU node'),
  )
    .option('--node <name...>', NODE_HELP)
    .option('--no-smoke', 'skip the smoke pods');
  addVerifyTimeout(verify).action(async (options: ClusterOptions & { smoke?: boolean; timeout: number }) => {
    const seconds = options.timeout;
    const { verifyCluster } = await import('../cluster/verify.ts');
    const { kube, settings, gpuNodes } = await open(options);
    const checks = await verifyCluster(kube, settings, gpuNodes, {
      smoke: options.smoke !== false,
      timeoutMs: seconds * 1000,
    });
    process.stdout.write(options.json ? jsonText('cluster verify', checks) : renderChecks(checks));
    process.exitCode = checks.some((c) => c.status === 'fail') ? 1 : 0;
  });

  addOptions(
    cluster
      .command('rollback')
      .description('delete the objects igpu-split made and release its node labels (asks unless --yes)'),
  )
    .option('--yes', YES_HELP)
    .action(async (options: ClusterOptions & { yes?: boolean }) => {
      jsonNeedsYes(options);
      const { kube, settings, gpuNodes } = await open(options);
      if (!options.yes)
        await confirm(
          `remove igpu-split's objects and labels from ${kube.target}?`,
          'igpu-split cluster verify',
          `${NOTHING_DISTURBED} (the GPU plugin's pods go, and with them the GPUs pods can ask for)`,
        );
      const { rollbackCluster } = await import('../cluster/apply.ts');
      const done = await (await import('../engine/lab-run.ts')).withLabLock(options.lab, warn, () =>
        rollbackCluster(kube, settings, gpuNodes),
      );
      process.stdout.write(
        options.json
          ? jsonText('cluster rollback', { undone: done })
          : `${done.join('\n') || 'nothing of ours in the cluster'}\n`,
      );
    });

  const render = cluster
    .command('render')
    .description('write the same objects as a kustomize directory (and the Helm values in helm-values mode)')
    .option(
      '--out <dir>',
      'the folder to write into: point the GitOps sync at it (guest render writes elsewhere, gitops/guests)',
      'gitops/cluster',
    );
  addLabOption(render).action(async (options: { out: string; lab: string }) => {
    const [{ loadLab }, { renderCluster }] = await Promise.all([
      import('../config/load.ts'),
      import('../cluster/render.ts'),
    ]);
    const lab = await loadLab(options.lab);
    const files = await renderCluster(lab.kubernetes, gpuNodesOf(lab), options.out);
    process.stdout.write(`${files.map((f) => `wrote ${f}`).join('\n')}\n`);
  });

  for (const [verb, help] of [
    ['drain', 'cordon a node and evict its pods, honouring PodDisruptionBudgets'],
    ['uncordon', 'let pods be scheduled on a node again'],
  ] as const) {
    const command = addOptions(cluster.command(verb).description(`${help} (asks unless --yes)`))
      .requiredOption('--node <name...>', NODE_HELP)
      .option('--yes', YES_HELP);
    if (verb === 'drain')
      numberOption(
        command,
        '--drain-timeout <seconds>',
        'how long a drain may take',
        { min: 1, max: 86_400, seconds: true },
        300,
      );
    command.action(async (options: ClusterOptions & { drainTimeout: number; yes?: boolean }) => {
      jsonNeedsYes(options);
      const { drainNode, uncordonNode } = await import('../cluster/apply.ts');
      const { kube } = await open(options);
      const nodes = options.node ?? [];
      if (!options.yes)
        await confirm(
          verb === 'drain'
            ? `drain ${nodes.join(', ')}? they are cordoned and their pods evicted`
            : `uncordon ${nodes.join(', ')}? pods may be scheduled on them again`,
          'igpu-split cluster verify',
          verb === 'drain'
            ? `${counted(nodes.length, 'node drain')} (${nodes.join(', ')})`
            : NOTHING_DISTURBED,
        );
      const done: string[] = [];
      for (const node of options.node ?? []) {
        if (verb === 'drain') await drainNode(kube, node, { timeoutMs: options.drainTimeout * 1000 });
        else await uncordonNode(kube, node);
        done.push(node);
        if (!options.json) process.stdout.write(`${verb === 'drain' ? 'drained' : 'uncordoned'} ${node}\n`);
      }
      // One envelope for the whole command: the nodes done, in order.
      if (options.json) process.stdout.write(jsonText(`cluster ${verb}`, { nodes: done }));
    });
  }
}
