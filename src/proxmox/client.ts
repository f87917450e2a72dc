// Proxmox VE API client: API-token auth, TLS verified by default (a CA file, or the
// certificate's SHA-256 fingerprint as the Proxmox GUI shows it), bounded retries for
// idempotent calls, and errors that say what broke and what to do — never the secret.

import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { Agent, buildConnector } from 'undici';
import { ENV_NAME } from '../config/lab.ts';
import { shownPath } from '../config/paths.ts';
import { errnoText, IgpuSplitError, TargetError, UsageError } from '../core/errors.ts';
import { readSmallFile } from '../core/files.ts';
import { AnswerTooLarge, type Exchanged, exchange } from '../core/http-answer.ts';
import {
  causeCode,
  certificateProblem,
  connectionProblem,
  describeNetworkError,
  redirectProblem,
} from '../core/network-errors.ts';
import {
  cleanSecret,
  looksLikeTokenSecret,
  MAX_SECRET_BYTES,
  rememberSecret,
  secretProblem,
  shownValue,
} from '../core/secrets.ts';
import { clip } from '../core/text.ts';
import {
  CONNECT_TIMEOUT_MS,
  connectionsTo,
  READ_ATTEMPTS,
  REQUEST_TIMEOUT_MS,
  reportRetry,
  WaitWatch,
} from '../core/waits.ts';

export type TlsTrust = { caFile: string } | { fingerprint: string } | { system: true };

export interface ProxmoxClientOptions {
  /** https://host:8006 */
  baseUrl: string;
  /** USER@REALM!TOKENID — not secret. */
  tokenId: string;
  /** The token's secret, loaded by loadTokenSecret. */
  secret: string;
  tls: TlsTrust;
  /** How the CA file is named in messages (as written in the lab file). */
  caFileShown?: string;
  /** Attempts for idempotent calls (GET) on refused connections and 5xx answers. */
  attempts?: number;
  /** TCP and TLS set-up. */
  connectTimeoutMs?: number;
  /** One request, answer included. */
  requestTimeoutMs?: number;
  /** Base of the exponential backoff between attempts. */
  backoffMs?: number;
}

/** Refuses anything but an https:// URL: the token secret never crosses the network in clear. */
export function checkProxmoxUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    // expected: TypeError from new URL — not a URL; anything else is rethrown
    if (!(error instanceof TypeError)) throw error;
    throw new UsageError(`not a URL: ${shownValue(url)}`, { fix: 'give the API as https://pve1.lan:8006' });
  }
  if (parsed.protocol !== 'https:')
    throw new UsageError(
      `the Proxmox URL ${shownValue(url)} is not https://: the token secret would be sent in clear`,
      {
        fix: 'use https://<node>:8006 (Proxmox serves its API only over HTTPS)',
      },
    );
  if (parsed.username || parsed.password)
    throw new UsageError('the Proxmox URL must not hold a user or password', {
      fix: 'give the token id with --token and the secret in a file or variable',
    });
  // A query or fragment is never part of the API's address, and would be written into the lab file.
  if (parsed.search || parsed.hash)
    throw new UsageError('the Proxmox URL holds a query (?…) or a fragment (#…), which is not shown', {
      fix: 'give only https://<node>:8006',
    });
  return parsed;
}

/**
 * The secret comes from a file or an environment variable, never the command line. It is
 * checked as it is read (one line, printable ASCII) and remembered so that no output can
 * carry it; a message about it names the file or variable, never its content.
 */
