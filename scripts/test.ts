// The one test command (`npm test`): lint, type check, build, then every test with
// node's test runner. Fails when any stage fails or when no test ran at all.
// `npm run test:fast` (--fast) leaves out the slow tiers — real sshd hosts, the boot
// chain, kill points, the bad-input corpus — for a check after every change.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const bin = (name: string) => join('node_modules', '.bin', name);

/** Every test file but the slow tiers'. */
function fastFiles(): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (path.endsWith('.test.ts') && !SLOW.some((slow) => path.startsWith(slow))) found.push(path);
    }
  };
  walk('test');
  return found.sort();
}

function stage(title: string, command: string, args: string[]): void {
  process.stdout.write(`\n== ${title}\n`);
  const result = spawnSync(command, args, { stdio: 'inherit' });
  if (result.status !== 0) {
    process.stdout.write(`\n${title} failed (exit ${result.status ?? result.signal})\n`);
    process.exit(1);
  }
}

stage('lint (biome)', bin('biome'), ['check', '.']);
stage('type check (tsc)', bin('tsc'), ['-p', 'tsconfig.json']);
stage('build (tsc)', bin('tsc'), ['-p', 'tsconfig.build.json']);

// Spec output for people and CI, TAP into a file whose counts we check.
const work = mkdtempSync(join(tmpdir(), 'igpu-split-test-'));
const tap = join(work, 'results.tap');
const fast = process.argv.includes('--fast');
const SLOW = ['test/integration/', 'test/bootchain/', 'test/faults/', 'test/bad-input/'];
const files = process.argv.slice(2).filter((a) => a !== '--fast');
stage('tests (node --test)', process.execPath, [
  '--test',
  '--test-concurrency=2',
  '--test-reporter=spec',
  '--test-reporter-destination=stdout',
  '--test-reporter=tap',
  `--test-reporter-destination=${tap}`,
  ...(files.length > 0 ? files : fast ? fastFiles() : ['test/**/*.test.ts']),
]);
const counts = readFileSync(tap, 'utf8');
rmSync(work, { recursive: true, force: true });
const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(counts)?.[1] ?? 0);
if (count('tests') === 0) {
  process.stdout.write('\nno test ran: that is a failure\n');
  process.exit(1);
}
process.stdout.write(`\n${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped\n`);
