// The Kubernetes side effects of the cluster layer behind one small interface: server-
// side apply as `igpu-split`, get/list/delete, cordon, eviction, pod logs. Built on
// @kubernetes/client-node from a kubeconfig and context; every failure becomes one line
// naming the cluster and what to do (no kubeconfig, unreachable, RBAC with the verb and
// resource, a CRD that is not installed).

import {
  ApiException,
  ApisApi,
  CoreV1Api,
  createConfiguration,
  HttpMethod,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  type ResponseContext,
  ServerConfiguration,
  VersionApi,
  wrapHttpLibrary,
} from '@kubernetes/client-node';
import { TargetError } from '../core/errors.ts';
import { AnswerTooLarge, MAX_ANSWER_BYTES } from '../core/http-answer.ts';
import { causeCode, certificateProblem, connectionProblem } from '../core/network-errors.ts';
import { clip } from '../core/text.ts';
import { CONNECT_TIMEOUT_MS, REQUEST_TIMEOUT_MS, reportRetry, seconds, WaitWatch } from '../core/waits.ts';
import type { ExecConfig } from './exec-credential.ts';
import { BoundedCredentials, BoundedKubeHttp, KubeCredentialError, KubeTimeout } from './kube-http.ts';
import { type KubeconfigSource, loadKubeconfig } from './kubeconfig.ts';
import { FIELD_MANAGER, type Manifest } from './objects.ts';

export type KubeObject = Manifest & { status?: Record<string, unknown>; spec?: Record<string, unknown> };

export interface KubeApi {
  readonly target: string;
  /** Server-side apply, as `igpu-split` unless another field manager is named. */
  apply(object: Manifest, fieldManager?: string): Promise<KubeObject>;
  /**
   * Update (PUT) with the object's metadata.resourceVersion as precondition: undefined when
   * the object changed since that version was read (HTTP 409), so two writers cannot both win.
   */
  replace(object: Manifest): Promise<KubeObject | undefined>;
  get(apiVersion: string, kind: string, name: string, namespace?: string): Promise<KubeObject | undefined>;
  list(
    apiVersion: string,
    kind: string,
    options?: { namespace?: string; labelSelector?: string; fieldSelector?: string },
  ): Promise<KubeObject[]>;
  create(object: Manifest): Promise<KubeObject>;
  delete(apiVersion: string, kind: string, name: string, namespace?: string): Promise<void>;
  setUnschedulable(node: string, unschedulable: boolean): Promise<void>;
  /** Evicts a pod; `blocked` carries the API's reason when a disruption budget refuses. */
  evict(namespace: string, name: string): Promise<{ blocked?: string }>;
  logs(namespace: string, name: string): Promise<string>;
  /** GET /version: the server's release (`v1.34.1+k3s1`) and minor. */
  version(): Promise<ServerVersion>;
  /** Whether the server serves this API group at this version (GET /apis). */
  serves(group: string, version: string): Promise<boolean>;
  /**
   * GET /readyz?verbose: one `[+]<check> ok` / `[-]<check> failed…` line per check. Default
   * roles may read /readyz (system:public-info-viewer), not /readyz/<check>.
   */
  readyz(): Promise<{ ok: boolean; text: string }>;
}

export interface ServerVersion {
  gitVersion: string;
  major: number;
  minor: number;
}

export interface KubeOptions extends KubeconfigSource {
  attempts?: number;
  backoffMs?: number;
  connectTimeoutMs?: number;
  /** One request's answer, once connected. */
  requestTimeoutMs?: number;
}

export function openKube(options: KubeOptions = {}): KubeApi {
  const { config, exec } = loadKubeconfig(options);
  return new ClientNodeKube(config, options, exec);
}

/** The object API on our configuration, with the context's namespace as default (as makeApiClient does). */
class ObjectApi extends KubernetesObjectApi {
  static of(
    config: KubeConfig,
    configuration: ConstructorParameters<typeof KubernetesObjectApi>[0],
  ): ObjectApi {
    const api = new ObjectApi(configuration);
    api.setDefaultNamespace(config);
    return api;
  }
}

class ClientNodeKube implements KubeApi {
  readonly target: string;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly watch: WaitWatch;
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;
  private readonly versions: VersionApi;
  private readonly groups: ApisApi;
  private readonly configuration: ReturnType<typeof createConfiguration>;

