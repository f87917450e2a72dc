// The igpu-split command line: a thin layer over the library (the commands: program.ts).
//
// Whatever happens, the user gets one line per problem on stderr and an exit code from
// README's "Exit codes"; a stack trace only with --debug. Every byte written goes
// through the output guard (output.ts: secrets replaced, terminal codes shown as `?`).

import { CommanderError } from 'commander';
import { EXIT, errnoText, IgpuSplitError } from '../core/errors.ts';
import { interrupted, letGo } from '../core/interrupt.ts';
import { isText } from '../core/text.ts';
import { describeWait, onWait } from '../core/waits.ts';
import { dropInsecureTlsVariable } from './insecure-tls.ts';
import { outgoing } from './output.ts';
import { buildProgram } from './program.ts';

export { EXIT };

/** Every write to stdout and stderr loses any secret the library has read. */
function filterOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) =>
      write(
        typeof chunk === 'string'
          ? outgoing(chunk)
          : chunk instanceof Uint8Array && isText(chunk)
            ? outgoing(Buffer.from(chunk).toString('utf8'))
            : chunk,
        ...rest,
      )) as typeof stream.write;
  }
}

function printError(error: unknown, debug: boolean): void {
  const line = describeError(error);
  // With --debug on already, the line does not ask for it; the frames follow.
  process.stderr.write(
    `igpu-split: ${debug ? line.replace(/ — rerun with --debug.*$| \(rerun with --debug[^)]*\)$/, '') : line}\n`,
  );
  if (debug) process.stderr.write(stackOf(error));
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

export async function main(argv: string[]): Promise<number> {
  filterOutput();
  // bin/igpu-split.js has done this already; run another way, main does it.
  const notice = dropInsecureTlsVariable();
  if (notice) process.stderr.write(notice);
  // Node's own warnings (a library's emitWarning) would be lines nobody asked for.
  process.removeAllListeners('warning');
  onWait((event) => process.stderr.write(`igpu-split: ${describeWait(event)}\n`));
  const program = buildProgram();
  const debug = () => program.opts<{ debug?: boolean }>().debug === true || argv.includes('--debug');
  // Whatever escapes the promise chain (an emitter's error, a late rejection) is still one line.
  const last = (error: unknown) => {
    printError(error, debug());
    process.exit(error instanceof IgpuSplitError ? error.exitCode : EXIT.usage);
  };
  process.on('uncaughtException', last);
  process.on('unhandledRejection', last);
  // Output that cannot be written (a full disk, a closed pipe) must not pass for success.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    const hints = letGo();
    process.stderr.write(
      `igpu-split: cannot write the output: ${errnoText(error)} — check where stdout goes${hints.length > 0 ? `; ${hints.join('; ')}` : ''}\n`,
    );
    process.exit(EXIT.usage);
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`igpu-split: ${interrupted(signal)}\n`);
      process.exit(EXIT.usage);
    });
  }
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; every usage error exits 2 (commander already printed it).
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    printError(error, debug());
    return error instanceof IgpuSplitError ? error.exitCode : EXIT.usage;
  }
}

function describeError(error: unknown): string {
  if (error instanceof IgpuSplitError) return error.oneLine();
  if (error instanceof Error)
    return `${error.message} (rerun with --debug for details)`.replace(/\s*\n\s*/g, ' ');
  return String(error);
}

// Exit at once: requests still in flight after a failure (to a server that does not
// answer, say) must not hold the process; on Linux, writes to pipes and files are synchronous.
const code = await main(process.argv);
// What was written must have gone out (or failed, which the handler above reports) first:
// what is pending is waited for, and a failed write's error, emitted on a later tick, is let
// through (an empty write to flush would itself fail on a full device).
if (process.stdout.writableLength > 0) await new Promise((resolve) => process.stdout.once('drain', resolve));
await new Promise((resolve) => setImmediate(resolve));
process.exit(code);
