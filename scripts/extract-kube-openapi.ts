// `node scripts/extract-kube-openapi.ts <git-dir> <commit>` rewrites
// snapshots/kube-openapi-v1.34.json: the Kubernetes v1.34 OpenAPI v3 documents of the
// group-versions whose kinds our API server stand-in stores, cut down to those kinds
// (their paths, and every schema those paths and kinds reach).
//
// The upstream text is kubernetes/kubernetes api/openapi-spec/v3/*.json of the
// release-1.34 branch as kubernetes-sigs/kubectl-validate keeps it byte for byte under
// pkg/openapiclient/builtins/1.34/ (its cmd/download-builtin-schemas saves the bytes
// GitHub serves for ref=release-1.34). kubernetes/kubernetes itself is too big to bring
// here; <git-dir> is a clone of kubectl-validate and <commit> the commit to read.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const REPOSITORY = 'kubernetes-sigs/kubectl-validate';
const PREFIX = 'pkg/openapiclient/builtins/1.34/';

/** The group-versions we serve and the kinds of each we store (plus Eviction, the body of pods/eviction under /api/v1). */
const WANTED: Record<string, { group: string; version: string; kinds: string[] }> = {
  'api/v1': {
    group: '',
    version: 'v1',
    kinds: ['Namespace', 'Node', 'Pod', 'ServiceAccount', 'ConfigMap', 'Eviction'],
  },
  'apis/apps/v1': { group: 'apps', version: 'v1', kinds: ['DaemonSet'] },
  // The rollout lock (a Lease) beside the rollout's status ConfigMap (src/cluster/progress.ts).
  'apis/coordination.k8s.io/v1': { group: 'coordination.k8s.io', version: 'v1', kinds: ['Lease'] },
  'apis/policy/v1': { group: 'policy', version: 'v1', kinds: ['PodDisruptionBudget'] },
  'apis/apiextensions.k8s.io/v1': {
    group: 'apiextensions.k8s.io',
    version: 'v1',
    kinds: ['CustomResourceDefinition'],
  },
  // What Intel's GPU DRA driver installs (its RBAC and ResourceSlice admission policy) and
  // Dynamic Resource Allocation itself (resource.k8s.io/v1, GA in 1.34).
  'apis/rbac.authorization.k8s.io/v1': {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kinds: ['ClusterRole', 'ClusterRoleBinding'],
  },
  'apis/admissionregistration.k8s.io/v1': {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kinds: ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'],
  },
  'apis/resource.k8s.io/v1': {
    group: 'resource.k8s.io',
    version: 'v1',
    kinds: ['DeviceClass', 'ResourceSlice', 'ResourceClaim', 'ResourceClaimTemplate'],
  },
};

type Json = Record<string, unknown>;
type Gvk = { group?: string; version?: string; kind?: string };

function gvkOf(node: unknown): Gvk[] {
  const value = (node as Json | undefined)?.['x-kubernetes-group-version-kind'];
  if (!value) return [];
  return (Array.isArray(value) ? value : [value]) as Gvk[];
}

/** Every `#/components/schemas/X` that `value` points at, directly. */
function refsIn(value: unknown, into: Set<string>): void {
  if (Array.isArray(value)) for (const item of value) refsIn(item, into);
  else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value as Json)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith('#/components/schemas/'))
        into.add(child.slice('#/components/schemas/'.length));
      else refsIn(child, into);
    }
  }
}

function cut(document: Json, group: string, version: string, kinds: string[]): Json {
  const wanted = (gvk: Gvk) =>
    kinds.includes(gvk.kind ?? '') &&
    ((gvk.group ?? '') === group || (gvk.kind === 'Eviction' && gvk.group === 'policy'));
  const paths: Json = {};
  for (const [path, item] of Object.entries(document.paths as Json)) {
    const operations = Object.values(item as Json).filter(
      (op) => op && typeof op === 'object' && !Array.isArray(op),
    );
    if (operations.some((op) => gvkOf(op).some(wanted))) paths[path] = item;
  }
  const schemas = (document.components as { schemas: Record<string, Json> }).schemas;
  const reach = new Set<string>();
  refsIn(paths, reach);
  for (const [name, schema] of Object.entries(schemas))
    if (gvkOf(schema).some((g) => wanted(g) && (g.version ?? '') === version)) reach.add(name);
  const pending = [...reach];
  while (pending.length > 0) {
    const name = pending.pop() as string;
    const found = new Set<string>();
    refsIn(schemas[name], found);
    for (const next of found) {
      if (!reach.has(next)) {
        reach.add(next);
        pending.push(next);
      }
    }
  }
  const missing = [...reach].filter((name) => !(name in schemas));
  if (missing.length > 0) throw new Error(`unresolved schema references: ${missing.join(', ')}`);
  return {
    openapi: document.openapi,
    info: document.info,
    paths,
    components: {
      ...(document.components as Json),
      schemas: Object.fromEntries([...reach].sort().map((name) => [name, schemas[name]])),
    },
  };
}

function main(): void {
  const [gitDir, commit] = process.argv.slice(2);
  if (!gitDir || !commit || !/^[0-9a-f]{40}$/.test(commit)) {
    console.error('usage: node scripts/extract-kube-openapi.ts <kubectl-validate git dir> <40-hex commit>');
    process.exit(2);
  }
  const sources: Json[] = [];
  const v3: Json = {};
  for (const [gvPath, { group, version, kinds }] of Object.entries(WANTED)) {
    const path = `${PREFIX}${gvPath}.json`;
    const bytes = execFileSync('git', ['-C', gitDir, 'show', `${commit}:${path}`], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const blob = createHash('sha1')
      .update(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes]))
      .digest('hex');
    const expected = execFileSync('git', ['-C', gitDir, 'rev-parse', `${commit}:${path}`])
      .toString()
      .trim();
    if (blob !== expected) throw new Error(`${path}: blob ${blob} is not git's ${expected}`);
    sources.push({ repository: REPOSITORY, path, commit, blob });
    v3[gvPath] = cut(JSON.parse(bytes.toString('utf8')) as Json, group, version, kinds);
  }
  const snapshot = {
    sources,
    producedBy: 'scripts/extract-kube-openapi.ts',
    upstream:
      'kubernetes/kubernetes api/openapi-spec/v3/<group path>_openapi.json, branch release-1.34, as copied by kubectl-validate cmd/download-builtin-schemas',
    kinds: Object.values(WANTED).flatMap(({ group, version, kinds }) =>
      kinds.map((kind) => ({ group: kind === 'Eviction' ? 'policy' : group, version, kind })),
    ),
    v3,
  };
  writeFileSync('snapshots/kube-openapi-v1.34.json', `${JSON.stringify(snapshot, null, 1)}\n`);
  console.log(`wrote snapshots/kube-openapi-v1.34.json (${Object.keys(v3).length} group-versions)`);
}

main();