  constructor(config: KubeConfig, options: KubeOptions = {}, exec?: ExecConfig) {
    const server = config.getCurrentCluster()?.server ?? 'kubernetes';
    this.target = server;
    this.attempts = options.attempts ?? 4;
    this.backoffMs = options.backoffMs ?? 500;
    this.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    this.watch = new WaitWatch(server, this.connectTimeoutMs + this.requestTimeoutMs);
    // Requests go out bounded and verifying certificates (kube-http.ts says how).
    const configuration = createConfiguration({
      baseServer: new ServerConfiguration(server, {}),
      authMethods: {
        default: new BoundedCredentials(config, this.connectTimeoutMs + this.requestTimeoutMs, exec),
      },
      httpApi: wrapHttpLibrary(
        new BoundedKubeHttp({
          connectTimeoutMs: this.connectTimeoutMs,
          requestTimeoutMs: this.requestTimeoutMs,
          verify: config.getCurrentCluster()?.skipTLSVerify !== true,
        }),
      ),
      promiseMiddleware: [
        {
          pre: async (context) => context,
          post: async (response) => {
            if (!(await answersLikeKubernetes(response))) throw new NotKubernetes();
            return response;
          },
        },
      ],
    });
    this.configuration = configuration;
    this.objects = ObjectApi.of(config, configuration);
    this.core = new CoreV1Api(configuration);
    this.versions = new VersionApi(configuration);
    this.groups = new ApisApi(configuration);
  }

  async version(): Promise<ServerVersion> {
    const info = await this.call('get /version', () => this.versions.getCode());
    return parseServerVersion(info.gitVersion, info.major, info.minor);
  }

  async readyz(): Promise<{ ok: boolean; text: string }> {
    return this.call('get /readyz', async () => {
      const context = this.configuration.baseServer.makeRequestContext('/readyz', HttpMethod.GET);
      context.setQueryParam('verbose', '');
      await this.configuration.authMethods.default?.applySecurityAuthentication(context);
      const response = await this.configuration.httpApi.send(context).toPromise();
      const text = await response.body.text();
      // 200 or 500 carry the checks; anything else is the server's own refusal.
      if (response.httpStatusCode !== 200 && response.httpStatusCode !== 500)
        throw new ApiException(response.httpStatusCode, 'readyz', text, response.headers);
      return { ok: response.httpStatusCode === 200, text };
    });
  }

  async serves(group: string, version: string): Promise<boolean> {
    const list = await this.call('get /apis', () => this.groups.getAPIVersions());
    return list.groups.some((g) => g.name === group && g.versions.some((v) => v.version === version));
  }

  async apply(object: Manifest, fieldManager = FIELD_MANAGER): Promise<KubeObject> {
    // force: these objects are ours; another manager's values on them are taken over.
    return this.call(`apply ${describe(object)}`, () =>
      this.objects.patch(object, undefined, undefined, fieldManager, true, PatchStrategy.ServerSideApply),
    ) as Promise<KubeObject>;
  }

  async replace(object: Manifest): Promise<KubeObject | undefined> {
    return this.call(`update ${describe(object)}`, async () => {
      try {
        return (await this.objects.replace(object, undefined, undefined, FIELD_MANAGER)) as KubeObject;
      } catch (error) {
        // expected: HTTP 409 — the object moved on since its resourceVersion was read; the rest is thrown
        if (error instanceof ApiException && error.code === 409) return undefined;
        throw error;
      }
    });
  }

  async get(
    apiVersion: string,
    kind: string,
    name: string,
    namespace?: string,
  ): Promise<KubeObject | undefined> {
    return this.call(`get ${kind} ${name}`, async () => {
      try {
        return (await this.objects.read({ apiVersion, kind, metadata: { name, namespace } })) as KubeObject;
      } catch (error) {
        // expected: HTTP 404 of an object (not of a kind) — it does not exist; the rest is thrown
        if (error instanceof ApiException && error.code === 404 && !crdMissing(error)) return undefined;
        throw error;
      }
    });
  }

  async list(
    apiVersion: string,
    kind: string,
    options: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {},
  ) {
    const result = await this.call(`list ${kind}`, () =>
      this.objects.list(
        apiVersion,
        kind,
        options.namespace,
        undefined,
        undefined,
        undefined,
        options.fieldSelector,
        options.labelSelector,
      ),
    );
    return (result as { items: KubeObject[] }).items;
  }

  async create(object: Manifest): Promise<KubeObject> {
    let attempt = 0;
    return this.call(`create ${describe(object)}`, async () => {
      attempt++;
      try {
        return (await this.objects.create(object)) as KubeObject;
      } catch (error) {
        // expected: HTTP 409 on a retry — the create that did land (its answer lost) finds it there
        if (attempt > 1 && error instanceof ApiException && error.code === 409) {
          const existing = await this.objects.read(object);
          if (existing) return existing as KubeObject;
        }
        throw error;
      }
    }) as Promise<KubeObject>;
  }

