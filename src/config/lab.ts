// The lab file (igpu-split.yaml): where the Proxmox API is and how to trust it, the GPU
// hosts, the cluster mapping, and the node VMs that get a vGPU. One zod schema is the
// source of truth: the loader validates with it and docs/schemas/lab.schema.json (for
// editor completion) is generated from it.

import { z } from 'zod';
import { controlAt } from '../core/text.ts';
import { DRA_DRIVER } from '../knowledge/dra.ts';
import { MAX_IGPU_VFS } from '../knowledge/igpu-platforms.ts';
import {
  GPU_MONITORING_RESOURCE,
  GPU_NODE_LABEL,
  GPU_PLUGIN,
  GPU_PLUGIN_BYPATH_MODES,
  GPU_PLUGIN_PCI_ID,
  SMOKE_IMAGE,
  TALOS_IMAGE_FACTORY,
} from '../knowledge/pins.ts';

/** What a host may be told to share its iGPU as (`hosts[].mode`). */
export const HOST_MODES = ['auto', 'gvt-g', 'sriov', 'passthrough'] as const;
export const TOKEN_ID = /^[^\s@!]+@[^\s@!]+![A-Za-z][A-Za-z0-9._-]*$/;

/** A file path: `~/…` is the home folder, a relative path is relative to the lab file's folder. */
const labPath = () =>
  z
    .string()
    .min(1)
    .refine((path) => path === '~' || !path.startsWith('~') || path.startsWith('~/'), {
      error: "only ~ and ~/… are expanded (not another user's ~name): write the full path",
    })
    .refine((path) => controlAt(path, '') < 0, { error: 'a path holds no control characters' });
/** What a shell calls a variable name. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const VGPU_TYPE = /^i915-GVTg_V\d+_\d+$/;

export const ProxmoxEndpointSchema = z
  .strictObject({
    url: z
      .url({ protocol: /^https$/, error: 'must be an https:// URL, e.g. https://pve1.lan:8006' })
      .describe('The API of any cluster node, e.g. https://pve1.lan:8006'),
    token: z
      .string()
      .regex(TOKEN_ID, 'must be an API token id USER@REALM!TOKENID, e.g. igpu-split@pve!lab')
      .describe('API token id (not secret): USER@REALM!TOKENID'),
    tokenSecretFile: labPath()
      .optional()
      .describe('File holding only the token secret (chmod 600); relative to this file, ~ is home'),
    tokenSecretEnv: z
      .string()
      .regex(ENV_NAME, 'must be a variable name: letters, digits and _, not starting with a digit')
      .optional()
      .describe('Environment variable holding the token secret'),
    caFile: labPath()
      .optional()
      .describe('CA certificate to verify the API with (/etc/pve/pve-root-ca.pem); relative to this file'),
    fingerprint: z
      .string()
      .regex(
        /^(sha256[:\s]*)?([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/,
        'must be a SHA-256 fingerprint AB:CD:… (64 hex digits)',
      )
      .optional()
      .describe('SHA-256 fingerprint of the node certificate, as the GUI shows it'),
  })
  .refine((p) => (p.tokenSecretFile === undefined) !== (p.tokenSecretEnv === undefined), {
    error: 'give exactly one of tokenSecretFile or tokenSecretEnv (the secret is never written in this file)',
    path: ['tokenSecretFile'],
  })
  .refine((p) => p.caFile === undefined || p.fingerprint === undefined, {
    error: 'give caFile or fingerprint, not both',
    path: ['fingerprint'],
  });

export const HostSchema = z.strictObject({
  node: z.string().min(1).describe('Proxmox node name'),
  ssh: z
    .string()
    .regex(/^ssh:\/\/[^@\s]+@[^\s]+$/, 'must be ssh://user@host[:port]')
    .optional()
    .describe('How to reach the host for the host layer: ssh://root@pve1.lan'),
  mode: z
    .preprocess(
      // Spelled `sr-iov` before issue 16 (read by nothing then): still accepted, and the
      // loader says once that `sriov` is the spelling (SPELLING_NOTES).
      (value) => (value === 'sr-iov' ? 'sriov' : value),
      z.enum(HOST_MODES),
    )
    .default('auto')
    .describe(
      'What to share the iGPU as: auto (what the hardware allows; never an experimental route), gvt-g, sriov or passthrough',
    ),
  vfs: z
    .union([
      z.literal('auto'),
      z
        .int({ error: `must be auto or a whole number of VFs from 1 to ${MAX_IGPU_VFS}` })
        .min(1, { error: `must be auto or a number of VFs from 1 to ${MAX_IGPU_VFS}` })
        .max(MAX_IGPU_VFS, {
          error: `must be auto or a number of VFs from 1 to ${MAX_IGPU_VFS} (an Intel iGPU offers at most ${MAX_IGPU_VFS})`,
        }),
    ])
    .default('auto')
    .describe(
      `SR-IOV hosts: virtual functions to create (auto: one per node VM on this host, at most sriov_totalvfs; at most ${MAX_IGPU_VFS})`,
    ),
});

/** Where an i915-sriov-dkms release package comes from: a file the user has, or a URL they name. */
export const DriverPackageSchema = z
  .strictObject({
    file: labPath()
      .optional()
      .describe(
        'The release .deb on this machine (i915-sriov-dkms_<release>_amd64.deb); relative to this file',
      ),
    url: z
      .url({ protocol: /^https$/, error: 'must be an https:// URL of the release .deb' })
      // It is shown in plans and run on the host: a user or password in it would be too.
      .refine((url) => !/^https:\/\/[^/]*@/.test(url), {
        error: 'holds a user or password: name a URL without credentials (or give the file instead)',
      })
      .optional()
      .describe("Where the host downloads the release .deb (the project's releases page names it)"),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be 64 lower-case hex digits (sha256sum prints them)')
      .optional()
      .describe('Checksum the package must have; checked on the target before dpkg sees it'),
  })
  .refine((p) => (p.file === undefined) !== (p.url === undefined), {
    error: 'give exactly one of file or url',
    path: ['file'],
  });

