// Rebooting a host and waiting for it: the boot id (/proc/sys/kernel/random/boot_id)
// tells a new boot from a host that never went down. Bounded by a timeout; the caller
// drains the host's Kubernetes nodes first through `beforeReboot`.

import type { HostAccess } from '../access/host.ts';
import { TargetError } from '../core/errors.ts';
import { pollVisibly } from '../core/waits.ts';

export const BOOT_ID = '/proc/sys/kernel/random/boot_id';

export interface RebootOptions {
  /** Opens a fresh connection to the same host. */
  reconnect: () => Promise<HostAccess>;
  timeoutMs: number;
  pollMs?: number;
  /** Runs before the reboot: the cluster layer's drain. */
  beforeReboot?: () => Promise<void>;
  /** The reboot command (a guest logged in as a user reboots through sudo). */
  command?: string;
  /** What to tell the user when the machine does not come back. */
  fix?: string;
}

async function bootId(host: HostAccess): Promise<string> {
  return (await host.readFile(BOOT_ID)).toString().trim();
}

/** Polls until a connection reads another boot id than `before`; undefined at the deadline. */
async function newBoot(before: string, options: RebootOptions): Promise<HostAccess | undefined> {
  const deadline = Date.now() + options.timeoutMs;
  const pause = options.pollMs ?? Math.min(5_000, options.timeoutMs / 4);
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, pause));
    // expected: any connection failure while the machine boots — tried again until the deadline, then reported
    const next = await options.reconnect().catch(() => undefined);
    if (!next) continue;
    // expected: any read failure on a machine still starting — taken as the old boot, so the wait goes on
    const id = await bootId(next).catch(() => before);
    if (id !== before) return next;
    await next.close();
  }
  return undefined;
}

/** Reboots, waits for a new boot, and returns a connection to it. `host` is closed. */
export async function rebootAndWait(host: HostAccess, options: RebootOptions): Promise<HostAccess> {
  const before = await bootId(host);
  await options.beforeReboot?.();
  // expected: anything — the connection may drop before the command returns; that is the reboot working.
  // A reboot that never started keeps the old boot id and is reported at the deadline below.
  await host.run(options.command ?? 'systemctl reboot', { timeoutMs: 15_000 }).catch(() => undefined);
  await host.close();
  const back = await pollVisibly(
    { target: host.target, what: 'the machine to come back from its reboot', limitMs: options.timeoutMs },
    () => newBoot(before, options),
  );
  if (back) return back;
  throw new TargetError(
    `the machine did not come back from its reboot within ${Math.round(options.timeoutMs / 1000)} s`,
    {
      target: host.target,
      fix:
        options.fix ??
        'check its console; once it is up, run igpu-split host verify (apply is done, only the check is left)',
    },
  );
}
