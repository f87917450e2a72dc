// The import rules of docs/architecture.md, checked over the source text of src/:
// static imports and re-exports (`import type` too) and literal `import()` calls; a
// computed `import()` path fails, as it could reach anything. Also: only the CLI writes to
// stdout/stderr or exits, and product code never reaches the simulators.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SRC = join(ROOT, 'src');

const LAYERS = ['host', 'mapping', 'vm', 'guest', 'cluster'];
const SHARED = ['core', 'knowledge', 'linux', 'access', 'proxmox', 'config'];

interface Edge {
  from: string;
  to: string;
  line: number;
}

/** Every module specifier in a file's text, with its line; `undefined` for a computed import(). */
export function importsOf(text: string): { spec: string | undefined; line: number }[] {
  const found: { spec: string | undefined; line: number }[] = [];
  const lineAt = (index: number) => text.slice(0, index).split('\n').length;
  const stat = /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g;
  for (const match of text.matchAll(stat)) found.push({ spec: match[1], line: lineAt(match.index ?? 0) });
  const dynamic = /\bimport\s*\(\s*([^)]*?)\s*[,)]/g;
  for (const match of text.matchAll(dynamic)) {
    const literal = /^(['"])([^'"`]+)\1$/.exec(match[1] ?? '');
    found.push({ spec: literal?.[2], line: lineAt(match.index ?? 0) });
  }
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

/** `src/host/plan.ts` → `host`; `src/index.ts` → `index`. */
const folderOf = (file: string) => relative(SRC, file).split('/')[0]?.replace(/\.ts$/, '') as string;

function graph(): { edges: Edge[]; computed: string[] } {
  const edges: Edge[] = [];
  const computed: string[] = [];
  for (const file of sourceFiles(SRC)) {
    for (const { spec, line } of importsOf(readFileSync(file, 'utf8'))) {
      const from = relative(ROOT, file);
      if (spec === undefined) computed.push(`${from}:${line}`);
      else if (spec.startsWith('.'))
        edges.push({ from, to: relative(ROOT, resolve(dirname(file), spec)), line });
    }
  }
  return { edges, computed };
}

const broken = (edges: Edge[], rule: (edge: Edge) => boolean) =>
  edges.filter(rule).map((e) => `${e.from}:${e.line} → ${e.to}`);

test('the scanner finds static, type-only, re-exported and literal dynamic imports, and flags a computed one', () => {
  const text = [
    "import { a } from './a.ts';",
    "import type { B } from '../b.ts';",
    "export { c } from './c.ts';",
    "import './side-effect.ts';",
    'const d = await import("./d.ts");',
    'const e = await import(`./${name}.ts`);',
  ].join('\n');
  assert.deepEqual(
    importsOf(text).map((i) => i.spec),
    ['./a.ts', '../b.ts', './c.ts', './side-effect.ts', './d.ts', undefined],
  );
});

test('a layer imports no other layer; shared modules import no layer, engine, CLI, simulator or demo', () => {
  const { edges } = graph();
  const folder = (path: string) => path.split('/')[1] as string;
  assert.ok(edges.length > 300, `only ${edges.length} imports found: the scanner is broken`);
  assert.deepEqual(
    broken(
      edges,
      (e) =>
        LAYERS.includes(folder(e.from)) && LAYERS.includes(folder(e.to)) && folder(e.from) !== folder(e.to),
    ),
    [],
    'a layer imports another layer',
  );
  assert.deepEqual(
    broken(
      edges,
      (e) => LAYERS.includes(folder(e.from)) && ![...SHARED, folder(e.from)].includes(folder(e.to)),
    ),
    [],
    'a layer imports something other than the shared modules',
  );
  assert.deepEqual(
    broken(edges, (e) => SHARED.includes(folder(e.from)) && !SHARED.includes(folder(e.to))),
    [],
    'a shared module imports a layer, the engine, the CLI, a simulator or the demo',
  );
});

test('only src/sim and src/demo import the simulators; the library root exports neither', () => {
  const { edges } = graph();
  assert.deepEqual(
    broken(edges, (e) => e.to.startsWith('src/sim/') && !/^src\/(sim|demo)\//.test(e.from)),
    [],
    'product code imports a simulator',
  );
  assert.deepEqual(
    broken(edges, (e) => e.from === 'src/index.ts' && /^src\/(sim|demo)\//.test(e.to)),
    [],
    'the library root exports a simulator or the demo',
  );
});

test('no computed import() anywhere in src', () => {
  assert.deepEqual(graph().computed, []);
});

test('only the CLI writes to stdout or stderr, or ends the process', () => {
  const offenders: string[] = [];
  for (const file of sourceFiles(SRC)) {
    // A simulator's `-main.ts` is a program of its own (the playground's talosctl), not library code.
    if (folderOf(file) === 'cli' || /\/sim\/[^/]+-main\.ts$/.test(file)) continue;
    readFileSync(file, 'utf8')
      .split('\n')
      .forEach((line, index) => {
        // A comment may name them; code may not use them.
        const code = line.replace(/\/\/.*$/, '');
        if (/process\.(stdout|stderr)\b|\bconsole\.\w+\(|process\.exit\(|process\.abort\(/.test(code))
          offenders.push(`${relative(ROOT, file)}:${index + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(offenders, []);
});
