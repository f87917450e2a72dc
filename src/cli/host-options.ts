// The options every host-reading command shares: --host, --root and the SSH knobs.

import type { Command } from 'commander';
import type { HostAccess } from '../access/host.ts';
import { UsageError } from '../core/errors.ts';
import { addConnectTimeout, timeoutsOf } from './option-checks.ts';

export interface HostOptions {
  host?: string;
  root?: string;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  connectTimeout?: number;
}

export function addHostOptions(command: Command, allowRoot: boolean): Command {
  command.option('--host <url>', 'read a live host over SSH: ssh://user@host[:port]');
  addSshOptions(command);
  if (allowRoot)
    command.option('--root <dir>', 'read a captured tree instead of a live host (nothing is executed)');
  return command;
}

/** How SSH connections are made and trusted (hosts and Ubuntu guests alike). */
export function addSshOptions(command: Command): Command {
  command
    .option('--identity <file>', 'SSH private key (default: keys in ssh-agent)')
    .option(
      '--known-hosts <file>',
      'known_hosts file to check host keys against (default: ~/.ssh/known_hosts)',
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
