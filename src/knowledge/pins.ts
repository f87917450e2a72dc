// Names and versions the outside world defines that the cluster and Talos layers use: one
// place, each with the file it was read from. test/knowledge/pins.test.ts checks every pin
// against ../shared/data (release tags, the operator's CRD, Intel's NFD rules) and against
// snapshots/upstream-pins.json (written by scripts/extract-upstream-pins.ts from the upstream
// repositories; its header names each file's commit and blob). Kernel and package names:
// kernel.ts and packages.ts; iGPU ids and platforms: igpu-ids.ts, igpu-platforms.ts.

/**
 * Intel's GPU device plugin, newest release of intel/intel-device-plugins-for-kubernetes
 * (tag v0.36.0, 2026-05-27, commit 76f8fcf). The image tag is the release without its `v`,
 * as Intel's own DaemonSet at that tag pins it:
 * deployments/gpu_plugin/base/intel-gpu-plugin.yaml@v0.36.0 (blob 28ee279).
 */
export const GPU_PLUGIN = {
  release: 'v0.36.0',
  image: 'intel/intel-gpu-plugin',
  tag: '0.36.0',
} as const;

/** The extended resource the plugin advertises: cmd/gpu_plugin/gpu_plugin.go@v0.36.0 (namespace + deviceTypeI915). */
export const GPU_RESOURCE = 'gpu.intel.com/i915';

/**
 * The plugin names a GPU's resource after the driver bound to it: `namespace + "/" +
 * devProps.driver()` (cmd/gpu_plugin/gpu_plugin.go@v0.36.0, commit 76f8fcf, deviceTypeI915 "i915"
 * and deviceTypeXe "xe"; cmd/gpu_plugin/device_props.go reads the card's driver). A guest whose
 * VF is bound to xe offers gpu.intel.com/xe.
 */
export const GPU_RESOURCE_OF = {
  i915: GPU_RESOURCE,
  xe: 'gpu.intel.com/xe',
} as const;

/**
 * The device-id form the plugin's `-allow-ids` / `-deny-ids` take: a comma-separated list,
 * each id `0x` and four lower-case hex digits as sysfs writes a card's `device/device` —
 * cmd/gpu_plugin/gpu_plugin.go@v0.36.0 (validatePCIDeviceIDs, pciDeviceIDForCard). The operator's
 * webhook checks allowIDs/denyIDs with the same pattern and no spaces
 * (pkg/apis/deviceplugin/v1/gpudeviceplugin_webhook.go@v0.36.0, pciIDRegex); both refuse
 * the two lists together. snapshots/gpu-plugin-v0.36.0.json.
 */
export const GPU_PLUGIN_PCI_ID = /^0x[0-9a-f]{4}$/;

/**
 * `-bypath` (CR field bypathMode): how a container gets /dev/dri/by-path — `single` (the
 * default: the device's own by-path links, mounted one by one), `none`, or `all` (the whole
 * directory): cmd/gpu_plugin/gpu_plugin.go@v0.36.0 (bypathOption*, flag "bypath") and
 * cmd/gpu_plugin/README.md@v0.36.0 "By-path mounting".
 */
export const GPU_PLUGIN_BYPATH_MODES = ['single', 'none', 'all'] as const;

/**
 * The one monitoring resource the plugin advertises per node with `-enable-monitoring` (and
 * the default `-monitoring-mode=single`): namespace + "/" + monitorResourceCombined, one
 * device "all" that holds every Intel GPU of the node — cmd/gpu_plugin/gpu_plugin.go@v0.36.0 (scan).
 */
export const GPU_MONITORING_RESOURCE = 'gpu.intel.com/monitoring';

/** Intel's operator API: deployments/operator/crd/bases/deviceplugin.intel.com_gpudeviceplugins.yaml@v0.36.0. */
export const GPU_OPERATOR = {
  group: 'deviceplugin.intel.com',
  version: 'v1',
  kind: 'GpuDevicePlugin',
  plural: 'gpudeviceplugins',
} as const;

/**
 * Intel's Helm chart for the plugin: intel/helm-charts charts/gpu-device-plugin/Chart.yaml
 * at commit 110e39e (2026-05-29, "plugins: update to 0.36.0"); the values we write are
 * keys of its values.yaml at that commit (allowIDs, denyIDs, bypathMode, enableMonitoring
 * too; its default enableMonitoring is true).
 */
export const GPU_HELM_CHART = {
  repository: 'intel/helm-charts',
  name: 'intel-device-plugins-gpu',
  version: '0.36.0',
  valueKeys: [
    'name',
    'image',
    'sharedDevNum',
    'allocationPolicy',
    'nodeSelector',
    'tolerations',
    'nodeFeatureRule',
    'allowIDs',
    'denyIDs',
    'bypathMode',
    'enableMonitoring',
  ],
} as const;

