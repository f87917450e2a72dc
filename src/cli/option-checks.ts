// Checks of option values the commands share. Every numeric option is declared through
// `numberOption`, so each is checked the same way, when the command line is read, and a
// bad value names the allowed range (exit 2 before anything is opened).

import { type Command, InvalidArgumentError } from 'commander';
import { UsageError } from '../core/errors.ts';
import { CONNECT_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../core/waits.ts';

export interface NumberSpec {
  min: number;
  max: number;
  /** Whole numbers only. */
  integer?: boolean;
  /** Spoken of as `a number of seconds`. */
  seconds?: boolean;
}

/** `a whole number from 1 to 64`, `a number of seconds from 1 to 600`. */
function describeRange(spec: NumberSpec): string {
  const what = spec.seconds
    ? spec.integer
      ? 'a whole number of seconds'
      : 'a number of seconds'
    : spec.integer
      ? 'a whole number'
      : 'a number';
  return `${what} from ${spec.min} to ${spec.max}`;
}

/** Reads one numeric option value: plain decimal digits only (no hex, exponents or units). */
export function parseNumber(flag: string, spec: NumberSpec, value: string): number {
  const plain = spec.integer ? /^\+?\d+$/ : /^\+?(\d+(\.\d*)?|\.\d+)$/;
  const number = plain.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isFinite(number) || number < spec.min || number > spec.max)
    throw new InvalidArgumentError(`${flag} must be ${describeRange(spec)}`);
  return number;
}

/** Declares `flags` (e.g. `--parallel <n>`) as a number checked against `spec`. */
export function numberOption(
  command: Command,
  flags: string,
  description: string,
  spec: NumberSpec,
  defaultValue?: number,
): Command {
  const flag = flags.split(/[ ,]/)[0] as string;
  const help = `${description} (${describeRange(spec)})`;
  const parse = (value: string) => parseNumber(flag, spec, value);
  return defaultValue === undefined
    ? command.option(flags, help, parse)
    : command.option(flags, help, parse, defaultValue);
}

/**
 * `--vm <vmid...>`: each a Proxmox VM id (pve-vmid: 100 to 999999999, pve-common
 * src/PVE/JSONSchema.pm, commit f665029e), checked like every other number.
 */
export function addVmOption(command: Command): Command {
  const spec: NumberSpec = { min: 100, max: 999_999_999, integer: true };
  return command.option(
    '--vm <vmid...>',
    `only these VMs of the lab file (each ${describeRange(spec)})`,
    (value: string, previous: string[] | undefined) => [
      ...(previous ?? []),
      String(parseNumber('--vm', spec, value)),
    ],
  );
}

/** --connect-timeout: TCP and TLS, or the SSH handshake and login (README, "Timeouts"). */
export function addConnectTimeout(command: Command): Command {
  return numberOption(
    command,
    '--connect-timeout <seconds>',
    'give up connecting to a host or API after this long',
    { min: 1, max: 300, seconds: true },
    CONNECT_TIMEOUT_MS / 1000,
  );
}

/** --request-timeout: one API request, answer included (README, "Timeouts"). */
export function addRequestTimeout(command: Command): Command {
  return numberOption(
    command,
    '--request-timeout <seconds>',
    'give up on one API request (Proxmox, Kubernetes, Image Factory) when its answer does not begin, or pauses, this long',
    { min: 1, max: 600, seconds: true },
    REQUEST_TIMEOUT_MS / 1000,
  );
}

export interface TimeoutOptions {
  connectTimeout?: number;
  requestTimeout?: number;
}

/** The timeouts in milliseconds, for the library. */
export function timeoutsOf(options: TimeoutOptions): { connectTimeoutMs: number; requestTimeoutMs: number } {
  return {
    connectTimeoutMs: (options.connectTimeout ?? CONNECT_TIMEOUT_MS / 1000) * 1000,
    requestTimeoutMs: (options.requestTimeout ?? REQUEST_TIMEOUT_MS / 1000) * 1000,
  };
}

/** There is no prompt in JSON mode, so --json needs --yes. */
export function jsonNeedsYes(options: { json?: boolean; yes?: boolean }): void {
  if (options.json && !options.yes)
    throw new UsageError('--json needs --yes: there is no prompt in JSON mode', {
      fix: 'review the plan first, then pass --yes with --json',
    });
}
