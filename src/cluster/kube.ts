// The Kubernetes side effects of the cluster layer behind one small interface: server-
// side apply as `igpu-split`, get/list/delete, cordon, eviction, pod logs. Built on
// @kubernetes/client-node from a kubeconfig and context; every failure becomes one line
// naming the cluster and what to do (no kubeconfig, unreachable, RBAC with the verb and
// resource, a CRD that is not installed).

import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  ApiException,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
} from '@kubernetes/client-node';
import { TargetError, UsageError } from '../core/errors.ts';
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

export function openKube(
  options: { kubeconfig?: string; context?: string; attempts?: number; backoffMs?: number } = {},
): KubeApi {
  const config = new KubeConfig();
  const file =
    options.kubeconfig ?? process.env.KUBECONFIG?.split(':')[0] ?? join(homedir(), '.kube', 'config');
  if (!existsSync(file)) {
    throw new UsageError(`no kubeconfig at ${file}`, {
      fix: 'set kubernetes.kubeconfig in the lab file, or KUBECONFIG (K3s: /etc/rancher/k3s/k3s.yaml; Talos: talosctl kubeconfig)',
    });
  }
  config.loadFromFile(file);
  if (options.context) {
    if (!config.getContexts().some((c) => c.name === options.context))
      throw new UsageError(`kubeconfig ${file} has no context ${options.context}`, {
        fix: `use one of: ${config
          .getContexts()
          .map((c) => c.name)
          .join(', ')}`,
      });
    config.setCurrentContext(options.context);
  }
  return new ClientNodeKube(config, { attempts: options.attempts, backoffMs: options.backoffMs });
}

class ClientNodeKube implements KubeApi {
  readonly target: string;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;

  constructor(config: KubeConfig, retry: { attempts?: number; backoffMs?: number } = {}) {
    this.target = config.getCurrentCluster()?.server ?? 'kubernetes';
    this.attempts = retry.attempts ?? 4;
    this.backoffMs = retry.backoffMs ?? 500;
    this.objects = KubernetesObjectApi.makeApiClient(config);
    this.core = config.makeApiClient(CoreV1Api);
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
   * create of a named object): an unreachable server or a 5xx is retried, bounded, before
   * it becomes the error.
   */
  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        const transient =
          (error instanceof ApiException && error.code >= 500) ||
          (!(error instanceof ApiException) &&
            /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|fetch failed|socket hang up/i.test(
              String((error as { cause?: unknown })?.cause ?? error),
            ));
        if (!transient || attempt >= this.attempts) throw this.explain(error, what);
        await new Promise((resolve) => setTimeout(resolve, this.backoffMs * 2 ** (attempt - 1)));
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
          `${what}: forbidden${rbac ? `: cannot ${rbac[1]} ${rbac[2]}${rbac[3] ? `.${rbac[3]}` : ''}` : `: ${message}`}`,
          {
            target,
            fix: rbac
              ? `grant the kubeconfig's user "${rbac[1]}" on "${rbac[2]}" (a Role/ClusterRole binding), or use an admin kubeconfig`
              : 'check the kubeconfig user’s RBAC permissions',
          },
        );
      }
      if (crdMissing(error)) return crdError(what, target);
      return new TargetError(`${what}: HTTP ${error.code} ${message}`, { target, fix: 'see the message' });
    }
    const text = String((error as Error)?.message ?? error);
    if (/Unrecognized API version and kind/i.test(text)) return crdError(what, target);
    const cause = (error as { cause?: { code?: string } })?.cause?.code ?? (error as { code?: string })?.code;
    if (cause === 'ECONNREFUSED' || /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|fetch failed/.test(text))
      return new TargetError(`${what}: the API server is unreachable (${cause ?? text.slice(0, 80)})`, {
        target,
        fix: 'check the cluster is up and the kubeconfig server address is reachable from here',
      });
    return new TargetError(`${what}: ${text.slice(0, 200)}`, {
      target,
      fix: 'rerun with --debug for details',
    });
  }
}

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