  async delete(apiVersion: string, kind: string, name: string, namespace?: string): Promise<void> {
    try {
      await this.objects.delete({ apiVersion, kind, metadata: { name, namespace } });
    } catch (error) {
      // expected: HTTP 404 — already gone; the rest is explained and thrown
      if (error instanceof ApiException && error.code === 404) return;
      throw this.explain(error, `delete ${kind} ${name}`, false);
    }
  }

  async setUnschedulable(node: string, unschedulable: boolean): Promise<void> {
    await this.call(`${unschedulable ? 'cordon' : 'uncordon'} node ${node}`, () =>
      this.objects.patch(
        {
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: node },
          spec: { unschedulable: unschedulable ? true : null },
        },
        undefined,
        undefined,
        FIELD_MANAGER,
        undefined,
        PatchStrategy.MergePatch,
      ),
    );
  }

  async evict(namespace: string, name: string): Promise<{ blocked?: string }> {
    try {
      await this.core.createNamespacedPodEviction({
        name,
        namespace,
        body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } },
      });
      return {};
    } catch (error) {
      // expected: HTTP 429 (a disruption budget refuses) and 404 (the pod is gone); the rest is thrown
      if (error instanceof ApiException && error.code === 429) {
        const status = statusOf(error);
        const cause = (status?.details as { causes?: { message?: unknown }[] } | undefined)?.causes?.[0]
          ?.message;
        return {
          blocked: clip(
            typeof cause === 'string' ? cause : (status?.message ?? 'a disruption budget refused'),
          ),
        };
      }
      if (error instanceof ApiException && error.code === 404) return {};
      throw this.explain(error, `evict pod ${namespace}/${name}`, false);
    }
  }

  async logs(namespace: string, name: string): Promise<string> {
    return this.call(`logs of pod ${namespace}/${name}`, () =>
      this.core.readNamespacedPodLog({ name, namespace }),
    ) as Promise<string>;
  }

  /**
   * Every call igpu-split makes is safe to repeat (reads, server-side apply, merge patches,
   * create of a named object): a refused or reset connection or a 5xx is retried, bounded,
   * each retry said, before it becomes the error. A request that ran out of time is not.
   */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    // An attempt that may have reached the server (a reset, a 5xx) may have changed something.
    let reached = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.watch.track(what, run());
      } catch (error) {
        // expected: a 5xx or a refused/reset connection — retried, bounded; the rest is explained and thrown
        const transient =
          (error instanceof ApiException && error.code >= 500) ||
          (!(error instanceof ApiException) &&
            ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'EHOSTUNREACH'].includes(causeCode(error) ?? ''));
        if (!transient || attempt >= this.attempts)
          throw this.explain(error, attempt > 1 ? `${what} (${attempt} attempts)` : what, reached);
        reached ||= causeCode(error) !== 'ECONNREFUSED';
        const delayMs = this.backoffMs * 2 ** (attempt - 1);
        reportRetry({
          target: this.target,
          what,
          reason:
            error instanceof ApiException
              ? `HTTP ${error.code}`
              : (connectionProblem(causeCode(error)) ?? 'no connection'),
          delayMs,
          attempt,
          attempts: this.attempts,
        });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  /** `describe`, marked when the server refused the request before it could change anything. */
  private explain(error: unknown, what: string, reachedBefore: boolean): TargetError {
    const described = this.describe(error, what);
    const refused =
      !reachedBefore &&
      ((error instanceof ApiException && error.code >= 400 && error.code < 500) ||
        causeCode(error) === 'ECONNREFUSED');
    // The same class (KindNotServed stays one), marked as having changed nothing.
    const Same = described.constructor as typeof TargetError;
    return refused
      ? new Same(described.message, {
          target: described.target,
          fix: described.fix,
          cause: described.cause,
          nothingChanged: true,
        })
      : described;
  }

  private describe(error: unknown, what: string): TargetError {
    if (error instanceof ApiException) return describeAnswer(error, what, this.target);
    return describeFailure(error, what, this.target) ?? describeTransport(error, what, this.target);
  }
}

/**
 * The release from /version. Distributions put a suffix on the minor (`34+` on some managed
 * clusters), so the minor is read from gitVersion first (`v1.34.1+k3s1`), then from `minor`.
 */
export function parseServerVersion(gitVersion: string, major: string, minor: string): ServerVersion {
  const release = /^v(\d+)\.(\d+)\./.exec(gitVersion);
  return {
    gitVersion,
    major: Number(release?.[1] ?? Number.parseInt(major, 10)),
    minor: Number(release?.[2] ?? Number.parseInt(minor, 10)),
  };
}