/** SR-IOV settings of the lab: the VF pool's mapping and the driver packages (nothing is downloaded on a guess). */
export const SriovSchema = z.strictObject({
  mapping: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'letters, digits, - and _; starting with a letter')
    .default('iGPU-VF')
    .describe('Cluster PCI mapping that pools the virtual functions (mdev off): one VF per node VM'),
  hostDriver: DriverPackageSchema.optional().describe(
    'i915-sriov-dkms release for the Proxmox hosts (its kernel range must hold their kernels)',
  ),
  guestDriver: DriverPackageSchema.optional().describe(
    'i915-sriov-dkms release for Ubuntu guests (matching the guest kernel; default: hostDriver)',
  ),
});

/**
 * The kernel guard igpu-split installs on hosts and on guests that carry the out-of-tree
 * module (src/linux/kernel-guard/script.ts): what it does with a kernel that would break the split,
 * and how long a pin may hold back newer kernels before doctor fails it.
 */
export const KernelGuardSchema = z.strictObject({
  strict: z
    .boolean()
    .default(false)
    .describe(
      "Fail a breaking kernel's configure step (apt reports an error) instead of installing it and pinning the last good kernel",
    ),
  maxPinDays: z
    .int()
    .min(1)
    .max(3650)
    .default(30)
    .describe('Days a pin may hold back newer kernels before doctor and verify fail (a warning before)'),
});

export const TALOS_VERSION = /^v1\.\d+\.\d+$/;

export const TalosNodeSchema = z.strictObject({
  node: z.string().min(1).describe('Address talosctl reaches the node at (--nodes)'),
  version: z
    .string()
    .regex(TALOS_VERSION, 'must be a Talos release such as v1.10.9')
    .optional()
    .describe(
      'Talos version to install (default: the one the node runs, read with talosctl version or from the Kubernetes node)',
    ),
  allowDowngrade: z.boolean().default(false).describe('Install a version older than the one the node runs'),
  extensions: z
    .array(
      z
        .string({ error: 'must be an official extension such as siderolabs/iscsi-tools' })
        .regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, 'must be an official extension such as siderolabs/iscsi-tools'),
    )
    .default([])
    .describe('System extensions the node already has (kept in the new schematic)'),
  kernelArgs: z
    .array(z.string().min(1))
    .default([])
    .describe('Extra kernel arguments the node already has (kept)'),
  qemuGuestAgent: z.boolean().default(false).describe('Add siderolabs/qemu-guest-agent'),
  secureBoot: z
    .boolean()
    .default(false)
    .describe('The node boots the Secure Boot installer (refused for the vGPU path)'),
});

/** What every node VM entry has, whatever its guest OS. */
const nodeVmFields = {
  vmid: z.int().min(100).max(999_999_999).describe('Proxmox VM id'),
  host: z.string().min(1).describe('The Proxmox node (hosts[].node) the VM runs on'),
  vgpu: z
    .union([
      z.literal('auto'),
      z.string().regex(VGPU_TYPE, 'must be auto or a GVT-g type such as i915-GVTg_V5_4'),
    ])
    .default('auto'),
  kubernetesNode: z.string().min(1).optional().describe('The Kubernetes node name of this VM'),
};

/** A key that belongs to the other guest OS: named with what to write instead. */
const otherOsKey = (message: string) => z.never({ error: message }).optional();

