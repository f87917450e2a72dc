// Proxmox HA during a host's turn. A lab node VM holds a vGPU (hostpci with mdev) or a VF
// of its own host: it cannot live-migrate, and on another host it has no such device.
// What HA does with it when its host reboots follows the datacenter's `ha:
// shutdown_policy` (proxmox/pve-ha-manager src/PVE/HA/LRM.pm shutdown_request @b71218f2;
// pve-docs ha-manager.adoc @e5010dce, "Shutdown Policy"):
//
// - conditional (the default) and freeze: the LRM stops the VM and freezes it; it is
//   started again on the same host after the reboot. Nothing moves it: nothing to set.
// - failover: the LRM stops it without freezing; if the host is not back within about a
//   minute, HA recovers it on another node — the node VM would move off its vGPU.
// - migrate: the host goes into maintenance and HA migrates the VM away first. A VM with a
//   PCI device cannot be migrated while it runs (qemu-server src/PVE/QemuMigrate.pm
//   @e6352be6: `can't migrate VM which uses local devices`, or `can't live migrate running
//   VM which uses following mapped devices`); a failed migration leaves it started on the
//   host (src/PVE/HA/Manager.pm next_state_migrate_relocate), to be tried again, and the LRM
//   waits for it before the host may go down (LRM.pm: "no running service on this node"):
//   the reboot hangs. A stopped VM would be moved offline to another node.
//
// So for a turn that reboots a host under failover or migrate, igpu-split sets each
// HA-managed lab VM on it to `ignored` — HA then leaves it alone (Config.pm
// service_check_ha_state: "ignored service behave as if they were not managed by HA"), the
// reboot stops it as any other VM (pve-manager PVE/API2/Nodes.pm stopall skips only
// HA-managed VMs, 14a22df3) and igpu-split starts it again — and puts the state it read back
// at the end of the turn. The original state is journalled first: an interrupted run puts
// it back when it resumes. Setting a state needs Sys.Console on `/` (apidata.js, PUT
// /cluster/ha/resources/{sid}); without it the turn is refused, naming the VM and the fix.
// `freeze` is a policy, not a resource state: the states are started, stopped, enabled,
// disabled and ignored.

import { TargetError } from '../../core/errors.ts';
import type { Check, Step } from '../../core/model.ts';
import type { HaState, ProxmoxApi, ShutdownPolicy } from '../../proxmox/api.ts';
import { ProxmoxApiError } from '../../proxmox/client.ts';

export interface HaRead {
  policy: ShutdownPolicy;
  /** The lab VMs HA has a resource for: vmid → its sid and state (absent state: `started`). */
  resources: Map<number, { sid: string; state: HaState }>;
  /** The token may change HA resources (Sys.Console on `/`). */
  canSet: boolean;
  /** Why HA could not be read (no Sys.Audit on `/`), in one line. */
  unreadable?: string;
}

/** One HA resource set for a host's turn, and the state it is put back to. */
export interface HaChange {
  vmid: number;
  sid: string;
  from: HaState;
}

export interface HaTurn {
  node: string;
  checks: Check[];
  /** The state changes (to `ignored`) at the turn's start; each is put back at its end. */
  changes: HaChange[];
  steps: Step[];
  refused?: string;
}

/** The lab VMs' HA resources and the shutdown policy; whether the token may set a state. */
export async function gatherHa(api: ProxmoxApi, vmids: readonly number[]): Promise<HaRead> {
  try {
    const sids = new Set(await api.haResources());
    const resources = new Map<number, { sid: string; state: HaState }>();
    for (const vmid of vmids) {
      const sid = `vm:${vmid}`;
      if (!sids.has(sid)) continue;
      const resource = await api.haResource(sid);
      resources.set(vmid, { sid, state: resource.state ?? 'started' });
    }
    const policy = resources.size > 0 ? await api.shutdownPolicy() : 'conditional';
    const canSet =
      resources.size === 0 ||
      (await api.missingPrivileges([{ path: '/', privilege: 'Sys.Console' }])).length === 0;
    return { policy, resources, canSet };
  } catch (error) {
    // expected: ProxmoxApiError 403 — the token may not read HA (Sys.Audit on /): said in the plan
    if (!(error instanceof ProxmoxApiError) || error.status !== 403) throw error;
    return { policy: 'conditional', resources: new Map(), canSet: false, unreadable: error.oneLine() };
  }
}

