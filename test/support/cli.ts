// The command line as a user runs it. runCli runs the program inside the test's process
// (test/support/in-process.ts: no start-up, no build). spawnCli starts it as a process
// of its own from the TypeScript source, the way bin/igpu-split.js starts the built one:
// for what needs a process (a terminal or none, signals, the output guard and secret
// memory of a fresh process).

import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ProgramRun, runInProcess } from './in-process.ts';

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
// bin/igpu-split.js restarts these commands with this flag; here they start with it.
const WHOLE_LAB = new Set(['plan', 'apply', 'verify', 'status', 'rollback']);
const WHOLE_LAB_FLAG = '--max-semi-space-size=8';
// bin/igpu-split.js turns on node's compile cache (in this folder) before anything loads;
// a process started from main.ts is told through the environment.
const COMPILE_CACHE = join(tmpdir(), 'node-compile-cache');

export type CliResult = ProgramRun;

export function runCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return runInProcess(args, env);
}

/** The program as a process with no terminal: stdin is closed, stdout and stderr are pipes. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  const flags = WHOLE_LAB.has(args[0] ?? '') ? [WHOLE_LAB_FLAG] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, MAIN, ...args], {
      env: { ...env, NODE_COMPILE_CACHE: COMPILE_CACHE },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
