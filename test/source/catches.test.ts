// Every error handler in src/ — `catch (x) {`, `catch {`, `.catch(` and the second
// argument of `.then(ok, fail)` — says which failure it expects, in a comment beginning
// `// expected: ` on its line, on one of the two lines before it, or on the first line of
// its body (docs: the catch convention of issue 14). A handler without one fails here; the
// inventory of all of them is printed so a reviewer sees every swallowed condition at once.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MARK = '// expected: ';

export interface Handler {
  /** 1-based line of the handler's keyword (`catch`, or the rejection handler of `.then`). */
  line: number;
  kind: 'catch' | '.catch(' | '.then(ok, fail)';
  /** The text after `// expected: `, or undefined when no such comment is near. */
  condition: string | undefined;
}

/** Keywords after which a `/` starts a regular expression, not a division. */
const BEFORE_REGEX_WORDS = new Set([
  'return',
  'typeof',
  'case',
  'in',
  'of',
  'void',
  'throw',
  'delete',
  'yield',
  'await',
]);

/**
 * The text with comments, string and template text and regular expressions replaced by
 * blanks (line breaks kept), so that what is searched is code only; `${…}` stays code.
 */
export function codeOnly(text: string): string {
  return new Blanker(text).run();
}

class Blanker {
  private readonly text: string;
  private readonly out: string[];
  /** Brace depth at each open `${`, so its `}` is told from a block's. */
  private readonly substitutions: number[] = [];
  private depth = 0;

  constructor(text: string) {
    this.text = text;
    this.out = text.split('');
  }

  run(): string {
    let i = 0;
    while (i < this.text.length) i = this.step(i);
    return this.out.join('');
  }

  /** Handles what starts at `i`; returns where the next thing starts. */
  private step(i: number): number {
    const c = this.text[i] as string;
    const pair = this.text.slice(i, i + 2);
    if (pair === '//') return this.skipTo(i, this.text.indexOf('\n', i), 0);
    if (pair === '/*') return this.skipTo(i, this.text.indexOf('*/', i + 2), 2);
    if (c === '"' || c === "'") return this.quoted(i, c);
    if (c === '`') return this.template(i + 1);
    if (c === '{') this.depth++;
    if (c === '}') return this.closeBrace(i);
    if (c === '/' && this.regexAllowed(i)) return this.regex(i);
    return i + 1;
  }

  private blank(from: number, to: number): void {
    for (let k = from; k < to && k < this.out.length; k++) if (this.out[k] !== '\n') this.out[k] = ' ';
  }

  /** Blanks a comment from `i` to `end` (plus the closing `extra` characters); -1 means to the end. */
  private skipTo(i: number, end: number, extra: number): number {
    const stop = end < 0 ? this.text.length : end + extra;
    this.blank(i, stop);
    return stop;
  }

  private quoted(i: number, quote: string): number {
    let j = i + 1;
    while (j < this.text.length && this.text[j] !== quote && this.text[j] !== '\n')
      j += this.text[j] === '\\' ? 2 : 1;
    this.blank(i + 1, j);
    return j + 1;
  }

  /** Template text from `from` (after a backquote or a substitution's `}`); returns where code resumes. */
  private template(from: number): number {
    let j = from;
    while (j < this.text.length) {
      if (this.text[j] === '\\') {
        j += 2;
        continue;
      }
      if (this.text[j] === '`') {
        this.blank(from, j);
        return j + 1;
      }
      if (this.text.startsWith('${', j)) {
        this.blank(from, j);
        this.substitutions.push(this.depth);
        this.depth++;
        return j + 2;
      }
      j++;
    }
    this.blank(from, this.text.length);
    return this.text.length;
  }

  private closeBrace(i: number): number {
    this.depth--;
    if (this.substitutions.at(-1) !== this.depth) return i + 1;
    this.substitutions.pop();
    return this.template(i + 1);
  }

  /** A `/` starts a regular expression after an operator, an opening bracket or a keyword such as `return`. */
  private regexAllowed(at: number): boolean {
    const before = this.text.slice(0, at).trimEnd();
    if (before === '') return true;
    const word = /[\w$]+$/.exec(before)?.[0];
    if (word !== undefined) return BEFORE_REGEX_WORDS.has(word);
    return !/[)\]}]$/.test(before);
  }

  private regex(i: number): number {
    let j = i + 1;
    let inClass = false;
    while (j < this.text.length && this.text[j] !== '\n') {
      const c = this.text[j];
      if (c === '/' && !inClass) break;
      if (c === '\\') j++;
      else if (c === '[') inClass = true;
      else if (c === ']') inClass = false;
      j++;
    }
    this.blank(i + 1, j);
    return j + 1;
  }
}

