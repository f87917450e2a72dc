// The Proxmox VE endpoints igpu-split uses, typed: every answer is parsed with zod so a
// changed or broken response becomes one clear line instead of an undefined deep in a
// layer. Tasks (UPIDs) are waited for here, and missing privileges are explained before
// a change is attempted.

import { z } from 'zod';
import { bounded, READ_CONCURRENCY } from '../core/bounded.ts';
import { afterAChange, TargetError } from '../core/errors.ts';
import type { Check } from '../core/model.ts';
import { pollVisibly } from '../core/waits.ts';

/** What the API layer needs from an HTTP client; ProxmoxClient is one, tests may wrap it. */
export interface ProxmoxTransport {
  readonly target: string;
  get<T>(path: string, query?: Record<string, string | number | boolean>): Promise<T>;
  post<T>(path: string, body?: Record<string, unknown>): Promise<T>;
  put<T>(path: string, body?: Record<string, unknown>): Promise<T>;
  delete<T>(path: string): Promise<T>;
  close(): Promise<void>;
}

// Proxmox's JSON writes booleans as 0/1 in places.
const flag = z.union([z.boolean(), z.number()]).transform((value) => Boolean(value));

export const VersionSchema = z.object({ version: z.string(), release: z.string(), repoid: z.string() });

export const NodeSchema = z.object({
  node: z.string(),
  status: z.enum(['unknown', 'online', 'offline']),
});

export const PciDeviceSchema = z.object({
  id: z.string(),
  class: z.string(),
  vendor: z.string(),
  device: z.string(),
  subsystem_vendor: z.string().optional(),
  subsystem_device: z.string().optional(),
  iommugroup: z.number().int(),
  mdev: flag.optional(),
});
export type PciDevice = z.infer<typeof PciDeviceSchema>;

export const MdevTypeSchema = z.object({
  type: z.string(),
  available: z.number().int(),
  description: z.string(),
  name: z.string().optional(),
});
export type MdevType = z.infer<typeof MdevTypeSchema>;

export const MappingSchema = z.object({
  id: z.string(),
  description: z.string().optional(),
  map: z.array(z.string()),
  mdev: flag.optional(),
  checks: z.array(z.object({ severity: z.enum(['warning', 'error']), message: z.string() })).optional(),
});
export type Mapping = z.infer<typeof MappingSchema>;

const MappingConfigSchema = MappingSchema.omit({ id: true, checks: true }).extend({
  digest: z.string().optional(),
});

/** A VM config: every value as the string Proxmox stores; `digest` taken apart. */
export const VmConfigSchema = z.record(z.string(), z.union([z.string(), z.number()])).transform((raw) => {
  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) if (key !== 'digest') values[key] = String(value);
  return { digest: typeof raw.digest === 'string' ? raw.digest : '', values };
});
export type VmConfig = z.infer<typeof VmConfigSchema>;

export const VmStatusSchema = z.object({
  status: z.enum(['running', 'stopped']),
  qmpstatus: z.string().optional(),
  lock: z.string().optional(),
});

export const TaskStatusSchema = z.object({
  upid: z.string(),
  status: z.enum(['running', 'stopped']),
  exitstatus: z.string().optional(),
  type: z.string(),
  node: z.string(),
});

/** What the HA manager keeps a resource at (apidata.js `state` enum; `enabled` is an alias of `started`). */
export const HA_STATES = ['started', 'stopped', 'enabled', 'disabled', 'ignored'] as const;
export type HaState = (typeof HA_STATES)[number];

/** One HA resource (GET /cluster/ha/resources/{sid}); `state` absent means the default, `started`. */
export const HaResourceSchema = z.object({
  sid: z.string(),
  type: z.string().optional(),
  state: z.enum(HA_STATES).optional(),
  group: z.string().optional(),
  comment: z.string().optional(),
  digest: z.string().optional(),
});
export type HaResource = z.infer<typeof HaResourceSchema>;

/** What a node's HA services do when it shuts down (datacenter.cfg `ha: shutdown_policy=…`). */
export const SHUTDOWN_POLICIES = ['freeze', 'failover', 'conditional', 'migrate'] as const;
export type ShutdownPolicy = (typeof SHUTDOWN_POLICIES)[number];

