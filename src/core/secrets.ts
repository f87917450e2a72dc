// Secrets — the Proxmox token secret, a kubeconfig's token, password and private key —
// are checked when they are read and never put into a message on purpose. As a last
// guard the library remembers each one it read, so the CLI can take every form of it
// (as is, any 8-character piece, base64, percent-encoded) out of whatever it writes.

const PIECE = 8;
const known = new Set<string>();
const pieces = new Set<string>();

/** Remembers a secret so `redact` takes it out of text; short values are not worth hiding. */
export function rememberSecret(secret: string): void {
  if (secret.length < 6 || known.has(secret)) return;
  known.add(secret);
  for (const form of [
    Buffer.from(secret).toString('base64'),
    Buffer.from(secret).toString('base64url'),
    encodeURIComponent(secret),
  ]) {
    known.add(form);
  }
  for (let i = 0; i + PIECE <= secret.length; i++) pieces.add(secret.slice(i, i + PIECE));
}

const MARK = '[secret]';

/** The text with every remembered secret, and every piece of one, replaced by [secret]. */
export function redact(text: string): string {
  if (known.size === 0) return text;
  let out = text;
  // Longest first, so a whole secret is one mark rather than many.
  for (const form of [...known].sort((a, b) => b.length - a.length))
    if (out.includes(form)) out = out.replaceAll(form, MARK);
  // Pieces: one pass over the text's 8-character windows (a key has thousands of pieces).
  let cut = -1;
  let result = '';
  let from = 0;
  for (let i = 0; i + PIECE <= out.length; i++) {
    if (!pieces.has(out.slice(i, i + PIECE))) continue;
    if (i > cut) {
      result += out.slice(from, i) + MARK;
    }
    cut = i + PIECE - 1;
    from = i + PIECE;
  }
  return cut < 0 ? out : result + out.slice(from);
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

/** `text` for a message, unless it holds what looks like a token secret pasted in the wrong place. */
export function shownValue(text: string): string {
  return TOKEN_SECRET.test(text) ? '(a value that looks like a token secret, not shown)' : text;
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
