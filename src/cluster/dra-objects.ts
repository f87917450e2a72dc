// DRA mode's objects (kubernetes.allocator: dra): Intel's GPU DRA driver as its kustomize
// base installs it (deployments/gpu/base @gpu-v0.11.0), with three changes that are ours:
// the image pinned to the release (the base says `:latest`), the driver's DaemonSet kept to
// the lab's GPU nodes (the plugin's node selector and tolerations), and only the DeviceClass
// containers use (the base's gpu-vfio.intel.com is for VMs in pods, which the split does not
// serve). Every object is labelled ours; cluster-scoped objects carry no namespace (the base
// gives its ClusterRole one, which the API server ignores). test/cluster/dra.test.ts holds
// these to `kubectl kustomize` of the base in ../shared/data.
//
// Also what users copy: a ResourceClaimTemplate for their apps and an example of several
// pods sharing one GPU through one ResourceClaim (DRA has no sharing count: pods that name
// the same claim share its device).

import { stringify } from 'yaml';
import type { KubernetesSettings } from '../config/lab.ts';
import { DRA_ADMIN_NAMESPACE_LABEL, DRA_DRIVER, DRA_HELM_CHART } from '../knowledge/dra.ts';
import { SMOKE_IMAGE } from '../knowledge/pins.ts';
import { type Manifest, OURS } from './manifest.ts';

export const RESOURCE_API = 'resource.k8s.io/v1';
const APP = DRA_DRIVER.daemonSet;
const PRIVILEGED = {
  'pod-security.kubernetes.io/enforce': 'privileged',
  'pod-security.kubernetes.io/audit': 'privileged',
  'pod-security.kubernetes.io/warn': 'privileged',
};

/** The driver's image, pinned. */
export const draImage = (settings: KubernetesSettings) => `${settings.dra.image}:${settings.dra.version}`;

/** The driver's namespace: Intel's name (its admission policy names it); privileged, as its pods are. */
export function draNamespace(): Manifest {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: DRA_DRIVER.namespace, labels: { ...OURS, ...PRIVILEGED } },
  };
}

/** The class containers ask for: every device Intel's driver publishes (the base's selector). */
export function draDeviceClass(): Manifest {
  return {
    apiVersion: RESOURCE_API,
    kind: 'DeviceClass',
    metadata: { name: DRA_DRIVER.deviceClass, labels: { ...OURS } },
    spec: { selectors: [{ cel: { expression: `device.driver == "${DRA_DRIVER.driverName}"` } }] },
  };
}

function rbac(): Manifest[] {
  const namespace = DRA_DRIVER.namespace;
  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: DRA_DRIVER.serviceAccount, namespace, labels: { ...OURS } },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: DRA_DRIVER.clusterRole, labels: { ...OURS } },
      rules: [
        { apiGroups: [''], resources: ['nodes'], verbs: ['get'] },
        {
          apiGroups: ['resource.k8s.io'],
          resources: ['resourceslices'],
          verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
        },
        { apiGroups: ['resource.k8s.io'], resources: ['resourceclaims'], verbs: ['get'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: DRA_DRIVER.clusterRoleBinding, labels: { ...OURS } },
      subjects: [{ kind: 'ServiceAccount', name: DRA_DRIVER.serviceAccount, namespace }],
      roleRef: { kind: 'ClusterRole', name: DRA_DRIVER.clusterRole, apiGroup: 'rbac.authorization.k8s.io' },
    },
  ];
}

/** The base's policy: the driver's account may change only its own node's ResourceSlices. */
function admissionPolicy(): Manifest[] {
  const user = `system:serviceaccount:${DRA_DRIVER.namespace}:${DRA_DRIVER.serviceAccount}`;
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: DRA_DRIVER.admissionPolicy, labels: { ...OURS } },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ['resource.k8s.io'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE', 'DELETE'],
              resources: ['resourceslices'],
            },
          ],
        },
        matchConditions: [{ name: 'isRestrictedUser', expression: `request.userInfo.username == "${user}"` }],
        variables: [
          {
            name: 'userNodeName',
            expression: "request.userInfo.extra[?'authentication.kubernetes.io/node-name'][0].orValue('')",
          },
          {
            name: 'objectNodeName',
            expression: '(request.operation == "DELETE" ? oldObject : object).spec.?nodeName.orValue("")',
          },
        ],
        validations: [
          {
            expression: 'variables.userNodeName != ""',
            message:
              'no node association found for user, this user must run in a pod on a node and ServiceAccountTokenPodNodeInfo must be enabled',
          },
          {
            expression: 'variables.userNodeName == variables.objectNodeName',
            messageExpression:
              '"this user running on node \'"+variables.userNodeName+"\' may not modify " + (variables.objectNodeName == "" ?"cluster resourceslices" : "resourceslices on node \'"+variables.objectNodeName+"\'")',
          },
        ],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: DRA_DRIVER.admissionPolicy, labels: { ...OURS } },
      spec: { policyName: DRA_DRIVER.admissionPolicy, validationActions: ['Deny'] },
    },
  ];
}

