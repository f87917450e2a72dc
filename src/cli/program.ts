// The igpu-split command tree (every command registered) and one run of it: argv in, an
// exit code from README's "Exit codes" out, one line on stderr per problem (a stack trace
// only with --debug). Each command lives in its own file; heavy modules (ssh2, tar) load
// only when a command needs them, so `--help` stays fast. main.ts runs the program as the
// process; runInProcess runs it inside another (the tests), its output captured; tests
// also read the tree (every command has an exit-code case).

import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT, IgpuSplitError } from '../core/errors.ts';
import { isText } from '../core/text.ts';
import { describeWait, onWait } from '../core/waits.ts';
import { registerApply } from './apply.ts';
import { registerCapture } from './capture.ts';
import { registerCluster } from './cluster.ts';
import { registerDemo } from './demo.ts';
import { registerDoctor } from './doctor.ts';
import { registerGuest } from './guest.ts';
import { registerHost } from './host.ts';
import { registerInit } from './init.ts';
import { dropInsecureTlsVariable } from './insecure-tls.ts';
import { registerMapping } from './mapping.ts';
import { outgoing } from './output.ts';
import { registerPlan } from './plan.ts';
import { registerRollback } from './rollback.ts';
import { registerStatus } from './status.ts';
import { registerVerify } from './verify.ts';
import { registerVm } from './vm.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command('igpu-split')
    .description(
      'Share an Intel iGPU from Proxmox VE hosts into Kubernetes pods: detect, plan, apply, verify.',
    )
    .version(version)
    .option('--debug', 'print stack traces of errors')
    // A usage error is one line, like every other error.
    .configureOutput({
      outputError: (text, write) =>
        write(
          `igpu-split: ${text
            .replace(/^error: /, '')
            .trim()
            .replace(/\s*\n\s*/g, ' ')} — see --help\n`,
        ),
    })
    .exitOverride();
  registerDemo(program);
  registerInit(program);
  registerPlan(program);
  registerApply(program);
  registerVerify(program);
  registerStatus(program);
  registerRollback(program);
  registerDoctor(program, version);
  registerCapture(program, version);
  registerHost(program);
  registerMapping(program);
  registerVm(program);
  registerGuest(program);
  registerCluster(program);
  return program;
}

/**
 * Runs the program once; argv as process.argv gives it (node and the script first).
 * Commands set process.exitCode; nothing here exits the process.
 */
export async function runProgram(argv: string[]): Promise<number> {
  // bin/igpu-split.js has done this already; run another way, it is done here.
  const notice = dropInsecureTlsVariable();
  if (notice) process.stderr.write(notice);
  const stopWaits = onWait((event) => process.stderr.write(`igpu-split: ${describeWait(event)}\n`));
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (error) {
    // expected: anything — a CommanderError is a usage error commander has printed; any other failure becomes one line and its exit code
    if (error instanceof CommanderError) {
      // Help and version exit 0; every usage error exits 2 (commander already printed it).
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const debug = program.opts<{ debug?: boolean }>().debug === true || argv.includes('--debug');
    printError(error, debug);
    return error instanceof IgpuSplitError ? error.exitCode : EXIT.usage;
  } finally {
    stopWaits();
  }
}

/** A chunk written to stdout or stderr as it may leave the process (output.ts: secrets, terminal codes). */
export function guardOutput(chunk: unknown): unknown {
  if (typeof chunk === 'string') return outgoing(chunk);
  if (chunk instanceof Uint8Array && isText(chunk)) return outgoing(Buffer.from(chunk).toString('utf8'));
  return chunk;
}

export function printError(error: unknown, debug: boolean): void {
  const line = describeError(error);
  // With --debug on already, the line does not ask for it; the frames follow.
  process.stderr.write(
    `igpu-split: ${debug ? line.replace(/ — rerun with --debug.*$| \(rerun with --debug[^)]*\)$/, '') : line}\n`,
  );
  if (debug) process.stderr.write(stackOf(error));
}

function describeError(error: unknown): string {
  if (error instanceof IgpuSplitError) return error.oneLine();
  if (error instanceof Error)
    return `${error.message} (rerun with --debug for details)`.replace(/\s*\n\s*/g, ' ');
  return String(error);
}

/**
 * A frame as V8 writes it: `at fn (file:line:col)` or `at file:line:col`, the file a
 * path, a file: or node: URL. A message line that merely starts with "at " (an exec
 * plugin's output, say) is not one.
 */
const FRAME =
  /^\s+at (?:async )?(?:[^\n]* \()?(?:file:\/\/|node:|\/)[^\s()]*:\d+:\d+\)?$|^\s+at [^\n]* \((?:native|<anonymous>)\)$/;

/**
 * --debug adds where the error came from: the stack frames of the error and its causes,
 * without their messages (a library's message may quote what it was handed). The stack
 * begins with the message, which may itself hold lines: only what follows it is looked at.
 */
function stackOf(error: unknown, depth = 0): string {
  if (!(error instanceof Error) || depth > 3) return '';
  const stack = error.stack ?? '';
  const after =
    error.message && stack.includes(error.message)
      ? stack.slice(stack.indexOf(error.message) + error.message.length)
      : stack;
  const frames = after.split('\n').filter((line) => FRAME.test(line));
  const head = depth === 0 ? `${error.name}\n` : `caused by ${error.name}\n`;
  return `${head}${frames.join('\n')}\n${stackOf(error.cause, depth + 1)}`;
}

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
