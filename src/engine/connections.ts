// Everything the engine talks to, opened from the lab file: the Proxmox API, each host
// and Ubuntu guest over SSH, talosctl, the Image Factory and the Kubernetes API. The demo
// lab supplies the same interface with its in-process machines and simulators.

import type { HostAccess } from '../access/host.ts';
import { type KubeApi, openKube } from '../cluster/kube.ts';
import type { Lab } from '../config/lab.ts';
import { shownPath } from '../config/paths.ts';
import { UsageError } from '../core/errors.ts';
import type { GuestEnvironment } from '../guest/provider.ts';
import { ImageFactory } from '../guest/talos/factory.ts';
import { findTalosctl, type Talosctl, talosctlAt } from '../guest/talos/talosctl.ts';
import type { OsImageSource } from '../guest/talos/version.ts';
import { TALOS_EXTENSION_LABEL_PREFIX } from '../knowledge/pins.ts';
import { ProxmoxApi } from '../proxmox/api.ts';
import { loadTokenSecret, ProxmoxClient } from '../proxmox/client.ts';

export type LabVm = Lab['vms'][number];

export interface LabConnections {
  proxmox: ProxmoxApi;
  /** Opens a Proxmox node's shell (host layer); a new connection each call. */
  host(node: string): Promise<HostAccess>;
  /** Opens an Ubuntu guest's shell. */
  guest(vm: LabVm): Promise<HostAccess>;
  talosctl: Talosctl | undefined;
  factory: ImageFactory;
  kube: KubeApi;
  /** Where Talos files are written when talosctl is absent. */
  talosOut: string;
  close(): Promise<void>;
}

export interface SshSettings {
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
}

/** How long to wait for any server of the lab (README, "Timeouts"). */
export interface NetworkTimeouts {
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
}

/** The Proxmox API of the lab file: its token secret loaded, its TLS trust applied. */
export async function openProxmox(
  lab: Lab,
  timeouts: NetworkTimeouts = {},
): Promise<{ api: ProxmoxApi; close(): Promise<void> }> {
  const p = lab.proxmox;
  const written = lab.source?.written ?? {};
  const secret = await loadTokenSecret(
    p.tokenSecretFile
      ? { file: p.tokenSecretFile, shown: shownPath(p.tokenSecretFile, written[p.tokenSecretFile]) }
      : { env: p.tokenSecretEnv as string },
  );
  const client = new ProxmoxClient({
    baseUrl: p.url,
    tokenId: p.token,
    secret,
    tls: p.caFile ? { caFile: p.caFile } : p.fingerprint ? { fingerprint: p.fingerprint } : { system: true },
    caFileShown: p.caFile ? shownPath(p.caFile, written[p.caFile]) : undefined,
    ...timeouts,
  });
  return { api: new ProxmoxApi(client, p.token), close: () => client.close() };
}

/** The lab's Kubernetes API, from the kubeconfig the lab file names (or kubectl's default). */
export function openLabKube(lab: Lab, timeouts: NetworkTimeouts = {}): KubeApi {
  const file = lab.kubernetes.kubeconfig;
  return openKube({
    kubeconfig: file,
    kubeconfigShown: file ? lab.source?.written[file] : undefined,
    context: lab.kubernetes.context,
    connectTimeoutMs: timeouts.connectTimeoutMs,
    requestTimeoutMs: timeouts.requestTimeoutMs,
  });
}

export async function connectLab(
  lab: Lab,
  ssh: SshSettings & NetworkTimeouts,
  talosOut: string,
): Promise<LabConnections> {
  const proxmox = await openProxmox(lab, ssh);
  const { connectSsh } = await import('../access/ssh.ts');
  const open = (url: string) =>
    connectSsh({
      url,
      identityFile: ssh.identity,
      knownHostsFile: ssh.knownHosts,
      acceptNewHostKey: ssh.acceptNewHostKey === true,
      connectTimeoutMs: ssh.connectTimeoutMs,
    });
  const bin = await findTalosctl();
  let kube: KubeApi;
  try {
    kube = openLabKube(lab, ssh);
  } catch (error) {
    // expected: anything — rethrown once the Proxmox connection opened above is closed
    await proxmox.close();
    throw error;
  }
  const factory = new ImageFactory(lab.imageFactory, ssh);
  return {
    proxmox: proxmox.api,
    host: (node) => {
      const url = lab.hosts.find((h) => h.node === node)?.ssh;
      if (!url)
        throw new UsageError(`host ${node} has no ssh: in the lab file`, {
          fix: 'add ssh: ssh://root@<address>',
        });
      return open(url);
    },
    guest: (vm) => {
      if (!vm.guest)
        throw new UsageError(`VM ${vm.vmid} has no guest: in the lab file`, {
          fix: 'add guest: ssh://user@<address>',
        });
      return open(vm.guest);
    },
    talosctl: bin ? talosctlAt(bin) : undefined,
    factory,
    kube,
    talosOut,
    close: async () => {
      await Promise.all([proxmox.close(), factory.close()]);
    },
  };
}

/**
 * Where a Talos VM's running version and extensions can be read when talosctl is absent: its
 * Kubernetes node (osImage; the labels Talos sets per extension, or the annotation when the
 * version is no valid label value — TALOS_EXTENSION_LABEL_PREFIX).
 */
export function osImageOf(kube: () => KubeApi, vm: { kubernetesNode?: string }): OsImageSource | undefined {
  const node = vm.kubernetesNode;
  if (!node) return undefined;
  // Version and extensions come from the same Node object: read once per source (one gather).
  let fetched: ReturnType<KubeApi['get']> | undefined;
  const nodeObject = () => {
    fetched ??= kube().get('v1', 'Node', node);
    return fetched;
  };
  return {
    node,
    read: async () => {
      const object = await nodeObject();
      const image = (object as { status?: { nodeInfo?: { osImage?: unknown } } } | undefined)?.status
        ?.nodeInfo?.osImage;
      return typeof image === 'string' ? image : undefined;
    },
    extensions: async () => {
      const object = await nodeObject();
      if (!object) return undefined;
      const keys = [
        ...Object.keys(object.metadata.labels ?? {}),
        ...Object.keys(object.metadata.annotations ?? {}),
      ];
      const names = keys
        .filter((key) => key.startsWith(TALOS_EXTENSION_LABEL_PREFIX))
        .map((key) => key.slice(TALOS_EXTENSION_LABEL_PREFIX.length))
        // The Image Factory's schematic id is published under the same prefix: no extension.
        .filter((name) => name !== 'schematic');
      return [...new Set(names)];
    },
  };
}

/** What the guest providers reach through the lab's connections. */
export function guestEnvironment(
  connections: LabConnections,
  waits: { rebootTimeoutMs?: number; pollMs?: number } = {},
): GuestEnvironment {
  return {
    openShell: (vm) => connections.guest(vm),
    talosctl: connections.talosctl,
    factory: connections.factory,
    osImage: (vm) => osImageOf(() => connections.kube, vm),
    outRoot: connections.talosOut,
    ...waits,
  };
}
