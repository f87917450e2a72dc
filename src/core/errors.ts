// Errors the CLI turns into one line and exit code 2. Each names the target it is
// about and what to do next; a stack trace only appears with --debug.

export class IgpuSplitError extends Error {
  readonly target: string | undefined;
  readonly fix: string | undefined;
  constructor(message: string, options: { target?: string; fix?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.target = options.target;
    this.fix = options.fix;
  }

  /** `target: message — fix` on one line. */
  oneLine(): string {
    const where = this.target ? `${this.target}: ` : '';
    const fix = this.fix ? ` — ${this.fix}` : '';
    return `${where}${this.message}${fix}`.replace(/\s*\n\s*/g, ' ');
  }
}

/** The command line itself is wrong (bad flag value, missing argument). */
export class UsageError extends IgpuSplitError {}

/** We could not reach or read a target (SSH refused, host key changed, not a Linux tree). */
export class TargetError extends IgpuSplitError {}
