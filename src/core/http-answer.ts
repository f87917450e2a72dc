// An HTTP answer's body, read with a cap: a server that sends without end (broken, or
// hostile) costs at most this much memory before the request is given up.

import type { Dispatcher } from 'undici';

/** Larger than any answer the Proxmox API or the Image Factory gives igpu-split. */
export const MAX_ANSWER_BYTES = 16 * 1024 * 1024;

export class AnswerTooLarge extends Error {
  constructor(limit: number) {
    super(`the answer is larger than ${limit / 1024 / 1024} MB`);
    this.name = 'AnswerTooLarge';
  }
}

/** The body as text, or AnswerTooLarge once it passes `limit` bytes (the stream is cancelled). */
export async function readAnswer(
  response: { body: ReadableStream<Uint8Array> | null },
  limit = MAX_ANSWER_BYTES,
): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      // expected: anything — cancelling an answer already refused as too large; that refusal is what is reported
      await reader.cancel().catch(() => undefined);
      throw new AnswerTooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** One HTTP answer, read whole (with the cap): what the Proxmox client needs of it. */
export interface Exchanged {
  status: number;
  /** The reason phrase: Proxmox puts what it refused there ("Permission check failed (/vms/100, …)"). */
  statusText: string;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/**
 * One request through an undici dispatcher, without fetch's Request/Response/stream objects
 * (a fleet's plan sends thousands). Nothing is followed (a 3xx is the caller's to name); the
 * body is capped at `limit`; `timeoutMs` ends the whole exchange with a TimeoutError.
 */
export function exchange(
  dispatcher: Dispatcher,
  request: Dispatcher.DispatchOptions,
  timeoutMs: number,
  limit = MAX_ANSWER_BYTES,
): Promise<Exchanged> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let answer: Omit<Exchanged, 'text'> = { status: 0, statusText: '', headers: {} };
    let abort: ((reason: Error) => void) | undefined;
    const timeout = AbortSignal.timeout(timeoutMs);
    const onTimeout = () => abort?.(timeout.reason as Error);
    timeout.addEventListener('abort', onTimeout, { once: true });
    const settle = () => timeout.removeEventListener('abort', onTimeout);
    dispatcher.dispatch(request, {
      onRequestStart(controller) {
        abort = (reason) => controller.abort(reason);
        if (timeout.aborted) controller.abort(timeout.reason as Error);
      },
      onResponseStart(_controller, status, headers, statusText) {
        answer = { status, statusText: statusText ?? '', headers };
      },
      onResponseData(controller, chunk) {
        size += chunk.length;
        if (size > limit) controller.abort(new AnswerTooLarge(limit));
        else chunks.push(chunk);
      },
      onResponseEnd() {
        settle();
        resolve({ ...answer, text: Buffer.concat(chunks).toString('utf8') });
      },
      onResponseError(_controller, error) {
        settle();
        reject(error);
      },
    });
  });
}
