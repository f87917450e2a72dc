// The object store of the project's Kubernetes API server: the resource kinds the
// cluster layer uses, objects with uid/resourceVersion, server-side apply with field
// ownership per manager (so an apply that leaves a field out removes it, as the real
// server does for fields only that manager owned), merge patches, watchers, managedFields
// entries in the real FieldsV1 form, and dry runs that answer without storing anything.

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
  /** Served from this Kubernetes minor on (resource.k8s.io/v1 is GA in 1.34); absent: always. */
  since?: number;
  /** Has a status subresource: writes to the object keep its status, `…/status` writes change only that. */
  statusSubresource?: boolean;
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
  // kubernetes pkg/registry/core/serviceaccount/storage/storage.go ShortNames (sa).
  {
    group: '',
    version: 'v1',
    kind: 'ServiceAccount',
    plural: 'serviceaccounts',
    shortNames: ['sa'],
    namespaced: true,
    verbs: ALL,
  },
  // The rollout's status object and lock (src/cluster/progress.ts): plurals and scopes from
  // the paths of the v1.34 OpenAPI documents in snapshots/kube-openapi-v1.34.json
  // (/api/v1/namespaces/{namespace}/configmaps, /apis/coordination.k8s.io/v1/namespaces/{namespace}/leases).
  { group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', namespaced: true, verbs: ALL },
  {
    group: 'coordination.k8s.io',
    version: 'v1',
    kind: 'Lease',
    plural: 'leases',
    namespaced: true,
    verbs: ALL,
  },
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
    // apiextensions-apiserver pkg/registry/customresourcedefinition/etcd.go ShortNames (v0.34.1).
    shortNames: ['crd', 'crds'],
    namespaced: false,
    verbs: ALL,
  },
  // What Intel's GPU DRA driver installs beside its DaemonSet, and resource.k8s.io/v1
  // (plurals and scopes from the paths of the v1.34 OpenAPI documents in
  // snapshots/kube-openapi-v1.34.json; none of these has a short name: their storage.go in
  // kubernetes pkg/registry/{rbac,admissionregistration,resource} implements no ShortNames).
  {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'ClusterRole',
    plural: 'clusterroles',
    namespaced: false,
    verbs: ALL,
  },
  {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    kind: 'ClusterRoleBinding',
    plural: 'clusterrolebindings',
    namespaced: false,
    verbs: ALL,
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kind: 'ValidatingAdmissionPolicy',
    plural: 'validatingadmissionpolicies',
    namespaced: false,
    verbs: ALL,
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    plural: 'validatingadmissionpolicybindings',
    namespaced: false,
    verbs: ALL,
  },
  {
    group: 'resource.k8s.io',
    version: 'v1',
    kind: 'DeviceClass',
    plural: 'deviceclasses',
    namespaced: false,
    verbs: ALL,
    since: 34,
  },
  {
    group: 'resource.k8s.io',
    version: 'v1',
    kind: 'ResourceSlice',
    plural: 'resourceslices',
    namespaced: false,
    verbs: ALL,
    since: 34,
  },
  {
    group: 'resource.k8s.io',
    version: 'v1',
    kind: 'ResourceClaim',
    plural: 'resourceclaims',
    namespaced: true,
    verbs: ALL,
    since: 34,
    statusSubresource: true,
  },
  {
    group: 'resource.k8s.io',
    version: 'v1',
    kind: 'ResourceClaimTemplate',
    plural: 'resourceclaimtemplates',
    namespaced: true,
    verbs: ALL,
    since: 34,
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
    ownerReferences?: {
      kind: string;
      name: string;
      uid?: string;
      apiVersion?: string;
      controller?: boolean;
    }[];
    [key: string]: unknown;
  };
  [key: string]: unknown;
};

/** What an API request adds to a write: its field manager and whether it is a dry run. */
export interface WriteOptions {
  /** Records a managedFields entry (operation Update) for the fields the request set. */
  manager?: string;
  /** dryRun=All: the answer is what would be stored; nothing is. */
  dryRun?: boolean;
}

/**
 * The refusal of an update whose metadata.resourceVersion is not the stored one (optimistic
 * concurrency): apimachinery pkg/api/errors/errors.go NewConflict's words around apiserver
 * pkg/registry/generic/registry/store.go OptimisticLockErrorMsg (both v0.34.1).
 */
export function conflict(kind: ResourceKind, name: string): KubeError {
  const resource = kind.group ? `${kind.plural}.${kind.group}` : kind.plural;
  return new KubeError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${resource} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
  );
}