/**
 * The node label Intel's NodeFeatureRule sets on GPU nodes and the plugin selects:
 * deployments/nfd/overlays/node-feature-rules/node-feature-rules.yaml@v0.36.0.
 */
export const GPU_NODE_LABEL = 'intel.feature.node.kubernetes.io/gpu';

/**
 * The smoke pod's image: Docker's official busybox, newest tag its library file does not
 * mark `unstable` — docker-library/official-images library/busybox at commit 37079fb
 * (2026-08-21): 1.38 is `unstable`, 1.37 the stable series.
 */
export const SMOKE_IMAGE = 'busybox:1.37';

/** Talos system extensions, as Image Factory names official ones (`siderolabs/<manifest name>`). */
export const TALOS_EXTENSIONS = {
  /** siderolabs/extensions drm/i915/manifest.yaml.tmpl@26822f5. */
  i915: 'siderolabs/i915',
  /** siderolabs/extensions firmware/intel-ucode/manifest.yaml.tmpl@26822f5. */
  intelUcode: 'siderolabs/intel-ucode',
  /** siderolabs/extensions guest-agents/qemu-guest-agent/manifest.yaml.tmpl@26822f5. */
  qemuGuestAgent: 'siderolabs/qemu-guest-agent',
  /**
   * siderolabs/extensions drm/xe/manifest.yaml.tmpl@26822f5: upstream xe.ko (drm/xe/files/modules.txt)
   * and /usr/lib/firmware/xe for the Talos kernel (drm/xe/pkg.yaml). Added in 3f0e872.
   */
  xe: 'siderolabs/xe',
} as const;

/**
 * The first Talos release with the xe extension: siderolabs/extensions tag v1.12.0 is the first
 * whose tree has drm/xe (v1.11.6 has not); snapshots/sriov-guest-facts.json.
 */
export const TALOS_XE_EXTENSION_SINCE = [1, 12] as const;

/**
 * The Linux series each Talos minor ships, lowest over its patch releases: the `Linux:` line of
 * siderolabs/talos hack/release.toml at every v1.10.2…v1.13.9 tag (mirror HEAD ad88231);
 * snapshots/sriov-guest-facts.json. v1.12.0 moved to 6.18.1, v1.13.9 ships 6.18.44. 1.14 has only
 * a pre-release so far: v1.14.0-rc.1 ships 6.18.44 (hack/release.toml@v1.14.0-rc.1;
 * snapshots/talos-versions.json `linux`), so its xe drives the same VFs as 1.12's.
 */
export const TALOS_KERNEL_SERIES: Readonly<Record<string, string>> = {
  '1.10': '6.12',
  '1.11': '6.12',
  '1.12': '6.18',
  '1.13': '6.18',
  '1.14': '6.18',
};

/**
 * The prefix of the node labels Talos sets for each system extension it runs, followed by
 * the extension's name (`extensions.talos.dev/i915`, value its version; a version that is
 * no valid label value goes to an annotation of the same key instead): siderolabs/talos
 * pkg/machinery/constants/constants.go (K8sExtensionPrefix) and
 * internal/app/machined/pkg/controllers/k8s/node_label_spec.go (extensionsToNodeKV) @v1.10.9.
 */
export const TALOS_EXTENSION_LABEL_PREFIX = 'extensions.talos.dev/';

/**
 * The first Talos release whose i915 driver comes only from the extension:
 * siderolabs/talos website/content/v1.9/introduction/what-is-new/index.md@v1.9.0.
 */
export const TALOS_I915_EXTENSION_SINCE = [1, 9] as const;

/**
 * The newest Talos minor whose v1alpha1 machine config still has machine.install and
 * machine.nodeLabels, the two fields of the patch igpu-split writes up to it: the machine-config
 * schemas (siderolabs/talos pkg/machinery/config/schemas/config.schema.json) at v1.10.9,
 * v1.11.6, v1.12.11 and v1.13.9 have them; v1.14.0-rc.1 moved both out of v1alpha1
 * (hack/release.toml@v1.14.0-rc.1, "Kubernetes Multi-document Configuration": the labels into
 * the KubeNodeConfig document; "Unattended Install Configuration"). From it igpu-split writes
 * a KubeNodeConfig document instead (guest/talos/patch.ts). snapshots/talos-versions.json.
 */
export const TALOS_PATCH_NEWEST = [1, 13] as const;

