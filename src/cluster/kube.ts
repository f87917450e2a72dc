// The Kubernetes side effects of the cluster layer behind one small interface: server-
// side apply as `igpu-split`, get/list/delete, cordon, eviction, pod logs. Built on
// @kubernetes/client-node from a kubeconfig and context; every failure becomes one line
// naming the cluster and what to do (no kubeconfig, unreachable, RBAC with the verb and
// resource, a CRD that is not installed).

import {
  ApiException,
  CoreV1Api,
  createConfiguration,
  type KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  ServerConfiguration,
  wrapHttpLibrary,
} from '@kubernetes/client-node';
import { TargetError } from '../core/errors.ts';
import { AnswerTooLarge } from '../core/http-answer.ts';
import { clip } from '../core/text.ts';
import { CONNECT_TIMEOUT_MS, REQUEST_TIMEOUT_MS, reportRetry, seconds, WaitWatch } from '../core/waits.ts';
import { BoundedKubeHttp, KubeTimeout } from './kube-http.ts';
import { type KubeconfigSource, loadKubeconfig } from './kubeconfig.ts';
import { FIELD_MANAGER, type Manifest } from './objects.ts';

export type KubeObject = Manifest & { status?: Record<string, unknown>; spec?: Record<string, unknown> };

export interface KubeApi {
  readonly target: string;
  apply(object: Manifest): Promise<KubeObject>;
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
}

export interface KubeOptions extends KubeconfigSource {
  attempts?: number;
  backoffMs?: number;
  connectTimeoutMs?: number;
  /** One request's answer, once connected. */
  requestTimeoutMs?: number;
}

export function openKube(options: KubeOptions = {}): KubeApi {
  const { config } = loadKubeconfig(options);
  return new ClientNodeKube(config, options);
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

  constructor(config: KubeConfig, options: KubeOptions = {}) {
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
      authMethods: { default: config },
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
            // A proxy's or login page's HTML is no API answer, whatever its status.
            if (/text\/html/i.test(String(response.headers['content-type'] ?? ''))) throw new NotKubernetes();
            return response;
          },
        },
      ],
    });
    this.objects = ObjectApi.of(config, configuration);
    this.core = new CoreV1Api(configuration);
  }

  async apply(object: Manifest): Promise<KubeObject> {
    // force: these objects are ours; another manager's values on them are taken over.
    return this.call(`apply ${describe(object)}`, () =>
      this.objects.patch(object, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    ) as Promise<KubeObject>;
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
        // A retry after a create that did land (the answer was lost) finds it there.
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
      if (error instanceof ApiException && error.code === 404) return;
      throw this.explain(error, `delete ${kind} ${name}`);
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
      if (error instanceof ApiException && error.code === 429) {
        const status = statusOf(error);
        const cause = (status?.details as { causes?: { message?: string }[] } | undefined)?.causes?.[0]
          ?.message;
        return { blocked: cause ?? status?.message ?? 'a disruption budget refused' };
      }
      if (error instanceof ApiException && error.code === 404) return {};
      throw this.explain(error, `evict pod ${namespace}/${name}`);
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
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.watch.track(what, run());
      } catch (error) {
        const transient =
          (error instanceof ApiException && error.code >= 500) ||
          (!(error instanceof ApiException) &&
            !(error instanceof KubeTimeout) &&
            /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|socket hang up/i.test(
              String((error as { cause?: unknown })?.cause ?? error),
            ));
        if (!transient || attempt >= this.attempts)
          throw this.explain(error, attempt > 1 ? `${what} (${attempt} attempts)` : what);
        const delayMs = this.backoffMs * 2 ** (attempt - 1);
        reportRetry({
          target: this.target,
          what,
          reason: error instanceof ApiException ? `HTTP ${error.code}` : 'no connection',
          delayMs,
          attempt,
          attempts: this.attempts,
        });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
  }

  private explain(error: unknown, what: string): TargetError {
    const target = this.target;
    if (error instanceof ApiException) {
      const status = statusOf(error);
      const message = status?.message ?? String(error.body).slice(0, 200);
      if (error.code === 401)
        return new TargetError(`${what}: unauthorized`, {
          target,
          fix: 'the kubeconfig credentials are wrong or expired',
        });
      if (error.code === 403) {
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
    if (error instanceof KubeTimeout)
      return new TargetError(
        `${what}: ${error.phase === 'connect' ? 'no connection' : 'no answer'} within ${seconds(error.ms)}`,
        {
          target,
          fix: 'check that the API server is up and reachable from here (kubectl get --raw /readyz)',
        },
      );
    if (error instanceof AnswerTooLarge)
      return new TargetError(`${what}: ${error.message}`, {
        target,
        fix: "check the kubeconfig's server address: it must be the API server",
      });
    const text = String((error as Error)?.message ?? error);
    if (/Unrecognized API version and kind/i.test(text)) return crdError(what, target);
    const cause = (error as { cause?: { code?: string } })?.cause?.code ?? (error as { code?: string })?.code;
    if (cause === 'ECONNREFUSED' || /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|fetch failed/.test(text))
      return new TargetError(`${what}: the API server is unreachable (${cause ?? clip(text, 80)})`, {
        target,
        fix: 'check the cluster is up and the kubeconfig server address is reachable from here',
      });
    if (cause === 'ECONNRESET' || cause === 'EPROTO' || /ssl|tls|socket hang up/i.test(text))
      return new TargetError(`${what}: the connection failed before an answer (${cause ?? 'TLS'})`, {
        target,
        fix: "check that the kubeconfig's server is the API server's HTTPS port (6443)",
      });
    if (cause === 'ERR_INVALID_CHAR' || /Invalid character in header/i.test(text))
      return new TargetError(
        `${what}: the kubeconfig's credentials hold a character no HTTP header may carry`,
        {
          target,
          fix: "check the user's token in the kubeconfig (a line break pasted into it?)",
        },
      );
    // An exec credential plugin's messages may hold what it was about to hand out: never quoted.
    if (/exec|credential|plugin|stderr/i.test(text))
      return new TargetError(`${what}: the kubeconfig's exec credential plugin failed`, {
        target,
        fix: 'run the plugin the kubeconfig names by hand to see why (kubectl get nodes shows the same)',
      });
    // An answer client-node could not read: HTML from a proxy or login page, or another server.
    if (
      error instanceof NotKubernetes ||
      /Unable to determine type|not supported by ObjectSerializer/i.test(text)
    )
      return new TargetError(`${what}: the server does not answer like a Kubernetes API server`, {
        target,
        fix: "check the kubeconfig's server address: it must be the API server (port 6443), not a proxy or web page",
      });
    return new TargetError(`${what}: ${clip(text)}`, {
      target,
      fix: 'rerun with --debug for details',
    });
  }
}

/** An answer that is not the Kubernetes API's (HTML). */
class NotKubernetes extends Error {}

function statusOf(
  error: ApiException<unknown>,
): { message?: string; reason?: string; details?: unknown } | undefined {
  const body = error.body;
  if (body && typeof body === 'object') return body as { message?: string };
  try {
    return JSON.parse(String(body)) as { message?: string };
  } catch {
    return undefined;
  }
}

function crdMissing(error: ApiException<unknown>): boolean {
  return (
    error.code === 404 &&
    /could not find the requested resource/.test(statusOf(error)?.message ?? String(error.body))
  );
}

function crdError(what: string, target: string): TargetError {
  return new TargetError(`${what}: the cluster does not know this kind (its CRD is not installed)`, {
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