/**
 * GET /cluster/options: `ha` as pve-cluster src/PVE/DataCenterConfig.pm parse_datacenter_config
 * (7091d92e) hands it over, a parsed property string (`{shutdown_policy}`); absent when unset.
 */
const ClusterOptionsSchema = z
  .object({
    ha: z
      .union([z.object({ shutdown_policy: z.enum(SHUTDOWN_POLICIES).optional() }).passthrough(), z.string()])
      .optional(),
  })
  .passthrough();

const PermissionsSchema = z.record(z.string(), z.record(z.string(), flag));

const UpidSchema = z.string().regex(/^UPID:[^:]+:/, 'not a task id (UPID)');

export interface Privilege {
  path: string;
  privilege: string;
}

export class ProxmoxApi {
  readonly transport: ProxmoxTransport;
  /** The token id (USER@REALM!NAME) the transport authenticates as; named in errors. */
  readonly identity: string;
  private readonly pollMs: number;

  constructor(transport: ProxmoxTransport, identity: string, options: { pollMs?: number } = {}) {
    this.transport = transport;
    this.identity = identity;
    this.pollMs = options.pollMs ?? 250;
  }

  get target(): string {
    return this.transport.target;
  }

  version() {
    return this.read('/version', VersionSchema);
  }

  nodes() {
    return this.read('/nodes', z.array(NodeSchema));
  }

  pciDevices(node: string) {
    return this.read(`/nodes/${enc(node)}/hardware/pci`, z.array(PciDeviceSchema));
  }

  mdevTypes(node: string, pciId: string) {
    return this.read(`/nodes/${enc(node)}/hardware/pci/${enc(pciId)}/mdev`, z.array(MdevTypeSchema));
  }

  /** With `checkNode`, Proxmox adds drift checks (`checks`) for that node's entries. */
  mappings(checkNode?: string) {
    return this.read(
      '/cluster/mapping/pci',
      z.array(MappingSchema),
      checkNode ? { 'check-node': checkNode } : {},
    );
  }

  mapping(id: string) {
    return this.read(`/cluster/mapping/pci/${enc(id)}`, MappingConfigSchema);
  }

  async createMapping(mapping: { id: string; map: string[]; mdev: boolean; description?: string }) {
    await this.transport.post('/cluster/mapping/pci', { ...mapping, mdev: mapping.mdev ? 1 : 0 });
  }

  async updateMapping(id: string, change: { map: string[]; mdev?: boolean; digest?: string }) {
    const body: Record<string, unknown> = { map: change.map };
    if (change.mdev !== undefined) body.mdev = change.mdev ? 1 : 0;
    if (change.digest) body.digest = change.digest;
    await this.transport.put(`/cluster/mapping/pci/${enc(id)}`, body);
  }

  async deleteMapping(id: string) {
    await this.transport.delete(`/cluster/mapping/pci/${enc(id)}`);
  }

  /** The node's VMs the token may see (VM.Audit). */
  vms(node: string) {
    return this.read(
      `/nodes/${enc(node)}/qemu`,
      z.array(z.object({ vmid: z.coerce.number().int(), name: z.string().optional(), status: z.string() })),
    );
  }

  /** Every VM of the cluster the token may see (GET /cluster/resources?type=vm), with its node and status. */
  clusterVms() {
    return this.read(
      '/cluster/resources',
      z.array(
        z.object({
          vmid: z.coerce.number().int(),
          node: z.string(),
          name: z.string().optional(),
          status: z.string().optional(),
          type: z.string().optional(),
        }),
      ),
      { type: 'vm' },
    );
  }

  vmConfig(node: string, vmid: number) {
    return this.read(`/nodes/${enc(node)}/qemu/${vmid}/config`, VmConfigSchema);
  }

  /** Changes a VM's config (the asynchronous POST) and waits for its task. */
  async updateVmConfig(
    node: string,
    vmid: number,
    change: { set: Record<string, string>; delete?: string[]; digest?: string },
    timeoutMs = 120_000,
  ): Promise<void> {
    const body: Record<string, unknown> = { ...change.set };
    if (change.delete?.length) body.delete = change.delete.join(',');
    if (change.digest) body.digest = change.digest;
    const upid = await this.transport.post<unknown>(`/nodes/${enc(node)}/qemu/${vmid}/config`, body);
    // The POST answers null when nothing needed a worker task.
    if (upid === null || upid === undefined) return;
    // The config is written once the POST is answered: a failure to follow its task changes nothing about that.
    await this.waitTask(this.parseUpid(upid, 'config'), timeoutMs).catch((error: unknown) => {
      // expected: any failure to follow the task — rethrown, marked as coming after a change
      throw afterAChange(error);
    });
  }

