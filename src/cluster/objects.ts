// The Kubernetes objects the cluster layer owns, generated from the lab file: the
// namespace (Pod Security `privileged`, which the plugin's hostPath mounts need — Talos
// enforces `baseline` by default), the Intel GPU plugin as our own DaemonSet, a
// GpuDevicePlugin for Intel's operator, or a values file for Intel's Helm chart, and
// optionally the NFD rule that labels nodes where i915 or xe is loaded. Every object is
// labelled as ours; the mounts, security context and environment follow Intel's
// reference DaemonSet (deployments/gpu_plugin/base/intel-gpu-plugin.yaml).

import { stringify } from 'yaml';
import type { KubernetesSettings } from '../config/lab.ts';
import { GPU_HELM_CHART, GPU_NODE_LABEL, GPU_OPERATOR, NFD_RULE } from '../knowledge/pins.ts';

import { ADMIN_ACCESS_LABEL, draDriverObjects } from './dra-objects.ts';
import { type Manifest, OURS } from './manifest.ts';

export { FIELD_MANAGER, type Manifest, OURS } from './manifest.ts';
export const PLUGIN_NAME = 'intel-gpu-plugin';

export function pluginArgs(settings: KubernetesSettings): string[] {
  return [
    `-shared-dev-num=${settings.plugin.sharedDevNum}`,
    ...(settings.plugin.allocationPolicy === 'none'
      ? []
      : [`-allocation-policy=${settings.plugin.allocationPolicy}`]),
    ...deviceArgs(settings),
  ];
}

/**
 * Which GPUs the plugin advertises, how it mounts by-path links, and the monitoring
 * resource — the flags of cmd/gpu_plugin/gpu_plugin.go@v0.36.0 (intel/intel-device-plugins-for-kubernetes):
 * -allow-ids / -deny-ids (comma-separated, no spaces, as the operator's webhook also wants),
 * -bypath (default single, left out then), -enable-monitoring (with the default
 * -monitoring-mode=single: the one gpu.intel.com/monitoring resource).
 */
export function deviceArgs(settings: KubernetesSettings): string[] {
  const { allowIds, denyIds, byPath, monitoring } = settings.plugin;
  return [
    ...(allowIds.length > 0 ? [`-allow-ids=${allowIds.join(',')}`] : []),
    ...(denyIds.length > 0 ? [`-deny-ids=${denyIds.join(',')}`] : []),
    ...(byPath === 'single' ? [] : [`-bypath=${byPath}`]),
    ...(monitoring ? ['-enable-monitoring'] : []),
  ];
}

/**
 * The same as GpuDevicePlugin spec fields, each one the CRD has at v0.36.0
 * (deployments/operator/crd/bases/deviceplugin.intel.com_gpudeviceplugins.yaml@v0.36.0; the
 * operator turns them into the flags above: pkg/controllers/gpu/controller.go@v0.36.0 getPodArgs).
 * Empty and default values are left out, as the CRD's omitempty fields mean.
 */
export function deviceSpec(settings: KubernetesSettings): Record<string, string | boolean> {
  const { allowIds, denyIds, byPath, monitoring } = settings.plugin;
  return {
    ...(allowIds.length > 0 ? { allowIDs: allowIds.join(',') } : {}),
    ...(denyIds.length > 0 ? { denyIDs: denyIds.join(',') } : {}),
    ...(byPath === 'single' ? {} : { bypathMode: byPath }),
    ...(monitoring ? { enableMonitoring: true } : {}),
  };
}

/** The lab's namespace; in DRA mode it lets verify's claims ask for adminAccess. */
export function namespaceObject(settings: KubernetesSettings): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: settings.namespace,
      labels: {
        ...OURS,
        ...(settings.allocator === 'dra' ? ADMIN_ACCESS_LABEL : {}),
        'pod-security.kubernetes.io/enforce': 'privileged',
        'pod-security.kubernetes.io/audit': 'privileged',
        'pod-security.kubernetes.io/warn': 'privileged',
      },
    },
  };
}

export function pluginDaemonSet(settings: KubernetesSettings): Manifest {
  const labels = { app: PLUGIN_NAME, ...OURS };
  const volume = (name: string, path: string, type?: string) => ({
    name,
    hostPath: { path, ...(type ? { type } : {}) },
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: PLUGIN_NAME, namespace: settings.namespace, labels },
    spec: {
      selector: { matchLabels: { app: PLUGIN_NAME } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 0, maxUnavailable: 1 } },
      template: {
        metadata: { labels },
        spec: {
          nodeSelector: { 'kubernetes.io/arch': 'amd64', ...settings.plugin.nodeSelector },
          ...(settings.plugin.tolerations.length > 0 ? { tolerations: settings.plugin.tolerations } : {}),
          containers: [
            {
              name: PLUGIN_NAME,
              image: `${settings.plugin.image}:${settings.plugin.version}`,
              imagePullPolicy: 'IfNotPresent',
              args: pluginArgs(settings),
              env: [
                { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                { name: 'HOST_IP', valueFrom: { fieldRef: { fieldPath: 'status.hostIP' } } },
              ],
              securityContext: {
                seLinuxOptions: { type: 'container_device_plugin_t' },
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ['ALL'] },
                seccompProfile: { type: 'RuntimeDefault' },
              },
              resources: {
                requests: { memory: '45Mi', cpu: '40m' },
                limits: { memory: '90Mi', cpu: '100m' },
              },
              volumeMounts: [
                { name: 'devfs', mountPath: '/dev/dri', readOnly: true },
                { name: 'sysfsdrm', mountPath: '/sys/class/drm', readOnly: true },
                { name: 'kubeletsockets', mountPath: '/var/lib/kubelet/device-plugins' },
                { name: 'cdipath', mountPath: '/var/run/cdi' },
              ],
            },
          ],
          volumes: [
            volume('devfs', '/dev/dri'),
            volume('sysfsdrm', '/sys/class/drm'),
            volume('kubeletsockets', '/var/lib/kubelet/device-plugins'),
            volume('cdipath', '/var/run/cdi', 'DirectoryOrCreate'),
          ],
        },
      },
    },
  };
}

