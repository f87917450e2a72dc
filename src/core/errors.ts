// Errors the CLI turns into one line. Each names the target it is about and what to do
// next; a stack trace only appears with --debug. The class decides the exit code, so the
// codes mean the same on every command (README, "Exit codes").

/** The exit codes every command keeps (README, "Exit codes"). */
export const EXIT = {
  /** Done: nothing failed (warnings allowed). */
  ok: 0,
  /** A check failed, or the plan was refused. */
  checkFailed: 1,
  /** The command line, an input file or a connection is wrong. */
  usage: 2,
  /** The work is waiting for a step the user must take (the message says which). */
  manualStep: 3,
} as const;

/** The worst of several exit codes, as README "Exit codes" ranks them: 1 over 2 over 3 over 0. */
export function worstExitCode(codes: readonly number[]): number {
  const rank = [EXIT.ok, EXIT.manualStep, EXIT.usage, EXIT.checkFailed] as number[];
  return codes.reduce(
    (worst, code) => (rank.indexOf(code) > rank.indexOf(worst) ? code : worst),
    EXIT.ok as number,
  );
}

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export class IgpuSplitError extends Error {
  readonly target: string | undefined;
  readonly fix: string | undefined;
  /**
   * The request was refused before it could change anything (a 4xx answer, a refused
   * connection): a stage whose first change fails so has not begun.
   */
  readonly nothingChanged: boolean;
  /** Usage, input and connection problems unless a subclass says otherwise. */
  readonly exitCode: ExitCode = EXIT.usage;
  constructor(
    message: string,
    options: { target?: string; fix?: string; cause?: unknown; nothingChanged?: boolean } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.target = options.target;
    this.fix = options.fix;
    this.nothingChanged = options.nothingChanged === true;
  }

  /** `target: message — fix` on one line. */
  oneLine(): string {
    const where = this.target ? `${this.target}: ` : '';
    const fix = this.fix ? ` — ${this.fix}` : '';
    return `${where}${this.message}${fix}`.replace(/\s*\n\s*/g, ' ');
  }
}

/**
 * The error of a step that made a change before it failed (a config written, then its task
 * not followed): whatever refused the later request, the change stands.
 */
export function afterAChange(error: unknown): unknown {
  if (!(error instanceof IgpuSplitError) || !error.nothingChanged) return error;
  return new TargetError(error.message, { target: error.target, fix: error.fix, cause: error });
}

/** The command line itself is wrong (bad flag value, missing argument). */
export class UsageError extends IgpuSplitError {}

/** We could not reach or read a target (SSH refused, host key changed, not a Linux tree). */
export class TargetError extends IgpuSplitError {}

/** The plan was refused: something stands in the way of applying it (exit 1). */
export class RefusedError extends IgpuSplitError {
  override readonly exitCode: ExitCode = EXIT.checkFailed;
}

/** The work stops at a step only the user can take (run printed commands, reboot): exit 3. */
export class ManualStepError extends IgpuSplitError {
  override readonly exitCode: ExitCode = EXIT.manualStep;
}

/** True when a Node file-system error carries one of `codes` (e.g. ENOENT). */
export function hasErrno(error: unknown, ...codes: string[]): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && codes.includes(code);
}

/** What a failed file operation means, in words (`no such file`, `permission denied`). */
export function errnoText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ELOOP') return 'a loop of symbolic links';
  if (code === 'EISDIR') return 'it is a directory';
  if (code === 'ENOTDIR') return 'a part of the path is not a directory';
  if (code === 'ENOTREG') return 'not a regular file (a pipe or a device)';
  if (code === 'EFBIG') return 'far too big for what it should hold';
  if (code === 'ENOSPC') return 'no space left on the device';
  if (code === 'EPIPE') return 'the reader went away (a closed pipe)';
  if (code === 'EROFS') return 'a read-only file system';
  if (code === 'ERR_INVALID_ARG_VALUE' || code === 'ERR_INVALID_ARG_TYPE') return 'not a valid path';
  return code ?? 'unreadable';
}

/**
 * A read whose target may be out of reach: a TargetError (SSH refused, no answer, an API that
 * cannot be read) is returned for the caller to mark that part; anything else is thrown.
 */
export async function unlessUnreachable<T>(read: () => Promise<T>): Promise<T | TargetError> {
  try {
    return await read();
  } catch (error) {
    // expected: TargetError — the target cannot be reached or read: returned, for its part to be marked; the rest is thrown
    if (error instanceof TargetError) return error;
    throw error;
  }
}
