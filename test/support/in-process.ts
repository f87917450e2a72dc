// The program run inside the test process, without spawning (most CLI tests): what it
// writes is captured through the same output guard main.ts puts on a real process.
// Test-only, so it lives here and never ships in dist/.

import { AsyncLocalStorage } from 'node:async_hooks';
import { guardOutput, runProgram } from '../../src/cli/program.ts';

export interface ProgramRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Where the output of an in-process run goes, for the code running on its behalf. */
const capture = new AsyncLocalStorage<{ stdout: string; stderr: string }>();
let capturing = false;

/**
 * From now on what code running inside `capture` writes to stdout or stderr is kept,
 * guarded as main.ts guards it; everything else (the test runner's own reports) passes.
 */
function captureOutput(): void {
  if (capturing) return;
  capturing = true;
  for (const name of ['stdout', 'stderr'] as const) {
    const stream = process[name];
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const into = capture.getStore();
      if (into === undefined) return write(chunk, ...rest);
      const safe = guardOutput(chunk);
      into[name] += typeof safe === 'string' ? safe : Buffer.from(safe as Uint8Array).toString('utf8');
      const done = rest.find((arg) => typeof arg === 'function');
      if (done) process.nextTick(done as () => void);
      return true;
    }) as typeof stream.write;
  }
}

/** Makes process.env hold exactly `values`. */
function setEnvironment(values: NodeJS.ProcessEnv): void {
  for (const key of Object.keys(process.env)) if (!(key in values)) delete process.env[key];
  Object.assign(process.env, values);
}

/** The end of the last in-process run asked for: runs take turns (see runInProcess). */
let lastRun: Promise<void> = Promise.resolve();

/**
 * Runs the program with `args` (what follows `igpu-split`) inside this process, as a
 * user would from a shell with `env`, without spawning: what it writes is captured, and
 * process.exitCode and the environment (a command may set or drop a variable) are as
 * before afterwards. Runs asked for together take turns, since the exit code and the
 * environment are the process's. What needs a process of its own (signals, a crash's
 * exit, the terminal) is not for this.
 */
export async function runInProcess(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<ProgramRun> {
  const previous = lastRun;
  let finished = () => {};
  lastRun = new Promise((resolve) => {
    finished = resolve;
  });
  await previous;
  captureOutput();
  const exitCode = process.exitCode;
  const environment = { ...process.env };
  setEnvironment(env);
  process.exitCode = undefined;
  const output = { stdout: '', stderr: '' };
  try {
    const code = await capture.run(output, () => runProgram(['node', 'igpu-split', ...args]));
    return { code, ...output };
  } finally {
    process.exitCode = exitCode;
    setEnvironment(environment);
    finished();
  }
}