export async function loadTokenSecret(
  source: { file: string; shown?: string } | { env: string },
): Promise<string> {
  const fix = 'put only the secret in it, on one line (pveum user token add shows it once)';
  if ('file' in source) {
    // A path that holds a token secret (pasted where the file's name belongs) is never shown.
    const pasted = looksLikeTokenSecret(source.file) || looksLikeTokenSecret(source.shown ?? '');
    const name = pasted
      ? 'the API token secret file (its name looks like a token secret, so it is not shown)'
      : `the API token secret file ${source.shown ?? source.file}`;
    const info = await stat(source.file).catch((error: NodeJS.ErrnoException) => {
      // expected: any failure — rethrown as a UsageError without the cause, whose message may quote a pasted secret.
      // A secret pasted where its file's name belongs (alone, in quotes, as user@realm!id=…):
      // say so without repeating it.
      if (error.code === 'ENOENT' && pasted)
        throw new UsageError(
          'the token secret file is named by what looks like the token secret itself, not a file name',
          {
            fix: 'put the secret in a file (chmod 600) and give that file’s path; rotate the token if the lab file was shared',
          },
        );
      throw new UsageError(`cannot read ${name}: ${errnoText(error)}`, {
        fix: 'create it with only the secret in it (chmod 600), or name an environment variable instead',
      });
    });
    if (!info.isFile())
      throw new UsageError(`${name} is ${info.isDirectory() ? 'a directory' : 'not a regular file'}`, {
        fix,
      });
    if (info.size > MAX_SECRET_BYTES)
      throw new UsageError(`${name} is ${info.size} bytes; a token secret is one short line`, { fix });
    const raw = await readFile(source.file, 'latin1').catch((error: NodeJS.ErrnoException) => {
      // expected: any failure — rethrown as a UsageError naming the file (no cause: it may quote the path)
      throw new UsageError(`cannot read ${name}: ${errnoText(error)}`, { fix: 'check its permissions' });
    });
    const problem = secretProblem(raw);
    if (problem) throw new UsageError(`${name} ${problem}`, { fix });
    const secret = cleanSecret(raw);
    rememberSecret(secret);
    return secret;
  }
  // A name is checked before it is used in a message: the secret itself may have been given.
  if (!ENV_NAME.test(source.env))
    throw new UsageError(
      looksLikeTokenSecret(source.env)
        ? 'the token secret variable is named by what looks like the token secret itself (not shown)'
        : 'the token secret variable is not a variable name (letters, digits and _, not starting with a digit)',
      {
        fix: 'give the name of the variable that holds the secret (e.g. PVE_TOKEN_SECRET); rotate the token if the secret was shared',
      },
    );
  const raw = process.env[source.env];
  if (raw === undefined || raw.trim() === '') {
    throw new UsageError(`environment variable ${source.env} (the API token secret) is not set`, {
      fix: `export ${source.env}=<secret>, or name a secret file instead`,
    });
  }
  const problem = secretProblem(raw);
  if (problem)
    throw new UsageError(`environment variable ${source.env} (the API token secret) ${problem}`, {
      fix: `set ${source.env} to the secret alone`,
    });
  const secret = cleanSecret(raw);
  rememberSecret(secret);
  return secret;
}

/** `host:port` as connected to: the URL's port, or HTTPS's 443 when it names none. */
function addressOf(url: URL): string {
  return `${url.hostname}:${url.port || '443'}`;
}

/**
 * The SHA-256 fingerprint of the certificate a server offers, in the form the lab file's
 * `fingerprint:` takes; read over a connection of its own that sends nothing (no token),
 * only after the verified one refused the certificate, to show the user what to pin.
 * Undefined when the server cannot be reached or offers none.
 */
export function offeredFingerprint(url: URL, timeoutMs: number): Promise<string | undefined> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port: Number(url.port || 443),
      ...(isIP(host) ? {} : { servername: host }),
      // Only to read the certificate: nothing is sent on this connection, and it is closed at once.
      rejectUnauthorized: false,
      timeout: timeoutMs,
    });
    const done = (fingerprint?: string) => {
      socket.destroy();
      resolve(fingerprint);
    };
    socket.once('secureConnect', () => {
      const raw = socket.getPeerX509Certificate();
      done(raw ? normalizeFingerprint(raw.fingerprint256) : undefined);
    });
    // A server that cannot be reached a second time: the error above is shown without it.
    socket.once('error', () => done());
    socket.once('timeout', () => done());
  });
}

/** `AB:CD:…` upper case with colons, as the Proxmox GUI shows SHA-256 fingerprints. */
export function normalizeFingerprint(text: string): string {
  const hex = text
    .replace(/^sha256[:\s]*/i, '')
    .replace(/[^0-9a-f]/gi, '')
    .toUpperCase();
  if (hex.length !== 64)
    throw new TargetError(`not a SHA-256 fingerprint: ${text}`, {
      fix: 'copy it from Datacenter → node → Certificates',
    });
  return hex.match(/../g)?.join(':') ?? hex;
}

export class ProxmoxClient {
  private readonly options: Required<Omit<ProxmoxClientOptions, 'tls' | 'caFileShown'>> & {
    tls: TlsTrust;
    caFileShown?: string;
  };
  private readonly base: URL;
  private readonly watch: WaitWatch;
  private dispatcher: Agent | undefined;