/** What HA does with a lab VM on `node` when the node reboots, in one line. */
function whatHaDoes(policy: ShutdownPolicy, node: string): string {
  switch (policy) {
    case 'conditional':
    case 'freeze':
      return `HA stops and freezes it for ${node}'s reboot and starts it again on ${node}`;
    case 'failover':
      return `HA stops it and recovers it on another node if ${node} is not back within about a minute`;
    case 'migrate':
      return `HA would try to migrate it off ${node} first and cannot (its vGPU or VF is a local device), so the reboot would wait for it`;
  }
}

/**
 * A host's turn under HA: a check per HA-managed lab VM on it saying what HA would do on
 * the reboot and what igpu-split sets; the changes and their steps; or the refusal.
 */
export function planHa(
  read: HaRead,
  turn: { node: string; reboots: boolean; vmids: readonly number[] },
  identity: string,
): HaTurn {
  const none: HaTurn = { node: turn.node, checks: [], changes: [], steps: [] };
  if (!turn.reboots) return none;
  if (read.unreadable)
    return {
      ...none,
      checks: [
        {
          id: `rollout.${turn.node}.ha`,
          status: 'fail',
          evidence: `cannot read Proxmox HA before ${turn.node}'s reboot: ${read.unreadable}`,
          fix: `grant Sys.Audit on /: pveum acl modify / --tokens '${identity}' --roles IgpuSplit`,
        },
      ],
      refused: `cannot read Proxmox HA before ${turn.node}'s reboot (Sys.Audit on / missing)`,
    };
  const turnOut = { ...none, checks: [] as Check[], changes: [] as HaChange[], steps: [] as Step[] };
  const policy = `shutdown_policy=${read.policy}`;
  for (const vmid of turn.vmids) {
    const resource = read.resources.get(vmid);
    if (!resource) continue;
    const id = `rollout.${vmid}.ha`;
    const { sid, state } = resource;
    if (state === 'ignored' || state === 'disabled') {
      turnOut.checks.push({
        id,
        status: 'pass',
        evidence: `${sid} is ${state}: HA moves nothing on ${turn.node}'s reboot`,
      });
      continue;
    }
    const does = whatHaDoes(read.policy, turn.node);
    if (read.policy === 'conditional' || read.policy === 'freeze') {
      turnOut.checks.push({
        id,
        status: 'pass',
        evidence: `${sid} (${state}, ${policy}): ${does}; nothing to set`,
      });
      continue;
    }
    if (!read.canSet) {
      const line = `VM ${vmid} on ${turn.node}: ${does} (${policy}); token ${identity} lacks Sys.Console on / to set ${sid} to ignored for the turn`;
      turnOut.checks.push({
        id,
        status: 'fail',
        evidence: line,
        fix: `grant Sys.Console on / (pveum acl modify / --tokens '${identity}' --roles IgpuSplit), or run ha-manager set ${sid} --state ignored before apply and --state ${state} after, or set Datacenter → Options → HA Settings → shutdown_policy=conditional`,
      });
      turnOut.refused ??= line;
      continue;
    }
    turnOut.checks.push({
      id,
      status: 'pass',
      evidence: `${sid} (${state}, ${policy}): ${does}; set to ignored for ${turn.node}'s turn, ${state} again after it`,
    });
    turnOut.changes.push({ vmid, sid, from: state });
    turnOut.steps.push(
      {
        id: `ha/${turn.node}/${vmid}/ignore`,
        target: sid,
        description: `HA: ${sid} ignored for ${turn.node}'s turn, so HA does not move VM ${vmid} off its vGPU`,
        command: `ha-manager set ${sid} --state ignored`,
        disturbs: [],
      },
      {
        id: `ha/${turn.node}/${vmid}/restore`,
        target: sid,
        description: `HA: ${sid} back to ${state} once ${turn.node}'s turn is done`,
        command: `ha-manager set ${sid} --state ${state}`,
        disturbs: [],
      },
    );
  }
  return turnOut;
}

