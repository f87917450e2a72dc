// How @kubernetes/client-node's requests go out: over node:https with the agent client-node
// builds from the kubeconfig (its CA, client certificate, key), but bounded the way every
// wait in igpu-split is (src/core/waits.ts) — connecting within the connect timeout, the
// answer beginning within the request timeout after that and never pausing longer, the
// whole request within both together, at most MAX_ANSWER_BYTES of it — and verifying the server's certificate whatever NODE_TLS_REJECT_UNAUTHORIZED says
// (client-node leaves it unset, so Node would read the variable) unless the kubeconfig
// itself skips verification.

import { request as httpRequest } from 'node:http';
import { Agent, type AgentOptions, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import {
  type KubeConfig,
  type PromiseHttpLibrary,
  type RequestContext,
  ResponseContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';
import { AnswerTooLarge, MAX_ANSWER_BYTES } from '../core/http-answer.ts';
import { rememberSecret } from '../core/secrets.ts';
import { connectionsTo, seconds } from '../core/waits.ts';
import {
  type ExecConfig,
  type ExecCredential,
  ExecCredentialError,
  runExecPlugin,
} from './exec-credential.ts';

/**
 * A Kubernetes request that ran out of time, and where: connecting, waiting for the answer
 * to begin, a pause in the middle of it, or the request as a whole — the same bounds
 * undici keeps for Proxmox and the Image Factory (connect, headers, body and total).
 */
export class KubeTimeout extends Error {
  readonly phase: 'connect' | 'answer' | 'stalled' | 'total';
  readonly ms: number;
  constructor(phase: KubeTimeout['phase'], ms: number) {
    super(`out of time (${phase})`);
    this.name = 'KubeTimeout';
    this.phase = phase;
    this.ms = ms;
  }
}

/**
 * The kubeconfig's credentials could not be had: its exec plugin or auth provider failed
 * or gave none in time. The reason is ours, never the plugin's words (they may hold what it
 * was about to hand out); --debug shows where it failed.
 */
export class KubeCredentialError extends Error {
  /** Kept apart from the message, which client-node rewrites on its way up. */
  readonly reason: string;
  constructor(reason: string, options?: { cause?: unknown }) {
    super(reason, options);
    this.name = 'KubeCredentialError';
    this.reason = reason;
  }
}

/**
 * The kubeconfig's credentials applied to each request, bounded. client-node applies the
 * kubeconfig (certificates, token, an oidc provider), within the time given; an exec plugin
 * is run here instead (exec-credential.ts) and its credential kept until it expires.
 */
export class BoundedCredentials implements SecurityAuthentication {
  private readonly config: KubeConfig;
  private readonly limitMs: number;
  private readonly exec: ExecConfig | undefined;
  private credential: Promise<ExecCredential> | undefined;

  constructor(config: KubeConfig, limitMs: number, exec?: ExecConfig) {
    this.config = config;
    this.limitMs = limitMs;
    this.exec = exec;
  }

  getName(): string {
    return 'kubeconfig';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.config.applySecurityAuthentication(context),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new KubeCredentialError(`auth provider gave no credentials within ${seconds(this.limitMs)}`),
              ),
            this.limitMs,
          );
        }),
      ]);
    } catch (error) {
      // expected: anything — rethrown as a KubeCredentialError (the provider's words are not ours to show)
      if (error instanceof KubeCredentialError) throw error;
      throw new KubeCredentialError('auth provider gave no credentials', { cause: error });
    } finally {
      clearTimeout(timer);
    }
    if (!this.exec) return;
    const credential = await this.fromPlugin(this.exec);
    if (credential.token) context.setHeaderParam('Authorization', `Bearer ${credential.token}`);
    if (credential.certificate) {
      const agent = context.getAgent() as (Agent & { options: AgentOptions }) | undefined;
      context.setAgent(new Agent({ ...agent?.options, ...credential.certificate }));
    }
  }

  /** The plugin's credential, run again only once it has (nearly) expired. */
  private async fromPlugin(exec: ExecConfig): Promise<ExecCredential> {
    // expected: anything — a failed earlier run is not a credential: the plugin is run again (its failure was reported)
    const cached = await this.credential?.catch(() => undefined);
    if (cached && (cached.expires === undefined || cached.expires - Date.now() > 10_000)) return cached;
    const cluster = this.config.getCurrentCluster();
    this.credential = runExecPlugin(
      exec,
      {
        server: cluster?.server ?? '',
        ...(cluster?.caData ? { 'certificate-authority-data': cluster.caData } : {}),
        ...(cluster?.skipTLSVerify ? { 'insecure-skip-tls-verify': true } : {}),
        ...(cluster?.tlsServerName ? { 'tls-server-name': cluster.tlsServerName } : {}),
      },
      this.limitMs,
    );
    try {
      return await this.credential;
    } catch (error) {
      // expected: anything — rethrown as a KubeCredentialError; only our ExecCredentialError's words are shown
      const reason = error instanceof ExecCredentialError ? error.message : 'failed';
      throw new KubeCredentialError(`exec plugin ${reason}`, { cause: error });
    }
  }
}