  constructor(options: ProxmoxClientOptions) {
    this.base = checkProxmoxUrl(options.baseUrl);
    this.options = {
      attempts: READ_ATTEMPTS,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      backoffMs: 500,
      ...options,
    };
    // A request may take the connect time and then the answer time: that is when it gives up.
    this.watch = new WaitWatch(this.target, this.options.connectTimeoutMs + this.options.requestTimeoutMs);
  }

  get target(): string {
    return this.options.baseUrl;
  }

  get<T>(path: string, query: Record<string, string | number | boolean> = {}): Promise<T> {
    return this.call<T>('GET', path, query, true);
  }

  post<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>('POST', path, body, false);
  }

  put<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>('PUT', path, body, false);
  }

  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path, {}, false);
  }

  /** Ends every connection at once: a request still waiting on a silent server is given up. */
  async close(): Promise<void> {
    await this.dispatcher?.destroy();
  }

  private async agent(): Promise<Agent> {
    if (this.dispatcher) return this.dispatcher;
    const tls = this.options.tls;
    const timeouts = {
      connectTimeout: this.options.connectTimeoutMs,
      headersTimeout: this.options.requestTimeoutMs,
      bodyTimeout: this.options.requestTimeoutMs,
    };
    if ('fingerprint' in tls) {
      // Pinning: the chain is not checked, the exact certificate is.
      const pin = normalizeFingerprint(tls.fingerprint);
      // No TLS session resumption: a resumed session carries no certificate to compare.
      const base = buildConnector({
        rejectUnauthorized: false,
        maxCachedSessions: 0,
        timeout: this.options.connectTimeoutMs,
      });
      const target = this.target;
      this.dispatcher = new Agent({
        ...timeouts,
        connect: (options, callback) => {
          base(options, (error, socket) => {
            if (error || !socket) return callback(error ?? new Error('no socket'), null);
            const raw = (socket as TLSSocket).getPeerX509Certificate?.();
            const offered = raw ? normalizeFingerprint(raw.fingerprint256) : 'none';
            if (offered !== pin) {
              socket.destroy();
              return callback(
                new TargetError(`the server's certificate fingerprint ${offered} is not the pinned ${pin}`, {
                  target,
                  fix: 'if the node’s certificate was renewed, copy the new fingerprint from Datacenter → node → Certificates; otherwise do not connect',
                }),
                null,
              );
            }
            callback(null, socket);
          });
        },
      });
    } else if ('caFile' in tls) {
      const shown = this.options.caFileShown ?? shownPath(tls.caFile);
      const fix = 'give the cluster CA (/etc/pve/pve-root-ca.pem on any node), or the fingerprint instead';
      const ca = await readSmallFile(tls.caFile).catch((error: unknown) => {
        // expected: any failure — rethrown as a UsageError naming the file
        throw new UsageError(`cannot read the CA file ${shown}: ${errnoText(error)}`, {
          target: this.target,
          fix,
          cause: error,
        });
      });
      try {
        new X509Certificate(ca); // a clear error now beats a TLS failure later
      } catch (error) {
        // expected: anything X509Certificate throws — no PEM certificate; rethrown as a UsageError
        throw new UsageError(`the CA file ${shown} holds no PEM certificate`, {
          target: this.target,
          fix,
          cause: error,
        });
      }
      // Explicit, so that no environment variable can turn verification off.
      this.dispatcher = new Agent({
        ...timeouts,
        connect: { ca, rejectUnauthorized: true, timeout: this.options.connectTimeoutMs },
      });
    } else {
      this.dispatcher = new Agent({
        ...timeouts,
        connect: { rejectUnauthorized: true, timeout: this.options.connectTimeoutMs },
      });
    }
    // For the "still waiting" line: until a connection is open, the connect limit ends the wait.
    const connections = connectionsTo(this.target, this.options.connectTimeoutMs);
    this.dispatcher.on('connect', connections.opened).on('disconnect', connections.closed);
    return this.dispatcher;
  }

  private async call<T>(
    method: string,
    path: string,
    params: Record<string, unknown>,
    idempotent: boolean,
  ): Promise<T> {
    const attempts = idempotent ? this.options.attempts : 1;
    const what = `${method} ${path}`;
    let last: unknown;
    let attempt = 1;
    for (; ; attempt++) {
      try {
        return await this.watch.track(what, this.once<T>(method, path, params));
      } catch (error) {
        // expected: any failure — retried when retriable, else rethrown below
        last = error;
        if (!retriable(error) || attempt >= attempts) break;
        const delayMs = this.options.backoffMs * 2 ** (attempt - 1);
        reportRetry({
          target: this.target,
          what,
          reason:
            error instanceof ProxmoxApiError
              ? `HTTP ${error.status}`
              : (connectionProblem(causeCode(error)) ?? 'error'),
          delayMs,
          attempt,
          attempts,
        });
        await new Promise((resolve) => setTimeout(resolve, delayMs));
      }
    }
    const tries = attempt > 1 ? ` (${attempt} attempts)` : '';
    if (last instanceof ProxmoxApiError) throw last.withAttempts(tries);
    // Ours already (a CA file that cannot be read, a refused pin): it says what to do.
    if (last instanceof IgpuSplitError) throw last;
    // A refusal of our own from inside the connection (a pinned fingerprint that differs).
    const cause = (last as { cause?: unknown })?.cause;
    if (cause instanceof TargetError) throw cause;
    const address = addressOf(this.base);
    // A certificate the CA file or the system does not trust: what it is, so it can be pinned.
    const offered = certificateProblem(causeCode(last))
      ? await offeredFingerprint(this.base, this.options.connectTimeoutMs)
      : undefined;
    throw new TargetError(
      `${what} failed${tries}: ${describeNetworkError(last, this.options)}${offered ? `; ${address} offered the certificate with SHA-256 fingerprint ${offered}` : ''}`,
      {
        target: this.target,
        nothingChanged: causeCode(last) === 'ECONNREFUSED',
        fix: certificateProblem(causeCode(last))
          ? offered
            ? `give the cluster CA file (caFile: /etc/pve/pve-root-ca.pem from any node), or pin this certificate once you have checked it is the node's (Datacenter → node → Certificates): fingerprint: "${offered}"`
            : 'give the cluster CA file (caFile: /etc/pve/pve-root-ca.pem from any node) or the certificate fingerprint'
          : last instanceof AnswerTooLarge
            ? `check that ${this.target} is the Proxmox API (whose answers are /api2/json), not another service on ${address}`
            : `check the address, that ${address} is reachable from here, and the TLS settings (caFile or fingerprint)`,
      },
    );
  }

  private async once<T>(method: string, path: string, params: Record<string, unknown>): Promise<T> {
    const url = new URL(`/api2/json${path}`, this.base);
    const headers: Record<string, string> = {
      authorization: `PVEAPIToken=${this.options.tokenId}=${this.options.secret}`,
      accept: 'application/json',
    };
    let body: string | undefined;
    if (method === 'GET') {
      for (const [key, value] of Object.entries(params)) url.searchParams.set(key, String(value));
    } else if (Object.keys(params).length > 0) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(params);
    }
    const response = await exchange(
      await this.agent(),
      { origin: url.origin, path: `${url.pathname}${url.search}`, method, headers, body },
      // Connecting and answering have their own timeouts in the agent; this is the backstop.
      this.options.connectTimeoutMs + this.options.requestTimeoutMs,
    );
    const text = response.text;
    const where = `${method} ${path}`;
    const redirect = redirectProblem(response.status, header(response.headers, 'location'));
    if (redirect)
      throw new TargetError(`${where}: ${redirect}`, {
        target: this.target,
        fix: 'give the Proxmox API itself (https://<node>:8006), not a proxy or login page',
      });
    if (response.status < 200 || response.status > 299)
      throw this.httpError(response.status, response.statusText, where, text);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      // expected: SyntaxError from JSON.parse — rethrown as a TargetError. The body is not quoted: whatever answered may echo what it was sent.
      const type = header(response.headers, 'content-type')?.split(';')[0] ?? 'no content type';
      throw new TargetError(`${where}: the answer is not JSON (${type}, ${text.length} bytes)`, {
        target: this.target,
        fix: 'check that the URL points at the Proxmox API (https://host:8006), not a proxy or login page',
      });
    }
    if (parsed === null || typeof parsed !== 'object' || !('data' in parsed))
      throw new TargetError(`${where}: not a Proxmox API answer (JSON without its data field)`, {
        target: this.target,
        fix: 'check that the URL points at the Proxmox API (https://host:8006)',
      });
    return (parsed as { data: T }).data;
  }

  private httpError(status: number, reason: string, where: string, body: string): ProxmoxApiError {
    const target = this.target;
    if (status === 401) {
      return new ProxmoxApiError(
        status,
        `${where}: authentication failed for token ${this.options.tokenId}`,
        {
          target,
          fix: 'check the token id and that the secret file or variable holds that token’s secret',
        },
      );
    }
    if (status === 403) {
      // Proxmox names the check in the reason: "Permission check failed (/vms/100, VM.Config.HW)".
      const check = /\(([^,)]+),\s*([^)]+)\)/.exec(reason);
      return new ProxmoxApiError(
        status,
        `${where}: permission denied${check ? ` — ${check[2]} on ${check[1]}` : `: ${clip(reason)}`}`,
        {
          target,
          fix: check
            ? `grant the token ${check[2]} on ${check[1]} (pveum acl modify ${check[1]} --tokens '${this.options.tokenId}' --roles <role with ${check[2]}>)`
            : 'grant the token the privileges listed in the README',
        },
      );
    }
    const missing = missingThing(reason);
    if (missing)
      return new ProxmoxApiError(status, missing.message, { target, fix: missing.fix, final: true });
    // A 400 lists the offending parameters in `errors`; 5xx answers carry their reason.
    let details = '';
    try {
      const parsed = JSON.parse(body) as { errors?: Record<string, string> } | null;
      if (parsed?.errors && typeof parsed.errors === 'object')
        details = ` (${Object.entries(parsed.errors)
          .map(([key, message]) => `${key}: ${clip(String(message))}`)
          .join('; ')})`;
    } catch {
      // expected: SyntaxError from JSON.parse — an error body that is not JSON has no parameter list; the status and reason are still reported
    }
    return new ProxmoxApiError(status, `${where}: HTTP ${status} ${clip(reason)}${details}`.trim(), {
      target,
      fix:
        status === 595 || status === 596
          ? 'Proxmox could not reach that node: check that it is online in the cluster (pvecm status)'
          : status >= 500
            ? 'the node answered with an error; check its journal (journalctl -u pveproxy -u pvedaemon), then retry'
            : 'check the request',
    });
  }
}