/**
 * The Talos minors igpu-split writes documents for: those whose machine-config schema
 * (siderolabs/talos pkg/machinery/config/schemas/config.schema.json at v1.10.9, v1.11.6,
 * v1.12.11, v1.13.9 and v1.14.0-rc.1, the same bytes as ../shared/data/talos-<tag>-config.schema.json)
 * the tests check every emitted document against. Another version is checked against its
 * minor's schema; a minor without one (1.9, 1.15) is refused. 1.9 also predates the unified
 * installer, the first whose factory installer carries the schematic's kernel arguments
 * (siderolabs/talos pkg/machinery/imager/quirks/quirks.go minTalosVersionUnifiedInstaller
 * @v1.14.0-rc.1, used by siderolabs/image-factory internal/profile/profile.go@v1.5.0).
 * snapshots/talos-versions.json.
 */
export const TALOS_SCHEMA_MINORS = ['1.10', '1.11', '1.12', '1.13', '1.14'] as const;

/**
 * Where `talosctl upgrade` (no --stage, --drain left at its default) cordons and drains the
 * node before its reboot, per minor: the engine must not drain it again. In every minor
 * machined's Upgrade sequence has a "drain" phase (CordonAndDrainNode; machined uncordons at
 * boot what it cordoned); from 1.13, talosctl itself drains before the reboot and uncordons
 * after it when the node runs > 1.13.0-alpha.2 (LifecycleService.Upgrade; `--drain` defaults
 * to true). Either way talosctl returns once the node is back (`--wait` defaults to true:
 * cmd/talosctl/cmd/talos/track.go at the same tags). snapshots/talos-versions.json `drains`.
 */
export const TALOS_UPGRADE_DRAIN: Readonly<Record<(typeof TALOS_SCHEMA_MINORS)[number], string>> = {
  '1.10':
    'siderolabs/talos internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go@v1.10.9 (Upgrade, "drain")',
  '1.11':
    'siderolabs/talos internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go@v1.11.6 (Upgrade, "drain")',
  '1.12':
    'siderolabs/talos internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go@v1.12.11 (Upgrade, "drain")',
  '1.13':
    'siderolabs/talos cmd/talosctl/cmd/talos/upgrade.go@v1.13.9 (drainNodes before the reboot; machined\'s Upgrade "drain" for older talosctl)',
  '1.14':
    'siderolabs/talos cmd/talosctl/cmd/talos/upgrade.go@v1.14.0-rc.1 (drainNodes before the reboot; machined\'s Upgrade "drain" for older talosctl)',
};

/** Sidero's public Image Factory: siderolabs/talos website/content/v1.10/talos-guides/install/boot-assets.md@v1.10.9. */
export const TALOS_IMAGE_FACTORY = 'https://factory.talos.dev';

/**
 * The installer an Image Factory builds for a schematic, `<factory host>/<this>/<id>:<version>`
 * (same file: `talosctl upgrade --image factory.talos.dev/installer/<id>:<version>`). Never the
 * Secure Boot variant: the vGPU path turns Secure Boot off.
 */
export const TALOS_INSTALLER_IMAGE = 'installer';

/**
 * Talos releases, newest patch of each minor from v1.9 (siderolabs/talos tags at commit
 * ad88231, 2026-08-21). Talos tests upgrades only between adjacent minors and recommends the
 * newest patch of every minor in between (website/content/v1.11/talos-guides/upgrading-talos.md
 * @v1.11.0, "Supported Upgrade Paths"): a refused jump names these as its path. No 1.14 entry:
 * the tags have only pre-releases of it (v1.14.0-rc.1), and a path names releases, which plan
 * takes (version.ts refuses a pre-release tag); 1.14 is also never between two minors yet.
 */
export const TALOS_NEWEST_PATCH: Readonly<Record<string, string>> = {
  '1.9': 'v1.9.6',
  '1.10': 'v1.10.9',
  '1.11': 'v1.11.6',
  '1.12': 'v1.12.11',
  '1.13': 'v1.13.9',
};

/**
 * Node Feature Discovery's rule API, as Intel's rules use it:
 * deployments/nfd/overlays/node-feature-rules/node-feature-rules.yaml@v0.36.0.
 */
export const NFD_RULE = {
  group: 'nfd.k8s-sigs.io',
  version: 'v1alpha1',
  kind: 'NodeFeatureRule',
  plural: 'nodefeaturerules',
} as const;

/**
 * cert-manager's Certificate, which Intel's operator needs for its webhook:
 * deployments/operator/certmanager/certificate.yaml@v0.36.0 (apiVersion and kind); the plural
 * as cert-manager/cert-manager names its CRD file, deploy/crds/cert-manager.io_certificates.yaml@0509c05.
 */
export const CERT_MANAGER_CERTIFICATE = {
  group: 'cert-manager.io',
  kind: 'Certificate',
  plural: 'certificates',
} as const;

/** The name of a CRD: `<plural>.<group>`. */
export const crdName = (api: { plural: string; group: string }) => `${api.plural}.${api.group}`;
