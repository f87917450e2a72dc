// The Talos version a node runs, read rather than assumed, and what moving it to the lab
// file's version means.
//
// Read from `talosctl version --nodes <node>`: the server part prints a `Tag:` line per node
// (siderolabs/talos cmd/talosctl/cmd/talos/version.go and pkg/machinery/version/version.go
// versionTemplate, v1.10.9 to v1.13.9 alike). Without talosctl, from the Kubernetes node's
// status.nodeInfo.osImage: the kubelet reports the os-release PRETTY_NAME there (kubernetes
// pkg/kubelet/nodestatus/setters.go, OSImage = ContainerOsVersion), and Talos writes
// PRETTY_NAME="Talos (<tag>)" (siderolabs/talos pkg/machinery/constants/constants.go @v1.10.9).
// Upgrades are tested only between adjacent minor releases, so a longer jump is refused with
// the path Talos documents (website/content/v1.11/talos-guides/upgrading-talos.md @v1.11.0).

import { RefusedError, TargetError, UsageError } from '../../core/errors.ts';
import { clip } from '../../core/text.ts';
import { waitVisibly } from '../../core/waits.ts';
import { TALOS_NEWEST_PATCH } from '../../knowledge/pins.ts';
import type { Talosctl } from './talosctl.ts';

/** How long `talosctl version` may take: it is one small API call. */
export const TALOSCTL_VERSION_TIMEOUT_MS = 30_000;

export interface RunningVersion {
  version: string;
  /** Where it was read, for the plan: `talosctl version` or `node k3s-1 osImage`. */
  from: string;
}

/** The Kubernetes node a Talos VM is, and a way to read its osImage. */
export interface OsImageSource {
  node: string;
  read: () => Promise<string | undefined>;
  /**
   * The extensions the node's labels (or annotations) say it runs, by name (`i915`), or
   * undefined when the node is not in the cluster: what a Talos node shows without talosctl.
   */
  extensions?: () => Promise<string[] | undefined>;
}

const RELEASE = /^v(\d+)\.(\d+)\.(\d+)$/;

/** The server's `Tag:` from `talosctl version` output (whatever it says), or undefined when it has none. */
export function serverTag(stdout: string): string | undefined {
  const lines = stdout.split('\n');
  const server = lines.findIndex((line) => line.trim() === 'Server:');
  if (server < 0) return undefined;
  for (const line of lines.slice(server + 1)) {
    const tag = /^\s*Tag:\s+(\S+)\s*$/.exec(line)?.[1];
    if (tag !== undefined) return tag;
  }
  return undefined;
}

/** The server's Talos release from `talosctl version` output, or undefined. */
export function parseTalosctlVersion(stdout: string): string | undefined {
  const tag = serverTag(stdout);
  return tag !== undefined && RELEASE.test(tag) ? tag : undefined;
}

/** `Talos (v1.10.9)` → v1.10.9; undefined for any other operating system. */
export function talosVersionFromOsImage(osImage: string): string | undefined {
  const tag = /^Talos \((v\d+\.\d+\.\d+)\)$/.exec(osImage.trim())?.[1];
  return tag;
}

/**
 * The version the node runs: from talosctl when it is here, else from the Kubernetes node's
 * osImage; undefined when neither can tell. A node that is not Talos, or a talosctl that
 * fails or answers garbage, is an error naming the node.
 */
export async function readRunningVersion(
  node: string,
  talosctl: Talosctl | undefined,
  osImage: OsImageSource | undefined,
): Promise<RunningVersion | undefined> {
  if (talosctl) {
    const result = await waitVisibly(
      { target: `talos ${node}`, what: 'talosctl version', limitMs: TALOSCTL_VERSION_TIMEOUT_MS },
      talosctl(['version', '--nodes', node], { timeoutMs: TALOSCTL_VERSION_TIMEOUT_MS }),
    );
    const fix = `check talosctl reaches the node (talosconfig, endpoints): talosctl version --nodes ${node}`;
    if (result.code !== 0) {
      throw new TargetError(`talosctl version failed: ${firstLine(result.stderr || result.stdout)}`, {
        target: `talos ${node}`,
        fix,
        nothingChanged: true,
      });
    }
    const tag = serverTag(result.stdout);
    const version = parseTalosctlVersion(result.stdout);
    if (!version) {
      throw new TargetError(
        tag === undefined
          ? 'talosctl version printed no server Tag: line'
          : `the node's Tag ${clip(tag, 40)} is not a Talos release such as v1.10.9 (a pre-release or a build of its own)`,
        {
          target: `talos ${node}`,
          fix: tag === undefined ? fix : 'set talos.version in the lab file to the release to install',
          nothingChanged: true,
        },
      );
    }
    return { version, from: 'talosctl version' };
  }
  if (!osImage) return undefined;
  const image = await osImage.read();
  if (image === undefined) return undefined;
  const version = talosVersionFromOsImage(image);
  if (!version) {
    throw new RefusedError(
      `Kubernetes node ${osImage.node} runs ${JSON.stringify(image.slice(0, 80))} (its osImage), not Talos`,
      {
        target: `talos ${node}`,
        fix: 'set os: ubuntu for this VM in the lab file, or point kubernetesNode at the Talos node',
      },
    );
  }
  return { version, from: `node ${osImage.node} osImage` };
}