/** metav1.ManagedFieldsEntry as the real server writes it. */
export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time: string;
  fieldsType: 'FieldsV1';
  fieldsV1: FieldSet;
}

/** A FieldsV1 set: `f:<field>` for struct and map fields, `k:{"name":…}` for keyed list items, `.` for the item itself. */
export type FieldSet = { [key: string]: FieldSet };

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
  /** object key → its managedFields entries, one per manager and operation. */
  private readonly managed = new Map<string, ManagedFieldsEntry[]>();
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
  /**
   * Admission of every write (the API's and the controllers'), as a registry strategy's
   * PrepareForCreate/PrepareForUpdate and Validate do: it may change `next` (drop fields a
   * feature gate disables) or throw a KubeError (422 Invalid). `existing` is undefined on create.
   */
  admit: (kind: ResourceKind, next: KubeObject, existing: KubeObject | undefined) => void = () => {};

  /** The Kubernetes minor this server is (1.<minor>): kinds with a later `since` are not served. */
  minor = 34;

  served(kind: ResourceKind): boolean {
    if (kind.since !== undefined && this.minor < kind.since) return false;
    const crds = KINDS.find((k) => k.kind === 'CustomResourceDefinition') as ResourceKind;
    return !kind.crd || this.list(crds).some((crd) => crd.metadata.name === kind.crd);
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
  create(kind: ResourceKind, object: KubeObject, options: WriteOptions = {}): KubeObject {
    const key = keyOf(kind, object.metadata.namespace, object.metadata.name);
    if (this.objects.has(key))
      throw new KubeError(409, 'AlreadyExists', `${kind.plural} "${object.metadata.name}" already exists`);
    const managed = this.recordUpdate(kind, key, object, options);
    return this.put(kind, key, { ...object, apiVersion: apiVersionOf(kind), kind: kind.kind }, 'ADDED', {
      ...options,
      managed,
    });
  }

  /** Server-side apply: create or merge; fields this manager applied before and not now are removed. */
  apply(
    kind: ResourceKind,
    namespace: string | undefined,
    name: string,
    patch: KubeObject,
    manager: string,
    options: Pick<WriteOptions, 'dryRun'> = {},
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
    const managed = this.entries(key, kind, manager, 'Apply', fieldSet(patch), false);
    if (!options.dryRun) {
      if (!this.owned.has(key)) this.owned.set(key, new Map());
      this.owned.get(key)?.set(manager, paths);
    }
    return this.put(kind, key, next, existing ? 'MODIFIED' : 'ADDED', { ...options, managed });
  }

  /** JSON merge patch (RFC 7386): null removes. */
  mergePatch(
    kind: ResourceKind,
    namespace: string | undefined,
    name: string,
    patch: Record<string, unknown>,
    options: WriteOptions = {},
  ): KubeObject {
    const key = keyOf(kind, namespace, name);
    const existing = this.objects.get(key);
    if (!existing) throw notFound(kind, name);
    const next = structuredClone(existing);
    deepMerge(next, patch, true);
    const managed = this.recordUpdate(kind, key, patch, options);
    return this.put(kind, key, next, 'MODIFIED', { ...options, managed });
  }

  /** Create or replace. Controllers write status and owned objects through here without a manager. */
  update(
    kind: ResourceKind,
    object: KubeObject,
    options: WriteOptions & { precondition?: boolean } = {},
  ): KubeObject {
    const key = keyOf(kind, object.metadata.namespace, object.metadata.name);
    // An API update naming a resourceVersion applies only to that version (409 otherwise).
    const expected = object.metadata.resourceVersion;
    const stored = this.objects.get(key)?.metadata.resourceVersion;
    if (options.precondition && expected && expected !== stored) throw conflict(kind, object.metadata.name);
    const managed = this.recordUpdate(kind, key, object, options);
    return this.put(kind, key, object, this.objects.has(key) ? 'MODIFIED' : 'ADDED', { ...options, managed });
  }

  delete(
    kind: ResourceKind,
    namespace: string | undefined,
    name: string,
    options: Pick<WriteOptions, 'dryRun'> = {},
  ): KubeObject {
    const key = keyOf(kind, namespace, name);
    const existing = this.objects.get(key);
    if (!existing) throw notFound(kind, name);
    if (options.dryRun) return structuredClone(existing);
    this.objects.delete(key);
    this.owned.delete(key);
    this.managed.delete(key);
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

  /** The managedFields entries after `manager` (operation Update) set `fields`; undefined without a manager. */
  private recordUpdate(
    kind: ResourceKind,
    key: string,
    fields: unknown,
    options: WriteOptions,
  ): ManagedFieldsEntry[] | undefined {
    if (!options.manager) return undefined;
    return this.entries(key, kind, options.manager, 'Update', fieldSet(fields), true);
  }

  /**
   * The object's entries with this manager's entry for this operation set to `fields`
   * (merged into what it had for an Update, replacing it for an Apply). The time moves only
   * when the set changes, so a repeated identical request leaves the entries as they were.
   */
  private entries(
    key: string,
    kind: ResourceKind,
    manager: string,
    operation: ManagedFieldsEntry['operation'],
    fields: FieldSet,
    merge: boolean,
  ): ManagedFieldsEntry[] {
    const current = this.managed.get(key) ?? [];
    const mine = current.find((e) => e.manager === manager && e.operation === operation);
    const fieldsV1 = merge && mine ? mergeFieldSets(mine.fieldsV1, fields) : fields;
    if (mine && JSON.stringify(mine.fieldsV1) === JSON.stringify(fieldsV1)) return current;
    const entry: ManagedFieldsEntry = {
      manager,
      operation,
      apiVersion: apiVersionOf(kind),
      time: now(),
      fieldsType: 'FieldsV1',
      fieldsV1,
    };
    return mine ? current.map((e) => (e === mine ? entry : e)) : [...current, entry];
  }

  private put(
    kind: ResourceKind,
    key: string,
    object: KubeObject,
    type: WatchEvent['type'],
    options: Pick<WriteOptions, 'dryRun'> & { managed?: ManagedFieldsEntry[] } = {},
  ): KubeObject {
    const stored = structuredClone(object);
    const existing = this.objects.get(key);
    this.admit(kind, stored, existing);
    const managed = options.managed ?? this.managed.get(key);
    if (managed?.length) stored.metadata.managedFields = managed;
    else delete stored.metadata.managedFields;
    stored.metadata.uid ??= existing?.metadata.uid ?? randomUUID();
    stored.metadata.creationTimestamp ??= existing?.metadata.creationTimestamp ?? now();
    // A write that changes nothing keeps its resourceVersion and tells no watcher (as etcd-backed storage does).
    if (existing && sameObject(existing, stored)) return structuredClone(existing);
    if (options.dryRun) {
      if (existing) stored.metadata.resourceVersion = existing.metadata.resourceVersion;
      else delete stored.metadata.resourceVersion;
      return stored;
    }
    stored.metadata.resourceVersion = String(++this.version);
    if (managed) this.managed.set(key, managed);
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

/** metav1.Time: RFC 3339 in whole seconds. */
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

function sameObject(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return JSON.stringify(strip(a)) === JSON.stringify(strip(b));
}

const SERVER_SET = new Set([
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'managedFields',
  'name',
  'namespace',
  'generation',
]);

/** The FieldsV1 set of the fields a request body sets. */
export function fieldSet(value: unknown, top = true): FieldSet {
  const set: FieldSet = {};
  if (!value || typeof value !== 'object' || Array.isArray(value)) return set;
  for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
    if (top && (key === 'apiVersion' || key === 'kind')) continue;
    if (top && key === 'metadata') {
      const meta = Object.fromEntries(
        Object.entries((child ?? {}) as Record<string, unknown>).filter(([k]) => !SERVER_SET.has(k)),
      );
      if (Object.keys(meta).length > 0) set['f:metadata'] = fieldSet(meta, false);
      continue;
    }
    set[`f:${key}`] = childSet(child);
  }
  return set;
}

function childSet(child: unknown): FieldSet {
  if (Array.isArray(child)) {
    // Lists of named objects (containers, volumes, env, …) are keyed by name; other lists are atomic.
    const named =
      child.length > 0 &&
      child.every((i) => i && typeof i === 'object' && typeof (i as { name?: unknown }).name === 'string');
    if (!named) return {};
    return Object.fromEntries(
      child.map((item) => [
        `k:${JSON.stringify({ name: (item as { name: string }).name })}`,
        { '.': {}, ...fieldSet(item, false) },
      ]),
    );
  }
  if (child && typeof child === 'object') return fieldSet(child, false);
  return {};
}

function mergeFieldSets(a: FieldSet, b: FieldSet): FieldSet {
  const out: FieldSet = { ...a };
  for (const [key, value] of Object.entries(b)) out[key] = out[key] ? mergeFieldSets(out[key], value) : value;
  return out;
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