/** For Intel's operator (deviceplugin.intel.com/v1); cluster-scoped. */
export function gpuDevicePlugin(settings: KubernetesSettings): Manifest {
  return {
    apiVersion: `${GPU_OPERATOR.group}/${GPU_OPERATOR.version}`,
    kind: GPU_OPERATOR.kind,
    metadata: { name: 'igpu-split', labels: { ...OURS } },
    spec: {
      image: `${settings.plugin.image}:${settings.plugin.version}`,
      sharedDevNum: settings.plugin.sharedDevNum,
      preferredAllocationPolicy: settings.plugin.allocationPolicy,
      nodeSelector: settings.plugin.nodeSelector,
      ...(settings.plugin.tolerations.length > 0 ? { tolerations: settings.plugin.tolerations } : {}),
      ...deviceSpec(settings),
    },
  };
}

/** Values for Intel's plugin chart (GPU_HELM_CHART); every key is one its values.yaml has. */
export function helmValues(settings: KubernetesSettings): string {
  return `# igpu-split: values for helm install gpu intel/${GPU_HELM_CHART.name} --version ${GPU_HELM_CHART.version} -n ${settings.namespace}\n${stringify(
    {
      name: 'igpu-split',
      image: {
        hub: settings.plugin.image.split('/').slice(0, -1).join('/') || 'intel',
        tag: settings.plugin.version,
      },
      sharedDevNum: settings.plugin.sharedDevNum,
      allocationPolicy: settings.plugin.allocationPolicy,
      nodeSelector: settings.plugin.nodeSelector,
      tolerations: settings.plugin.tolerations,
      nodeFeatureRule: settings.plugin.nodeFeatureRule,
      ...deviceValues(settings),
    },
  )}`;
}

/**
 * The same as chart values (intel/helm-charts charts/gpu-device-plugin values.yaml@110e39e; its
 * templates/gpu.yaml copies each into the GpuDevicePlugin field of the same name). The chart's
 * own default is enableMonitoring: true, so it is always written; bypathMode always, as the
 * lab says it; the id lists only when given.
 */
function deviceValues(settings: KubernetesSettings): Record<string, string | boolean> {
  const { allowIds, denyIds, byPath, monitoring } = settings.plugin;
  return {
    ...(allowIds.length > 0 ? { allowIDs: allowIds.join(',') } : {}),
    ...(denyIds.length > 0 ? { denyIDs: denyIds.join(',') } : {}),
    bypathMode: byPath,
    enableMonitoring: monitoring,
  };
}

/**
 * The NFD rule for the GPU label: an Intel display device, and i915 or xe loaded — or
 * built in and enabled, as on Talos (kernel.enabledmodule), from Intel's node-feature-rules.
 */
export function nodeFeatureRule(): Manifest {
  const module = (feature: string, name: string) => ({
    matchFeatures: [{ feature, matchExpressions: { [name]: { op: 'Exists' } } }],
  });
  return {
    apiVersion: `${NFD_RULE.group}/${NFD_RULE.version}`,
    kind: NFD_RULE.kind,
    metadata: { name: 'igpu-split-gpu', labels: { ...OURS } },
    spec: {
      rules: [
        {
          name: 'igpu-split.gpu',
          labels: { [GPU_NODE_LABEL]: 'true' },
          matchFeatures: [
            {
              feature: 'pci.device',
              matchExpressions: {
                vendor: { op: 'In', value: ['8086'] },
                class: { op: 'In', value: ['0300', '0380'] },
              },
            },
          ],
          matchAny: [
            module('kernel.loadedmodule', 'i915'),
            module('kernel.enabledmodule', 'i915'),
            module('kernel.loadedmodule', 'xe'),
            module('kernel.enabledmodule', 'xe'),
          ],
        },
      ],
    },
  };
}

/** Every object igpu-split may have made, whatever the mode (rollback looks for all). */
export function allObjects(settings: KubernetesSettings): Manifest[] {
  return [
    namespaceObject(settings),
    pluginDaemonSet(settings),
    gpuDevicePlugin(settings),
    nodeFeatureRule(),
    ...draDriverObjects(settings),
  ];
}

/** Everything the lab file asks the cluster to hold, in apply order. */
export function desiredObjects(settings: KubernetesSettings): Manifest[] {
  const objects = [namespaceObject(settings)];
  if (settings.allocator === 'dra') {
    // helm-values: the chart installs the driver into the namespace made here (privileged, as its README asks).
    if (settings.plugin.mode === 'daemonset') objects.push(...draDriverObjects(settings));
    else objects.push(draDriverObjects(settings)[0] as Manifest);
  } else {
    if (settings.plugin.mode === 'daemonset') objects.push(pluginDaemonSet(settings));
    if (settings.plugin.mode === 'operator') objects.push(gpuDevicePlugin(settings));
  }
  if (settings.plugin.nodeFeatureRule) objects.push(nodeFeatureRule());
  return objects;
}
