// The object store of the project's Kubernetes API server: the resource kinds the
// cluster layer uses, objects with uid/resourceVersion, server-side apply with field
// ownership per manager (so an apply that leaves a field out removes it, as the real
// server does for fields only that manager owned), merge patches, and watchers.

import { randomUUID } from 'node:crypto';

export interface ResourceKind {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  verbs: string[];
  /** Served only while this CRD exists (custom resources). */
  crd?: string;
  shortNames?: string[];
}

const ALL = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'];

export const KINDS: ResourceKind[] = [
  {
    group: '',
    version: 'v1',
    kind: 'Namespace',
    plural: 'namespaces',
    shortNames: ['ns'],
    namespaced: false,
    verbs: ALL,
  },
  {
    group: '',
    version: 'v1',
    kind: 'Node',
    plural: 'nodes',
    shortNames: ['no'],
    namespaced: false,
    verbs: ALL,
  },
  { group: '', version: 'v1', kind: 'Pod', plural: 'pods', shortNames: ['po'], namespaced: true, verbs: ALL },
  {
    group: 'apps',
    version: 'v1',
    kind: 'DaemonSet',
    plural: 'daemonsets',
    shortNames: ['ds'],
    namespaced: true,
    verbs: ALL,
  },
  {
    group: 'policy',
    version: 'v1',
    kind: 'PodDisruptionBudget',
    plural: 'poddisruptionbudgets',
    shortNames: ['pdb'],
    namespaced: true,
    verbs: ALL,
  },
  {
    group: 'apiextensions.k8s.io',
    version: 'v1',
    kind: 'CustomResourceDefinition',
    plural: 'customresourcedefinitions',
    namespaced: false,
    verbs: ALL,
  },
  {
    group: 'deviceplugin.intel.com',
    version: 'v1',
    kind: 'GpuDevicePlugin',
    plural: 'gpudeviceplugins',
    namespaced: false,
    verbs: ALL,
    crd: 'gpudeviceplugins.deviceplugin.intel.com',
  },
  {
    group: 'nfd.k8s-sigs.io',
    version: 'v1alpha1',
    kind: 'NodeFeatureRule',
    plural: 'nodefeaturerules',
    namespaced: false,
    verbs: ALL,
    crd: 'nodefeaturerules.nfd.k8s-sigs.io',
  },
  {
    group: 'cert-manager.io',
    version: 'v1',
    kind: 'Certificate',
    plural: 'certificates',
    namespaced: true,
    verbs: ALL,
    crd: 'certificates.cert-manager.io',
  },
];

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    ownerReferences?: { kind: string; name: string; uid?: string; apiVersion?: string }[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

export type WatchEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; object: KubeObject };

export class KubeError extends Error {
  readonly code: number;
  readonly reason: string;
  readonly details?: unknown;
  constructor(code: number, reason: string, message: string, details?: unknown) {
    super(message);
    this.code = code;
    this.reason = reason;
    this.details = details;
  }
}

export const apiVersionOf = (kind: ResourceKind) =>
  kind.group ? `${kind.group}/${kind.version}` : kind.version;
const keyOf = (kind: ResourceKind, namespace: string | undefined, name: string) =>
  `${apiVersionOf(kind)}/${kind.kind}/${namespace ?? ''}/${name}`;

export class KubeStore {
  private readonly objects = new Map<string, KubeObject>();
  /** object key → manager → the leaf paths that manager applied last. */
  private readonly owned = new Map<string, Map<string, string[]>>();
  private readonly watchers = new Set<{
    kind: ResourceKind;
    namespace?: string;
    send: (e: WatchEvent) => void;
  }>();
  private version = 1000;
  /** Container logs by namespace/name (what GET …/pods/{name}/log answers). */
  readonly logs = new Map<string, string>();
  /** Runs after every change (the simulated controllers). */
  onChange: () => void = () => {};

  served(kind: ResourceKind): boolean {
    return !kind.crd || this.list(KINDS[5] as ResourceKind).some((crd) => crd.metadata.name === kind.crd);
  }

  get(kind: ResourceKind, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(keyOf(kind, namespace, name));
  }

  list(kind: ResourceKind, namespace?: string): KubeObject[] {
    const prefix = `${apiVersionOf(kind)}/${kind.kind}/`;
    return [...this.objects.entries()]
      .filter(
        ([key, obj]) =>
          key.startsWith(prefix) && (namespace === undefined || obj.metadata.namespace === namespace),
      )
      .map(([, obj]) => obj)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  }

  /** Create; a second create of the same name is a conflict, as in Kubernetes. */
  create(kind: ResourceKind, object: KubeObject): KubeObject {
    const key = keyOf(kind, object.metadata.namespace, object.metadata.name);
    if (this.objects.has(key))
      throw new KubeError(409, 'AlreadyExists', `${kind.plural} "${object.metadata.name}" already exists`);
    return this.put(kind, key, { ...object, apiVersion: apiVersionOf(kind), kind: kind.kind }, 'ADDED');
  }