/** The kubelet plugin as the base runs it (privileged discovery, no xpumd health source). */
export function draDaemonSet(settings: KubernetesSettings): Manifest {
  const labels = { app: APP };
  const hostPath = (name: string, path: string) => ({ name, hostPath: { path } });
  return {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: APP, namespace: DRA_DRIVER.namespace, labels: { ...labels, ...OURS } },
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          serviceAccount: DRA_DRIVER.serviceAccount,
          serviceAccountName: DRA_DRIVER.serviceAccount,
          nodeSelector: settings.plugin.nodeSelector,
          ...(settings.plugin.tolerations.length > 0 ? { tolerations: settings.plugin.tolerations } : {}),
          containers: [
            {
              name: 'kubelet-plugin',
              image: draImage(settings),
              command: ['/kubelet-gpu-plugin'],
              ports: [{ name: 'healthcheck', containerPort: 51516 }],
              startupProbe: {
                grpc: { port: 51516, service: 'liveness' },
                failureThreshold: 60,
                periodSeconds: 10,
                timeoutSeconds: 10,
              },
              livenessProbe: {
                grpc: { port: 51516, service: 'liveness' },
                failureThreshold: 3,
                periodSeconds: 30,
                timeoutSeconds: 10,
              },
              env: [
                { name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
                { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
                { name: 'SYSFS_ROOT', value: '/sysfs' },
              ],
              volumeMounts: [
                { name: 'plugins-registry', mountPath: '/var/lib/kubelet/plugins_registry' },
                { name: 'plugins', mountPath: '/var/lib/kubelet/plugins' },
                { name: 'cdi', mountPath: '/etc/cdi' },
                { name: 'varruncdi', mountPath: '/var/run/cdi' },
                { name: 'sysfs', mountPath: '/sysfs' },
                { name: 'xpumd-socket', mountPath: '/run/xpumd' },
              ],
              securityContext: {
                privileged: true,
                capabilities: { drop: ['ALL'] },
                readOnlyRootFilesystem: true,
                runAsUser: 0,
                seccompProfile: { type: 'RuntimeDefault' },
              },
            },
          ],
          volumes: [
            hostPath('plugins-registry', '/var/lib/kubelet/plugins_registry'),
            hostPath('plugins', '/var/lib/kubelet/plugins'),
            hostPath('cdi', '/etc/cdi'),
            hostPath('varruncdi', '/var/run/cdi'),
            hostPath('sysfs', '/sys'),
            hostPath('xpumd-socket', '/run/xpumd'),
          ],
        },
      },
    },
  };
}

/** Every object of the driver igpu-split applies, in apply order (the DaemonSet once its account may act). */
export function draDriverObjects(settings: KubernetesSettings): Manifest[] {
  return [draNamespace(), draDeviceClass(), ...rbac(), ...admissionPolicy(), draDaemonSet(settings)];
}

/** The lab namespace's label that lets verify's claims ask for adminAccess. */
export const ADMIN_ACCESS_LABEL = { [DRA_ADMIN_NAMESPACE_LABEL]: 'true' } as const;

/** Values for Intel's driver chart (DRA_HELM_CHART): the pinned image and where it runs. */
export function draHelmValues(settings: KubernetesSettings): string {
  const slash = settings.dra.image.lastIndexOf('/');
  return `# igpu-split: values for helm install intel-gpu-resource-driver ${DRA_HELM_CHART.reference} --version ${DRA_HELM_CHART.version} -n ${DRA_DRIVER.namespace}\n${stringify(
    {
      image: {
        repository: settings.dra.image.slice(0, slash),
        name: settings.dra.image.slice(slash + 1),
        tag: settings.dra.version,
      },
      kubeletPlugin: {
        nodeSelector: settings.plugin.nodeSelector,
        tolerations: settings.plugin.tolerations,
      },
    },
  )}`;
}

/** The claim template an app copies: one GPU of Intel's class, nothing else asked (an iGPU reports 0 memory). */
export function claimTemplateExample(): Manifest {
  return {
    apiVersion: RESOURCE_API,
    kind: 'ResourceClaimTemplate',
    metadata: { name: 'intel-gpu' },
    spec: {
      spec: {
        devices: {
          requests: [
            {
              name: 'gpu',
              exactly: { deviceClassName: DRA_DRIVER.deviceClass, allocationMode: 'ExactCount', count: 1 },
            },
          ],
        },
      },
    },
  };
}

/** Several pods on one GPU: one ResourceClaim that each pod names (the scheduler puts them on the claim's node). */
export function sharedClaimExample(): Manifest[] {
  const claim: Manifest = {
    apiVersion: RESOURCE_API,
    kind: 'ResourceClaim',
    metadata: { name: 'shared-intel-gpu' },
    spec: {
      devices: {
        requests: [
          {
            name: 'gpu',
            exactly: { deviceClassName: DRA_DRIVER.deviceClass, allocationMode: 'ExactCount', count: 1 },
          },
        ],
      },
    },
  };
  // Two pods that name the claim: each container gets the same device.
  const pod = (name: string): Manifest => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { app: 'media-workers' } },
    spec: {
      resourceClaims: [{ name: 'gpu', resourceClaimName: 'shared-intel-gpu' }],
      containers: [
        {
          name: 'worker',
          image: SMOKE_IMAGE,
          command: ['sh', '-c', 'ls -l /dev/dri && sleep infinity'],
          resources: { claims: [{ name: 'gpu' }] },
        },
      ],
    },
  });
  return [claim, pod('media-worker-1'), pod('media-worker-2')];
}