export const UbuntuVmSchema = z.strictObject({
  ...nodeVmFields,
  os: z.literal('ubuntu'),
  guest: z
    .string()
    .regex(/^ssh:\/\/[^@\s]+@[^\s]+$/, 'must be ssh://user@host[:port]')
    .optional()
    .describe('Ubuntu: how to reach the guest over SSH'),
  talos: otherOsKey('only for os: talos'),
});

export const TalosVmSchema = z.strictObject({
  ...nodeVmFields,
  os: z.literal('talos'),
  talos: TalosNodeSchema.optional().describe('Talos: how to reach the node and what it runs'),
  guest: otherOsKey('Talos has no SSH: use talos: { node, version }'),
});

/**
 * A node VM: one shape per guest OS, told apart by `os` (each guest provider in src/guest
 * reads its own). Adding a guest OS adds a member here.
 */
export const NodeVmSchema = z.discriminatedUnion('os', [UbuntuVmSchema, TalosVmSchema]);

/**
 * An image tag: a release, never `latest` (it moves under a running cluster, and a rollback
 * could not say what it returns to).
 */
const imageTag = (what: string) =>
  z
    .string()
    .regex(/^[0-9A-Za-z._-]+$/)
    .refine((tag) => tag !== 'latest', { error: `${what}: name a release, not latest` });

/** PCI device ids as the GPU plugin takes them (GPU_PLUGIN_PCI_ID): 0x and four lower-case hex digits. */
const pciIdList = () =>
  z
    .array(
      z
        // Unquoted, YAML reads 0x4680 as the number 18048: which spelling was meant is lost.
        .string({
          error: "must be a quoted PCI device id such as '0x4680' (YAML reads 0x4680 unquoted as a number)",
        })
        .regex(
          GPU_PLUGIN_PCI_ID,
          'must be a PCI device id as the plugin reads it from sysfs: 0x and 4 lower-case hex digits, e.g. 0x4680',
        ),
    )
    .default([]);

/** Who hands GPUs to pods: Intel's device plugin, or Intel's DRA driver (resource.k8s.io/v1). */
export const ALLOCATORS = ['device-plugin', 'dra'] as const;

/** The GPU plugin and where it goes (cluster layer). */
export const KubernetesSchema = z
  .strictObject({
    kubeconfig: labPath()
      .optional()
      .describe('kubeconfig file (default: $KUBECONFIG or ~/.kube/config); relative to this file'),
    context: z.string().min(1).optional().describe('kubeconfig context (default: its current-context)'),
    namespace: z
      .string()
      .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
      .default('igpu-split'),
    allocator: z
      .enum(ALLOCATORS)
      .default('device-plugin')
      .describe(
        "device-plugin: Intel's GPU device plugin (gpu.intel.com/i915, shared by sharedDevNum); dra: Intel's GPU DRA driver (ResourceClaims, Kubernetes 1.34+)",
      ),
    plugin: z
      .strictObject({
        mode: z
          .enum(['daemonset', 'operator', 'helm-values'])
          .default('daemonset')
          .describe(
            "how the allocator is installed: daemonset (igpu-split applies its objects), operator (Intel's operator; device plugin only), helm-values (values for Intel's chart)",
          ),
        image: z.string().min(1).default(GPU_PLUGIN.image),
        version: imageTag('plugin.version')
          .default(GPU_PLUGIN.tag)
          .describe(`image tag (default: Intel's release ${GPU_PLUGIN.release})`),
        sharedDevNum: z.int().min(1).max(100).default(1).describe('containers that may share one vGPU'),
        allocationPolicy: z.enum(['none', 'balanced', 'packed']).default('none'),
        nodeSelector: z.record(z.string(), z.string()).default({ [GPU_NODE_LABEL]: 'true' }),
        tolerations: z
          .array(
            z.strictObject({
              key: z.string().optional(),
              operator: z.enum(['Exists', 'Equal']).optional(),
              value: z.string().optional(),
              effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
            }),
          )
          .default([]),
        nodeFeatureRule: z
          .boolean()
          .default(false)
          .describe('also install the NFD rule that labels i915/xe nodes'),
        allowIds: pciIdList().describe(
          'advertise only GPUs with these PCI device ids (-allow-ids; CR allowIDs), e.g. [0x4680]; default: every Intel GPU',
        ),
        denyIds: pciIdList().describe(
          'never advertise GPUs with these PCI device ids (-deny-ids; CR denyIDs); not together with allowIds',
        ),
        byPath: z
          .enum(GPU_PLUGIN_BYPATH_MODES)
          .default('single')
          .describe(
            "what a container gets of /dev/dri/by-path (-bypath; CR bypathMode): single (its GPU's links, the plugin's default), none, or all (the whole directory)",
          ),
        monitoring: z
          .boolean()
          .default(false)
          .describe(
            `also advertise ${GPU_MONITORING_RESOURCE} (-enable-monitoring): one per node, for a monitoring pod that sees every GPU of the node`,
          ),
      })
      .refine((p) => p.allowIds.length === 0 || p.denyIds.length === 0, {
        error: 'give allowIds or denyIds, not both (the plugin refuses the two together)',
        path: ['denyIds'],
      })
      .prefault({}),
    dra: z
      .strictObject({
        image: z.string().min(1).default(DRA_DRIVER.image),
        version: imageTag('dra.version')
          .default(DRA_DRIVER.tag)
          .describe(`image tag (default: Intel's release ${DRA_DRIVER.release})`),
      })
      .prefault({})
      .describe("Intel's GPU DRA driver (allocator: dra)"),
    smokeImage: z
      .string()
      .min(1)
      .refine((image) => /[:@]/.test(image.split('/').pop() ?? '') && !image.endsWith(':latest'), {
        error: 'name a tag or digest (e.g. busybox:1.37), not latest or none',
      })
      .default(SMOKE_IMAGE)
      .describe('image of the smoke pod; one with vainfo (e.g. a Jellyfin image) also tests VA-API'),
  })
  .superRefine((kubernetes, ctx) => {
    if (kubernetes.allocator === 'dra' && kubernetes.plugin.mode === 'operator')
      ctx.addIssue({
        code: 'custom',
        path: ['plugin', 'mode'],
        message:
          "Intel's operator deploys the device plugin only: with allocator: dra use mode daemonset (igpu-split applies the driver) or helm-values",
      });
  });

