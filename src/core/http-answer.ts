// An HTTP answer's body, read with a cap: a server that sends without end (broken, or
// hostile) costs at most this much memory before the request is given up.

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
