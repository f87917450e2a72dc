// Checks of option values the commands share. Every numeric option is declared through
// `numberOption`, so each is checked the same way, when the command line is read, and a
// bad value names the allowed range (exit 2 before anything is opened).

import { type Command, InvalidArgumentError, Option } from 'commander';
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

/**
 * The options many commands share, declared here once so that each reads and is
 * explained the same everywhere (test/cli/grammar.test.ts compares them across commands).
 */
export const LAB_HELP = 'the lab file';
export const JSON_HELP =
  'print the result as one JSON object (docs/json.md) instead of text; a command that changes something needs --yes with it';
export const YES_HELP = 'do not ask before changing anything (needed with --json)';
export const FORCE_HELP =
  'go ahead where igpu-split otherwise stops: init overwrites an existing file; apply and host apply override kernel parameters you set to other values (e.g. intel_iommu=off) and reboot a host into a kernel its SR-IOV driver does not build for';
export const NO_DRAIN_HELP =
  "do not drain the Kubernetes nodes of the node VMs this restarts or reboots (a cluster you drain yourself, or one this machine cannot reach); by default each is drained first and uncordoned once Ready (host apply --reboot needs the host's lab file to know them)";
export const NODE_HELP = 'Kubernetes nodes of the lab file, by name (one or more)';

/**
 * `--lab`, defaulting to $IGPU_SPLIT_LAB and then ./igpu-split.yaml: the playground's demo.env
 * sets the variable, so its commands work from any folder (as cron or a second shell would).
 */
export function addLabOption(command: Command): Command {
  return command.addOption(
    new Option('--lab <file>', LAB_HELP).default('igpu-split.yaml').env('IGPU_SPLIT_LAB'),
  );
}

export function addJsonOption(command: Command): Command {
  return command.option('--json', JSON_HELP);
}

export function addYesOption(command: Command): Command {
  return command.option('--yes', YES_HELP);
}

/**
 * --reboot-timeout, one default wherever a host or guest is rebooted: 900 s, since a
 * server's firmware checks and a Proxmox boot that starts its VMs again can take ten minutes.
 */
export function addRebootTimeout(command: Command): Command {
  return numberOption(
    command,
    '--reboot-timeout <seconds>',
    'how long a rebooted host or guest gets to come back; the default allows for slow firmware and a boot that starts VMs',
    { min: 1, max: 7200, seconds: true },
    900,
  );
}

/** --timeout of verify and cluster verify: how long a smoke pod may take. */
export function addVerifyTimeout(command: Command): Command {
  return numberOption(
    command,
    '--timeout <seconds>',
    'how long verify waits for what it checks (a smoke pod)',
    { min: 1, max: 3600, seconds: true },
    120,
  );
}
