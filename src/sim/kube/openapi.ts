// The OpenAPI documents our API server publishes (/openapi/v3, /openapi/v3/<group path>,
// /openapi/v2) and the unknown-field check behind fieldValidation. Built-in kinds come
// from snapshots/kube-openapi-v1.34.json (Kubernetes v1.34's own documents, cut down by
// scripts/extract-kube-openapi.ts); a custom resource's schema comes from its CRD, as
// the real server publishes it.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KINDS, type KubeObject, type KubeStore, type ResourceKind } from './store.ts';

type Json = Record<string, unknown>;
type Gvk = { group: string; version: string; kind: string };

export interface KubeOpenApiSnapshot {
  kinds: Gvk[];
  /** Group path (`api/v1`, `apis/apps/v1`, …) → OpenAPI v3 document. */
  v3: Record<string, Json>;
}

const SNAPSHOT = 'snapshots/kube-openapi-v1.34.json';
const SCHEMA_PREFIX = '#/components/schemas/';
const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

/** The folder holding package.json, from src/… (node) or dist/… (built) alike. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

let cached: KubeOpenApiSnapshot | undefined;

export function loadKubeOpenApi(): KubeOpenApiSnapshot {
  if (cached) return cached;
  const file = join(packageRoot(), SNAPSHOT);
  let parsed: Partial<KubeOpenApiSnapshot>;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<KubeOpenApiSnapshot>;
  } catch (error) {
    // expected: anything — rethrown with what to run: the snapshot is missing or not JSON
    throw new Error(
      `the Kubernetes OpenAPI snapshot ${file} cannot be read (${(error as Error).message}) — run scripts/extract-kube-openapi.ts`,
      { cause: error },
    );
  }
  const documents = Object.values(parsed.v3 ?? {});
  if (
    !Array.isArray(parsed.kinds) ||
    documents.length === 0 ||
    documents.some((d) => !(d.components as Json | undefined)?.schemas || !d.paths)
  )
    throw new Error(
      `the Kubernetes OpenAPI snapshot ${file} is malformed (no kinds, or a document without paths or components.schemas) — run scripts/extract-kube-openapi.ts`,
    );
  cached = parsed as KubeOpenApiSnapshot;
  return cached;
}

const groupPath = (group: string, version: string) => (group ? `apis/${group}/${version}` : `api/${version}`);

function gvks(node: unknown): Gvk[] {
  const value = (node as Json | undefined)?.['x-kubernetes-group-version-kind'];
  if (!value) return [];
  return (Array.isArray(value) ? value : [value]) as Gvk[];
}

interface CrdVersion {
  name: string;
  served?: boolean;
  schema?: { openAPIV3Schema?: Json };
}

function crdOf(store: KubeStore, kind: ResourceKind): KubeObject | undefined {
  const crdKind = KINDS.find((k) => k.kind === 'CustomResourceDefinition') as ResourceKind;
  return kind.crd ? store.get(crdKind, undefined, kind.crd) : undefined;
}

/** Schema names the real server gives a CRD's kinds: the group reversed, then version and kind. */
function crdSchemaName(group: string, version: string, kind: string): string {
  return [...group.split('.').reverse(), version, kind].join('.');
}

export class KubeOpenApi {
  private readonly snapshot: KubeOpenApiSnapshot;
  private readonly store: KubeStore;
  constructor(snapshot: KubeOpenApiSnapshot, store: KubeStore) {
    this.snapshot = snapshot;
    this.store = store;
  }