  vmStatus(node: string, vmid: number) {
    return this.read(`/nodes/${enc(node)}/qemu/${vmid}/status/current`, VmStatusSchema);
  }

  /** start | shutdown | stop; returns the task id (wait for it with waitTask). */
  async vmPower(
    node: string,
    vmid: number,
    action: 'start' | 'shutdown' | 'stop',
    params: Record<string, unknown> = {},
  ): Promise<string> {
    const upid = await this.transport.post<unknown>(
      `/nodes/${enc(node)}/qemu/${vmid}/status/${action}`,
      params,
    );
    return this.parseUpid(upid, action);
  }

  /** Polls the VM's status until it is `want` (an HA-managed VM stops after its task ends). */
  async waitStatus(
    node: string,
    vmid: number,
    want: 'running' | 'stopped',
    timeoutMs: number,
  ): Promise<void> {
    const what = `VM ${vmid} on ${node} to be ${want}`;
    await pollVisibly({ target: this.target, what, limitMs: timeoutMs }, async () => {
      const deadline = Date.now() + timeoutMs;
      while ((await this.vmStatus(node, vmid)).status !== want) {
        if (Date.now() > deadline) {
          throw new TargetError(`VM ${vmid} is not ${want} after ${Math.round(timeoutMs / 1000)} s`, {
            target: this.target,
            fix: `check the VM on ${node} (HA state, task log); rerun apply once it is ${want}`,
          });
        }
        await new Promise((resolve) => setTimeout(resolve, this.pollMs));
      }
    });
  }

  /** Polls a task until it stops; a task that ended in anything but OK is an error naming its exit status. */
  async waitTask(upid: string, timeoutMs: number): Promise<void> {
    await pollVisibly({ target: this.target, what: taskWhat(upid), limitMs: timeoutMs }, () =>
      this.pollTask(upid, timeoutMs),
    );
  }

