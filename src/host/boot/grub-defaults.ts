// The kernel command line GRUB will write, computed from /etc/default/grub and
// /etc/default/grub.d/*.cfg the way grub-mkconfig does: it sources /etc/default/grub,
// then every grub.d/*.cfg in glob (byte) order, with /bin/sh, and 10_linux writes
// `linux … ${GRUB_CMDLINE_LINUX} ${GRUB_CMDLINE_LINUX_DEFAULT}` for normal entries
// (Debian grub2 util/grub-mkconfig.in and util/grub.d/10_linux.in).
//
// We evaluate the subset of sh these files use — assignments with unquoted, '…' and "…"
// words, $VAR and ${VAR} expansion, `export`, comments, backslash-newline — without
// running anything. Anything else (command substitution, conditionals, other commands)
// is reported, and a value that depends on it is unknown: the caller must then ask the
// host's own shell (apply does so before refreshing the boot loader).

export interface GrubFile {
  path: string;
  content: string;
}

export interface Unsupported {
  path: string;
  line: number;
  text: string;
}

export interface GrubDefaults {
  /** Variables with a known value after every file was read. */
  values: Map<string, string>;
  /** Variables whose value came from something we did not evaluate. */
  unknown: Set<string>;
  unsupported: Unsupported[];
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * grub-mkconfig's own sourcing lines, then 10_linux's join of the two variables: run by
 * /bin/sh with the configuration folder as $1 (/etc on a host), it prints the command line
 * the next update-grub writes. Apply uses it on the host as the final word.
 */
export const GRUB_CMDLINE_SCRIPT = `sysconfdir="$1"
if test -f \${sysconfdir}/default/grub ; then
  . \${sysconfdir}/default/grub
fi
for x in \${sysconfdir}/default/grub.d/*.cfg ; do
  if [ -e "\${x}" ]; then
    . "\${x}"
  fi
done
printf '%s' "\${GRUB_CMDLINE_LINUX} \${GRUB_CMDLINE_LINUX_DEFAULT}"`;

/** Orders drop-ins as the shell's glob does (byte order under grub-mkconfig's C-like locale). */
export function sortDropins<T extends { path: string }>(files: T[]): T[] {
  return [...files].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
}

/** Reads the files in order (the caller puts /etc/default/grub first, then sorted drop-ins). */
export function evaluateGrubDefaults(files: readonly GrubFile[]): GrubDefaults {
  const state: GrubDefaults = { values: new Map(), unknown: new Set(), unsupported: [] };
  for (const file of files) {
    for (const statement of statements(file.content)) {
      if (!assign(statement.text, state)) {
        state.unsupported.push({ path: file.path, line: statement.line, text: statement.text });
      }
    }
  }
  return state;
}

/** `GRUB_CMDLINE_LINUX GRUB_CMDLINE_LINUX_DEFAULT` as 10_linux joins them, or undefined when unknown. */
export function effectiveGrubCmdline(defaults: GrubDefaults): string | undefined {
  const names = ['GRUB_CMDLINE_LINUX', 'GRUB_CMDLINE_LINUX_DEFAULT'];
  if (names.some((name) => defaults.unknown.has(name))) return undefined;
  return names
    .map((name) => defaults.values.get(name) ?? '')
    .join(' ')
    .trim()
    .replace(/\s+/g, ' ');
}

/** Splits a file into logical lines: continuation lines joined, comments and blanks dropped. */
function statements(content: string): { line: number; text: string }[] {
  const result: { line: number; text: string }[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let text = lines[i] as string;
    while (text.endsWith('\\') && i + 1 < lines.length && !inSingleQuotes(text)) {
      text = text.slice(0, -1) + (lines[++i] as string);
    }
    const trimmed = text.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    result.push({ line: start + 1, text: trimmed });
  }
  return result;
}

function inSingleQuotes(text: string): boolean {
  let open = false;
  let double = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\\' && !open) i++;
    else if (c === "'" && !double) open = !open;
    else if (c === '"' && !open) double = !double;
  }
  return open;
}