/** An answer the API server gave that is not a success: RBAC, redirects, a missing CRD, a status code. */
function describeAnswer(error: ApiException<unknown>, what: string, target: string): TargetError {
  const status = statusOf(error);
  // The Status message is the server's reason; a body that is not a Status is never quoted.
  const message = status?.message ?? '';
  if (error.code === 401)
    return new TargetError(`${what}: unauthorized`, {
      target,
      fix: 'the kubeconfig credentials are wrong or expired',
    });
  if (error.code === 403) return forbidden(what, target, message);
  if (error.code >= 300 && error.code < 400) {
    const location = error.headers?.location;
    return new TargetError(
      `${what}: the server sends us elsewhere (HTTP ${error.code}${location ? ` to ${clip(location, 120)}` : ''})`,
      {
        target,
        fix: "point the kubeconfig's server at the API server itself, not at a proxy or login page",
      },
    );
  }
  if (crdMissing(error)) return crdError(what, target);
  if (error.code === 404 && /^(cordon|uncordon) node /.test(what))
    return new TargetError(`${what}: no such node in the cluster`, {
      target,
      fix: 'check kubernetesNode in the lab file against kubectl get nodes',
    });
  const reason = status?.message ? clip(status.message) : 'the server gave no reason';
  return new TargetError(`${what}: HTTP ${error.code} (${reason})`, {
    target,
    fix:
      error.code >= 500
        ? 'the API server failed; check its log (K3s: journalctl -u k3s; Talos: talosctl logs kube-apiserver), then retry'
        : 'check the lab file and the cluster state this request depends on',
  });
}