  /** Server-side apply: create or merge; fields this manager applied before and not now are removed. */
  apply(
    kind: ResourceKind,
    namespace: string | undefined,
    name: string,
    patch: KubeObject,
    manager: string,
  ): KubeObject {
    const key = keyOf(kind, namespace, name);
    const existing = this.objects.get(key);
    const paths = leafPaths(patch).filter((p) => !/^(apiVersion|kind|metadata\.(name|namespace))$/.test(p));
    const previous = this.owned.get(key)?.get(manager) ?? [];
    const next = structuredClone(
      existing ?? { apiVersion: apiVersionOf(kind), kind: kind.kind, metadata: { name, namespace } },
    ) as KubeObject;
    for (const path of previous.filter((p) => !paths.includes(p))) removePath(next, path);
    deepMerge(next, patch);
    if (!this.owned.has(key)) this.owned.set(key, new Map());
    this.owned.get(key)?.set(manager, paths);
    next.metadata.managedFields = [...(this.owned.get(key)?.keys() ?? [])].map((m) => ({
      manager: m,
      operation: 'Apply',
    }));
    return this.put(kind, key, next, existing ? 'MODIFIED' : 'ADDED');
  }

  /** JSON merge patch (RFC 7386): null removes. */
  mergePatch(
    kind: ResourceKind,
    namespace: string | undefined,
    name: string,
    patch: Record<string, unknown>,
  ): KubeObject {
    const key = keyOf(kind, namespace, name);
    const existing = this.objects.get(key);
    if (!existing) throw notFound(kind, name);
    const next = structuredClone(existing);
    deepMerge(next, patch, true);
    return this.put(kind, key, next, 'MODIFIED');
  }

  /** Controllers write status and owned objects through here (no managers). */
  update(kind: ResourceKind, object: KubeObject): KubeObject {
    const key = keyOf(kind, object.metadata.namespace, object.metadata.name);
    return this.put(kind, key, object, this.objects.has(key) ? 'MODIFIED' : 'ADDED');
  }

  delete(kind: ResourceKind, namespace: string | undefined, name: string): KubeObject {
    const key = keyOf(kind, namespace, name);
    const existing = this.objects.get(key);
    if (!existing) throw notFound(kind, name);
    this.objects.delete(key);
    this.owned.delete(key);
    this.notify(kind, { type: 'DELETED', object: existing });
    this.onChange();
    return existing;
  }

  watch(kind: ResourceKind, namespace: string | undefined, send: (e: WatchEvent) => void): () => void {
    const watcher = { kind, namespace, send };
    this.watchers.add(watcher);
    return () => this.watchers.delete(watcher);
  }

  get resourceVersion(): string {
    return String(this.version);
  }

  private put(kind: ResourceKind, key: string, object: KubeObject, type: WatchEvent['type']): KubeObject {
    const stored = structuredClone(object);
    stored.metadata.uid ??= randomUUID();
    stored.metadata.creationTimestamp ??= new Date().toISOString();
    stored.metadata.resourceVersion = String(++this.version);
    this.objects.set(key, stored);
    this.notify(kind, { type, object: stored });
    this.onChange();
    return stored;
  }

  private notify(kind: ResourceKind, event: WatchEvent): void {
    for (const w of this.watchers) {
      if (w.kind === kind && (w.namespace === undefined || w.namespace === event.object.metadata.namespace))
        w.send(event);
    }
  }
}

export function notFound(kind: ResourceKind, name: string): KubeError {
  return new KubeError(
    404,
    'NotFound',
    `${kind.plural}${kind.group ? `.${kind.group}` : ''} "${name}" not found`,
  );
}

/** Dotted paths of the leaves (scalars and arrays) of an object; map keys may hold dots, so they are escaped. */
function leafPaths(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return prefix ? [prefix] : [];
  return Object.entries(value as Record<string, unknown>).flatMap(([key, child]) =>
    leafPaths(child, prefix ? `${prefix}.${key.replace(/\./g, '\\.')}` : key.replace(/\./g, '\\.')),
  );
}

function splitPath(path: string): string[] {
  return path.split(/(?<!\\)\./).map((part) => part.replace(/\\\./g, '.'));
}

function removePath(object: Record<string, unknown>, path: string): void {
  const parts = splitPath(path);
  let node: Record<string, unknown> | undefined = object;
  for (const part of parts.slice(0, -1)) node = node?.[part] as Record<string, unknown> | undefined;
  if (node) delete node[parts.at(-1) as string];
}

function deepMerge(
  target: Record<string, unknown>,
  patch: Record<string, unknown>,
  nullDeletes = false,
): void {
  for (const [key, value] of Object.entries(patch)) {
    if (value === null && nullDeletes) {
      delete target[key];
    } else if (value && typeof value === 'object' && !Array.isArray(value)) {
      if (!target[key] || typeof target[key] !== 'object' || Array.isArray(target[key])) target[key] = {};
      deepMerge(target[key] as Record<string, unknown>, value as Record<string, unknown>, nullDeletes);
    } else {
      target[key] = structuredClone(value);
    }
  }
}
