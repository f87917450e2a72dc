// What the CLI writes is looked at once more on its way out (main.ts wraps stdout and
// stderr): every secret read is replaced by [secret], and characters that drive a
// terminal — escapes a hostile server put into a VM name, a bidi override — are shown as
// `?`. Only the progress display (listr2) draws with such characters, while it runs.

import { redact } from '../core/secrets.ts';
import { neutralize } from '../core/text.ts';

let drawing = 0;

/** The progress display may move the cursor and colour its lines until the returned function is called. */
export function startDrawing(): () => void {
  drawing++;
  let stopped = false;
  return () => {
    if (!stopped) drawing--;
    stopped = true;
  };
}

/** The text as it may leave the process. */
export function outgoing(text: string): string {
  const safe = redact(text);
  return drawing > 0 ? safe : neutralize(safe);
}