export interface VersionChange {
  /** The version the plan installs. */
  version: string;
  kind: 'same' | 'patch' | 'minor' | 'downgrade' | 'unknown';
  /** For the plan: `Talos v1.10.9 → v1.11.3: a minor upgrade`. */
  text: string;
}

/**
 * The version to install and what it means against the running one. Refused: a downgrade
 * not asked for, and an upgrade across more than one minor release (with Talos's path).
 */
export function versionChange(
  node: string,
  wanted: string | undefined,
  running: RunningVersion | undefined,
  allowDowngrade: boolean,
): VersionChange {
  const target = `talos ${node}`;
  if (wanted === undefined) {
    if (!running) {
      throw new UsageError(
        `talos.version is not set for node ${node} and the version it runs could not be read (no talosctl here, and no Kubernetes node named by kubernetesNode that the cluster knows)`,
        {
          target,
          fix: `set talos.version in the lab file to what talosctl version --nodes ${node} shows, or set kubernetesNode for the VM`,
        },
      );
    }
    return {
      version: running.version,
      kind: 'same',
      text: `Talos ${running.version} (as it runs, ${running.from})`,
    };
  }
  if (!running) {
    return {
      version: wanted,
      kind: 'unknown',
      text: `Talos ${wanted} (the version the node runs could not be read)`,
    };
  }
  const [have, want] = [parts(running.version), parts(wanted)];
  const order = compare(want, have);
  if (order === 0) return { version: wanted, kind: 'same', text: `Talos ${wanted} (as it runs)` };
  if (order < 0) {
    if (!allowDowngrade) {
      throw new RefusedError(
        `node ${node} runs Talos ${running.version} (${running.from}); the lab file's ${wanted} would be a downgrade`,
        {
          target,
          fix: `set talos.version to ${running.version}, or add allowDowngrade: true to the node's talos: entry if a downgrade is meant`,
        },
      );
    }
    return {
      version: wanted,
      kind: 'downgrade',
      text: `Talos ${running.version} → ${wanted}: a downgrade (allowed)`,
    };
  }
  if (want[0] !== have[0] || want[1] - have[1] > 1) {
    const path = upgradePath(running.version, wanted);
    throw new RefusedError(
      `node ${node} runs Talos ${running.version}; ${wanted} is more than one minor release ahead, and Talos tests upgrades only between adjacent minors`,
      {
        target,
        fix: `upgrade in steps, one talos.version and apply at a time: ${path.join(' → ')}`,
      },
    );
  }
  const kind = want[1] === have[1] ? 'patch' : 'minor';
  return { version: wanted, kind, text: `Talos ${running.version} → ${wanted}: a ${kind} upgrade` };
}

/** Talos's recommended path: the newest patch of the current and each intermediate minor, then the target. */
export function upgradePath(from: string, to: string): string[] {
  const [have, want] = [parts(from), parts(to)];
  const path = [from];
  for (let minor = have[1]; minor < want[1]; minor++) {
    const newest = TALOS_NEWEST_PATCH[`${have[0]}.${minor}`] ?? `the newest v${have[0]}.${minor} patch`;
    if (newest !== path.at(-1)) path.push(newest);
  }
  path.push(to);
  return path;
}

function parts(version: string): [number, number, number] {
  const match = RELEASE.exec(version);
  return [Number(match?.[1]), Number(match?.[2]), Number(match?.[3])];
}

function compare(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] as number) - (b[i] as number);
  return 0;
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.slice(0, 200) || 'no output';
}
