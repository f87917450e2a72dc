// The project's Kubernetes API server, for tests and the demo lab: HTTPS on loopback
// with a certificate made at start (the kubeconfig it writes carries that CA, so TLS is
// verified), bearer-token auth, RBAC refusals on request, discovery, OpenAPI v2/v3,
// get/list/watch (with Table answers for kubectl get), create, server-side apply and
// merge patches, delete, pod eviction and logs, dryRun=All and fieldValidation, JSON,
// YAML and (for the bodies kubectl's typed clients send) protobuf request bodies —
// enough for @kubernetes/client-node and the real kubectl to talk to it as to a real
// cluster. It is Kubernetes 1.34 by default or 1.33 (`version`): resource.k8s.io/v1
// (Dynamic Resource Allocation, dra.ts) is served from 1.34 on, with a ResourceClaim's
// status as a subresource.

import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { loopbackCertificate } from '../loopback-tls.ts';
import { type ClusterBehaviour, evict, K, reconcile } from './controllers.ts';
import { draAdmission } from './dra.ts';
import { randomSuffix } from './dra-driver.ts';
import { gvkString, KubeOpenApi, loadKubeOpenApi } from './openapi.ts';
import { decodeKubeProtobuf, ProtobufUnsupported } from './protobuf.ts';
import {
  apiVersionOf,
  KINDS,
  KubeError,
  type KubeObject,
  KubeStore,
  notFound,
  type ResourceKind,
} from './store.ts';
import { type PrinterColumn, toTable, wantsTable } from './tables.ts';

export interface SimNode {
  name: string;
  labels?: Record<string, string>;
  /** Intel GPUs (vGPUs) the node's VM has. */
  gpus?: number;
  /** The driver bound to its GPU (absent: i915): an xe node offers gpu.intel.com/xe. */
  driver?: 'i915' | 'xe';
  /** status.nodeInfo.osImage, as the kubelet reports the node's os-release PRETTY_NAME. */
  osImage?: string;
  /** status.nodeInfo.containerRuntimeVersion, as the kubelet reports the CRI runtime (`containerd://2.2.5-k3s2`). */
  containerRuntimeVersion?: string;
  /** status.nodeInfo.systemUUID: the kubelet reads the VM's SMBIOS uuid (/sys/class/dmi/id/product_uuid). */
  systemUUID?: string;
  /** The PCI id of the GPU the node VM sees (absent: 0x46d1, an N100's), in the DRA driver's slice. */
  pciId?: string;
  /** false: Intel's GPU DRA driver runs on this node but never publishes its ResourceSlice. */
  draSlice?: boolean;
}

/** The Kubernetes minor versions the simulator can be: resource.k8s.io/v1 is served from 1.34. */
export type KubeSimVersion = '1.33' | '1.34';

/** Feature gates the simulator honours (kubernetes pkg/features/kube_features.go). */
export interface KubeSimFeatures {
  /** DRAAdminAccess: beta and on by default from 1.34. Off: adminAccess is dropped from claims. */
  draAdminAccess?: boolean;
}

export interface KubeSimulatorOptions {
  nodes: SimNode[];
  /** Pod Security level for namespaces without a label (Talos enforces baseline). */
  defaultPodSecurity?: 'privileged' | 'baseline';
  vainfo?: boolean;
  /** CRDs present from the start (e.g. the GPU operator's, cert-manager's). */
  crds?: string[];
  /** Refused requests, as `verb resource` (e.g. `patch nodes`): 403 like RBAC. */
  forbidden?: string[];
  /** The bearer token it accepts (tests that hunt for leaked secrets plant their own). */
  token?: string;
  /** The server's Kubernetes version (default 1.34): /version, discovery, OpenAPI and kubectl's skew warning. */
  version?: KubeSimVersion;
  features?: KubeSimFeatures;
}