export const LabSchema = z
  .strictObject({
    proxmox: ProxmoxEndpointSchema,
    mapping: z
      .string()
      .regex(/^[A-Za-z][A-Za-z0-9_-]*$/, 'letters, digits, - and _; starting with a letter')
      .default('iGPU')
      .describe('Cluster PCI mapping the VMs attach through'),
    hosts: z.array(HostSchema).min(1),
    vms: z.array(NodeVmSchema).default([]),
    sriov: SriovSchema.prefault({}),
    kernelGuard: KernelGuardSchema.prefault({}),
    rollout: z
      .strictObject({
        maxUnavailable: z
          .union([z.int().min(0), z.string().regex(/^\d+(\.\d+)?%$/, 'a count, or a percentage such as 25%')])
          .optional()
          .describe(
            'Kubernetes nodes that may be down at once during apply (a count, or a percentage of the cluster’s nodes, rounded up); default: the most nodes one host’s turn takes down',
          ),
      })
      .prefault({})
      .describe('how apply rolls across the hosts'),
    kubernetes: KubernetesSchema.prefault({}),
    imageFactory: z
      .url({ protocol: /^https?$/ })
      .default(TALOS_IMAGE_FACTORY)
      .describe('Talos Image Factory that builds the schematic'),
  })
  .superRefine((lab, ctx) => {
    // Sets, not searches: a lab file of 10,000 VMs is checked in linear time.
    const nodes = new Set<string>();
    lab.hosts.forEach((host, index) => {
      if (nodes.has(host.node))
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', index, 'node'],
          message: `host ${host.node} is listed twice`,
        });
      nodes.add(host.node);
    });
    const vmids = new Set<number>();
    lab.vms.forEach((vm, index) => {
      if (!nodes.has(vm.host))
        ctx.addIssue({
          code: 'custom',
          path: ['vms', index, 'host'],
          message: `no such host; hosts are: ${listed([...nodes])}`,
        });
      if (vmids.has(vm.vmid))
        ctx.addIssue({
          code: 'custom',
          path: ['vms', index, 'vmid'],
          message: `vmid ${vm.vmid} is listed twice`,
        });
      vmids.add(vm.vmid);
    });
  });

/** At most a few names, so one message stays one readable line. */
function listed(names: string[]): string {
  return names.length <= 8
    ? names.join(', ')
    : `${names.slice(0, 8).join(', ')} and ${names.length - 8} more`;
}

/** Where a loaded lab file came from; its paths are resolved, the written forms kept for messages. */
export interface LabSource {
  file: string;
  /** Resolved path → as written in the file. */
  written: Record<string, string>;
  /** What the file says that still works but should change (an old spelling), one line each. */
  notes: string[];
}

export type Lab = z.output<typeof LabSchema> & { source?: LabSource };
export type HostEntry = z.output<typeof HostSchema>;
export type DriverPackage = z.output<typeof DriverPackageSchema>;
export type ProxmoxEndpoint = z.output<typeof ProxmoxEndpointSchema>;
export type KubernetesSettings = z.output<typeof KubernetesSchema>;
export type NodeVm = z.output<typeof NodeVmSchema>;
export type UbuntuVm = z.output<typeof UbuntuVmSchema>;
export type TalosVm = z.output<typeof TalosVmSchema>;
