// The options every host-reading command shares: --host, --root and the SSH knobs.

import type { Command } from 'commander';
import type { HostAccess } from '../access/host.ts';
import { UsageError } from '../core/errors.ts';

export interface HostOptions {
  host?: string;
  root?: string;
  identity?: string;
  knownHosts?: string;
  acceptNewHostKey?: boolean;
  connectTimeout?: string;
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
  return command
    .option('--identity <file>', 'SSH private key (default: keys in ssh-agent)')
    .option(
      '--known-hosts <file>',
      'known_hosts file to check host keys against (default: ~/.ssh/known_hosts)',
    )
    .option(
      '--accept-new-host-key',
      'trust and record a host key never seen before (a changed key is always refused)',
    )
    .option('--connect-timeout <seconds>', 'give up connecting after this long', '15');
}

/** Opens the host the options name; without --host or --root, this machine's own files. */
export async function openHost(options: HostOptions): Promise<HostAccess> {
  if (options.host && options.root)
    throw new UsageError('--host and --root exclude each other', { fix: 'pass one' });
  if (options.host) {
    const seconds = Number(options.connectTimeout ?? '15');
    if (!Number.isFinite(seconds) || seconds <= 0) {
      throw new UsageError(
        `--connect-timeout must be a positive number of seconds, not ${options.connectTimeout}`,
      );
    }
    const { connectSsh } = await import('../access/ssh.ts');
    return connectSsh({
      url: options.host,
      identityFile: options.identity,
      knownHostsFile: options.knownHosts,
      acceptNewHostKey: options.acceptNewHostKey === true,
      connectTimeoutMs: seconds * 1000,
    });
  }
  const { CapturedRoot } = await import('../access/captured-root.ts');
  return new CapturedRoot(options.root ?? '/').open();
}
