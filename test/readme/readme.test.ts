// The README works as written: every fenced `sh` block runs, line by line, in a fresh
// interactive bash (`--norc --noprofile -i`, so history expansion is on as in a user's
// shell) that has sourced the playground's demo.env, against `igpu-split demo --serve`
// started as the README says, with PATH holding only the system folders (where this
// machine's node may be older than 22). Each line must exit as its comment says
// (`# … exits N`), else 0, and bash must not complain about it. Blocks marked
// `<!-- real-lab-only -->` (they need a real Proxmox host) or `<!-- syntax-only: why -->`
// (set-up, the playground itself, long-running lines) are only parsed with `bash -n`.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { collect } from '../support/collect.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

export interface Block {
  /** 1-based line of the opening fence. */
  line: number;
  marker: 'run' | 'real-lab-only' | 'syntax-only';
  text: string;
}

/** The fenced `sh` blocks of a Markdown text, each with the marker on the line before it. */
export function shBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]?.trim() !== '```sh') continue;
    let before = i - 1;
    while (before >= 0 && lines[before]?.trim() === '') before--;
    const previous = lines[before]?.trim() ?? '';
    const marker =
      previous === '<!-- real-lab-only -->'
        ? 'real-lab-only'
        : /^<!-- syntax-only: .+ -->$/.test(previous)
          ? 'syntax-only'
          : 'run';
    const end = lines.indexOf('```', i + 1);
    blocks.push({ line: i + 1, marker, text: lines.slice(i + 1, end).join('\n') });
    i = end;
  }
  return blocks;
}

/** A block's commands: continuation lines joined, blank and comment-only lines left out. */
export function commandsOf(block: string): { command: string; exits: number }[] {
  const joined = block.replace(/[ \t]*\\\n\s*/g, ' ');
  return joined
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.trim().startsWith('#'))
    .map((command) => ({ command, exits: Number(/#.*\bexits (\d+)/.exec(command)?.[1] ?? 0) }));
}

const work = mkdtempSync(join(tmpdir(), 'igpu-split-readme-'));
const home = join(work, 'home');
const cwd = join(work, 'shell');
// Where `igpu-split demo --serve` puts it by default, as the README says: in the shell's folder.
const playgroundDir = join(cwd, 'igpu-split-demo');
// What a fresh shell on this machine has: the system's folders, so `igpu-split` comes from demo.env.
const ENV = { HOME: home, PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', TERM: 'dumb' };
let playground: ChildProcess;
let exited: Promise<number | null>;

before(async () => {
  mkdirSync(home);
  mkdirSync(cwd);
  playground = spawn(join(ROOT, 'bin/igpu-split'), ['demo', '--serve'], {
    env: ENV,
    cwd,
  });
  exited = new Promise((resolve) => playground.once('exit', (code) => resolve(code)));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    playground.stdout?.on('data', (chunk) => {
      output += chunk;
      if (output.includes('\n')) resolve();
    });
    playground.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    void exited.then((code) => reject(new Error(`demo --serve ended (${code}): ${output}`)));
  });
  assert.match(output, /^igpu-split playground: .*\. .*demo\.env/);
});

after(async () => {
  playground.kill('SIGTERM');
  const code = await exited;
  const left = existsSync(playgroundDir);
  rmSync(work, { recursive: true, force: true });
  assert.equal(code, 0, 'demo --serve stops cleanly on SIGTERM');
  assert.equal(left, false, 'demo --serve removes its folder when it stops');
});

const runLine = (command: string) =>
  collect('bash', ['--norc', '--noprofile', '-i'], {
    env: ENV,
    cwd,
    input: `. '${join(playgroundDir, 'demo.env')}'\n${command}\n`,
  });

/** What bash says about a line it could not run as written (history expansion, syntax, a missing command). */
const BASH_COMPLAINT = /^bash: .*(event not found|syntax error|command not found|No such file or directory)/m;

const blocks = shBlocks(README);

test('README: the marked blocks are at least valid sh (bash -n)', () => {
  const checked = blocks.filter((b) => b.marker !== 'run');
  assert.ok(checked.length > 0);
  for (const block of checked) {
    const result = spawnSync('bash', ['-n'], { input: block.text, encoding: 'utf8' });
    assert.equal(result.status, 0, `README.md:${block.line}: ${result.stderr}`);
  }
});

test('README: every line of every other sh block exits as it says, against the playground', async () => {
  const runnable = blocks.filter((b) => b.marker === 'run');
  assert.ok(runnable.length >= 3, 'the README has blocks to try against the playground');
  for (const block of runnable) {
    for (const { command, exits } of commandsOf(block.text)) {
      const result = await runLine(command);
      const where = `README.md:${block.line}: ${command}\n--- stdout\n${result.stdout.slice(-3000)}\n--- stderr\n${result.stderr.slice(-3000)}`;
      assert.doesNotMatch(result.stderr, BASH_COMPLAINT, where);
      assert.equal(result.code, exits, where);
    }
  }
});

test('the playground hands out the demo’s talosctl stand-in, and it says so', async () => {
  const result = await runLine('talosctl version --client');
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /igpu-split demo stand-in for talosctl/);
});

test('bin/igpu-split.js on a node older than 22 says so in one line and exits 2', (t) => {
  const node = '/usr/bin/node';
  const version = existsSync(node)
    ? spawnSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' })
    : undefined;
  const major = Number(version?.stdout.split('.')[0] ?? 0);
  if (!version || major === 0 || major >= 22) return t.skip(`no node older than 22 at ${node}`);
  const result = spawnSync(node, [join(ROOT, 'bin/igpu-split.js'), '--version'], { encoding: 'utf8' });
  assert.equal(result.status, 2);
  assert.equal(result.stdout, '');
  const lines = result.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] as string, /Node\.js 22 or later/);
  assert.match(lines[0] as string, /npm start/);
});

test('shBlocks and commandsOf: markers, continuations, expected exits', () => {
  const text =
    'a\n\n<!-- real-lab-only -->\n\n```sh\nx --y\n```\n```sh\n# note\nplan \\\n  --z   # exits 3\n\nverify\n```\n';
  const found = shBlocks(text);
  assert.deepEqual(
    found.map((b) => b.marker),
    ['real-lab-only', 'run'],
  );
  assert.deepEqual(commandsOf(found[1]?.text ?? ''), [
    { command: 'plan --z   # exits 3', exits: 3 },
    { command: 'verify', exits: 0 },
  ]);
});
