// meta.k8s.io/v1 Table answers (what `kubectl get` asks for), with the columns a real
// server prints. Column definitions and cells follow kubernetes/kubernetes
// pkg/printers/internalversion/printers.go (AddHandlers, printNode, printPod, …; read in
// the search index's copy of that file, the one with `_ = h.TableHandler(…)`); the
// generic table follows kubernetes/apiserver pkg/registry/rest/table.go and custom
// resources kubernetes/apiextensions-apiserver pkg/apiserver/helpers.go
// serveDefaultColumnsIfEmpty + pkg/registry/customresource/tableconvertor (both v0.34.1).
// The server always fills the wide (priority 1) cells; kubectl hides them without -o wide.

import type { KubeObject, ResourceKind } from './store.ts';

interface Column {
  name: string;
  type: string;
  format?: string;
  priority?: number;
  description: string;
}

type Cells = (obj: KubeObject, now: number) => unknown[];

const NAME: Column = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace.',
};
const AGE: Column = {
  name: 'Age',
  type: 'string',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
};
const col = (name: string, type = 'string', priority = 0): Column => ({
  name,
  type,
  description: name,
  ...(priority ? { priority } : {}),
});

type Any = Record<string, unknown>;
const at = (obj: unknown, ...keys: string[]): unknown =>
  keys.reduce<unknown>((node, key) => (node as Any | undefined)?.[key], obj);

/** apimachinery pkg/util/duration HumanDuration (v0.34.1). */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${hours / 24}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 365 * 8)
    return days % 365 === 0 ? `${days / 365}y` : `${Math.floor(days / 365)}y${days % 365}d`;
  return `${Math.floor(days / 365)}y`;
}

const age = (obj: KubeObject, now: number) =>
  obj.metadata.creationTimestamp
    ? humanDuration(now - Date.parse(obj.metadata.creationTimestamp))
    : '<unknown>';

