#!/usr/bin/env node
// Entry point of the published CLI: the compiled code lives in dist/.
import { enableCompileCache } from 'node:module';

// The whole-lab commands run with a smaller V8 young generation, which keeps a plan for
// 500 hosts under 300 MB (BENCHMARKS.md) at a few percent of speed. The flag must be
// given at start, so those commands start once more with it (not --help, not doctor).
const FLAG = '--max-semi-space-size=8';
const WHOLE_LAB = new Set(['plan', 'apply', 'verify', 'status', 'rollback']);
if (WHOLE_LAB.has(process.argv[2] ?? '') && !process.execArgv.includes(FLAG)) {
  const { spawnSync } = await import('node:child_process');
  const child = spawnSync(process.execPath, [...process.execArgv, FLAG, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(child.status ?? (child.signal ? 1 : 0));
}

enableCompileCache?.();
await import('../dist/cli/main.js');