export interface KubeHttpOptions {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** False only when the kubeconfig says insecure-skip-tls-verify. */
  verify: boolean;
}

/**
 * A token an exec plugin or an auth provider hands out exists only in the request: it is
 * remembered here, as it leaves, so a server that echoes it back (in a Status message, an
 * error page) cannot get it printed.
 */
function rememberCredential(headers: Record<string, string>): void {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== 'authorization') continue;
    // The credential after the scheme only: pieces of `Bearer …` would hide ordinary words.
    rememberSecret(/^\S+\s+(\S+)$/.exec(value)?.[1] ?? value);
  }
}

/** The sockets already counted as open connections. */
const counted = new WeakSet<Socket>();

export class BoundedKubeHttp implements PromiseHttpLibrary {
  private readonly options: KubeHttpOptions;

  constructor(options: KubeHttpOptions) {
    this.options = options;
  }

  send(request: RequestContext): Promise<ResponseContext> {
    const { connectTimeoutMs, requestTimeoutMs, verify } = this.options;
    return new Promise((resolve, reject) => {
      const url = new URL(request.getUrl());
      const agent = request.getAgent() as
        | (import('node:https').Agent & { options: Record<string, unknown> })
        | undefined;
      if (agent && verify) agent.options.rejectUnauthorized = true;
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const headers = request.getHeaders();
      rememberCredential(headers);
      const body = request.getBody();
      if (body !== undefined && typeof body !== 'string') {
        reject(new TypeError('igpu-split sends only text bodies to the Kubernetes API'));
        return;
      }
      const req = send(url, {
        method: request.getHttpMethod(),
        headers,
        agent,
        ...(verify ? { rejectUnauthorized: true } : {}),
      });
      const timers = new Set<NodeJS.Timeout>();
      const giveUp = (phase: KubeTimeout['phase'], ms: number) => {
        const timer = setTimeout(() => req.destroy(new KubeTimeout(phase, ms)), ms);
        timers.add(timer);
        return timer;
      };
      const stop = (timer: NodeJS.Timeout | undefined) => {
        clearTimeout(timer);
        if (timer) timers.delete(timer);
      };
      giveUp('total', connectTimeoutMs + requestTimeoutMs);
      const connectTimer = giveUp('connect', connectTimeoutMs);
      let answerTimer: NodeJS.Timeout | undefined;
      const connected = () => {
        stop(connectTimer);
        answerTimer ??= giveUp('answer', requestTimeoutMs);
      };
      const connections = connectionsTo(url.origin, connectTimeoutMs);
      req.on('socket', (socket: Socket) => {
        // Counted once per socket (a kept-alive one serves many requests), for the "still waiting" line.
        if (!counted.has(socket)) {
          counted.add(socket);
          let open = false;
          const opened = () => {
            open = true;
            connections.opened();
          };
          if (!socket.connecting && !socket.destroyed) opened();
          else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', opened);
          socket.once('close', () => {
            if (open) connections.closed();
          });
        }
        if (!socket.connecting && !socket.destroyed) connected();
        else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
      });
      const done = () => {
        for (const timer of timers) clearTimeout(timer);
      };
      req.on('error', (error) => {
        done();
        reject(error);
      });
      req.on('response', (response) => {
        stop(answerTimer);
        // From here on, a pause longer than the request timeout ends it.
        const stalled = giveUp('stalled', requestTimeoutMs);
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          stalled.refresh();
          size += chunk.length;
          if (size > MAX_ANSWER_BYTES) req.destroy(new AnswerTooLarge(MAX_ANSWER_BYTES));
          else chunks.push(chunk);
        });
        response.on('error', (error) => {
          done();
          reject(error);
        });
        response.on('end', () => {
          done();
          const body = Buffer.concat(chunks);
          const headers: Record<string, string> = {};
          for (const [key, value] of Object.entries(response.headers))
            if (value !== undefined) headers[key] = Array.isArray(value) ? value.join(', ') : value;
          resolve(
            new ResponseContext(response.statusCode ?? 0, headers, {
              text: async () => body.toString('utf8'),
              binary: async () => body,
            }),
          );
        });
      });
      req.end(body);
    });
  }
}