const formatLabels = (labels: Record<string, string> | undefined) => {
  const text = Object.entries(labels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  return text || '<none>';
};

function containerCells(containers: { name?: string; image?: string }[] | undefined): [string, string] {
  return [(containers ?? []).map((c) => c.name).join(','), (containers ?? []).map((c) => c.image).join(',')];
}

function nodeCells(obj: KubeObject, now: number): unknown[] {
  const ready = (at(obj, 'status', 'conditions') as { type: string; status: string }[] | undefined)?.find(
    (c) => c.type === 'Ready',
  );
  const status = [ready ? (ready.status === 'True' ? 'Ready' : 'NotReady') : 'Unknown'];
  if (at(obj, 'spec', 'unschedulable')) status.push('SchedulingDisabled');
  const roles = new Set<string>();
  for (const [k, v] of Object.entries(obj.metadata.labels ?? {})) {
    if (k.startsWith('node-role.kubernetes.io/') && k.length > 'node-role.kubernetes.io/'.length)
      roles.add(k.slice('node-role.kubernetes.io/'.length));
    else if (k === 'kubernetes.io/role' && v) roles.add(v);
  }
  const address = (type: string) =>
    (at(obj, 'status', 'addresses') as { type: string; address: string }[] | undefined)?.find(
      (a) => a.type === type,
    )?.address ?? '<none>';
  const info = (key: string) => (at(obj, 'status', 'nodeInfo', key) as string | undefined) || '<unknown>';
  return [
    obj.metadata.name,
    status.join(','),
    [...roles].sort().join(',') || '<none>',
    age(obj, now),
    (at(obj, 'status', 'nodeInfo', 'kubeletVersion') as string | undefined) ?? '',
    address('InternalIP'),
    address('ExternalIP'),
    info('osImage'),
    info('kernelVersion'),
    info('containerRuntimeVersion'),
  ];
}

function podCells(obj: KubeObject, now: number): unknown[] {
  const containers = (at(obj, 'spec', 'containers') as unknown[] | undefined) ?? [];
  const statuses =
    (at(obj, 'status', 'containerStatuses') as { ready?: boolean; restartCount?: number }[]) ?? [];
  const ready = statuses.filter((s) => s.ready).length;
  const restarts = statuses.reduce((sum, s) => sum + (s.restartCount ?? 0), 0);
  const reason = obj.metadata.deletionTimestamp
    ? 'Terminating'
    : ((at(obj, 'status', 'reason') as string | undefined) ??
      (at(obj, 'status', 'phase') as string | undefined) ??
      '');
  return [
    obj.metadata.name,
    `${ready}/${containers.length}`,
    reason,
    String(restarts),
    age(obj, now),
    (at(obj, 'status', 'podIP') as string | undefined) ?? '<none>',
    (at(obj, 'spec', 'nodeName') as string | undefined) ?? '<none>',
    (at(obj, 'status', 'nominatedNodeName') as string | undefined) ?? '<none>',
    '<none>',
  ];
}

function daemonSetCells(obj: KubeObject, now: number): unknown[] {
  const n = (key: string) => Number(at(obj, 'status', key) ?? 0);
  const [containers, images] = containerCells(
    at(obj, 'spec', 'template', 'spec', 'containers') as { name?: string; image?: string }[] | undefined,
  );
  const match = at(obj, 'spec', 'selector', 'matchLabels') as Record<string, string> | undefined;
  return [
    obj.metadata.name,
    n('desiredNumberScheduled'),
    n('currentNumberScheduled'),
    n('numberReady'),
    n('updatedNumberScheduled'),
    n('numberAvailable'),
    formatLabels(at(obj, 'spec', 'template', 'spec', 'nodeSelector') as Record<string, string> | undefined),
    age(obj, now),
    containers,
    images,
    formatLabels(match),
  ];
}

const TABLES: Record<string, { columns: Column[]; cells: Cells }> = {
  Node: {
    columns: [
      NAME,
      col('Status'),
      col('Roles'),
      AGE,
      col('Version'),
      col('Internal-IP', 'string', 1),
      col('External-IP', 'string', 1),
      col('OS-Image', 'string', 1),
      col('Kernel-Version', 'string', 1),
      col('Container-Runtime', 'string', 1),
    ],
    cells: nodeCells,
  },
  Pod: {
    columns: [
      NAME,
      col('Ready'),
      col('Status'),
      col('Restarts'),
      AGE,
      col('IP', 'string', 1),
      col('Node', 'string', 1),
      col('Nominated Node', 'string', 1),
      col('Readiness Gates', 'string', 1),
    ],
    cells: podCells,
  },
  Namespace: {
    columns: [NAME, col('Status'), AGE],
    cells: (obj, now) => [
      obj.metadata.name,
      (at(obj, 'status', 'phase') as string | undefined) || 'Active',
      age(obj, now),
    ],
  },
  DaemonSet: {
    columns: [
      NAME,
      col('Desired', 'integer'),
      col('Current', 'integer'),
      col('Ready', 'integer'),
      col('Up-to-date', 'integer'),
      col('Available', 'integer'),
      col('Node Selector'),
      AGE,
      col('Containers', 'string', 1),
      col('Images', 'string', 1),
      col('Selector', 'string', 1),
    ],
    cells: daemonSetCells,
  },
  PodDisruptionBudget: {
    columns: [NAME, col('Min Available'), col('Max Unavailable'), col('Allowed Disruptions', 'integer'), AGE],
    cells: (obj, now) => [
      obj.metadata.name,
      String(at(obj, 'spec', 'minAvailable') ?? 'N/A'),
      String(at(obj, 'spec', 'maxUnavailable') ?? 'N/A'),
      Number(at(obj, 'status', 'disruptionsAllowed') ?? 0),
      age(obj, now),
    ],
  },
};

// printers.go configMapColumnDefinitions (Data: len(data) + len(binaryData)) and
// leaseColumnDefinitions (Holder: spec.holderIdentity, empty without one), as printConfigMap
// and printLease fill them (the search index's copy of printers.go).
TABLES.ConfigMap = {
  columns: [NAME, col('Data'), AGE],
  cells: (obj, now) => [
    obj.metadata.name,
    Object.keys((obj.data as Any | undefined) ?? {}).length +
      Object.keys((obj.binaryData as Any | undefined) ?? {}).length,
    age(obj, now),
  ],
};
TABLES.Lease = {
  columns: [NAME, col('Holder'), AGE],
  cells: (obj, now) => [obj.metadata.name, at(obj, 'spec', 'holderIdentity') ?? '', age(obj, now)],
};

// resource.k8s.io: printers.go deviceClassColumnDefinitions, resourceClaimColumnDefinitions
// (State: resourceClaimState), resourceClaimTemplateColumnDefinitions,
// nodeResourceSliceColumnDefinitions (the 1.34 copy of printers.go in the search index).
const NAME_AGE = { columns: [NAME, AGE], cells: ((obj, now) => [obj.metadata.name, age(obj, now)]) as Cells };
TABLES.DeviceClass = NAME_AGE;
TABLES.ResourceClaimTemplate = NAME_AGE;
TABLES.ResourceClaim = {
  columns: [
    NAME,
    {
      name: 'State',
      type: 'string',
      description: 'A summary of the current state (allocated, pending, reserved, etc.).',
    },
    AGE,
  ],
  cells: (obj, now) => {
    const allocated = at(obj, 'status', 'allocation') !== undefined;
    const reserved = ((at(obj, 'status', 'reservedFor') as unknown[] | undefined) ?? []).length > 0;
    const states = [
      ...(obj.metadata.deletionTimestamp ? ['deleted'] : []),
      ...(allocated
        ? ['allocated', ...(reserved ? ['reserved'] : [])]
        : obj.metadata.deletionTimestamp
          ? []
          : ['pending']),
    ];
    return [obj.metadata.name, states.join(','), age(obj, now)];
  },
};
TABLES.ResourceSlice = {
  columns: [NAME, col('Node'), col('Driver'), col('Pool'), AGE],
  cells: (obj, now) => [
    obj.metadata.name,
    at(obj, 'spec', 'nodeName') ?? '',
    at(obj, 'spec', 'driver') ?? '',
    at(obj, 'spec', 'pool', 'name') ?? '',
    age(obj, now),
  ],
};

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  format?: string;
  priority?: number;
  description?: string;
}

