// Every wait on something outside this process is bounded and visible: the library
// reports a wait that lasts longer than a few seconds, and each retry, as events; the
// CLI prints them as one line each on stderr (the library itself prints nothing).
//
// Defaults, chosen so that no single unanswering server holds a command much longer than
// a person waits without wondering (README, "Timeouts"):
// - connecting (TCP and TLS, or the SSH handshake and login): 10 s;
// - one request to an API (Proxmox, Kubernetes, Image Factory), answer included: 10 s;
// - a request that ran out of time is not tried again (a server that is silent for 10 s
//   rarely answers the second time, and the user would wait three times as long); a
//   refused or reset connection or a 5xx answer to a read is: 3 attempts in all for
//   Proxmox, 4 for Kubernetes (whose API server restarts more often under a rollout).

import { AsyncLocalStorage } from 'node:async_hooks';

export const CONNECT_TIMEOUT_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 10_000;
export const READ_ATTEMPTS = 3;

/**
 * The first "still waiting" line comes after this long, then again every REPEAT_MS: a wait
 * over 2 s is said, and a log without a terminal shows a line at least every 5 s (REPEAT_MS
 * plus one tick at most).
 */
export const NOTICE_AFTER_MS = 2_000;
const REPEAT_MS = 4_000;
const TICK_MS = 500;

export interface WaitInfo {
  /** Who is waited for: `https://pve1:8006`, `ssh://root@pve1:22`. */
  target: string;
  /** What for: `GET /nodes`, `the SSH connection`, `the reboot`. */
  what: string;
  /** When the wait gives up, if it does. */
  limitMs?: number;
}

export type WaitEvent =
  | ({
      kind: 'waiting';
      elapsedMs: number;
      /** For a server whose transport tells its connections: the connect limit, and whether one is open. */
      connection?: { connectMs: number; open: boolean };
    } & WaitInfo)
  | ({ kind: 'retrying'; reason: string; delayMs: number; attempt: number; attempts: number } & WaitInfo);

/**
 * A listener is called in the async context of the code that waits (AsyncLocalStorage
 * stores set there are readable), so the engine can tell which stage waits.
 */
type Listener = (event: WaitEvent) => void;
const listeners = new Set<Listener>();

/** Subscribes to wait events; returns the unsubscribe function. */
export function onWait(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function emit(event: WaitEvent): void {
  for (const listener of listeners) listener(event);
}

/**
 * The servers reached over HTTP(S), by origin: the connect limit, and how many connections
 * are open. While none is, a wait on the server ends at the connect limit, not the total.
 */
const servers = new Map<string, { connectMs: number; open: number }>();

function serverKey(target: string): string {
  try {
    const url = new URL(target);
    return url.protocol === 'https:' || url.protocol === 'http:' ? url.origin : target;
  } catch (error) {
    // expected: TypeError from new URL — a target that is no URL (ssh user@host) is its own key
    if (!(error instanceof TypeError)) throw error;
    return target;
  }
}

/** A transport tells, per server, that it connects within `connectMs` and when a connection opens and closes. */
export function connectionsTo(target: string, connectMs: number): { opened(): void; closed(): void } {
  const key = serverKey(target);
  const server = servers.get(key) ?? { connectMs, open: 0 };
  servers.set(key, server);
  return {
    opened: () => {
      server.open++;
    },
    closed: () => {
      server.open = Math.max(0, server.open - 1);
    },
  };
}

/**
 * Watches the answers still owed by one target. While the oldest has been owed for more
 * than NOTICE_AFTER_MS, one line says so every REPEAT_MS — one line for the target, however
 * many requests are in flight.
 */
export class WaitWatch {
  private readonly pending = new Map<
    number,
    { what: string; started: number; inContext: <R>(fn: () => R) => R }
  >();
  private next = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastNotice = Number.NEGATIVE_INFINITY;

  private readonly target: string;
  private readonly limitMs: number | undefined;
  private readonly requests: boolean;

  /** `requests`: the waits are answers from the target's server, whose connection limit the line names. */
  constructor(target: string, limitMs?: number, requests = true) {
    this.target = target;
    this.limitMs = limitMs;
    this.requests = requests;
  }

  async track<T>(what: string, work: Promise<T>): Promise<T> {
    if (listeners.size === 0) return work;
    const id = this.next++;
    this.pending.set(id, { what, started: Date.now(), inContext: AsyncLocalStorage.snapshot() });
    this.timer ??= setInterval(() => this.tick(), TICK_MS).unref();
    try {
      return await work;
    } finally {
      this.pending.delete(id);
      if (this.pending.size === 0) {
        clearInterval(this.timer);
        this.timer = undefined;
        this.lastNotice = Number.NEGATIVE_INFINITY;
      }
    }
  }

  private tick(): void {
    const oldest = this.pending.values().next().value;
    if (!oldest) return;
    const now = Date.now();
    if (now - oldest.started < NOTICE_AFTER_MS || now - this.lastNotice < REPEAT_MS) return;
    this.lastNotice = now;
    const others = this.pending.size - 1;
    const server = this.requests ? servers.get(serverKey(this.target)) : undefined;
    const event: WaitEvent = {
      kind: 'waiting',
      target: this.target,
      what: others > 0 ? `${oldest.what} and ${others} more` : oldest.what,
      elapsedMs: now - oldest.started,
      limitMs: this.limitMs,
      ...(server ? { connection: { connectMs: server.connectMs, open: server.open > 0 } } : {}),
    };
    oldest.inContext(() => emit(event));
  }
}

/** Awaits one wait, saying so while it lasts longer than a few seconds. */
export function waitVisibly<T>(info: WaitInfo, work: Promise<T>): Promise<T> {
  return new WaitWatch(info.target, info.limitMs).track(info.what, work);
}

/** Runs a polling wait (a reboot, a task, a roll-out), saying so while it lasts longer than a few seconds. */
export function pollVisibly<T>(info: WaitInfo, poll: () => Promise<T>): Promise<T> {
  // Its limit is the poll's own, whatever the connections to the server polled.
  return new WaitWatch(info.target, info.limitMs, false).track(info.what, poll());
}

/** Reports that an attempt failed and another follows after `delayMs`. */
export function reportRetry(
  info: WaitInfo & { reason: string; delayMs: number; attempt: number; attempts: number },
): void {
  emit({ kind: 'retrying', ...info });
}

/** `12 s` — how waits are spoken of in messages. */
export function seconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}

/** One line for a wait event, as the CLI prints it. */
export function describeWait(event: WaitEvent): string {
  if (event.kind === 'waiting') {
    // The limit that ends this wait: connecting, the connect limit; connected, a silence of
    // the answer limit, or the two together for an answer that keeps trickling.
    const { limitMs, connection } = event;
    const limit =
      limitMs === undefined
        ? ''
        : connection === undefined
          ? `; gives up after ${seconds(limitMs)}`
          : connection.open
            ? `; gives up after ${seconds(limitMs - connection.connectMs)} without an answer, ${seconds(limitMs)} in all`
            : `, not connected yet; gives up after ${seconds(connection.connectMs)} without a connection`;
    return `${event.target}: still waiting for ${event.what} (${seconds(Math.round(event.elapsedMs / 1000) * 1000)} so far${limit})`;
  }
  return `${event.target}: ${event.what} failed (${event.reason}); attempt ${event.attempt + 1} of ${event.attempts} in ${seconds(event.delayMs)}`;
}
