// The igpu-split command line as a process: a thin layer over the library (the commands
// and one run of them: program.ts).
//
// Whatever happens, the user gets one line per problem on stderr and an exit code from
// README's "Exit codes"; a stack trace only with --debug. Every byte written goes
// through the output guard (output.ts: secrets replaced, terminal codes shown as `?`).

import { EXIT, errnoText, IgpuSplitError } from '../core/errors.ts';
import { interrupted, letGo, takeStopper } from '../core/interrupt.ts';
import { guardOutput, printError, runProgram } from './program.ts';

export { EXIT };

/** Every write to stdout and stderr loses any secret the library has read. */
function filterOutput(): void {
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) =>
      write(guardOutput(chunk), ...rest)) as typeof stream.write;
  }
}

/** Runs the program as this process: its output guarded, and whatever escapes it still one line. */
export async function main(argv: string[]): Promise<number> {
  filterOutput();
  // Node's own warnings (a library's emitWarning) would be lines nobody asked for.
  process.removeAllListeners('warning');
  // Whatever escapes the promise chain (an emitter's error, a late rejection) is still one line.
  const last = (error: unknown) => {
    printError(error, argv.includes('--debug'));
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
      // A command that runs until it is stopped (demo --serve) ends normally on the first one.
      const stop = takeStopper();
      if (stop) return stop(signal);
      process.stderr.write(`igpu-split: ${interrupted(signal)}\n`);
      process.exit(EXIT.usage);
    });
  }
  return runProgram(argv);
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