/** Applies `[export ]NAME=WORD [# comment]`; false when the statement is anything else. */
function assign(text: string, state: GrubDefaults): boolean {
  const body = text.startsWith('export ') ? text.slice(7).trimStart() : text;
  const eq = body.indexOf('=');
  if (eq <= 0 || !NAME.test(body.slice(0, eq))) return false;
  const name = body.slice(0, eq);
  const word = readWord(body.slice(eq + 1), state);
  if (word === undefined) return false;
  if (word.unknown) {
    state.values.delete(name);
    state.unknown.add(name);
  } else {
    state.values.set(name, word.value);
    state.unknown.delete(name);
  }
  return true;
}

interface Word {
  value: string;
  /** It holds a command substitution or a variable whose value is unknown. */
  unknown: boolean;
}

/**
 * One shell word, then only blanks or a comment may follow. Returns undefined for syntax
 * we do not handle (the statement is then reported); `unknown` when it holds a command
 * substitution or an unknown variable.
 */
function readWord(text: string, state: GrubDefaults): Word | undefined {
  const word: Word = { value: '', unknown: false };
  let i = 0;
  while (i < text.length && text[i] !== ' ' && text[i] !== '\t') {
    const next = readPart(text, i, word, state);
    if (next === undefined) return undefined;
    i = next;
  }
  const rest = text.slice(i).trim();
  if (rest !== '' && !rest.startsWith('#')) return undefined;
  return word;
}

/**
 * The piece of a word at `i` (a quoted string, an escape, an expansion or one plain
 * character) added to `word`; the index after it, or undefined for syntax we do not handle.
 */
function readPart(text: string, i: number, word: Word, state: GrubDefaults): number | undefined {
  const c = text[i] as string;
  if (c === "'") return readSingleQuoted(text, i, word);
  if (c === '"') return readDoubleQuoted(text, i + 1, word, state);
  if (c === '\\') {
    word.value += text[i + 1] ?? '';
    return i + 2;
  }
  if (c === '$') return expand(text, i, word, state);
  if (c === '`') return skipCommandSubstitution(text, i, word);
  if (';&|<>()'.includes(c)) return undefined;
  word.value += c;
  return i + 1;
}

function readSingleQuoted(text: string, i: number, word: Word): number | undefined {
  const end = text.indexOf("'", i + 1);
  if (end < 0) return undefined;
  word.value += text.slice(i + 1, end);
  return end + 1;
}

/** From just after the opening `"` to just after the closing one. */
function readDoubleQuoted(text: string, start: number, word: Word, state: GrubDefaults): number | undefined {
  let i = start;
  while (i < text.length) {
    if (text[i] === '"') return i + 1;
    const next = readDoubleQuotedPart(text, i, word, state);
    if (next === undefined) return undefined;
    i = next;
  }
  return undefined;
}

function readDoubleQuotedPart(text: string, i: number, word: Word, state: GrubDefaults): number | undefined {
  const d = text[i] as string;
  if (d === '\\' && i + 1 < text.length && '$`"\\'.includes(text[i + 1] as string)) {
    word.value += text[i + 1];
    return i + 2;
  }
  if (d === '$') return expand(text, i, word, state);
  if (d === '`') return undefined;
  word.value += d;
  return i + 1;
}

/** At a `$`: $NAME or ${NAME}; other forms (${X:-y}, $(…), $1) are not ours to guess. */
function expand(text: string, from: number, word: Word, state: GrubDefaults): number | undefined {
  const braced = text[from + 1] === '{';
  const match = (braced ? /^\$\{([A-Za-z_][A-Za-z0-9_]*)\}/ : /^\$([A-Za-z_][A-Za-z0-9_]*)/).exec(
    text.slice(from),
  );
  if (!match?.[1]) return undefined;
  if (state.unknown.has(match[1])) word.unknown = true;
  else word.value += state.values.get(match[1]) ?? '';
  return from + match[0].length;
}

/** The Debian default GRUB_DISTRIBUTOR=`( . /etc/os-release … )`: fine, its value is just unknown. */
function skipCommandSubstitution(text: string, i: number, word: Word): number | undefined {
  const end = text.indexOf('`', i + 1);
  if (end < 0) return undefined;
  word.unknown = true;
  return end + 1;
}
