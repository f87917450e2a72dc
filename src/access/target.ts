// Parsing of `--host ssh://user@host[:port]`.

import { UsageError } from '../core/errors.ts';

export interface SshTarget {
  user: string;
  host: string;
  port: number;
  /** Canonical form used in messages: ssh://user@host:port */
  url: string;
}

/** The address as typed, with any password replaced: it may end up in a message. */
function shown(text: string): string {
  return JSON.stringify(text.replace(/^([a-z]+:\/\/)?([^/@:]*):[^@/]*@/i, '$1$2:***@'));
}

export function parseSshTarget(text: string): SshTarget {
  const withScheme = text.includes('://') ? text : `ssh://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch (error) {
    // expected: TypeError from new URL — not an address; anything else is rethrown
    if (!(error instanceof TypeError)) throw error;
    throw new UsageError(`not a host address: ${shown(text)}`, { fix: 'use ssh://user@host[:port]' });
  }
  if (url.protocol !== 'ssh:') {
    throw new UsageError(`unsupported scheme ${url.protocol.replace(':', '')} in ${shown(text)}`, {
      fix: 'use ssh://user@host[:port]',
    });
  }
  if (!url.hostname || url.pathname.replace(/^\/$/, '') !== '' || url.password) {
    throw new UsageError(`not a host address: ${shown(text)}`, {
      fix: 'use ssh://user@host[:port] (no password, no path)',
    });
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = url.port ? Number(url.port) : 22;
  if (port < 1 || port > 65_535)
    throw new UsageError(`port ${port} in ${shown(text)} is not a TCP port`, {
      fix: 'use a port from 1 to 65535',
    });
  const user = decodeURIComponent(url.username) || 'root';
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return { user, host, port, url: `ssh://${user}@${hostPart}:${port}` };
}