export interface RunningKubeSimulator {
  url: string;
  token: string;
  /** A kubeconfig (context `igpu-sim`) trusting the server's certificate. */
  kubeconfig: string;
  store: KubeStore;
  behaviour: ClusterBehaviour;
  forbidden: Set<string>;
  /** Fault injection: this many next requests are answered 503 (an API server restarting). */
  unavailable: { count: number };
  /**
   * What the node's kubelet and Talos report after a change made outside igpu-split (the
   * user ran the printed talosctl commands): its osImage and labels added (Talos's
   * `extensions.talos.dev/<name>`), as the kubelet's status update and Talos's label sync.
   */
  setNode(name: string, change: { osImage?: string; labels?: Record<string, string> }): void;
  /**
   * Whether Intel's GPU DRA driver publishes the node's ResourceSlice (false: its pod runs,
   * no slice ever appears; a slice already there is withdrawn), applied at once.
   */
  setDraSlice(name: string, publishes: boolean): void;
  /** The API server's view of etcd, as its /readyz `etcd` check reports it. */
  etcd: { healthy: boolean };
  close(): Promise<void>;
}

const USER = 'system:serviceaccount:kube-system:igpu-split';

export async function startKubeSimulator(options: KubeSimulatorOptions): Promise<RunningKubeSimulator> {
  // A fresh bearer token per server: a fixed one shares pieces with the server's other names
  // (context igpu-sim), which the secret filter would then hide wherever they are printed.
  const token = options.token ?? randomBytes(24).toString('base64url');
  const store = new KubeStore();
  store.minor = Number((options.version ?? '1.34').split('.')[1]);
  const openapi = new KubeOpenApi(loadKubeOpenApi(), store);
  const behaviour: ClusterBehaviour = {
    defaultPodSecurity: options.defaultPodSecurity ?? 'privileged',
    gpus: Object.fromEntries(options.nodes.map((n) => [n.name, n.gpus ?? 0])),
    vainfo: options.vainfo ?? false,
    drivers: Object.fromEntries(options.nodes.flatMap((n) => (n.driver ? [[n.name, n.driver]] : []))),
    draAdminAccess: options.features?.draAdminAccess ?? true,
    draSlices: Object.fromEntries(
      options.nodes.flatMap((n) => (n.draSlice !== undefined ? [[n.name, n.draSlice]] : [])),
    ),
    pciIds: Object.fromEntries(options.nodes.flatMap((n) => (n.pciId ? [[n.name, n.pciId]] : []))),
  };
  store.admit = draAdmission(store, () => behaviour.draAdminAccess !== false);
  const forbidden = new Set(options.forbidden ?? []);
  const etcd = { healthy: true };
  for (const node of options.nodes) {
    store.update(K.Node, {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name: node.name,
        labels: {
          'kubernetes.io/hostname': node.name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          ...node.labels,
        },
      },
      spec: {},
      status: {
        allocatable: { cpu: '4', memory: '8Gi', pods: '110' },
        capacity: { cpu: '4', memory: '8Gi', pods: '110' },
        conditions: [{ type: 'Ready', status: 'True' }],
        ...(node.osImage || node.containerRuntimeVersion || node.systemUUID
          ? {
              nodeInfo: {
                ...(node.osImage ? { osImage: node.osImage } : {}),
                ...(node.systemUUID ? { systemUUID: node.systemUUID } : {}),
                ...(node.containerRuntimeVersion
                  ? { containerRuntimeVersion: node.containerRuntimeVersion }
                  : {}),
              },
            }
          : {}),
      },
    });
  }
  for (const name of ['default', 'kube-system'])
    store.update(K.Namespace, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  for (const crd of options.crds ?? []) {
    store.update(K.CRD, {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: crd },
    });
  }
  let reconciling = false;
  store.onChange = () => {
    if (reconciling) return;
    reconciling = true;
    try {
      reconcile(store, behaviour);
    } finally {
      reconciling = false;
    }
  };
  store.onChange();

  const pems = await loopbackCertificate('kube-simulator');
  const unavailable = { count: 0 };
  const server: Server = createServer(pems, (req, res) => {
    if (unavailable.count > 0) {
      unavailable.count--;
      return status(res, 503, 'ServiceUnavailable', 'the server is currently unable to handle the request');
    }
    // expected: anything — a fault in the handler answers 500, as an apiserver's recovered panic does
    handle(store, openapi, forbidden, token, req, res, etcd).catch((error: unknown) =>
      status(res, 500, 'InternalError', String(error)),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: igpu-sim\n  cluster:\n    server: ${url}\n    certificate-authority-data: ${Buffer.from(pems.cert).toString('base64')}`,
    'users:',
    `- name: igpu-sim\n  user:\n    token: ${token}`,
    'contexts:',
    '- name: igpu-sim\n  context:\n    cluster: igpu-sim\n    user: igpu-sim',
    'current-context: igpu-sim',
    '',
  ].join('\n');
  return {
    url,
    token,
    kubeconfig,
    store,
    behaviour,
    forbidden,
    unavailable,
    setNode: (name, change) => {
      const node = store.get(K.Node, undefined, name);
      if (!node) throw new Error(`the simulated cluster has no node ${name}`);
      const status = (node.status ?? {}) as { nodeInfo?: Record<string, unknown> };
      store.update(K.Node, {
        ...node,
        metadata: { ...node.metadata, labels: { ...node.metadata.labels, ...change.labels } },
        status: {
          ...status,
          ...(change.osImage ? { nodeInfo: { ...status.nodeInfo, osImage: change.osImage } } : {}),
        },
      });
    },
    etcd,
    setDraSlice: (name, publishes) => {
      behaviour.draSlices = { ...behaviour.draSlices, [name]: publishes };
      store.onChange();
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const headers: Record<string, string | string[]> = { 'content-type': 'application/json' };
  // RFC 7234 warn-code 299, as the real server sends field-validation warnings (kubectl prints "Warning: …").
  if (warnings.length > 0) headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(JSON.stringify(body));
}

/**
 * GET /readyz as kube-apiserver answers it (kubernetes/apiserver pkg/server/healthz/healthz.go
 * @v0.34.1): `ok`, or with ?verbose a `[+]<check> ok` line per check and `readyz check passed`;
 * a failing check gives 500, `[-]<check> failed: reason withheld` and `readyz check failed`. Of
 * the real checks only `ping`, `log` and `etcd` are simulated.
 */
function readyz(res: ServerResponse, url: URL, etcdHealthy: boolean): void {
  const lines = ['[+]ping ok', '[+]log ok', etcdHealthy ? '[+]etcd ok' : '[-]etcd failed: reason withheld'];
  res.writeHead(etcdHealthy ? 200 : 500, { 'content-type': 'text/plain; charset=utf-8' });
  if (!url.searchParams.has('verbose') && etcdHealthy) return void res.end('ok');
  res.end(`${lines.join('\n')}\nreadyz check ${etcdHealthy ? 'passed' : 'failed'}\n`);
}

/** Media types we read request bodies in (apiserver negotiation errors list what the server accepts). */
const ACCEPTED = 'application/json, application/yaml, application/vnd.kubernetes.protobuf';

/** An Accept header we can answer (we always answer JSON): JSON, a wildcard, or no header. */
function acceptsJson(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(',').some((part) => {
    const type = (part.split(';')[0] ?? '').trim();
    return type === 'application/json' || type === '*/*' || type === 'application/*' || type === '';
  });
}

function status(res: ServerResponse, code: number, reason: string, message: string, details?: unknown): void {
  send(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    // StatusReasonUnknown is "" and omitted from JSON.
    ...(reason ? { reason } : {}),
    code,
    ...(details ? { details } : {}),
  });
}

async function body(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const bytes = Buffer.concat(chunks);
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('application/vnd.kubernetes.protobuf')) {
    try {
      return decodeKubeProtobuf(bytes);
    } catch (error) {
      // expected: ProtobufUnsupported — a message we do not decode is the apiserver's 415
      if (!(error instanceof ProtobufUnsupported)) throw error;
      throw new KubeError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml`,
      );
    }
  }
  const text = bytes.toString('utf8');
  if (!text) return {};
  if (type && !/json|yaml/.test(type))
    throw new KubeError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${ACCEPTED}`,
    );
  return /yaml/.test(type) ? parseYaml(text) : JSON.parse(text);
}

function discovery(url: string, store: KubeStore): unknown {
  if (url === '/api') return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] };
  // The same minor as the OpenAPI snapshot we publish.
  if (url === '/version')
    return {
      major: '1',
      minor: String(store.minor),
      gitVersion: `v1.${store.minor}.1-igpu-sim`,
      platform: 'linux/amd64',
    };
  const served = KINDS.filter((k) => store.served(k));
  if (url === '/apis') {
    const groups = [...new Set(served.filter((k) => k.group).map((k) => `${k.group}/${k.version}`))].map(
      (gv) => {
        const [name, version] = gv.split('/') as [string, string];
        return {
          name,
          versions: [{ groupVersion: gv, version }],
          preferredVersion: { groupVersion: gv, version },
        };
      },
    );
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }
  const match = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(url);
  if (!match) return undefined;
  const [group, version] = match[1] ? ['', 'v1'] : [match[2] as string, match[3] as string];
  const kinds = served.filter((k) => k.group === group && k.version === version);
  if (kinds.length === 0) return undefined;
  const resources = kinds.flatMap((k) => [
    {
      name: k.plural,
      singularName: k.kind.toLowerCase(),
      namespaced: k.namespaced,
      kind: k.kind,
      verbs: k.verbs,
      shortNames: k.shortNames ?? [],
    },
    ...(k.kind === 'Pod'
      ? [
          {
            name: 'pods/eviction',
            singularName: '',
            namespaced: true,
            kind: 'Eviction',
            group: 'policy',
            version: 'v1',
            verbs: ['create'],
          },
          { name: 'pods/log', singularName: '', namespaced: true, kind: 'Pod', verbs: ['get'] },
        ]
      : []),
    ...(k.statusSubresource
      ? [
          {
            name: `${k.plural}/status`,
            singularName: '',
            namespaced: k.namespaced,
            kind: k.kind,
            verbs: ['get', 'patch', 'update'],
          },
        ]
      : []),
  ]);
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group ? `${group}/${version}` : 'v1',
    resources,
  };
}

interface Target {
  kind: ResourceKind;
  namespace?: string;
  name?: string;
  sub?: string;
}

function route(path: string): Target | undefined {
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/([^/]+))\/(.*)$/.exec(path);
  if (!m) return undefined;
  const group = m[1] ?? '';
  const version = m[2] ?? 'v1';
  const parts = (m[3] as string).split('/').filter(Boolean).map(decodeURIComponent);
  let namespace: string | undefined;
  if (parts[0] === 'namespaces' && parts.length >= 3) {
    namespace = parts[1];
    parts.splice(0, 2);
  }
  const kind = KINDS.find((k) => k.group === group && k.version === version && k.plural === parts[0]);
  if (!kind) return undefined;
  return { kind, namespace: kind.namespaced ? namespace : undefined, name: parts[1], sub: parts[2] };
}

const VERBS: Record<string, string> = {
  GET: 'get',
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

const OPTIONS_KIND: Record<string, string> = {
  create: 'CreateOptions',
  update: 'UpdateOptions',
  patch: 'PatchOptions',
  delete: 'DeleteOptions',
};

/**
 * dryRun and fieldValidation as the apiserver reads them: any dryRun value makes the
 * request a dry run (apiserver pkg/util/dryrun IsDryRun), only "All" is valid
 * (apimachinery pkg/apis/meta/v1/validation ValidateDryRun), and fieldValidation defaults
 * to Warn (apiserver pkg/endpoints/handlers/rest.go fieldValidation) — all at v0.34.1.
 */
function requestOptions(verb: string, url: URL, dryRunInBody: string[] = []) {
  const dryRun = [...url.searchParams.getAll('dryRun'), ...dryRunInBody];
  const validation = url.searchParams.get('fieldValidation') ?? '';
  const invalid = (field: string, value: string, allowed: string[]) =>
    new KubeError(
      422,
      'Invalid',
      `${OPTIONS_KIND[verb] ?? 'CreateOptions'}.meta.k8s.io "" is invalid: ${field}: Unsupported value: ${value}: supported values: ${allowed.map((v) => JSON.stringify(v)).join(', ')}`,
    );
  if (dryRun.some((v) => v !== 'All')) throw invalid('dryRun', JSON.stringify(dryRun), ['All']);
  if (!['', 'Ignore', 'Strict', 'Warn'].includes(validation))
    throw invalid('fieldValidation', JSON.stringify(validation), ['', 'Ignore', 'Strict', 'Warn']);
  return { dryRun: dryRun.length > 0, validation: validation || 'Warn' };
}

/** The field manager of a non-apply write: the fieldManager parameter, else the user agent up to its first "/". */
function managerOf(url: URL, req: IncomingMessage): string {
  return (
    url.searchParams.get('fieldManager') ||
    (req.headers['user-agent'] ?? 'unknown').split('/')[0] ||
    'unknown'
  );
}

async function handle(
  store: KubeStore,
  openapi: KubeOpenApi,
  forbidden: Set<string>,
  token: string,
  req: IncomingMessage,
  res: ServerResponse,
  etcd: { healthy: boolean } = { healthy: true },
): Promise<void> {
  if (req.headers.authorization !== `Bearer ${token}`)
    return status(res, 401, 'Unauthorized', 'Unauthorized');
  const url = new URL(req.url ?? '/', 'https://localhost');
  if (url.pathname === '/readyz') return readyz(res, url, etcd.healthy);
  if (!acceptsJson(req.headers.accept))
    return status(res, 406, 'NotAcceptable', `only the following media types are accepted: application/json`);
  const spec = openApiAnswer(url.pathname, openapi);
  if (spec) return send(res, 200, spec);
  const found = discovery(url.pathname, store);
  if (found) return send(res, 200, found);
  const target = route(url.pathname);
  if (!target || !store.served(target.kind)) {
    return status(res, 404, 'NotFound', 'the server could not find the requested resource');
  }
  const verb = verbOf(req.method, target.name, url);
  const refusal = rbacRefusal(forbidden, verb, target);
  if (refusal) return status(res, 403, 'Forbidden', refusal);
  try {
    await serve({ store, openapi, target, verb, url, req, res });
  } catch (error) {
    // expected: KubeError — the store refused (not found, conflict, invalid): answered as its Status
    if (error instanceof KubeError)
      return status(res, error.code, error.reason, error.message, error.details);
    throw error;
  }
}

/** One routed request: where it goes, what it does, and the store and schema it does it on. */
interface Request {
  store: KubeStore;
  openapi: KubeOpenApi;
  target: Target;
  verb: string;
  url: URL;
  req: IncomingMessage;
  res: ServerResponse;
}

/** The RBAC verb: the method's, a GET of a collection being list (or watch). */
function verbOf(method: string | undefined, name: string | undefined, url: URL): string {
  const verb = VERBS[method ?? 'GET'] ?? 'get';
  if (verb !== 'get' || name) return verb;
  return url.searchParams.get('watch') ? 'watch' : 'list';
}

/** The message of a 403, in the apiserver's words, when the request is one the test forbade. */
function rbacRefusal(forbidden: Set<string>, verb: string, target: Target): string | undefined {
  const { kind, namespace, name, sub } = target;
  const resource = sub ? `${kind.plural}/${sub}` : kind.plural;
  if (!forbidden.has(`${verb} ${resource}`)) return undefined;
  const scope = namespace ? `in the namespace "${namespace}"` : 'at the cluster scope';
  return `${resource}${name ? ` "${name}"` : ''} is forbidden: User "${USER}" cannot ${verb} resource "${resource}" in API group "${kind.group}" ${scope}`;
}

async function serve(request: Request): Promise<void> {
  const { store, target, verb, url, req, res } = request;
  if (verb === 'watch') return watch(store, target.kind, target.namespace, url, req, res);
  if (verb === 'list') return serveList(request);
  if (target.sub === 'log' && verb === 'get') return serveLog(request);
  if (target.sub === 'eviction' && verb === 'create') return serveEviction(request);
  if (verb === 'get') return serveGet(request);
  if (verb === 'delete') {
    const options = (await body(req)) as { dryRun?: string[] };
    const { dryRun } = requestOptions(verb, url, options.dryRun);
    return send(res, 200, store.delete(target.kind, target.namespace, target.name as string, { dryRun }));
  }
  return serveWrite(request);
}

function serveList({ store, target: { kind, namespace }, url, req, res }: Request): void {
  const selector = url.searchParams.get('labelSelector');
  const fields = url.searchParams.get('fieldSelector');
  const items = store.list(kind, namespace).filter((o) => labelsMatch(selector, o) && fieldsMatch(fields, o));
  const answer = wantsTable(req.headers.accept)
    ? toTable(kind, items, store.resourceVersion, printerColumns(store, kind))
    : {
        apiVersion: apiVersionOf(kind),
        kind: `${kind.kind}List`,
        metadata: { resourceVersion: store.resourceVersion },
        items,
      };
  send(res, 200, answer);
}

function serveLog({ store, target: { kind, namespace, name }, res }: Request): void {
  if (!store.get(kind, namespace, name as string)) throw notFound(kind, name as string);
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(store.logs.get(`${namespace}/${name}`) ?? '');
}

async function serveEviction({ store, target: { namespace, name }, url, req, res }: Request): Promise<void> {
  const eviction = (await body(req)) as { deleteOptions?: { dryRun?: string[] } };
  // The eviction handler runs the pod delete with the Eviction's DeleteOptions and the
  // request's own dryRun (kubernetes pkg/registry/core/pod/storage/eviction.go).
  const { dryRun } = requestOptions('create', url, eviction.deleteOptions?.dryRun);
  try {
    evict(store, namespace as string, name as string, dryRun);
  } catch (error) {
    // expected: an error with an HTTP code (no such pod 404, a disruption budget's 429) — answered as its Status
    const e = error as { code?: unknown; reason?: string; details?: unknown; message: string };
    if (typeof e?.code !== 'number') throw error;
    return status(res, e.code, e.reason ?? 'NotFound', e.message, e.details);
  }
  send(res, 201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
}

function serveGet({ store, target: { kind, namespace, name }, req, res }: Request): void {
  const object = store.get(kind, namespace, name as string);
  if (!object) throw notFound(kind, name as string);
  const answer = wantsTable(req.headers.accept)
    ? toTable(kind, [object], object.metadata.resourceVersion ?? '', printerColumns(store, kind))
    : object;
  send(res, 200, answer);
}

/** create, patch (server-side apply or merge) and update, after the unknown-field check. */
async function serveWrite(request: Request): Promise<void> {
  const { store, target, verb, url, req, res } = request;
  const { kind, namespace, name } = target;
  const raw = (await body(req)) as KubeObject;
  const { dryRun, validation } = requestOptions(verb, url);
  const applying =
    verb === 'patch' && (req.headers['content-type'] ?? '').startsWith('application/apply-patch');
  const fields = unknownFieldCheck(request, raw, applying, validation);
  if ('refused' in fields) return status(res, ...fields.refused);
  const input = subresourceInput(request, withGeneratedName(raw, verb), applying);
  const warnings = fields.warnings;
  const manager = managerOf(url, req);
  if (verb === 'create') {
    const created = store.create(
      kind,
      { ...input, metadata: { ...input.metadata, namespace } },
      { dryRun, manager },
    );
    return send(res, 201, created, warnings);
  }
  if (verb === 'patch' && applying) return serveApply(request, input, dryRun, warnings);
  if (verb === 'patch')
    return send(
      res,
      200,
      store.mergePatch(kind, namespace, name as string, input as Record<string, unknown>, {
        dryRun,
        manager,
      }),
    );
  if (verb === 'update')
    return send(
      res,
      200,
      store.update(
        kind,
        { ...input, metadata: { ...input.metadata, namespace } },
        { dryRun, manager, precondition: true },
      ),
      warnings,
    );
  status(res, 405, 'MethodNotAllowed', `${req.method} is not supported`);
}

/** metadata.generateName on create: the name plus 5 random characters (apiserver names.SimpleNameGenerator). */
function withGeneratedName(input: KubeObject, verb: string): KubeObject {
  const generateName = input.metadata?.generateName;
  if (verb !== 'create' || input.metadata?.name || typeof generateName !== 'string') return input;
  return { ...input, metadata: { ...input.metadata, name: `${generateName}${randomSuffix()}` } };
}

/**
 * A kind with a status subresource (ResourceClaim; as the real registry's status strategy
 * resets the spec and the main strategy the status): writes to the object leave its
 * status as it was, writes to `…/status` change only the status.
 */
function subresourceInput(
  { store, target: { kind, namespace, name, sub }, verb }: Request,
  input: KubeObject,
  applying: boolean,
): KubeObject {
  if (!kind.statusSubresource) return input;
  const existing = name ? store.get(kind, namespace, name) : undefined;
  if (sub === 'status') {
    if (!existing) throw notFound(kind, name ?? '');
    if (verb === 'update') return { ...existing, status: input.status };
    if (applying)
      return {
        apiVersion: input.apiVersion,
        kind: input.kind,
        metadata: { name: existing.metadata.name, namespace },
        status: input.status,
      };
    return { status: input.status } as unknown as KubeObject;
  }
  const { status: _ignored, ...rest } = input;
  if (verb === 'update' && existing?.status !== undefined)
    return { ...rest, status: existing.status } as KubeObject;
  return rest as KubeObject;
}

function serveApply(
  { store, target: { kind, namespace, name }, url, res }: Request,
  input: KubeObject,
  dryRun: boolean,
  warnings: string[],
): void {
  const manager = url.searchParams.get('fieldManager');
  if (manager)
    send(res, 200, store.apply(kind, namespace, name as string, input, manager, { dryRun }), warnings);
  else
    status(
      res,
      422,
      'Invalid',
      'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
    );
}

/**
 * Unknown fields: Strict refuses, Warn answers with warnings, Ignore drops nothing we keep.
 * Patches other than apply are not checked.
 */
function unknownFieldCheck(
  { openapi, target: { kind, namespace, name }, verb }: Request,
  input: KubeObject,
  applying: boolean,
  validation: string,
): { warnings: string[] } | { refused: [number, string, string] } {
  if (validation === 'Ignore' || (verb === 'patch' && !applying)) return { warnings: [] };
  const unknown = openapi.unknownFields(kind, input);
  if (unknown.length === 0 || validation !== 'Strict')
    return { warnings: unknown.map((f) => `unknown field "${f}"`) };
  // apply: apimachinery managedfields structuredmerge.go + structured-merge-diff typed/validate.go,
  // an error without a status (so reason "" and 500, responsewriters ErrorToAPIStatus);
  // create/update: runtime strict decoding error in transformDecodeError (handlers/rest.go).
  if (applying)
    return {
      refused: [
        500,
        '',
        `failed to create typed patch object (${namespace ?? ''}/${name}; ${gvkString(kind)}): .${unknown[0]}: field not declared in schema`,
      ],
    };
  return {
    refused: [
      400,
      'BadRequest',
      `${kind.kind} in version "${kind.version}" cannot be handled as a ${kind.kind}: strict decoding error: ${unknown.map((f) => `unknown field "${f}"`).join(', ')}`,
    ],
  };
}

/** The additionalPrinterColumns of a custom resource's CRD version. */
function printerColumns(store: KubeStore, kind: ResourceKind): PrinterColumn[] | undefined {
  if (!kind.crd) return undefined;
  const crd = store.get(K.CRD, undefined, kind.crd);
  const versions = (
    crd?.spec as { versions?: { name: string; additionalPrinterColumns?: PrinterColumn[] }[] }
  )?.versions;
  return versions?.find((v) => v.name === kind.version)?.additionalPrinterColumns;
}

/** /openapi/v2, /openapi/v3 and /openapi/v3/<group path>. */
function openApiAnswer(path: string, openapi: KubeOpenApi): unknown {
  if (path === '/openapi/v2') return openapi.v2();
  if (path === '/openapi/v3') return openapi.root();
  if (path.startsWith('/openapi/v3/')) return openapi.document(path.slice('/openapi/v3/'.length));
  return undefined;
}

function labelsMatch(selector: string | null, object: KubeObject): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=') as [string, string | undefined];
    return value === undefined
      ? key in (object.metadata.labels ?? {})
      : object.metadata.labels?.[key] === value;
  });
}

function fieldsMatch(selector: string | null, object: KubeObject): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [key, value] = term.split('=') as [string, string];
    if (key === 'spec.nodeName')
      return (object.spec as { nodeName?: string } | undefined)?.nodeName === value;
    if (key === 'metadata.name') return object.metadata.name === value;
    // ResourceSlice: kubernetes pkg/registry/resource/resourceslice/strategy.go toSelectableFields.
    if (key === 'spec.driver') return (object.spec as { driver?: string } | undefined)?.driver === value;
    return true;
  });
}

function watch(
  store: KubeStore,
  kind: ResourceKind,
  namespace: string | undefined,
  url: URL,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
  const write = (event: unknown) => res.write(`${JSON.stringify(event)}\n`);
  for (const object of store.list(kind, namespace)) write({ type: 'ADDED', object });
  const stop = store.watch(kind, namespace, write);
  const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 300) * 1000;
  const timer = setTimeout(() => res.end(), timeout);
  timer.unref();
  req.on('close', () => {
    stop();
    clearTimeout(timer);
  });
}
