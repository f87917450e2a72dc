// The one test command (`npm test`): lint, type check, build, then every test file of
// every tier (test/tiers.ts) with node's test runner. Fails when any stage fails, when a
// test file is in no tier or in two, or when no test ran at all.
// `npm run test:fast` (--fast) runs the fast tier alone, straight from the sources (no
// lint, type check or build): the check after every change.
// `node scripts/test.ts <file>…` runs the stages, then those files.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { TIERS, tierProblems } from '../test/tiers.ts';

const bin = (name: string) => join('node_modules', '.bin', name);

function stage(title: string, command: string, args: string[]): void {
  process.stdout.write(`\n== ${title}\n`);
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) {
    process.stdout.write(`\n${title} failed (exit ${result.status ?? result.signal})\n`);
    process.exit(1);
  }
}

const problems = tierProblems();
if (problems.length > 0) {
  process.stdout.write(`test tiers (test/tiers.ts):\n${problems.map((p) => `  ${p}\n`).join('')}`);
  process.exit(1);
}

const fast = process.argv.includes('--fast');
const named = process.argv.slice(2).filter((a) => a !== '--fast');
if (!fast) {
  stage('lint (biome)', bin('biome'), ['check', '.']);
  stage('type check (tsc)', bin('tsc'), ['-p', 'tsconfig.json']);
  stage('build (tsc)', bin('tsc'), ['-p', 'tsconfig.build.json']);
}

// Spec output for people and CI, TAP into a file whose counts we check.
const work = mkdtempSync(join(tmpdir(), 'igpu-split-test-'));
const tap = join(work, 'results.tap');
process.stdout.write('\n== tests (node --test)\n');
const tests = spawnSync(
  process.execPath,
  [
    '--test',
    `--test-concurrency=${availableParallelism()}`,
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tap}`,
    ...(named.length > 0 ? named : fast ? TIERS.fast : Object.values(TIERS).flat()),
  ],
  {
    stdio: 'inherit',
    // Each test file is a process of its own: node's compile cache (the folder
    // bin/igpu-split.js uses) keeps the stripped sources and dependencies compiled between them.
    env: { NODE_COMPILE_CACHE: join(tmpdir(), 'node-compile-cache'), ...process.env },
  },
);
// No file when the runner stopped before any report.
const counts = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
rmSync(work, { recursive: true, force: true });
const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(counts)?.[1] ?? 0);
if (count('tests') === 0) {
  process.stdout.write('\nno test ran: that is a failure\n');
  process.exit(1);
}
process.stdout.write(`\n${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped\n`);
if (tests.status !== 0) {
  process.stdout.write(`\ntests failed (exit ${tests.status ?? tests.signal})\n`);
  process.exit(1);
}
