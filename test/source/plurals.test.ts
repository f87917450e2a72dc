// No message says `step(s)` or `entry(ies)`: every string and template literal in src/
// is searched, and a count is written with counted() (src/core/text.ts) instead. The
// simulators are left out: they repeat upstream messages word for word (the Kubernetes
// scheduler's "2 node(s) didn't match Pod's node affinity/selector").

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { counted, listed } from '../../src/core/text.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const HEDGED = /[A-Za-z]\((?:s|es|ies)\)/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return relative(ROOT, path) === 'src/sim' ? [] : sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Keywords after which a `/` starts a regular expression, not a division. */
const BEFORE_REGEX = /(?:^|[^\w$])(?:return|typeof|case|in|of|void|throw|delete|yield|await)$/;

/**
 * Every piece of literal text in a file — quoted strings and template text (without its
 * `${…}`) — with its line; comments, code and regular expressions are passed over.
 * (TypeScript 7's compiler has no JavaScript API to ask.)
 */
export function literals(text: string): { line: number; text: string }[] {
  const found: { line: number; text: string }[] = [];
  const lineAt = (offset: number) => text.slice(0, offset).split('\n').length;
  const opened: number[] = []; // brace depth at each open `${`
  let depth = 0;
  let i = 0;
  /** Template text from `from`; returns where code resumes (after the backquote or `${`). */
  const template = (from: number): number => {
    let j = from;
    while (j < text.length && text[j] !== '`' && !text.startsWith('${', j)) j += text[j] === '\\' ? 2 : 1;
    found.push({ line: lineAt(from), text: text.slice(from, j) });
    if (text.startsWith('${', j)) {
      opened.push(depth++);
      return j + 2;
    }
    return j + 1;
  };
  while (i < text.length) {
    const c = text[i] as string;
    if (text.startsWith('//', i)) i = text.indexOf('\n', i) < 0 ? text.length : text.indexOf('\n', i);
    else if (text.startsWith('/*', i))
      i = text.indexOf('*/', i + 2) < 0 ? text.length : text.indexOf('*/', i + 2) + 2;
    else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < text.length && text[j] !== c && text[j] !== '\n') j += text[j] === '\\' ? 2 : 1;
      found.push({ line: lineAt(i), text: text.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '`') i = template(i + 1);
    else if (c === '{') {
      depth++;
      i++;
    } else if (c === '}') {
      depth--;
      if (opened.at(-1) === depth) {
        opened.pop();
        i = template(i + 1);
      } else i++;
    } else if (
      c === '/' &&
      (BEFORE_REGEX.test(text.slice(0, i).trimEnd()) || !/[\w$)\]}]$/.test(text.slice(0, i).trimEnd()))
    ) {
      let j = i + 1;
      let inClass = false;
      while (j < text.length && text[j] !== '\n' && (inClass || text[j] !== '/')) {
        if (text[j] === '\\') j++;
        else if (text[j] === '[') inClass = true;
        else if (text[j] === ']') inClass = false;
        j++;
      }
      i = j + 1;
    } else i++;
  }
  return found;
}

test('no string in src says step(s), entry(ies) or the like', () => {
  const hedged = sources(join(ROOT, 'src')).flatMap((file) =>
    literals(readFileSync(file, 'utf8'))
      .filter((literal) => HEDGED.test(literal.text))
      .map((literal) => `${relative(ROOT, file)}:${literal.line}: ${literal.text}`),
  );
  assert.deepEqual(hedged, []);
});

test('the search finds a hedged plural in a template and ignores code and comments', () => {
  const text =
    '// 2 step(s)\nconst a = xs.map((s) => s);\nconst r = /^y(es)?$/;\nconst b = `${n} entry(ies) left`;\n/* check(s) */\n';
  assert.deepEqual(
    literals(text).filter((l) => HEDGED.test(l.text)),
    [{ line: 4, text: ' entry(ies) left' }],
  );
});

test('counted writes the noun in the number the count needs', () => {
  assert.equal(counted(1, 'step'), '1 step');
  assert.equal(counted(3, 'step'), '3 steps');
  assert.equal(counted(0, 'VM'), '0 VMs');
  assert.equal(counted(2, 'entry'), '2 entries');
  assert.equal(counted(2, 'key'), '2 keys');
  assert.equal(counted(2, 'igpu-split entry', 'igpu-split entries'), '2 igpu-split entries');
});

test('listed names one thing in the singular and several in the plural', () => {
  assert.equal(listed('VM', [101]), 'VM 101');
  assert.equal(listed('VM', [101, 102]), 'VMs 101, 102');
});