/** Every error handler in a source text, with the condition its comment names. */
export function findHandlers(text: string): Handler[] {
  const code = codeOnly(text);
  const lines = text.split('\n');
  const lineAt = (offset: number) => code.slice(0, offset).split('\n').length;
  const nextCode = (from: number) => {
    let k = from;
    while (k < code.length && /\s/.test(code[k] as string)) k++;
    return k;
  };
  // The comment may sit from two lines before the handler to the first line of its body.
  const conditionNear = (first: number, last: number): string | undefined => {
    for (let line = Math.max(1, first); line <= Math.min(lines.length, last); line++) {
      const at = (lines[line - 1] as string).indexOf(MARK);
      if (at >= 0) return (lines[line - 1] as string).slice(at + MARK.length).trim();
    }
    return undefined;
  };
  const handlers: Handler[] = [];
  for (const match of code.matchAll(/(?<![.\w$])catch\s*[({]/g)) {
    const line = lineAt(match.index);
    handlers.push({ line, kind: 'catch', condition: conditionNear(line - 2, line + 1) });
  }
  for (const match of code.matchAll(/\.\s*catch\s*\(/g)) {
    const keyword = lineAt(match.index + match[0].search(/catch/));
    const body = lineAt(nextCode(match.index + match[0].length));
    handlers.push({ line: keyword, kind: '.catch(', condition: conditionNear(keyword - 2, body + 1) });
  }
  for (const match of code.matchAll(/\.\s*then\s*\(/g)) {
    const second = secondArgument(code, match.index + match[0].length);
    if (second === undefined) continue;
    const line = lineAt(nextCode(second));
    handlers.push({ line, kind: '.then(ok, fail)', condition: conditionNear(line - 2, line + 1) });
  }
  return handlers.sort((a, b) => a.line - b.line);
}

/** Where the second argument of a call starts (just after its comma), or undefined when there is none. */
function secondArgument(code: string, from: number): number | undefined {
  let depth = 0;
  for (let k = from; k < code.length; k++) {
    const c = code[k] as string;
    if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) {
      if (depth === 0) return undefined;
      depth--;
    } else if (c === ',' && depth === 0) {
      // A trailing comma (`then(ok,)`) is no second argument.
      const rest = code.slice(k + 1).trimStart();
      return rest.startsWith(')') ? undefined : k + 1;
    }
  }
  return undefined;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|mts|js|mjs)$/.test(entry.name) ? [path] : [];
  });
}

test('the scanner finds every kind of handler and tells a named one from an unnamed one', () => {
  const sample = [
    'async function f() {',
    '  try {',
    '    await g();',
    '  } catch (error) {',
    '    // expected: ENOENT — absent is fine',
    '    if (!isMissing(error)) throw error;',
    '  }',
    '  try { h(); } catch {',
    '    return 0;',
    '  }',
    '  const text = "not a .catch( here"; // nor .then(a, b) here',
    '  const re = /catch {/;',
    '  await g().then((x) => x);',
    '  await g()',
    '    .catch(',
    '      (error) => {',
    '        // expected: EACCES — said to the user',
    '        throw error;',
    '      },',
    '    );',
    '  await g().then(',
    '    (x) => x,',
    '    () => undefined,',
    '  );',
    '  await g().catch(() => `${a}`);',
    '}',
  ].join('\n');
  const found = findHandlers(sample).map((h) => [h.line, h.kind, h.condition]);
  assert.deepEqual(found, [
    [4, 'catch', 'ENOENT — absent is fine'],
    [8, 'catch', undefined],
    [15, '.catch(', 'EACCES — said to the user'],
    [23, '.then(ok, fail)', undefined],
    [25, '.catch(', undefined],
  ]);
});

test('every error handler in src/ names the condition it expects', (t) => {
  const unnamed: string[] = [];
  let count = 0;
  for (const file of sourceFiles(join(ROOT, 'src')).sort()) {
    const shown = relative(ROOT, file);
    for (const handler of findHandlers(readFileSync(file, 'utf8'))) {
      count++;
      if (handler.condition === undefined) unnamed.push(`${shown}:${handler.line}: ${handler.kind}`);
      else t.diagnostic(`${shown}:${handler.line}: ${handler.condition}`);
    }
  }
  t.diagnostic(`${count} handlers, ${unnamed.length} without a "${MARK.trim()}" comment`);
  assert.deepEqual(
    unnamed,
    [],
    `handlers without a "${MARK}…" comment naming what they expect (see the catch convention):\n${unnamed.join('\n')}`,
  );
});
