// The options every host-reading command shares: --host (a host of the lab file by its
// node: name, or any host by its ssh:// URL), --lab, --root and the SSH knobs; and the
// hosts they name, each opened when its turn comes.

import { existsSync } from 'node:fs';
import { type Command, Option } from 'commander';
import type { HostAccess } from '../access/host.ts';
import { type HostWishes, hostWishesOf } from '../config/derived.ts';
import type { Lab } from '../config/lab.ts';
import { ManualStepError, UsageError, worstExitCode } from '../core/errors.ts';
import { sayLabNotes } from './lab-notes.ts';
import { addConnectTimeout, addLabOption, timeoutsOf } from './option-checks.ts';
import { jsonText } from './output.ts';

export interface HostOptions {
  host?: string;
  root?: string;
  lab?: string;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  connectTimeout?: number;
}

export function addHostOptions(command: Command, allowRoot: boolean): Command {
  command.option(
    '--host <name|url>',
    "a host of the lab file by its node: name, or any host over SSH: ssh://user@host[:port]; without --host, every host of the lab file (with no lab file, what only reads reads this machine's files)",
  );
  addLabOption(command);
  addSshOptions(command);
  if (allowRoot)
    command.option('--root <dir>', 'read a captured tree instead of a live host (nothing is executed)');
  return command;
}

/** How SSH connections are made and trusted (hosts and Ubuntu guests alike). */
export function addSshOptions(command: Command): Command {
  command
    // The variables let a shell set them once (the playground's demo.env does).
    .addOption(
      new Option('--identity <file>', 'SSH private key (default: keys in ssh-agent)').env(
        'IGPU_SPLIT_IDENTITY',
      ),
    )
    .addOption(
      new Option(
        '--known-hosts <file>',
        'known_hosts file to check host keys against (default: ~/.ssh/known_hosts)',
      ).env('IGPU_SPLIT_KNOWN_HOSTS'),
    )
    .option(
      '--accept-new-host-key',
      'trust and record a host key never seen before (a changed key is always refused)',
    );
  return addConnectTimeout(command);
}

/** Opens the host the options name; without --host or --root, this machine's own files. */
export async function openHost(options: HostOptions): Promise<HostAccess> {
  if (options.host && options.root)
    throw new UsageError('--host and --root exclude each other', { fix: 'pass one' });
  if (options.host) {
    const { connectSsh } = await import('../access/ssh.ts');
    return connectSsh({
      url: options.host,
      identityFile: options.identity,
      knownHostsFile: options.knownHosts,
      acceptNewHostKey: options.acceptNewHostKey === true,
      connectTimeoutMs: timeoutsOf(options).connectTimeoutMs,
    });
  }
  const { CapturedRoot } = await import('../access/captured-root.ts');
  return new CapturedRoot(options.root ?? '/').open();
}

/** One host a command works on: its lab name when it has one, and how to open it (again, after a reboot). */
export interface HostTarget {
  node?: string;
  /** The lab file it was named from, as loaded (host apply reads its VMs from it). */
  lab?: Lab;
  open(): Promise<HostAccess>;
}

/**
 * The hosts the options name: --root's tree; --host's URL; --host's node in the lab file;
 * without --host, every host of the lab file (when --lab was given or igpu-split.yaml is
 * here), else this machine — or, for a command that changes hosts (`live`), a usage error.
 */
export async function hostTargets(
  options: HostOptions,
  command: Command,
  live: boolean,
): Promise<{ fromLab: boolean; targets: HostTarget[] }> {
  if (options.host && options.root)
    throw new UsageError('--host and --root exclude each other', { fix: 'pass one' });
  if (options.root || (options.host?.includes('://') ?? false))
    return { fromLab: false, targets: [{ open: () => openHost(options) }] };
  const lab = options.lab ?? 'igpu-split.yaml';
  const labGiven = ['cli', 'env'].includes(command.getOptionValueSource('lab') ?? '');
  if (!options.host && !labGiven && !existsSync(lab)) {
    if (live)
      throw new UsageError(
        `${command.parent?.name()} ${command.name()} needs a host: no lab file ${lab} here`,
        {
          fix: 'name one with --host ssh://user@host, or its lab file with --lab FILE',
        },
      );
    return { fromLab: false, targets: [{ open: () => openHost(options) }] };
  }
  const { loadLab } = await import('../config/load.ts');
  const loaded = sayLabNotes(await loadLab(lab));
  const hosts = loaded.hosts.filter((h) => !options.host || h.node === options.host);
  if (options.host && hosts.length === 0)
    throw new UsageError(`--host ${options.host}: no host of that node: name in ${lab}`, {
      fix: 'name a host of the lab file, or give its address as ssh://user@host',
    });
  return {
    fromLab: true,
    targets: hosts.map((host) => {
      if (!host.ssh)
        throw new UsageError(`host ${host.node} has no ssh: in ${lab}`, {
          fix: 'add ssh: ssh://root@<address>, or give --host ssh://user@host',
        });
      const url = host.ssh;
      return {
        node: host.node,
        lab: loaded,
        open: () => openHost({ ...options, host: url, root: undefined }),
      };
    }),
  };
}

/** What the lab file asks of the host (its mode, VFs, driver package), when it came from one. */
export function labWishes(target: HostTarget): { wishes?: HostWishes } {
  return target.lab && target.node ? { wishes: hostWishesOf(target.lab, target.node) } : {};
}

/** What one host's run gave: its exit code, and what --json prints for it (filled in as the run goes). */
export interface HostRun {
  code: number;
  json?: unknown;
}

/**
 * Runs `body` on each host the options name, one after the other (a later host is not
 * touched once one throws; one whose checks fail, or that waits for a manual step — a
 * reboot — is said and the next goes on; the exit code is the worst, ranked as README
 * "Exit codes" ranks them). Text goes out as each host is done, under a `host NODE` line
 * when the hosts come from the lab file; --json prints one envelope at the end — one
 * host's result, or `{hosts: [{node, result}]}` for the lab's hosts (docs/json.md) —
 * also when a host failed half-way (then the error follows on stderr).
 */
export async function onEachHost(
  options: HostOptions & { json?: boolean },
  command: Command,
  live: boolean,
  body: (target: HostTarget, run: HostRun) => Promise<void>,
): Promise<void> {
  const { fromLab, targets } = await hostTargets(options, command, live);
  const runs: { node?: string; run: HostRun }[] = [];
  const name = `${command.parent?.parent ? `${command.parent.name()} ` : ''}${command.name()}`;
  try {
    for (const target of targets) {
      if (fromLab && !options.json)
        process.stdout.write(`${runs.length > 0 ? '\n' : ''}host ${target.node}\n`);
      const run: HostRun = { code: 0 };
      runs.push({ node: target.node, run });
      try {
        await body(target, run);
      } catch (error) {
        // expected: ManualStepError — this host waits for the user (a reboot); said, and the next host goes on
        if (!(error instanceof ManualStepError)) throw error;
        process.stderr.write(`igpu-split: ${error.oneLine()}\n`);
        run.code = error.exitCode;
      }
    }
  } finally {
    process.exitCode = worstExitCode(runs.map((r) => r.run.code));
    if (options.json && runs.length > 0)
      process.stdout.write(
        jsonText(
          name,
          fromLab
            ? { hosts: runs.map(({ node, run }) => ({ node, result: run.json ?? null })) }
            : runs[0]?.run.json,
        ),
      );
  }
}