/** A 403, with the verb and resource RBAC refused when the server's message names them. */
function forbidden(what: string, target: string, message: string): TargetError {
  const rbac = /cannot (\S+) resource "([^"]+)" in API group "([^"]*)"/.exec(message);
  return new TargetError(
    `${what}: forbidden${rbac ? `: cannot ${rbac[1]} ${rbac[2]}${rbac[3] ? `.${rbac[3]}` : ''}` : message.trim() ? `: ${clip(message)}` : ' (the server gave no reason)'}`,
    {
      target,
      fix: rbac
        ? `grant the kubeconfig's user "${rbac[1]}" on "${rbac[2]}" (a Role/ClusterRole binding), or use an admin kubeconfig`
        : 'check the kubeconfig user’s RBAC permissions',
    },
  );
}

/**
 * What went wrong on our side of the request: out of time, no credentials, an answer too
 * large, a kind the cluster does not know, a certificate or key. Undefined for anything else.
 */
function describeFailure(error: unknown, what: string, target: string): TargetError | undefined {
  if (error instanceof KubeTimeout)
    return new TargetError(`${what}: ${TIMEOUT_WORDS[error.phase]} ${seconds(error.ms)}`, {
      target,
      fix: 'check that the API server is up and reachable from here (kubectl get --raw /readyz)',
    });
  if (error instanceof KubeCredentialError)
    return new TargetError(`${what}: the kubeconfig's ${error.reason}`, {
      target,
      fix: 'run it by hand to see why (kubectl get nodes does the same); what it prints is not shown here',
      cause: error,
    });
  // client-node puts its own words before a message it passes on: the text is ours again.
  if (error instanceof AnswerTooLarge)
    return new TargetError(`${what}: ${new AnswerTooLarge(MAX_ANSWER_BYTES).message}`, {
      target,
      fix: "check the kubeconfig's server address: it must be the API server",
    });
  const text = String((error as Error)?.message ?? error);
  if (/Unrecognized API version and kind/i.test(text)) return crdError(what, target);
  const code = causeCode(error);
  const certificate = certificateProblem(code);
  if (certificate)
    return new TargetError(`${what}: ${certificate}`, {
      target,
      fix: "check the cluster's certificate-authority-data in the kubeconfig: it must be the cluster's own CA (K3s: /etc/rancher/k3s/k3s.yaml; Talos: talosctl kubeconfig)",
    });
  // OpenSSL could not use a certificate or key the kubeconfig gave (garbage, a key for another certificate).
  if (code?.startsWith('ERR_OSSL_'))
    return new TargetError(`${what}: a certificate or key in the kubeconfig cannot be used (${code})`, {
      target,
      fix: 'check certificate-authority-data, client-certificate-data and client-key-data: each PEM, the key the certificate’s own',
    });
  if (code === 'ERR_INVALID_CHAR' || /Invalid character in header/i.test(text))
    return new TargetError(
      `${what}: the kubeconfig's credentials hold a character no HTTP header may carry`,
      {
        target,
        fix: "check the user's token in the kubeconfig (a line break pasted into it?)",
      },
    );
  return undefined;
}

/**
 * An answer client-node could not read (HTML from a proxy or login page, JSON or bytes of
 * another server, no HTTP at all), or a connection that failed.
 */
function describeTransport(error: unknown, what: string, target: string): TargetError {
  const text = String((error as Error)?.message ?? error);
  const code = causeCode(error);
  if (
    error instanceof NotKubernetes ||
    error instanceof SyntaxError ||
    (error instanceof TypeError && /Cannot read properties/.test(text)) ||
    code?.startsWith('HPE_') ||
    /Unable to determine type|not supported by ObjectSerializer/i.test(text)
  )
    return new TargetError(`${what}: the server does not answer like a Kubernetes API server`, {
      target,
      fix: "check the kubeconfig's server address: it must be the API server (port 6443), not a proxy or web page",
    });
  const connection = connectionProblem(code);
  if (code === 'EPROTO' || code === 'ECONNRESET' || code === 'EPIPE')
    return new TargetError(`${what}: the connection failed before an answer (${connection})`, {
      target,
      fix: "check that the kubeconfig's server is the API server's HTTPS port (6443)",
    });
  if (connection)
    return new TargetError(`${what}: the API server is unreachable (${connection})`, {
      target,
      fix: 'check the cluster is up and the kubeconfig server address is reachable from here',
    });
  // Anything else is not put in words here: a library's message may quote what it was handed.
  return new TargetError(
    `${what}: the request failed (${code ?? (error as Error)?.name ?? 'unknown error'})`,
    {
      target,
      fix: 'rerun with --debug to see where',
      cause: error,
    },
  );
}

/**
 * Every answer of the API server's we read is JSON with a `kind` (an object, a list, a
 * Status), or plain text (a pod's log). HTML, bytes we never asked for (a compressed body:
 * we send no Accept-Encoding), an empty 2xx, or JSON without a kind come from something else.
 */
async function answersLikeKubernetes(response: ResponseContext): Promise<boolean> {
  const type = String(response.headers['content-type'] ?? '');
  if (/text\/html/i.test(type)) return false;
  const encoding = response.headers['content-encoding'];
  if (encoding && encoding !== 'identity') return false;
  if (response.httpStatusCode < 200 || response.httpStatusCode > 299 || /^text\/plain/i.test(type))
    return true;
  const text = await response.body.text();
  // Every answer carries a kind, but /version's (apimachinery pkg/version Info: gitVersion, no kind).
  return /^\s*\{/.test(text) && /"(kind|gitVersion)"\s*:\s*"/.test(text);
}

/** The same words for the same bound as the Proxmox and Image Factory clients (core/network-errors.ts). */
const TIMEOUT_WORDS: Record<KubeTimeout['phase'], string> = {
  connect: 'no connection within',
  answer: 'no answer within',
  stalled: 'the answer stopped coming for',
  total: 'no complete answer within',
};

/** An answer that is not the Kubernetes API's (HTML). */
class NotKubernetes extends Error {
  override name = 'NotKubernetes';
}

function statusOf(error: ApiException<unknown>): { message?: string; details?: unknown } | undefined {
  let body: unknown = error.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch (error) {
      // expected: SyntaxError — a body that is not JSON is no Status (and is never quoted)
      if (!(error instanceof SyntaxError)) throw error;
      return undefined;
    }
  }
  if (body === null || typeof body !== 'object') return undefined;
  // A server's Status is read for what it says, whatever else it holds: only a string is a message.
  const { message, details } = body as { message?: unknown; details?: unknown };
  return { message: typeof message === 'string' ? message : undefined, details };
}

function crdMissing(error: ApiException<unknown>): boolean {
  return (
    error.code === 404 &&
    /could not find the requested resource/.test(statusOf(error)?.message ?? String(error.body))
  );
}

/** The cluster does not serve the kind asked for: its CRD is not installed. */
export class KindNotServed extends TargetError {}

function crdError(what: string, target: string): TargetError {
  return new KindNotServed(`${what}: the cluster does not know this kind (its CRD is not installed)`, {
    target,
    fix: /GpuDevicePlugin/.test(what)
      ? "install Intel's device plugin operator (it needs cert-manager), or use plugin mode daemonset"
      : /NodeFeatureRule/.test(what)
        ? 'install Node Feature Discovery, or set nodeFeatureRule: false'
        : 'install the CRD first',
  });
}

function describe(object: Manifest): string {
  return `${object.kind} ${object.metadata.namespace ? `${object.metadata.namespace}/` : ''}${object.metadata.name}`;
}
