// What DRA mode (kubernetes.allocator: dra) takes from the outside world: Intel's GPU DRA
// driver, the Kubernetes release that serves resource.k8s.io/v1 with adminAccess, and where
// each distribution keeps CDI. test/knowledge/dra.test.ts checks each value against
// snapshots/dra-facts.json (scripts/extract-dra-facts.ts names every file's commit and blob)
// and ../shared/data (the driver's kustomize base and release tags).

/**
 * Intel's GPU DRA driver, newest GPU release of intel/intel-resource-drivers-for-kubernetes:
 * tag gpu-v0.11.0 (2026-06-10, commit 7a4d31b). The image is the one its Helm chart names at
 * that tag (charts/intel-gpu-resource-driver/values.yaml: image.repository + "/" + image.name,
 * image.tag "v0.11.0"); the kustomize base at the same tag (deployments/gpu/base) pins
 * `:latest`, which igpu-split never applies.
 */
export const DRA_DRIVER = {
  release: 'gpu-v0.11.0',
  image: 'ghcr.io/intel/intel-resource-drivers-for-kubernetes/intel-gpu-resource-driver',
  tag: 'v0.11.0',
  /** The driver's name in ResourceSlices and its DeviceClass: pkg/gpu/device/device.go (DriverName). */
  driverName: 'gpu.intel.com',
  /** The base's DeviceClass for containers (deployments/gpu/base/device-class.yaml). */
  deviceClass: 'gpu.intel.com',
  /**
   * The base's namespace, ServiceAccount and DaemonSet (deployments/gpu/base/namespace.yaml,
   * resource-driver.yaml). The namespace is fixed: the base's ValidatingAdmissionPolicy names
   * the ServiceAccount by `system:serviceaccount:<namespace>:<name>`.
   */
  namespace: 'intel-gpu-resource-driver',
  serviceAccount: 'intel-gpu-resource-driver-service-account',
  daemonSet: 'intel-gpu-resource-driver-kubelet-plugin',
  clusterRole: 'intel-gpu-resource-driver-role',
  clusterRoleBinding: 'intel-gpu-resource-driver-role-binding',
  admissionPolicy: 'resourceslices-policy-dra-kubelet-plugin-gpu',
} as const;

/**
 * Intel's chart for the driver (charts/intel-gpu-resource-driver/Chart.yaml @gpu-v0.11.0),
 * installed from the OCI registry its README names; the values we write are keys of its
 * values.yaml at that tag.
 */
export const DRA_HELM_CHART = {
  name: 'intel-gpu-resource-driver-chart',
  version: '0.11.0',
  reference: 'oci://ghcr.io/intel/intel-resource-drivers-for-kubernetes/intel-gpu-resource-driver-chart',
  valueKeys: ['image', 'kubeletPlugin'],
  kubeletPluginKeys: ['nodeSelector', 'tolerations'],
} as const;

/**
 * The first Kubernetes minor that serves resource.k8s.io/v1 by default (DRA GA) and turns
 * the DRAAdminAccess feature gate on by default (beta): kubernetes pkg/features/kube_features.go
 * (DRAAdminAccess: beta, default true, from 1.34); k8s.io/api resource/v1 is new in v0.34.
 */
export const DRA_SINCE = [1, 34] as const;

/**
 * Which distribution releases serve it, for the refusal's fix: Talos v1.11 defaults to
 * Kubernetes 1.34.1 (siderolabs/talos pkg/machinery/constants/constants.go
 * DefaultKubernetesVersion @v1.11.6; @v1.10.9: 1.33.6); a K3s release is named after the
 * Kubernetes release it carries (k3s-io/k3s releases, e.g. v1.34.9+k3s1 "updates Kubernetes to
 * v1.34.9", read 2026-12-01).
 */
export const DRA_RELEASES = {
  talos: 'v1.11',
  talosChecked: 'v1.11.6',
  talosKubernetes: '1.34.1',
  k3s: 'v1.34.x+k3s1',
} as const;

/**
 * The namespace label that lets claims in it ask for adminAccess:
 * kubernetes/api resource/v1/types.go DRAAdminNamespaceLabelKey @v0.34.1 (value "true").
 */
export const DRA_ADMIN_NAMESPACE_LABEL = 'resource.kubernetes.io/admin-access';

/**
 * Where the container runtime's CDI switch lives, for the pre-flight's fix. containerd 2.x
 * turns CDI on by default (containerd docs/cri/config.md @0014297: `enable_cdi = true` in the
 * 2.x defaults; 1.x: false). Talos writes its CRI settings to /etc/cri/conf.d (Dockerfile
 * copies hack/cri-plugin.part to /etc/cri/conf.d/00-base.part) and sets enable_cdi there from
 * v1.13 (siderolabs/talos hack/cri-plugin.part @v1.13.9, commit f2bae55 "feat: enable container
 * device interface"). K3s generates containerd's config and takes changes through a template
 * beside it (k3s-io/docs docs/advanced/advanced.md, "Configuring containerd", commit 40e7e02).
 */
export const CDI = {
  containerdDefaultOnSince: 2,
  talosOnSince: [1, 13] as const,
  k3sTemplate: '/var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl',
  talosDir: '/etc/cri/conf.d',
} as const;

/** The image names of Intel's plugin and driver, as their releases name them (pins.ts GPU_PLUGIN, DRA_DRIVER). */
export const PLUGIN_IMAGE_NAME = 'intel-gpu-plugin';
export const DRA_IMAGE_NAME = 'intel-gpu-resource-driver';

/** Whether a container image is the lab's (`configured`, any tag) or Intel's by its name (any registry). */
export function runsImage(image: string, configured: string, name: string): boolean {
  const repository = image.replace(/@.*$/, '').replace(/:[^/:]*$/, '');
  return repository === configured || repository.split('/').pop() === name;
}
