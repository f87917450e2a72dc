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

// What every command prints with --json: one envelope, versioned apart from the library's
// types, so a script reading it keeps working when the internals move. docs/json.md
// documents it; its JSON Schema is docs/schemas/json-envelope.schema.json (json-schema.ts).

/**
 * Raised only for a change a script must be told about (a key removed or its meaning changed).
 * 2: `rollback`, `mapping rollback` and `cluster rollback` print objects, not lists of lines.
 */
export const JSON_FORMAT_VERSION = 2;

/** What every --json output is; json-schema.ts describes it for docs/schemas. */
export interface JsonEnvelope {
  format: 'igpu-split';
  version: typeof JSON_FORMAT_VERSION;
  command: string;
  result: unknown;
}

/** The envelope, as the text a command prints. */
export function jsonText(command: string, result: unknown): string {
  const envelope: JsonEnvelope = {
    format: 'igpu-split',
    version: JSON_FORMAT_VERSION,
    command,
    result,
  };
  return `${JSON.stringify(envelope, null, 2)}\n`;
}

/** A line for the user that is not the command's output (stderr). */
export function warn(line: string): void {
  process.stderr.write(`igpu-split: ${line}\n`);
}
