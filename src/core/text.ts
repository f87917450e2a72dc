// What makes bytes text: the checks shared by every reader of files a person or the kernel
// wrote (the lab file, a host's configuration and sysfs files).

import { redact } from './secrets.ts';

/** Offset of the first byte that breaks UTF-8, or -1 (RFC 3629: no overlongs, no surrogates). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    let code: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min, code] = [1, 0x80, b & 0x1f];
    else if (b >= 0xe0 && b <= 0xef) [need, min, code] = [2, 0x800, b & 0x0f];
    else if (b >= 0xf0 && b <= 0xf4) [need, min, code] = [3, 0x10000, b & 0x07];
    else return i;
    for (let k = 1; k <= need; k++) {
      const next = bytes[i + k];
      if (next === undefined || (next & 0xc0) !== 0x80) return i;
      code = (code << 6) | (next & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * A reason from the far side (a server's status line, a tool's output), cut to one short
 * line; control characters (a terminal escape, say) become `?`. A reason that repeats a
 * secret we hold (a server echoing the credentials it was sent) is not shown at all.
 */
export function clip(text: string, max = 160): string {
  if (redact(text) !== text) return 'a reason that repeats a credential, not shown';
  const spaced = text.replace(/\s+/g, ' ').trim();
  const line = [...spaced].map((c) => (isControl(c) ? '?' : c)).join('');
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/**
 * Characters that change how a terminal or an editor shows text rather than being shown:
 * Unicode's control (Cc: C0, DEL, C1 such as the 8-bit CSI) and format (Cf: bidi
 * overrides, zero-width characters) categories and the line and paragraph separators —
 * as the runtime's Unicode tables class them.
 */
const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const CONTROLS = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;
const isControl = (c: string) => CONTROL.test(c);

/**
 * Where the first control character is (a terminal escape, a carriage return, a NUL, a
 * bidi override, a tag character beyond U+FFFF), or -1, as an index into the string; the
 * characters in `allowed` (tab and newline by default) do not count.
 */
export function controlAt(text: string, allowed = '\t\n'): number {
  // By code point, with the `u` flag: a format character outside the BMP is two code units.
  for (const match of text.matchAll(CONTROLS)) if (!allowed.includes(match[0])) return match.index;
  return -1;
}

/** The text with every control character but newline and tab shown as `?`. */
export function neutralize(text: string): string {
  return text.replace(CONTROLS, (c) => (c === '\n' || c === '\t' ? c : '?'));
}

/** How a message names the character at `index`: U+001B, U+202E. */
export function codePointName(text: string, index: number): string {
  return `U+${(text.codePointAt(index) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

const strict = new TextDecoder('utf-8', { fatal: true });

/** No NUL byte and valid UTF-8: what every text file Linux or an editor writes is. */
export function isText(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false;
  try {
    strict.decode(bytes);
    return true;
  } catch (error) {
    // expected: TypeError — the fatal decoder's answer to broken UTF-8; anything else is rethrown
    if (!(error instanceof TypeError)) throw error;
    return false;
  }
}

/**
 * A count with its noun in the right number — `1 step`, `3 steps`, `2 entries` — so no
 * message says `step(s)`; `plural` when the noun does not simply take -s (or -y → -ies).
 */
export function counted(count: number, noun: string, plural?: string): string {
  if (count === 1) return `${count} ${noun}`;
  return `${count} ${plural ?? (/[^aeiou]y$/.test(noun) ? `${noun.slice(0, -1)}ies` : `${noun}s`)}`;
}

/** A noun and the names it stands for, in the right number: `VM 101`, `VMs 101, 102`. */
export function listed(noun: string, names: readonly (string | number)[]): string {
  return `${names.length === 1 ? noun : counted(names.length, noun).replace(/^\d+ /, '')} ${names.join(', ')}`;
}