export class ProxmoxApiError extends TargetError {
  readonly status: number;
  /** An answer that will not change by asking again (a VM or node that does not exist). */
  readonly final: boolean;
  constructor(status: number, message: string, options: { target: string; fix: string; final?: boolean }) {
    // A 4xx, or a VM or node that does not exist, was refused before anything changed.
    super(message, { ...options, nothingChanged: (status >= 400 && status < 500) || options.final === true });
    this.status = status;
    this.final = options.final === true;
  }

  withAttempts(tries: string): ProxmoxApiError {
    if (!tries) return this;
    return new ProxmoxApiError(this.status, `${this.message}${tries}`, {
      target: this.target as string,
      fix: this.fix as string,
      final: this.final,
    });
  }
}

/**
 * A VM or node that does not exist is not an internal error to retry. Proxmox answers
 * both with HTTP 500 and the reason in the status line:
 * - a VM: `Configuration file 'nodes/<node>/qemu-server/<vmid>.conf' does not exist`
 *   (pve-guest-common src/PVE/AbstractConfig.pm load_config, commit 4a8f6cbf; the path
 *   from qemu-server src/PVE/QemuConfig.pm cfs_config_path, commit e6352be6);
 * - a node: `hostname lookup '<node>' failed - failed to get address info for: <node>: …`
 *   (pve-manager PVE/HTTPServer.pm remote_node_ip → pve-cluster PVE::Cluster::remote_node_ip
 *   → pve-common PVE::Network::get_ip_from_hostname, commits 14a22df3, 7091d92e, f665029e).
 */
function missingThing(reason: string): { message: string; fix: string } | undefined {
  const vm = /^Configuration file 'nodes\/([^/']+)\/qemu-server\/(\d+)\.conf' does not exist/.exec(reason);
  if (vm)
    return {
      message: `no VM ${vm[2]} on node ${vm[1]}`,
      fix: 'check vmid and host in the lab file (qm list on the node shows its VMs)',
    };
  const node = /^hostname lookup '([^']+)' failed/.exec(reason);
  if (node)
    return {
      message: `no node ${node[1]} in the Proxmox cluster`,
      fix: 'check the host names in the lab file against pvecm nodes (they are Proxmox node names)',
    };
  return undefined;
}

/** Worth another attempt: a refused or reset connection, or a 5xx answer that may pass. */
function retriable(error: unknown): boolean {
  if (error instanceof ProxmoxApiError) return error.status >= 500 && !error.final;
  if (error instanceof TargetError || error instanceof UsageError) return false;
  const code = causeCode(error);
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET';
}

/** One header of an answer (undici gives a repeated one as a list: the first counts). */
function header(headers: Exchanged['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
