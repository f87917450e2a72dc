// How @kubernetes/client-node's requests go out: over node:https with the agent client-node
// builds from the kubeconfig (its CA, client certificate, key), but bounded the way every
// wait in igpu-split is (src/core/waits.ts) — connecting within the connect timeout, the
// whole answer within the request timeout after that, at most MAX_ANSWER_BYTES of it —
// and verifying the server's certificate whatever NODE_TLS_REJECT_UNAUTHORIZED says
// (client-node leaves it unset, so Node would read the variable) unless the kubeconfig
// itself skips verification.

import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { type PromiseHttpLibrary, type RequestContext, ResponseContext } from '@kubernetes/client-node';
import { AnswerTooLarge, MAX_ANSWER_BYTES } from '../core/http-answer.ts';

/** A Kubernetes request that ran out of time, in which phase. */
export class KubeTimeout extends Error {
  readonly phase: 'connect' | 'answer';
  readonly ms: number;
  constructor(phase: 'connect' | 'answer', ms: number) {
    super(phase === 'connect' ? 'no connection in time' : 'no answer in time');
    this.phase = phase;
    this.ms = ms;
  }
}

export interface KubeHttpOptions {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
  /** False only when the kubeconfig says insecure-skip-tls-verify. */
  verify: boolean;
}

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
      const req = send(url, { method: request.getHttpMethod(), headers: request.getHeaders(), agent });
      let answerTimer: NodeJS.Timeout | undefined;
      const connectTimer = setTimeout(
        () => req.destroy(new KubeTimeout('connect', connectTimeoutMs)),
        connectTimeoutMs,
      );
      const connected = () => {
        clearTimeout(connectTimer);
        answerTimer ??= setTimeout(
          () => req.destroy(new KubeTimeout('answer', requestTimeoutMs)),
          requestTimeoutMs,
        );
      };
      req.on('socket', (socket: Socket) => {
        if (!socket.connecting && !socket.destroyed) connected();
        else socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
      });
      const done = () => {
        clearTimeout(connectTimer);
        clearTimeout(answerTimer);
      };
      req.on('error', (error) => {
        done();
        reject(error);
      });
      req.on('response', (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
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
      const body = request.getBody();
      req.end(typeof body === 'string' ? body : undefined);
    });
  }
}
