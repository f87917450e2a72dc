// One interface for every guest OS a node VM runs (kind's providers: docker, podman,
// nerdctl behind one Provider). The engine and the guest commands ask the provider of a
// VM's `os` for that VM's guest layer and never branch on the OS themselves; a new guest
// OS is a new provider in providers.ts and a new member of the lab file's VM union.

import type { HostAccess } from '../access/host.ts';
import type { DriverPackage, NodeVm } from '../config/lab.ts';
import type { Layer, LayerPlan } from '../core/model.ts';
import type { ImageFactory } from './talos/factory.ts';
import type { Talosctl } from './talos/talosctl.ts';
import type { OsImageSource } from './talos/version.ts';

/**
 * What the VM is given of the iGPU, as the host's plan decided it: a GVT-g mediated device
 * (the default, and what every guest got before SR-IOV), or an SR-IOV virtual function.
 * A VF shows the PF's vendor:device inside the guest, and needs a driver that drives VFs:
 * the guest provider picks it from the host's route (SRIOV-FACTS §3).
 */
export type GuestAttachment = { kind: 'mdev' } | VfAttachment;

export interface VfAttachment {
  kind: 'vf';
  /** The Proxmox host that made the VF. */
  host: string;
  /** The PF's PCI device id (`46d1`), when the host was read; the VF has the same one. */
  pfDeviceId?: string;
  /** The host's SR-IOV route: its driver binds the PF (i915 from the DKMS, or upstream xe). */
  route: 'i915-sriov-dkms' | 'xe';
  /** The route's xe needs xe.force_probe=<device id> (TGL/ADL/RPL on xe). */
  forceProbe: boolean;
  /** The host's lab entry says `mode: sriov` (an experimental guest route may be taken only then). */
  explicit: boolean;
  /** The i915-sriov-dkms release package for Ubuntu guests (lab sriov.guestDriver, else hostDriver). */
  guestPackage?: DriverPackage;
  /** The lab's kernelGuard settings for a guest that gets the kernel guard (absent: not strict, 30 days). */
  kernelGuard?: { strict: boolean; maxPinDays: number };
}

/** The attachment a guest gets when nothing says otherwise: today's GVT-g mdev. */
export const MDEV: GuestAttachment = { kind: 'mdev' };

/** What a guest layer may reach; the engine (or a guest command) supplies it. */
export interface GuestEnvironment {
  /** What the VM is given of the iGPU (absent: a GVT-g mdev), known once the host is planned. */
  attachment?(vm: NodeVm): GuestAttachment;
  /** Opens a guest's shell over SSH; a new connection each call. */
  openShell(vm: NodeVm): Promise<HostAccess>;
  talosctl: Talosctl | undefined;
  factory: ImageFactory;
  /** Where a VM's Kubernetes node says which OS image it runs (the Talos version without talosctl). */
  osImage(vm: NodeVm): OsImageSource | undefined;
  /** Where the files of a change a person carries out are written (a folder per node within). */
  outRoot: string;
  rebootTimeoutMs?: number;
  pollMs?: number;
}

export interface GuestPlan extends LayerPlan {
  /** What the plan acts on, in words: `Ubuntu guest root@10.0.0.5`, `Talos node 10.0.0.6: installer …`. */
  title: string;
  /** What a person should know before apply (Talos without talosctl: the change is written to files). */
  notes?: string[];
  /**
   * The steps are a person's to carry out (apply writes their files and commands): while
   * igpu-split runs they disturb nothing, so they drain no node.
   */
  manual?: boolean;
}

/** What applying a guest plan did. */
export interface GuestApplyResult {
  /** False when the change was written to files for a person to carry out (`commands`). */
  applied: boolean;
  /** When not applied: why not, what it was for (`talos 10.0.0.6`) and which change (`the Talos change`). */
  manual?: { reason: string; target: string; change: string };
  files: string[];
  commands: string[];
  /** What the provider reports beyond that (installed, rebooted…), for --json. */
  detail: Record<string, unknown>;
}

/** A guest layer bound to one VM; `close` lets go of the connection it holds, if any. */
export interface GuestLayer<Facts = unknown, Plan extends GuestPlan = GuestPlan>
  extends Layer<Facts, Plan, GuestApplyResult> {
  close(): Promise<void>;
  /**
   * Removes what this guest keeps of ours that does harm without the split (the Ubuntu
   * guest's kernel guard, which would pin kernels for a module it no longer needs); the
   * paths removed. Absent: the provider leaves nothing such.
   */
  rollback?(): Promise<string[]>;
}

/**
 * What `guest render` may read: the Image Factory, and where a Talos node's running version
 * can be read when the lab file names none (talosctl, else its Kubernetes node), as plan does.
 */
export interface RenderTools {
  factory: ImageFactory;
  /** What the VM is given (absent: a GVT-g mdev). */
  attachment?: GuestAttachment;
  talosctl?: Talosctl;
  osImage?: (vm: { kubernetesNode?: string }) => OsImageSource | undefined;
}

export interface GuestProvider<Vm extends NodeVm = NodeVm> {
  readonly os: Vm['os'];
  /** Why the lab file gives no way to reach this VM's guest, or undefined. */
  missing(vm: Vm): string | undefined;
  layer(vm: Vm, environment: GuestEnvironment): GuestLayer;
  /**
   * The keys `init` writes under a VM entry it discovered (indented, with comments), reading
   * what it can — the Talos version from talosctl, never assumed.
   */
  initLines(vm: { vmid: number; name?: string }, tools: { talosctl?: Talosctl }): Promise<string[]>;
  /** The driver the guest binds to its GPU, which names the device plugin's resource (gpu.intel.com/<driver>). */
  gpuDriver(vm: Vm, attachment: GuestAttachment): 'i915' | 'xe';
  /** `guest render`: the files a GitOps user commits instead of letting apply change the guest. */
  render(vm: Vm, dir: string, tools: RenderTools): Promise<string[]>;
}
