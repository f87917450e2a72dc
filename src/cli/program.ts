// The igpu-split command tree (every command registered) and one run of it: argv in, an
// exit code from README's "Exit codes" out, one line on stderr per problem (a stack trace
// only with --debug). Each command lives in its own file; heavy modules (ssh2, tar) load
// only when a command needs them, so `--help` stays fast. main.ts runs the program as the
// process; test/support/in-process.ts runs it inside another (the tests), its output
// captured; tests also read the tree (every command has an exit-code case).

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT, IgpuSplitError } from '../core/errors.ts';
import { isText } from '../core/text.ts';
import { describeWait, onWait } from '../core/waits.ts';
import { dropInsecureTlsVariable } from './insecure-tls.ts';
import { outgoing } from './output.ts';
import { waitsDrawn } from './progress.ts';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

type Register = (program: Command, version: string) => void;

/**
 * Every top-level command, in the order --help lists them, each loaded only when needed:
 * a run of one command loads that command's file alone (doctor starts as fast as before
 * the other commands existed); --help, and anything that is no command's name, loads all.
 */
const COMMANDS: Record<string, () => Promise<Register>> = {
  demo: async () => (await import('./demo.ts')).registerDemo,
  init: async () => (await import('./init.ts')).registerInit,
  plan: async () => (await import('./plan.ts')).registerPlan,
  apply: async () => (await import('./apply.ts')).registerApply,
  verify: async () => (await import('./verify.ts')).registerVerify,
  status: async () => (await import('./status.ts')).registerStatus,
  rollback: async () => (await import('./rollback.ts')).registerRollback,
  doctor: async () => (await import('./doctor.ts')).registerDoctor,
  capture: async () => (await import('./capture.ts')).registerCapture,
  host: async () => (await import('./host.ts')).registerHost,
  mapping: async () => (await import('./mapping.ts')).registerMapping,
  vm: async () => (await import('./vm.ts')).registerVm,
  guest: async () => (await import('./guest.ts')).registerGuest,
  cluster: async () => (await import('./cluster.ts')).registerCluster,
};

/** The command tree: every command, or only `only` when it names one. */
export async function buildProgram(only?: string): Promise<Command> {
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
  const names = only !== undefined && Object.hasOwn(COMMANDS, only) ? [only] : Object.keys(COMMANDS);
  const registers = await Promise.all(names.map((name) => (COMMANDS[name] as () => Promise<Register>)()));
  for (const register of registers) register(program, version);
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
  // While an apply draws on a terminal, its task lines show the waits (progress.ts).
  const stopWaits = onWait((event) => {
    if (!waitsDrawn()) process.stderr.write(`igpu-split: ${describeWait(event)}\n`);
  });
  // The command named first (argv: node, script, command…) is the only one loaded.
  const program = await buildProgram(argv[2]);
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