/** A CRD version's additionalPrinterColumns; none means one Age column of type date. */
function customTable(printerColumns: PrinterColumn[] | undefined): { columns: Column[]; cells: Cells } {
  const extra = printerColumns?.length
    ? printerColumns
    : [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: AGE.description }];
  return {
    columns: [
      NAME,
      ...extra.map((c) => ({
        name: c.name,
        type: c.type,
        description: c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath}`,
        ...(c.format ? { format: c.format } : {}),
        ...(c.priority ? { priority: c.priority } : {}),
      })),
    ],
    cells: (obj) => [
      obj.metadata.name,
      ...extra.map((c) => {
        // Simple paths (.a.b.c) only: that is all the CRDs we serve use.
        const value = at(obj, ...c.jsonPath.split('.').filter(Boolean));
        return value === undefined ? null : typeof value === 'object' ? JSON.stringify(value) : value;
      }),
    ],
  };
}

/** Everything else (CRDs included): the apiserver's default table. */
const GENERIC: { columns: Column[]; cells: Cells } = {
  columns: [NAME, { name: 'Created At', type: 'date', description: AGE.description }],
  cells: (obj) => [obj.metadata.name, obj.metadata.creationTimestamp],
};

/** `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (kubectl get). */
export function wantsTable(accept: string | undefined): boolean {
  return (accept ?? '')
    .split(',')
    .some(
      (part) =>
        /;\s*as=Table/.test(part) && /;\s*g=meta\.k8s\.io/.test(part) && /;\s*v=v1(?:;|$|\s)/.test(part),
    );
}

export function toTable(
  kind: ResourceKind,
  objects: KubeObject[],
  resourceVersion: string,
  printerColumns?: PrinterColumn[],
  now = Date.now(),
): unknown {
  const table = TABLES[kind.kind] ?? (kind.crd ? customTable(printerColumns) : GENERIC);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: table.columns,
    rows: objects.map((obj) => ({
      cells: table.cells(obj, now),
      object: {
        kind: 'PartialObjectMetadata',
        apiVersion: 'meta.k8s.io/v1',
        metadata: obj.metadata,
      },
    })),
  };
}