/** The privileges the HA changes need: Sys.Console on `/` once any turn sets a state. */
export function haPrivileges(turns: readonly (HaTurn | undefined)[]): { path: string; privilege: string }[] {
  return turns.some((t) => (t?.changes.length ?? 0) > 0) ? [{ path: '/', privilege: 'Sys.Console' }] : [];
}

/** The journal's record of a state set and not yet put back: `ha:<node>:<sid>=<state>`. */
export const haMark = (node: string, change: Pick<HaChange, 'sid' | 'from'>) =>
  `ha:${node}:${change.sid}=${change.from}`;

/** The records of `node` among the journal's marks. */
export function haMarksOf(marks: readonly string[], node: string): HaChange[] {
  return marks.flatMap((mark) => {
    const m = /^ha:([^:]+):((?:vm|ct):(\d+))=([a-z]+)$/.exec(mark);
    return m && m[1] === node ? [{ vmid: Number(m[3]), sid: m[2] as string, from: m[4] as HaState }] : [];
  });
}

/** What the journal offers the HA steps. */
export interface HaJournal {
  allMarks(): string[];
  mark(key: string, on: boolean): Promise<void>;
}

function refusedBy(error: unknown, sid: string, vmid: number, node: string, state: HaState): TargetError {
  const reason = error instanceof TargetError ? error.oneLine() : String(error);
  return new TargetError(`HA refused to set ${sid} (VM ${vmid} on ${node}) to ${state}: ${reason}`, {
    fix: `run ha-manager set ${sid} --state ${state} on a node of the cluster (or grant the token Sys.Console on /), then rerun apply: it resumes at host ${node}`,
  });
}

/**
 * The turn's start: each change journalled, then set to `ignored` (one already journalled
 * by an interrupted run keeps its original state).
 */
export async function setHaForTurn(
  api: ProxmoxApi,
  journal: HaJournal,
  node: string,
  changes: readonly HaChange[],
  say: (line: string) => void,
): Promise<void> {
  const journalled = new Set(haMarksOf(journal.allMarks(), node).map((c) => c.sid));
  for (const change of changes) {
    if (!journalled.has(change.sid)) await journal.mark(haMark(node, change), true);
    try {
      const current = await api.haResource(change.sid);
      if (current.state !== 'ignored') await api.setHaState(change.sid, 'ignored', current.digest);
    } catch (error) {
      // expected: ProxmoxApiError or TargetError — HA refused: one line naming the VM, the host and the fix
      throw refusedBy(error, change.sid, change.vmid, node, 'ignored');
    }
    say(`HA: ${change.sid} ignored for ${node}'s turn (was ${change.from})`);
  }
}

/** The turn's end (or a resumed run): every state the journal holds for `node` put back. */
export async function restoreHaAfterTurn(
  api: ProxmoxApi,
  journal: HaJournal,
  node: string,
  say: (line: string) => void,
): Promise<void> {
  for (const change of haMarksOf(journal.allMarks(), node)) {
    try {
      await api.setHaState(change.sid, change.from);
    } catch (error) {
      // expected: ProxmoxApiError or TargetError — HA refused: one line naming the VM, the host and the fix
      throw refusedBy(error, change.sid, change.vmid, node, change.from);
    }
    await journal.mark(haMark(node, change), false);
    say(`HA: ${change.sid} ${change.from} again`);
  }
}
