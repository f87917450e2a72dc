// What the kernel guard leaves behind, as doctor and verify read it: its settings file and
// the record of its last decision (script.ts writes both formats: `key=value` lines).

/** The guard's files as gathered from a host or guest (undefined: not there). */
export interface KernelGuardFacts {
  hook: string | undefined;
  /** The hook before dkms. */
  ahead: string | undefined;
  conf: string | undefined;
  state: string | undefined;
  /** When they were read: pin ages count to here (ISO 8601); unset when there is nothing to age (no guard, no pin). */
  readAt: string | undefined;
  /** Kernel packages dpkg has not finished configuring (their hooks stopped, or strict mode refused them). */
  unconfigured: { package: string; status: string }[];
  /** When someone else's pin files were last written (ISO), where a shell could tell. */
  pinWritten: { pin?: string; nextBoot?: string };
}

export const NO_GUARD_FACTS: KernelGuardFacts = {
  hook: undefined,
  ahead: undefined,
  conf: undefined,
  state: undefined,
  readAt: undefined,
  unconfigured: [],
  pinWritten: {},
};

export type GuardAction =
  | 'none'
  | 'unpinned'
  | 'not-default'
  | 'pinning'
  | 'pinned-ahead'
  | 'pinned'
  | 'next-boot-pinned'
  | 'user-pin'
  | 'no-good-kernel'
  | 'pin-failed'
  | 'refused';

export interface GuardRecord {
  checkedKernel: string;
  checkedAt: string;
  /** `pending`: pinned ahead of the module build, not checked after it (yet). */
  verdict: 'keeps' | 'breaks' | 'pending';
  why: string;
  fix: string;
  action: GuardAction | string;
  /** The kernel the machine boots next as the guard left it. */
  boots: string;
  strict: boolean;
  /** The guard's own pin, if it holds one. */
  pin: { kernel: string; kind: 'persistent' | 'next-boot'; since: string } | undefined;
  /** Every installed kernel's verdict at that run. */
  kernels: Record<string, 'keeps' | 'breaks'>;
}

export interface GuardSettingsRead {
  mode: string | undefined;
  strict: boolean;
  pin: string | undefined;
  maxPinDays: number | undefined;
}

function keyValues(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const at = line.indexOf('=');
    if (at > 0) values.set(line.slice(0, at).trim(), line.slice(at + 1));
  }
  return values;
}

export function parseGuardSettings(text: string): GuardSettingsRead {
  const values = keyValues(text);
  const days = Number(values.get('max_pin_days'));
  return {
    mode: values.get('mode'),
    strict: values.get('strict') === 'yes',
    pin: values.get('pin'),
    maxPinDays: Number.isInteger(days) && days > 0 ? days : undefined,
  };
}

/** The last decision, or undefined when the file is not the guard's record (format 1). */
export function parseGuardRecord(text: string): GuardRecord | undefined {
  const values = keyValues(text);
  if (values.get('format') !== '1') return undefined;
  const kernels: Record<string, 'keeps' | 'breaks'> = {};
  for (const [key, value] of values)
    if (key.startsWith('kernel.') && (value === 'keeps' || value === 'breaks')) kernels[key.slice(7)] = value;
  const pinKernel = values.get('pin_kernel') ?? '';
  const pinKind = values.get('pin_kind');
  return {
    checkedKernel: values.get('checked_kernel') ?? '',
    checkedAt: values.get('checked_at') ?? '',
    verdict:
      values.get('verdict') === 'keeps'
        ? 'keeps'
        : values.get('verdict') === 'pending'
          ? 'pending'
          : 'breaks',
    why: values.get('why') ?? '',
    fix: values.get('fix') ?? '',
    action: values.get('action') ?? '',
    boots: values.get('boots') ?? '',
    strict: values.get('strict') === 'yes',
    pin:
      pinKernel !== '' && (pinKind === 'persistent' || pinKind === 'next-boot')
        ? { kernel: pinKernel, kind: pinKind, since: values.get('pinned_at') ?? '' }
        : undefined,
    kernels,
  };
}

/** Kernel releases in the order `sort -V` gives them (6.8.12-4-pve before 6.14.8-2-pve). */
export const byKernelVersion = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });
