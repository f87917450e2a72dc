// Secrets — the Proxmox token secret, a kubeconfig's token, password and private key —
// are checked when they are read and never put into a message on purpose. As a last
// guard the library remembers each one it read, so the CLI can take every form of it out
// of whatever it writes: as is, any 8-character piece, in either letter case, hex, percent-
// encoded, and base64 (or base64url) wherever it sits in the encoded text.

const PIECE = 8;
const remembered = new Set<string>();
/** Every form of every remembered secret, ASCII letters lower-cased: matching ignores case. */
const forms = new Set<string>();
const pieces = new Set<string>();

/** Lower-cases ASCII letters only, so every index in the result is the same index in `text`. */
const fold = (text: string) => text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());

/**
 * The base64 and base64url text that the secret's bytes turn into wherever they sit in
 * what is encoded: base64 takes 3 bytes at a time, so the secret starts at one of three
 * alignments (0, 1 or 2 bytes of something else before it). For each, only the characters
 * made of the secret's bits alone are kept, not the edge ones its neighbours share.
 */
function encodedForms(bytes: Buffer): string[] {
  const found = [bytes.toString('base64'), bytes.toString('base64url')];
  for (let lead = 0; lead < 3; lead++) {
    const shifted = Buffer.concat([Buffer.alloc(lead), bytes]);
    const first = Math.ceil((lead * 8) / 6);
    const end = Math.floor((shifted.length * 8) / 6);
    for (const alphabet of ['base64', 'base64url'] as const)
      found.push(shifted.toString(alphabet).slice(first, end));
  }
  return found;
}

/** Remembers a secret so `redact` takes it out of text; short values are not worth hiding. */
export function rememberSecret(secret: string): void {
  if (secret.length < 6 || remembered.has(secret)) return;
  remembered.add(secret);
  const bytes = Buffer.from(secret);
  for (const form of [secret, encodeURIComponent(secret), bytes.toString('hex'), ...encodedForms(bytes)])
    forms.add(fold(form));
  for (let i = 0; i + PIECE <= secret.length; i++) pieces.add(fold(secret.slice(i, i + PIECE)));
}

const MARK = '[secret]';

/** The text with every remembered secret, in any of its forms, and every piece of one replaced by [secret]. */
export function redact(text: string): string {
  if (remembered.size === 0) return text;
  const folded = fold(text);
  const spans: [number, number][] = [];
  for (const form of forms)
    for (let at = folded.indexOf(form); at >= 0; at = folded.indexOf(form, at + 1))
      spans.push([at, at + form.length]);
  // Pieces: one pass over the text's 8-character windows (a key has thousands of pieces).
  for (let i = 0; i + PIECE <= folded.length; i++)
    if (pieces.has(folded.slice(i, i + PIECE))) spans.push([i, i + PIECE]);
  if (spans.length === 0) return text;
  // Overlapping or touching spans become one mark.
  spans.sort((a, b) => a[0] - b[0]);
  let result = '';
  let from = 0;
  let end = -1;
  for (const [start, stop] of spans) {
    if (start > end) {
      if (end >= 0) result += MARK;
      result += text.slice(from, start);
    }
    end = Math.max(end, stop);
    from = end;
  }
  return `${result}${MARK}${text.slice(from)}`;
}

/** A Proxmox API token secret is a UUID (pve-access-control src/PVE/TokenConfig.pm generate_token: UUID::uuid(), commit 5ccd07d9). */
const TOKEN_SECRET = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;

/**
 * Text holding what looks like a token secret, e.g. one pasted where a file's name belongs.
 * Only a path's last part counts: a folder may well be named by a UUID (a udisks mount).
 */
export function looksLikeTokenSecret(text: string): boolean {
  return TOKEN_SECRET.test(text.slice(text.lastIndexOf('/') + 1));
}

/**
 * `text` for a message, unless it holds what looks like a token secret pasted in the wrong
 * place; the stand-in is bracketed, since messages often put a value in parentheses.
 */
export function shownValue(text: string): string {
  return TOKEN_SECRET.test(text) ? '[a value that looks like a token secret, not shown]' : text;
}

/** The largest secret file we read: a token secret is one short line. */
export const MAX_SECRET_BYTES = 4096;

/**
 * Checks a secret as read from a file or variable: one line (trailing newlines and
 * surrounding blanks are dropped), printable ASCII without spaces. The reason never quotes
 * the content; it is undefined when the secret is fine.
 */
export function secretProblem(raw: string): string | undefined {
  const text = cleanSecret(raw);
  if (text === '') return 'is empty';
  const lines = text.split('\n').length;
  if (lines > 1) return `has ${lines} lines; it must hold only the secret, on one line`;
  const bad = [...text].findIndex((c) => c < '!' || c > '~');
  if (bad >= 0)
    return `has a character that cannot be in a token secret at position ${bad + 1} (only printable ASCII without spaces)`;
  return undefined;
}

/** The secret itself, once `secretProblem` found nothing wrong. */
export function cleanSecret(raw: string): string {
  return raw.replace(/(\r?\n)+$/, '').replace(/^[ \t]+|[ \t]+$/g, '');
}
