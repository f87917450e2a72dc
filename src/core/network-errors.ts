// What a failed connection or request was, in words, for Proxmox, Kubernetes and the Image
// Factory alike. The words come from the codes Node (net, tls, the HTTP parser) and undici
// put on an error or its cause — never from a library's own sentence, which may be long,
// may advise something we do not want (`--use-system-ca`), or may quote what it was handed.

import { AnswerTooLarge } from './http-answer.ts';
import { clip } from './text.ts';
import { seconds } from './waits.ts';

export interface Timeouts {
  connectTimeoutMs: number;
  requestTimeoutMs: number;
}

/** The most telling name of a failure: a timeout's name, else the errno-style code of its cause. */
export function causeCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: unknown; name?: string } })?.cause;
  const name = (error as Error)?.name;
  if (name === 'TimeoutError' || cause?.name === 'TimeoutError') return 'TimeoutError';
  // Node's own errors carry the code; fetch's TypeError('fetch failed') has it on its cause.
  for (const code of [(error as { code?: unknown })?.code, cause?.code])
    if (typeof code === 'string') return code;
  return undefined;
}

/** A certificate the connection refused, in words; undefined when the code is not about one. */
export function certificateProblem(code: string | undefined): string | undefined {
  if (code === undefined) return undefined;
  if (code === 'CERT_HAS_EXPIRED') return 'the server certificate has expired';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'the server certificate is for another name';
  // OpenSSL's verify results as Node names them (DEPTH_ZERO_SELF_SIGNED_CERT,
  // SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_VERIFY_LEAF_SIGNATURE, …).
  if (/CERT|_SIGNATURE|_ISSUER/.test(code) && !code.startsWith('ERR_SSL'))
    return `the server certificate is not trusted (${code})`;
  return undefined;
}

/** A connection that failed before any answer, in words; undefined for other codes. */
export function connectionProblem(code: string | undefined): string | undefined {
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
      return 'the server closed the connection';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'no route to the host';
    case 'ETIMEDOUT':
      return 'the connection timed out';
    case 'EPROTO':
      return 'the TLS handshake failed (is this an HTTPS port?)';
    case 'UND_ERR_HEADERS_OVERFLOW':
      return 'the answer is not valid HTTP (its headers are too large)';
    default:
      // Node's HTTP parser (llhttp) names what it could not read HPE_*: no HTTP server spoke.
      return code?.startsWith('HPE_') ? `the answer is not valid HTTP (${code})` : undefined;
  }
}

/**
 * A 3xx answer, never followed (the token would go where the user did not send it), in
 * words; undefined for any other status.
 */
export function redirectProblem(status: number, location: string | null | undefined): string | undefined {
  if (status < 300 || status > 399) return undefined;
  return `the server sends us elsewhere (HTTP ${status}${location ? ` to ${clip(location, 120)}` : ''})`;
}

/** A failed request of Node's fetch (undici), in words. */
export function describeNetworkError(error: unknown, timeouts: Timeouts): string {
  if (error instanceof AnswerTooLarge) return error.message;
  const code = causeCode(error);
  if (code === 'UND_ERR_CONNECT_TIMEOUT') return `no connection within ${seconds(timeouts.connectTimeoutMs)}`;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return `no answer within ${seconds(timeouts.requestTimeoutMs)}`;
  if (code === 'UND_ERR_BODY_TIMEOUT')
    return `the answer stopped coming for ${seconds(timeouts.requestTimeoutMs)}`;
  if (code === 'TimeoutError')
    return `no complete answer within ${seconds(timeouts.connectTimeoutMs + timeouts.requestTimeoutMs)}`;
  const known = certificateProblem(code) ?? connectionProblem(code);
  if (known) return known;
  const cause = (error as { cause?: { message?: string } })?.cause;
  if (/ssl|tls/i.test(String(cause?.message))) return 'the TLS handshake failed (is this an HTTPS port?)';
  // Not put in words here: a library's own sentence may quote what it was handed.
  return `the request failed (${code ?? (error as Error)?.name ?? 'unknown error'})`;
}
