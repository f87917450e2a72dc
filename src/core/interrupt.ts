// What an interrupt (Ctrl-C, SIGTERM, a closed terminal) or output that cannot be written
// leaves behind, said in one line. A command that holds something — apply's lab lock, the
// demo's folder — registers how to let go of it and what the user should do next; the
// handlers in main.ts run them and exit.

/** Runs synchronously at the interrupt; returns what to tell the user, if anything. */
type Cleanup = () => string | undefined;

const cleanups = new Set<Cleanup>();

/** Registers `cleanup` until the returned function is called. */
export function onInterrupt(cleanup: Cleanup): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

/** Runs every registered cleanup (the process is about to end); returns what is left to do. */
export function letGo(): string[] {
  const hints: string[] = [];
  for (const cleanup of cleanups) {
    try {
      const hint = cleanup();
      if (hint) hints.push(hint);
    } catch {
      // expected: anything — an interrupt must not turn into a crash; what could not be cleaned is said by the next run.
    }
  }
  cleanups.clear();
  return hints;
}

/** Lets go of everything held and says what is left to do. */
export function interrupted(signal: string): string {
  const hints = letGo();
  return `interrupted by ${signal} — ${hints.length > 0 ? hints.join('; ') : 'run the command again when ready (it picks up where things are)'}`;
}

/** A command that runs until it is told to stop (the playground): a signal ends it normally. */
let stopper: ((signal: string) => void) | undefined;

/** While registered, SIGINT/SIGTERM/SIGHUP call `stop` instead of interrupting the command. */
export function stopOnSignal(stop: (signal: string) => void): () => void {
  stopper = stop;
  return () => {
    if (stopper === stop) stopper = undefined;
  };
}

/** The registered stopper, taken (a second signal interrupts as usual). */
export function takeStopper(): ((signal: string) => void) | undefined {
  const stop = stopper;
  stopper = undefined;
  return stop;
}
