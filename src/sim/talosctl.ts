// A talosctl stand-in for the demo lab's one Talos node: it answers only the subcommands
// igpu-split runs (version, patch machineconfig, upgrade, get extensions, ls), in the
// output formats of siderolabs/talos at v1.10.9, and keeps the node's state in a file so
// that the in-process demo and a shell using `igpu-split demo --serve` drive the same node.
// Run as a program (src/sim/talosctl-main.ts) it is the `talosctl` the playground puts on PATH.

import { writeFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import type { CommandResult } from '../access/host.ts';
import { exists } from '../core/files.ts';

const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });

/** What the stand-in says it is (`talosctl version --client`, and every refusal). */
export const STAND_IN = 'igpu-split demo stand-in for talosctl';

/** The version block of pkg/machinery/version/version.go (versionTemplate) at v1.10.9. */
function versionBlock(tag: string, sha: string): string {
  return `\tTag:         ${tag}\n\tSHA:         ${sha}\n\tBuilt:       \n\tGo version:  demo\n\tOS/Arch:     linux/amd64\n`;
}

/**
 * What `talosctl version --nodes <node>` prints: a client and a server block in the layout of
 * siderolabs/talos cmd/talosctl/cmd/talos/version.go at v1.10.9 (client block, then
 * `Server:` with `NODE:` and the server's block); SHA, build date and Go version are the demo's own.
 */
export function talosctlVersionText(node: string, tag: string): string {
  return `Client:\n${versionBlock(tag, 'demo')}Server:\n\tNODE:        ${node}\n${versionBlock(tag, 'demo')}\tEnabled:     RBAC\n`;
}

/** The node as a talosctl sees it: no extensions until the upgrade, i915 and intel-ucode after. */
export interface TalosNodeSpec {
  /** The node's address, as the lab file's `talos.node` names it. */
  address: string;
  /** The Talos release it runs. */
  version: string;
  /** A file whose existence means "upgraded" (so several processes share the node). */
  stateFile: string;
}

export async function answerTalosctl(node: TalosNodeSpec, args: string[]): Promise<CommandResult> {
  const upgraded = await exists(node.stateFile);
  const [verb] = args;
  // `--client` only: version.go returns after the client block (clientOnly).
  if (verb === 'version' && args.includes('--client'))
    return ok(`Client:\n${versionBlock(node.version, 'igpu-split-demo')}${STAND_IN}\n`);
  if (verb === 'version') return ok(talosctlVersionText(node.address, node.version));
  if (verb === 'upgrade') {
    await writeFile(node.stateFile, 'upgraded\n');
    return ok(`watching nodes: [${node.address}]\n    * ${node.address}: post check passed\n`);
  }
  if (verb === 'patch')
    return ok(
      `patched MachineConfigs.config.talos.dev/v1alpha1 at the node ${node.address}\nApplied configuration without a reboot\n`,
    );
  // `-o yaml`: a `---` and `node:` line per resource (cmd/talosctl/cmd/talos/output/yaml.go at
  // v1.10.9), its spec an extensions.Layer (pkg/machinery/resources/runtime/extension_status.go).
  if (verb === 'get' && args[1] === 'extensions') {
    const names = upgraded ? ['i915', 'intel-ucode'] : [];
    return ok(
      names
        .map(
          (name) =>
            `---\n${stringify({ node: node.address, spec: { metadata: { name, version: '20250812' } } })}`,
        )
        .join(''),
    );
  }
  // The short listing: `NODE  NAME` and a line per entry, tab-aligned (cmd/talosctl/cmd/talos/list.go at v1.10.9).
  if (verb === 'ls') {
    const address = node.address.padEnd(10);
    return ok(
      `NODE       NAME\n${address} .\n${upgraded ? `${address} by-path\n${address} card0\n${address} renderD128\n` : ''}`,
    );
  }
  return {
    code: 1,
    stdout: '',
    stderr: `${STAND_IN}: \`talosctl ${args.join(' ')}\` is not emulated (only version, patch, upgrade, get extensions, ls)\n`,
  };
}