  private async pollTask(upid: string, timeoutMs: number): Promise<void> {
    const node = upid.split(':')[1] as string;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const task = await this.read(`/nodes/${enc(node)}/tasks/${enc(upid)}/status`, TaskStatusSchema);
      if (task.status === 'stopped') {
        if (task.exitstatus === 'OK') return;
        throw new TargetError(`task ${task.type} on ${node} failed: ${task.exitstatus ?? 'no exit status'}`, {
          target: this.target,
          fix: `read the task log in the Proxmox GUI (${node} → Task History) or pvenode task log ${upid}`,
        });
      }
      if (Date.now() > deadline) {
        throw new TargetError(
          `task ${task.type} on ${node} still running after ${Math.round(timeoutMs / 1000)} s`,
          {
            target: this.target,
            fix: `watch it with pvenode task status ${upid}; rerun apply once it has ended`,
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }

  /** The HA resources' ids (`vm:101`, `ct:200`). */
  async haResources(): Promise<string[]> {
    const list = await this.read('/cluster/ha/resources', z.array(z.object({ sid: z.string() })));
    return list.map((r) => r.sid);
  }

  haResource(sid: string) {
    return this.read(`/cluster/ha/resources/${enc(sid)}`, HaResourceSchema);
  }

  /** Sets an HA resource's `state`; with `digest`, only if nobody changed the resource since it was read. */
  async setHaState(sid: string, state: HaState, digest?: string): Promise<void> {
    await this.transport.put(`/cluster/ha/resources/${enc(sid)}`, { state, ...(digest ? { digest } : {}) });
  }

  /**
   * The datacenter's HA shutdown policy; `conditional` when unset (the default
   * pve-ha-manager src/PVE/HA/LRM.pm shutdown_request falls back to, b71218f2).
   */
  async shutdownPolicy(): Promise<ShutdownPolicy> {
    const ha = (await this.read('/cluster/options', ClusterOptionsSchema)).ha;
    const policy =
      typeof ha === 'string' ? /(?:^|,)shutdown_policy=([a-z]+)/.exec(ha)?.[1] : ha?.shutdown_policy;
    return SHUTDOWN_POLICIES.find((p) => p === policy) ?? 'conditional';
  }

  /** Effective privileges on each path (Proxmox resolves inheritance and token privilege separation). */
  async privileges(path: string): Promise<Set<string>> {
    const dump = await this.read('/access/permissions', PermissionsSchema, { path });
    return new Set(Object.keys(dump[path] ?? {}));
  }

  /** The privileges in `needs` the token does not hold, in the order asked. */
  async missingPrivileges(needs: readonly Privilege[]): Promise<Privilege[]> {
    const byPath = new Map<string, Set<string>>();
    for (const need of needs) byPath.set(need.path, (byPath.get(need.path) ?? new Set()).add(need.privilege));
    // One question per path, a few at a time: a fleet's plan asks for thousands of VM paths.
    const paths = [...byPath];
    const held = await bounded(paths, READ_CONCURRENCY, ([path]) => this.privileges(path));
    return paths.flatMap(([path, wanted], i) =>
      [...wanted].filter((privilege) => !held[i]?.has(privilege)).map((privilege) => ({ path, privilege })),
    );
  }

  /** What to say about missing privileges: the list, and the command that grants them. */
  privilegeProblem(missing: readonly Privilege[]): { message: string; fix: string } | undefined {
    const first = missing[0];
    if (!first) return undefined;
    return {
      message: `token ${this.identity} lacks ${missing.map((m) => `${m.privilege} on ${m.path}`).join(', ')}`,
      fix: `grant them, e.g. pveum acl modify ${first.path} --tokens '${this.identity}' --roles IgpuSplit (the role's privileges are listed in the README)`,
    };
  }

  /** A failing check naming what the token lacks of `needs`, for a plan to show; undefined when it has all. */
  async privilegeCheck(needs: readonly Privilege[]): Promise<Check | undefined> {
    const problem = this.privilegeProblem(await this.missingPrivileges(needs));
    return (
      problem && { id: 'proxmox.privileges', status: 'fail', evidence: problem.message, fix: problem.fix }
    );
  }

  /**
   * Fails before any change when the token lacks a privilege the plan needs, naming all
   * that are missing and the command that grants them.
   */
  async requirePrivileges(needs: readonly Privilege[]): Promise<void> {
    const problem = this.privilegeProblem(await this.missingPrivileges(needs));
    if (problem) throw new TargetError(problem.message, { target: this.target, fix: problem.fix });
  }

  private async read<S extends z.ZodType>(
    path: string,
    schema: S,
    query: Record<string, string> = {},
  ): Promise<z.output<S>> {
    const data = await this.transport.get<unknown>(path, query);
    const parsed = schema.safeParse(data);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    throw new TargetError(
      `GET ${path}: unexpected answer (${issue?.path.join('.') || 'top level'}: ${issue?.message})`,
      {
        target: this.target,
        fix: 'check that the endpoint is a Proxmox VE 8 or newer API; report the answer if it is',
      },
    );
  }

  private parseUpid(value: unknown, what: string): string {
    const parsed = UpidSchema.safeParse(value);
    if (parsed.success) return parsed.data;
    throw new TargetError(`${what}: expected a task id, got ${JSON.stringify(value)?.slice(0, 60)}`, {
      target: this.target,
      fix: 'check that the endpoint is a Proxmox VE 8 or newer API',
    });
  }
}

const enc = encodeURIComponent;

/** The task types of VM power and config tasks, as a wait line names them. */
const TASK_WAITS: Record<string, string> = {
  qmstart: 'to start',
  qmshutdown: 'to shut down',
  qmstop: 'to stop',
  qmconfig: 'to take its config change',
};

/**
 * What a task wait is for: `VM 101 on pve1 to shut down`. A UPID is
 * `UPID:node:pid:pstart:starttime:type:id:user:` (proxmox/pve-common src/PVE/UPID.pm `encode`,
 * f665029e); the types are the fork_worker names of proxmox/qemu-server src/PVE/API2/Qemu.pm
 * (e6352be6: qmstart, qmstop, qmshutdown, qmconfig).
 */
function taskWhat(upid: string): string {
  const [, node, , , , type = 'task', id = ''] = upid.split(':');
  const verb = TASK_WAITS[type];
  return verb && /^\d+$/.test(id)
    ? `VM ${id} on ${node} ${verb}`
    : `task ${type}${id ? ` ${id}` : ''} on ${node}`;
}
