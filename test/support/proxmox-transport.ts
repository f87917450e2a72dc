// The simulator without HTTP: a ProxmoxTransport that calls it in-process as a given
// caller. The golden tests use it (fast and deterministic, and it can act as a root@pam
// session, which the token-only client cannot); the HTTPS front covers the wire.

import type { ProxmoxTransport } from '../../src/proxmox/api.ts';
import { ProxmoxApiError } from '../../src/proxmox/client.ts';
import { type Params, simulate } from '../../src/sim/proxmox/server.ts';
import type { Caller, SimulatorState } from '../../src/sim/proxmox/state.ts';

export class SimulatorTransport implements ProxmoxTransport {
  readonly target = 'pve-simulator';
  private readonly state: SimulatorState;
  private readonly caller: Caller;

  constructor(state: SimulatorState, caller: Caller) {
    this.state = state;
    this.caller = caller;
  }

  get<T>(path: string, query: Record<string, string | number | boolean> = {}): Promise<T> {
    return this.call<T>(
      'GET',
      path,
      Object.fromEntries(Object.entries(query).map(([k, v]) => [k, String(v)])),
    );
  }
  post<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>('POST', path, body);
  }
  put<T>(path: string, body: Record<string, unknown> = {}): Promise<T> {
    return this.call<T>('PUT', path, body);
  }
  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path, {});
  }
  async close(): Promise<void> {}

  private async call<T>(method: string, path: string, params: Params): Promise<T> {
    const reply = simulate(this.state, this.caller, method, path, params);
    if (reply.status !== 200) {
      const details = reply.errors
        ? ` (${Object.entries(reply.errors)
            .map(([k, v]) => `${k}: ${v}`)
            .join('; ')})`
        : '';
      throw new ProxmoxApiError(
        reply.status,
        `${method} ${path}: HTTP ${reply.status} ${reply.reason}${details}`,
        {
          target: this.target,
          fix: 'see the message',
        },
      );
    }
    return reply.data as T;
  }
}
