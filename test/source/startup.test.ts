// What the CLI loads to start: `--help` and `doctor --root` must not load zod (the lab
// file's schema library). Zod is loaded when a lab file, a state file or a manifest is read;
// a constant imported from config/lab.ts by a module every command loads once pulled it into
// every start (BENCHMARKS.md: --help 109 ms against 69 ms).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fixturePath } from '../support/fixtures.ts';

const BIN = fileURLToPath(new URL('../../bin/igpu-split.js', import.meta.url));
// Node's synchronous module hooks (module.registerHooks): every resolved URL is said on stderr.
const HOOK = `import { registerHooks } from 'node:module';
registerHooks({ resolve(specifier, context, next) {
  const result = next(specifier, context);
  process.stderr.write('loaded ' + result.url + '\\n');
  return result;
} });`;

function loaded(args: string[]): { code: number | null; urls: string[] } {
  const run = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(HOOK)}`, BIN, ...args],
    { encoding: 'utf8' },
  );
  const urls = run.stderr
    .split('\n')
    .filter((l) => l.startsWith('loaded '))
    .map((l) => l.slice('loaded '.length));
  return { code: run.status, urls };
}

for (const args of [['--help'], ['doctor', '--root', fixturePath('n100-sriov')]]) {
  test(`igpu-split ${args[0]} starts without loading zod`, () => {
    const { code, urls } = loaded(args);
    assert.ok(code === 0 || code === 1, `exit ${code}`);
    assert.ok(
      urls.some((u) => u.endsWith('/dist/cli/main.js')),
      'the hook saw the CLI load (else this test proves nothing)',
    );
    const zod = urls.filter((u) => /\/node_modules\/zod\//.test(u));
    assert.deepEqual(zod.slice(0, 1), [], 'zod was loaded');
  });
}
