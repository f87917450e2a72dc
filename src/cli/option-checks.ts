// Checks of option values the commands share, each failing as a usage error.

import { UsageError } from '../core/errors.ts';

/** A positive number of seconds from an option, in milliseconds. */
export function secondsOption(value: string, flag: string): number {
  const seconds = Number(value);
  if (!Number.isFinite(seconds) || seconds <= 0)
    throw new UsageError(`${flag} must be a positive number of seconds, not ${value}`);
  return seconds * 1000;
}

/** There is no prompt in JSON mode, so --json needs --yes. */
export function jsonNeedsYes(options: { json?: boolean; yes?: boolean }): void {
  if (options.json && !options.yes)
    throw new UsageError('--json needs --yes: there is no prompt in JSON mode');
}