  /** GET /openapi/v3: every group path with the URL of its document (hashed, as the real server does). */
  root(): Json {
    const paths: Json = {};
    for (const path of this.groupPaths()) {
      const hash = createHash('sha512')
        .update(JSON.stringify(this.document(path)))
        .digest('hex')
        .toUpperCase();
      paths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hash}` };
    }
    return { paths };
  }

  groupPaths(): string[] {
    const served = KINDS.filter((k) => this.store.served(k)).map((k) => groupPath(k.group, k.version));
    return [...new Set([...Object.keys(this.snapshot.v3), ...served])].filter((p) => this.document(p));
  }

  document(path: string): Json | undefined {
    const builtin = this.snapshot.v3[path];
    // A built-in group-version is published while this server version serves its kinds
    // (resource.k8s.io/v1 from 1.34 on).
    if (builtin)
      return KINDS.some((k) => !k.crd && groupPath(k.group, k.version) === path && this.store.served(k))
        ? builtin
        : undefined;
    const kinds = KINDS.filter(
      (k) => k.crd && groupPath(k.group, k.version) === path && this.store.served(k),
    );
    if (kinds.length === 0) return undefined;
    return this.crdDocument(kinds);
  }

  /** A custom resource group-version as the real server publishes it from the CRDs. */
  private crdDocument(kinds: ResourceKind[]): Json {
    const core = this.snapshot.v3['api/v1'] as { components: { schemas: Record<string, Json> } };
    const crdDoc = this.snapshot.v3['apis/apiextensions.k8s.io/v1'] as {
      paths: Record<string, Json>;
      components: { schemas: Record<string, Json> };
    };
    const template = crdDoc.paths['/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}'] as Json;
    const schemas: Record<string, Json> = {};
    const paths: Json = {};
    for (const kind of kinds) {
      const name = crdSchemaName(kind.group, kind.version, kind.kind);
      const gvk = [{ group: kind.group, version: kind.version, kind: kind.kind }];
      schemas[name] = { ...this.crdSchema(kind), 'x-kubernetes-group-version-kind': gvk };
      const base = `/apis/${kind.group}/${kind.version}${kind.namespaced ? '/namespaces/{namespace}' : ''}/${kind.plural}/{name}`;
      // Same operations and parameters as the CRD item path, retargeted at this kind.
      paths[base] = JSON.parse(
        JSON.stringify(template)
          .replaceAll(
            '#/components/schemas/io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition',
            `${SCHEMA_PREFIX}${name}`,
          )
          .replaceAll('"group":"apiextensions.k8s.io"', `"group":"${kind.group}"`)
          .replaceAll('"kind":"CustomResourceDefinition"', `"kind":"${kind.kind}"`)
          .replaceAll('"version":"v1"', `"version":"${kind.version}"`),
      );
    }
    const reach = new Set<string>([OBJECT_META]);
    const pending = [OBJECT_META];
    for (const path of Object.values(paths)) collectRefs(path, reach, pending);
    const all = { ...core.components.schemas, ...crdDoc.components.schemas };
    while (pending.length > 0) {
      const next = pending.pop() as string;
      if (all[next]) collectRefs(all[next], reach, pending);
    }
    for (const name of reach) if (all[name]) schemas[name] = all[name];
    return {
      openapi: '3.0.0',
      info: { title: 'Kubernetes CRD Swagger', version: 'v0.1.0' },
      paths,
      components: { schemas },
    };
  }

  private crdSchema(kind: ResourceKind): Json {
    const crd = crdOf(this.store, kind);
    const versions = ((crd?.spec as { versions?: CrdVersion[] } | undefined)?.versions ?? []) as CrdVersion[];
    const published = versions.find((v) => v.name === kind.version)?.schema?.openAPIV3Schema;
    // A CRD without a schema (our tests' placeholders) publishes one that keeps any field.
    const schema: Json = published
      ? structuredClone(published)
      : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
    const properties = (schema.properties ?? {}) as Json;
    schema.properties = {
      ...properties,
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { $ref: `${SCHEMA_PREFIX}${OBJECT_META}` },
    };
    return schema;
  }

  /** GET /openapi/v2: the same schemas as Swagger 2.0 definitions. */
  v2(): Json {
    const definitions: Json = {};
    for (const path of this.groupPaths()) {
      const schemas = ((this.document(path) as Json).components as { schemas: Json }).schemas;
      Object.assign(definitions, schemas);
    }
    return JSON.parse(
      JSON.stringify({
        swagger: '2.0',
        info: { title: 'Kubernetes', version: `v1.${this.store.minor}.0` },
        paths: {},
        definitions,
      }).replaceAll(SCHEMA_PREFIX, '#/definitions/'),
    );
  }

  /** The schema of a kind and the document its references resolve in. */
  private schemaOf(kind: ResourceKind): { schema: Json; schemas: Record<string, Json> } | undefined {
    const document = this.document(groupPath(kind.group, kind.version));
    if (!document) return undefined;
    const schemas = (document.components as { schemas: Record<string, Json> }).schemas;
    const schema = Object.values(schemas).find((s) =>
      gvks(s).some((g) => g.kind === kind.kind && g.group === kind.group && g.version === kind.version),
    );
    return schema ? { schema, schemas } : undefined;
  }

  hasSchema(kind: ResourceKind): boolean {
    return this.schemaOf(kind) !== undefined;
  }

  /** Dotted paths of the fields in `object` its kind's schema does not declare. */
  unknownFields(kind: ResourceKind, object: unknown): string[] {
    const found = this.schemaOf(kind);
    if (!found) return [];
    const unknown: string[] = [];
    walk(found.schema, object, '', found.schemas, unknown);
    return unknown;
  }
}

function collectRefs(value: unknown, reach: Set<string>, pending: string[]): void {
  if (Array.isArray(value)) for (const item of value) collectRefs(item, reach, pending);
  else if (value && typeof value === 'object') {
    for (const [key, child] of Object.entries(value as Json)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith(SCHEMA_PREFIX)) {
        const name = child.slice(SCHEMA_PREFIX.length);
        if (!reach.has(name)) {
          reach.add(name);
          pending.push(name);
        }
      } else collectRefs(child, reach, pending);
    }
  }
}

/** Follows `$ref` and the single-`allOf` wrapping Kubernetes uses for fields with defaults. */
function resolve(schema: Json, schemas: Record<string, Json>): Json {
  let node = schema;
  for (let hops = 0; hops < 16; hops++) {
    const ref = node.$ref as string | undefined;
    const allOf = node.allOf as Json[] | undefined;
    if (ref?.startsWith(SCHEMA_PREFIX)) node = schemas[ref.slice(SCHEMA_PREFIX.length)] ?? {};
    else if (allOf?.length === 1 && allOf[0]) node = allOf[0];
    else break;
  }
  return node;
}

function walk(
  schema: Json,
  value: unknown,
  path: string,
  schemas: Record<string, Json>,
  unknown: string[],
): void {
  const node = resolve(schema, schemas);
  if (node['x-kubernetes-preserve-unknown-fields'] === true || value === null || typeof value !== 'object')
    return;
  if (Array.isArray(value)) {
    const items = node.items as Json | undefined;
    if (items) for (const [i, item] of value.entries()) walk(items, item, `${path}[${i}]`, schemas, unknown);
    return;
  }
  const properties = node.properties as Record<string, Json> | undefined;
  const additional = node.additionalProperties as Json | boolean | undefined;
  if (!properties && additional === undefined) return;
  for (const [key, child] of Object.entries(value as Json)) {
    const at = path ? `${path}.${key}` : key;
    const declared = properties?.[key] ?? (typeof additional === 'object' ? additional : undefined);
    if (declared) walk(declared, child, at, schemas, unknown);
    else if (additional !== true) unknown.push(at);
  }
}

/** A kind as Go's schema.GroupVersionKind prints it (`/v1, Kind=Pod`). */
export const gvkString = (kind: ResourceKind) => `${kind.group}/${kind.version}, Kind=${kind.kind}`;
