// First contact (issue 15): what a newcomer waits for on a fresh clone — `npm start` cold
// (no .node/, no node_modules, an empty npm cache: Node.js, the dependencies and the build
// come from the network) and warm (everything there), then `demo --serve` until its ready
// line, then `plan` against it from another shell. Each side is a fresh `git clone` of its
// commit (today: HEAD, so commit first), with PATH holding only the system's folders, as
// on a machine that has never seen the repo. `npm start` needs the npm registry: without
// it the figures are skipped, saying why.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SYSTEM_PATH = '/usr/local/bin:/usr/bin:/bin';

export interface FirstContact {
  commit: string;
  coldStartMs: number;
  warmStartMs: number;
}

export interface Playground {
  readyMs: number[];
  planMs: number[];
}

function timed(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { cwd, env, stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} in ${cwd} exited ${result.status}`);
  return ms;
}

/** A fresh clone of `commit` from the repository at `root`, in a new temporary folder. */
export function freshClone(root: string, commit: string): string {
  const dir = mkdtempSync(join(tmpdir(), `igpu-split-clone-${commit.slice(0, 7)}-`));
  for (const args of [
    ['clone', '-q', '--no-checkout', root, dir],
    ['-C', dir, 'checkout', '-q', commit],
  ]) {
    const result = spawnSync('git', args, { stdio: 'ignore' });
    if (result.status !== 0) throw new Error(`git ${args.join(' ')} failed`);
  }
  return dir;
}

/** `npm start` twice in a fresh clone: cold (empty npm cache), then warm. */
export function benchNpmStart(root: string, commit: string): FirstContact {
  const clone = freshClone(root, commit);
  const cache = mkdtempSync(join(tmpdir(), 'igpu-split-npm-cache-'));
  try {
    const env = { HOME: process.env.HOME, PATH: SYSTEM_PATH, npm_config_cache: cache };
    const coldStartMs = timed('npm', ['start'], clone, env);
    const warmStartMs = timed('npm', ['start'], clone, env);
    return { commit, coldStartMs, warmStartMs };
  } finally {
    rmSync(clone, { recursive: true, force: true });
    rmSync(cache, { recursive: true, force: true });
  }
}

/** `demo --serve` until its one line, then `plan` from a shell that sourced demo.env; `rounds` times. */
export async function benchPlayground(tree: string, rounds: number, plans: number): Promise<Playground> {
  const result: Playground = { readyMs: [], planMs: [] };
  for (let i = 0; i < rounds; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'igpu-split-bench-pg-'));
    const env = { HOME: process.env.HOME, PATH: SYSTEM_PATH };
    const start = process.hrtime.bigint();
    const serve: ChildProcess = spawn(join(tree, 'bin/igpu-split'), ['demo', '--serve', '--dir', 'pg'], {
      cwd: dir,
      env,
    });
    // One promise for the end, made at once: an early exit is not missed by a later wait.
    const exited = new Promise<number | null>((resolve) => serve.once('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        serve.stdout?.once('data', () => resolve());
        void exited.then((code) => reject(new Error(`demo --serve ended (${code})`)));
      });
      result.readyMs.push(Number(process.hrtime.bigint() - start) / 1e6);
      for (let j = 0; j < plans; j++)
        result.planMs.push(
          timed(
            'bash',
            ['--norc', '--noprofile', '-c', '. pg/demo.env && igpu-split plan >/dev/null'],
            dir,
            env,
          ),
        );
    } finally {
      serve.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return result;
}
