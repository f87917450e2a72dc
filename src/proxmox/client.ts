// Proxmox VE API client: API-token auth, TLS verified by default (a CA file, or the
// certificate's SHA-256 fingerprint as the Proxmox GUI shows it), bounded retries for
// idempotent calls, and errors that say what broke and what to do — never the secret.

import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { Agent, buildConnector, fetch } from 'undici';
import { TargetError } from '../core/errors.ts';

export type TlsTrust = { caFile: string } | { fingerprint: string } | { system: true };

export interface ProxmoxClientOptions {
  /** https://host:8006 */
  baseUrl: string;
  /** USER@REALM!TOKENID — not secret. */
  tokenId: string;
  /** The token's secret, loaded by loadTokenSecret. */
  secret: string;
  tls: TlsTrust;
  /** Attempts for idempotent calls (GET) on connection errors and 5xx. */
  attempts?: number;
  timeoutMs?: number;
  /** Base of the exponential backoff between attempts. */
  backoffMs?: number;
}

/** The secret comes from a file or an environment variable, never the command line. */
export async function loadTokenSecret(source: { file: string } | { env: string }): Promise<string> {
  if ('file' in source) {
    const text = await readFile(source.file, 'utf8').catch((error: unknown) => {
      throw new TargetError(
        `cannot read the API token secret file ${source.file}: ${(error as NodeJS.ErrnoException).code}`,
        {
          fix: 'create it with only the secret in it (chmod 600), or name an environment variable instead',
        },
      );
    });
    const secret = text.trim();
    if (!secret)
      throw new TargetError(`the API token secret file ${source.file} is empty`, {
        fix: 'put the secret in it',
      });
    return secret;
  }
  const secret = process.env[source.env]?.trim();
  if (!secret) {
    throw new TargetError(`environment variable ${source.env} (the API token secret) is not set`, {
      fix: `export ${source.env}=<secret>, or name a secret file instead`,
    });
  }
  return secret;
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

export class ProxmoxApiError extends TargetError {
  readonly status: number;
  constructor(status: number, message: string, options: { target: string; fix: string }) {
    super(message, options);
    this.status = status;
  }
}

export class ProxmoxClient {
  private readonly options: Required<Omit<ProxmoxClientOptions, 'tls'>> & { tls: TlsTrust };
  private dispatcher: Agent | undefined;

  constructor(options: ProxmoxClientOptions) {
    this.options = { attempts: 3, timeoutMs: 30_000, backoffMs: 500, ...options };
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

  async close(): Promise<void> {
    await this.dispatcher?.close();
  }

  private async agent(): Promise<Agent> {
    if (this.dispatcher) return this.dispatcher;
    const tls = this.options.tls;
    if ('fingerprint' in tls) {
      // Pinning: the chain is not checked, the exact certificate is.
      const pin = normalizeFingerprint(tls.fingerprint);
      // No TLS session resumption: a resumed session carries no certificate to compare.
      const base = buildConnector({ rejectUnauthorized: false, maxCachedSessions: 0 });
      const target = this.target;
      this.dispatcher = new Agent({
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
      const ca = await readFile(tls.caFile, 'utf8').catch(() => {
        throw new TargetError(`cannot read the CA file ${tls.caFile}`, {
          target: this.target,
          fix: 'give the cluster CA (/etc/pve/pve-root-ca.pem on any node)',
        });
      });
      new X509Certificate(ca); // a clear error now beats a TLS failure later
      this.dispatcher = new Agent({ connect: { ca, rejectUnauthorized: true } });
    } else {
      this.dispatcher = new Agent({ connect: { rejectUnauthorized: true } });
    }
    return this.dispatcher;
  }

  private async call<T>(
    method: string,
    path: string,
    params: Record<string, unknown>,
    idempotent: boolean,
  ): Promise<T> {
    const attempts = idempotent ? this.options.attempts : 1;
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        return await this.once<T>(method, path, params);
      } catch (error) {
        last = error;
        const retriable =
          error instanceof ProxmoxApiError ? error.status >= 500 : !(error instanceof TargetError);
        if (!retriable || attempt === attempts) break;
        await new Promise((resolve) => setTimeout(resolve, this.options.backoffMs * 2 ** (attempt - 1)));
      }
    }
    if (last instanceof TargetError) throw last;
    throw new TargetError(`${method} ${path} failed: ${describeNetworkError(last)}`, {
      target: this.target,
      fix: 'check the address, that port 8006 is reachable, and the TLS settings (ca file or fingerprint)',
    });
  }

  private async once<T>(method: string, path: string, params: Record<string, unknown>): Promise<T> {
    const url = new URL(`/api2/json${path}`, this.options.baseUrl);
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
    const response = await fetch(url, {
      method,
      headers,
      body,
      dispatcher: await this.agent(),
      signal: AbortSignal.timeout(this.options.timeoutMs),
    });
    const text = await response.text();
    const where = `${method} ${path}`;
    if (!response.ok) throw this.httpError(response.status, response.statusText, where, text);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new TargetError(`${where}: the answer is not JSON (${text.slice(0, 60).replace(/\s+/g, ' ')}…)`, {
        target: this.target,
        fix: 'check that the URL points at the Proxmox API (https://host:8006), not a proxy or login page',
      });
    }
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
        `${where}: permission denied${check ? ` — ${check[2]} on ${check[1]}` : `: ${reason}`}`,
        {
          target,
          fix: check
            ? `grant the token ${check[2]} on ${check[1]} (pveum acl modify ${check[1]} --tokens '${this.options.tokenId}' --roles <role with ${check[2]}>)`
            : 'grant the token the privileges listed in the README',
        },
      );
    }
    // A 400 lists the offending parameters in `errors`.
    let details = '';
    try {
      const errors = (JSON.parse(body) as { errors?: Record<string, string> }).errors;
      if (errors)
        details = ` (${Object.entries(errors)
          .map(([key, message]) => `${key}: ${message}`)
          .join('; ')})`;
    } catch {}
    return new ProxmoxApiError(status, `${where}: HTTP ${status} ${reason}${details}`.trim(), {
      target,
      fix:
        status >= 500
          ? 'the node had an internal error; check its journal (pveproxy, pvedaemon) and retry'
          : 'check the request',
    });
  }
}

function describeNetworkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code ?? (error as { code?: string })?.code;
  if (code === 'CERT_HAS_EXPIRED') return 'the server certificate has expired';
  if (
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ||
    code === 'SELF_SIGNED_CERT_IN_CHAIN' ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'
  ) {
    return `the server certificate is not trusted (${code}): give the cluster CA file or the certificate fingerprint`;
  }
  if (code === 'ECONNREFUSED') return 'connection refused';
  return cause?.message ?? (error as Error)?.message ?? String(error);
}
