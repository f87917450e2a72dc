// igpu-split cluster render: the same objects as a kustomize directory for GitOps users
// (plus the Helm values in helm-values mode, the node labels as a kubectl script, since
// nodes are not kustomize resources, and in DRA mode the claim examples apps copy).

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { KubernetesSettings } from '../config/lab.ts';
import { claimTemplateExample, draHelmValues, sharedClaimExample } from './dra-objects.ts';
import { desiredObjects, helmValues } from './objects.ts';
import type { GpuNode } from './plan.ts';

export async function renderCluster(
  settings: KubernetesSettings,
  gpuNodes: readonly GpuNode[],
  out: string,
): Promise<string[]> {
  await mkdir(out, { recursive: true });
  const written: string[] = [];
  const write = async (name: string, text: string) => {
    await writeFile(join(out, name), text);
    written.push(join(out, name));
  };
  const objects = desiredObjects(settings);
  const files = objects.map((o) => `${o.kind.toLowerCase()}-${o.metadata.name}.yaml`);
  for (const [i, object] of objects.entries()) await write(files[i] as string, stringify(object));
  await write(
    'kustomization.yaml',
    `# igpu-split: the GPU plugin objects; apply with kubectl apply -k .\n${stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      resources: files,
    })}`,
  );
  if (settings.plugin.mode === 'helm-values')
    await write('values.yaml', settings.allocator === 'dra' ? draHelmValues(settings) : helmValues(settings));
  if (settings.allocator === 'dra') {
    // What apps copy, kept out of kustomization.yaml: igpu-split applies none of it.
    await mkdir(join(out, 'examples'), { recursive: true });
    await write(
      'examples/claim-template.yaml',
      `# igpu-split: copy into your app's namespace; a pod asks for one Intel GPU with
#   spec.resourceClaims: [{name: gpu, resourceClaimTemplateName: intel-gpu}]
#   containers[].resources.claims: [{name: gpu}]
${stringify(claimTemplateExample())}`,
    );
    await write(
      'examples/shared-claim.yaml',
      `# igpu-split: several pods on one GPU — each names the same ResourceClaim (DRA has no sharing count)
${sharedClaimExample()
  .map((o) => stringify(o))
  .join('---\n')}`,
    );
  }
  const labels = Object.entries(settings.plugin.nodeSelector)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  await write(
    'label-nodes.sh',
    `#!/bin/sh\n# igpu-split: the GPU node labels the plugin's node selector needs.\n${gpuNodes.map((n) => `kubectl label node ${n.name} --overwrite ${labels}`).join('\n')}\n`,
  );
  return written;
}
