// The Proxmox VE simulator's HTTPS front: /api2/json for the endpoints in parameters.ts
// (api-spec.ts's and four more), token authentication, and each call in the order
// pve-manager PVE/HTTPServer.pm rest_handler (14a22df3) makes it: the route, URI and
// body parameters merged, the privilege check, the node the call is proxied to, the
// parameter check against the official schema (schema.ts), then the endpoint's code.
// Answers have Proxmox's shapes ({data}, errors in the status line, 400 with
// per-parameter `errors`, `total` where Proxmox counts). It listens on loopback only, with
// a self-signed certificate made at start unless given one.

import { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { ENDPOINTS, type EndpointSpec } from '../../proxmox/api-spec.ts';
import { normalizeFingerprint } from '../../proxmox/client.ts';
import { loopbackCertificate } from '../loopback-tls.ts';
import type { SimHaResource, SimHaState } from './ha.ts';
import { PARAMETERS, ROOT_ONLY, SERVED_ENDPOINTS } from './parameters.ts';
import { ParamChecker, splitList } from './schema.ts';
import { type Caller, PVE_VERSION, paramError, SimError, type SimulatorState } from './state.ts';

export interface RunningSimulator {
  /** https://127.0.0.1:PORT */
  url: string;
  /** SHA-256 of the certificate, `AB:CD:…`, as the Proxmox GUI shows it. */
  fingerprint: string;
  /** The certificate (PEM), usable as a CA file. */
  certificate: string;
  /** Fault injection: this many next requests are answered 503 (pveproxy restarting). */
  unavailable: { count: number };
  close(): Promise<void>;
}

interface Route {
  spec: EndpointSpec;
  pattern: RegExp;
  names: string[];
}

const ROUTES: Route[] = SERVED_ENDPOINTS.map((spec) => {
  const names: string[] = [];
  const source = spec.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { spec, pattern: new RegExp(`^${source}$`), names };
});

export type Params = Record<string, unknown>;

let checker: ParamChecker | undefined;
/** Read once, at the first simulator start: the official schema when present, else the compact one. */
export function parameterChecker(): ParamChecker {
  checker ??= new ParamChecker(SERVED_ENDPOINTS, PARAMETERS);
  return checker;
}

export async function startSimulator(
  state: SimulatorState,
  options: { port?: number; tls?: { key: string; cert: string } } = {},
): Promise<RunningSimulator> {
  parameterChecker();
  const tls: { key: string; cert: string } = options.tls ?? (await loopbackCertificate('pve-simulator'));
  const unavailable = { count: 0 };
  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    if (unavailable.count > 0) {
      unavailable.count--;
      return answer(res, 503, 'Service Unavailable', null);
    }
    // expected: anything — a fault in the handler answers 500, as pveproxy does for a die
    handle(state, req, res).catch((error: unknown) => answer(res, 500, String(error), null));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    fingerprint: normalizeFingerprint(new X509Certificate(tls.cert).fingerprint256),
    certificate: tls.cert,
    unavailable,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function answer(
  res: ServerResponse,
  status: number,
  reason: string,
  data: unknown,
  extra: object = {},
): void {
  // Proxmox puts the error message in the HTTP reason phrase; it must be one line of latin1.
  const phrase = reason.replace(/[\r\n]+/g, ' ').replace(/[^\x20-\x7e]/g, '?');
  res.writeHead(status, phrase, { 'content-type': 'application/json;charset=UTF-8' });
  res.end(JSON.stringify({ data, ...extra }));
}

async function handle(state: SimulatorState, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://localhost');
  const caller = authenticate(state, req.headers.authorization);
  if (!caller) return answer(res, 401, 'authentication failure', null);
  if (!url.pathname.startsWith('/api2/json/')) return answer(res, 501, 'Method not implemented', null);
  // pve-http-server AnyEvent.pm extract_params: the body for PUT and POST, the query for
  // every method (it wins), repeated keys as arrays; `_dc` (a cache buster) dropped.
  const body = req.method === 'PUT' || req.method === 'POST' ? await readBody(req) : {};
  if (body === undefined) {
    return answer(res, 400, 'Parameter verification failed.', null, { errors: { body: 'not JSON' } });
  }
  const given: Params = { ...body, ...formFields(url.search.slice(1)) };
  delete given._dc;
  const reply = simulate(state, caller, req.method ?? 'GET', url.pathname.slice('/api2/json'.length), given);
  answer(res, reply.status, reply.reason, reply.data, {
    ...(reply.errors ? { errors: reply.errors } : {}),
    ...(reply.total !== undefined ? { total: reply.total } : {}),
  });
}

export interface SimReply {
  status: number;
  reason: string;
  data: unknown;
  errors?: Record<string, string>;
  /** The count Proxmox adds beside some lists (set_result_attrib 'total'). */
  total?: number;
}

/** What an endpoint's code returns when Proxmox also answers a `total`. */
class Counted {
  readonly data: unknown[];
  readonly total: number;
  constructor(data: unknown[], total: number) {
    this.data = data;
    this.total = total;
  }
}

/**
 * One API call against the state, as Proxmox answers it; the HTTPS front and the
 * in-process transport (transport.ts) both go through here.
 */
export function simulate(
  state: SimulatorState,
  caller: Caller,
  method: string,
  path: string,
  given: Params,
): SimReply {
  const route = ROUTES.find((r) => r.spec.method === method && r.pattern.test(path));
  if (!route) return { status: 501, reason: `Method '${method} ${path}' not implemented`, data: null };
  const endpoint = `${route.spec.method} ${route.spec.path}`;
  state.observe(endpoint, [...new Set([...route.names, ...Object.keys(given)])]);
  const match = route.pattern.exec(path) as RegExpExecArray;
  const params: Params = {};
  route.names.forEach((name, i) => {
    params[name] = decodeURIComponent(match[i + 1] as string);
  });
  try {
    for (const [name, value] of Object.entries(given)) {
      if (params[name] !== undefined && route.names.includes(name) && params[name] !== value)
        throw paramError({ [name]: 'duplicate parameter (already defined in URI) with conflicting values!' });
      params[name] = value;
    }
    // GET /cluster/options answers every user (`user => 'all'`); its code holds `ha` back without Sys.Audit.
    if (route.spec.permission && endpoint !== 'GET /cluster/options') {
      const permPath = route.spec.permission.path.replace(/\{([^}]+)\}/g, (_, n: string) =>
        String(params[n]),
      );
      state.check(caller, permPath, route.spec.permission.privileges, route.spec.permission.any);
    }
    // Calls under /nodes/{node} (and a mapping listing with check-node) are proxied to that
    // node before its parameters are checked: an unknown node fails its host name lookup.
    const proxyTo = route.names.includes('node')
      ? params.node
      : endpoint === 'GET /cluster/mapping/pci'
        ? params['check-node']
        : undefined;
    if (typeof proxyTo === 'string') state.node(proxyTo);
    const errors = parameterChecker().check(endpoint, params);
    if (Object.keys(errors).length > 0) throw paramError(errors);
    // The endpoints' code refuses these to anyone but root@pam (not a token, even root's).
    for (const name of ROOT_ONLY[endpoint] ?? [])
      if (truthy(params[name]) && (caller.user !== 'root@pam' || caller.token))
        throw paramError({ [name]: 'Only root may use this option.' });
    const data = (HA_ROUTES.has(endpoint) ? dispatchHa : dispatch)(state, caller, endpoint, params);
    return data instanceof Counted
      ? { status: 200, reason: 'OK', data: data.data, total: data.total }
      : { status: 200, reason: 'OK', data };
  } catch (error) {
    // expected: SimError — Proxmox's refusal, answered with its status and message
    if (error instanceof SimError)
      return {
        status: error.status,
        reason: error.message,
        data: null,
        ...(error.errors ? { errors: error.errors } : {}),
      };
    throw error;
  }
}

/** Perl truth: not undefined, '' or '0'. */
const truthy = (value: unknown) =>
  value !== undefined && value !== '' && value !== '0' && value !== 0 && value !== false;

/** `PVEAPIToken=user@realm!name=secret` → the caller, when the secret matches. */
function authenticate(state: SimulatorState, header: string | undefined): Caller | undefined {
  const match = /^PVEAPIToken=([^!=\s]+)!([^=\s]+)=(\S+)$/.exec(header ?? '');
  if (!match) return undefined;
  const [, user, token, secret] = match as unknown as [string, string, string, string];
  return state.tokens.get(`${user}!${token}`) === secret ? { user, token } : undefined;
}

async function readBody(req: IncomingMessage): Promise<Params | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text) return {};
  if (/json/.test(req.headers['content-type'] ?? '')) {
    try {
      return JSON.parse(text) as Params;
    } catch (error) {
      // expected: SyntaxError — a body that is not JSON: the caller answers 400
      if (!(error instanceof SyntaxError)) throw error;
      return undefined;
    }
  }
  return formFields(text);
}

/** application/x-www-form-urlencoded, as pvesh, curl and proxmoxer send it; repeated keys make arrays. */
function formFields(text: string): Params {
  const params: Params = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const previous = params[key];
    params[key] = previous === undefined ? value : [previous, value].flat();
  }
  return params;
}

/** The privileges our endpoints and config keys can ask for. */
const ALL_PRIVILEGES = [
  ...new Set([
    ...ENDPOINTS.flatMap((e) => e.permission?.privileges ?? []),
    'Mapping.Use',
    'Datastore.AllocateSpace',
  ]),
];

const bool = (value: unknown) => value === true || value === 1 || value === '1' || value === 'true';
const list = (value: unknown) => (value === undefined ? undefined : ([value].flat() as string[]));
const text = (value: unknown) => (value === undefined ? undefined : String(value));
const num = (value: unknown) => (value === undefined ? undefined : Number(value));

/** An HA resource id as Resources.pm takes it (Config.pm parse_sid). */
const haSid = (state: SimulatorState, sid: unknown) =>
  state.ha.parseSid(String(sid), (vmid) => state.vms.has(vmid));

/** The HA resource fields a POST or PUT sets. */
function haFields(p: Params): Partial<SimHaResource> {
  const fields: Partial<SimHaResource> = {};
  if (p.state !== undefined) fields.state = String(p.state) as SimHaState;
  if (p.comment !== undefined) fields.comment = String(p.comment);
  if (p.group !== undefined) fields.group = String(p.group);
  if (p.failback !== undefined) fields.failback = bool(p.failback);
  if (p.max_relocate !== undefined) fields.max_relocate = Number(p.max_relocate);
  if (p.max_restart !== undefined) fields.max_restart = Number(p.max_restart);
  return fields;
}

const HA_ROUTES = new Set([
  'GET /cluster/ha/resources',
  'GET /cluster/ha/resources/{sid}',
  'PUT /cluster/ha/resources/{sid}',
  'POST /cluster/ha/resources',
  'GET /cluster/options',
]);

/** The HA resources and the datacenter options (ha.ts). */
function dispatchHa(state: SimulatorState, caller: Caller, route: string, p: Params): unknown {
  switch (route) {
    case 'GET /cluster/ha/resources':
      return state.ha.list(text(p.type));
    case 'GET /cluster/ha/resources/{sid}':
      return state.ha.read(haSid(state, p.sid));
    case 'PUT /cluster/ha/resources/{sid}':
      state.ha.update(haSid(state, p.sid), {
        ...haFields(p),
        digest: text(p.digest),
        delete: p.delete === undefined ? undefined : splitList(String(p.delete)),
      });
      return null;
    case 'POST /cluster/ha/resources': {
      const sid = haSid(state, p.sid);
      const type = sid.split(':')[0] as 'vm' | 'ct';
      if (p.type !== undefined && p.type !== type) throw new SimError(500, 'types does not match');
      state.ha.create(sid, { type, ...haFields(p) });
      return null;
    }
    case 'GET /cluster/options': {
      // pve-manager PVE/API2/Cluster.pm get_options (14a22df3): all of datacenter.cfg with
      // Sys.Audit on `/`, else only console and tag-style; `ha` parsed into its keys.
      const held = state.privileges(caller, '/');
      const all = held.has('*') || held.has('Sys.Audit');
      const policy = state.ha.shutdownPolicy;
      return { ...(all && policy ? { ha: { shutdown_policy: policy } } : {}), 'allowed-tags': [] };
    }
  }
  throw new SimError(501, `${route} not implemented`);
}

function dispatch(state: SimulatorState, caller: Caller, route: string, p: Params): unknown {
  const vmid = Number(p.vmid);
  const node = String(p.node);
  const vmOn = () => {
    const vm = state.vm(vmid, node);
    if (vm.node !== node)
      throw new SimError(500, `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`);
    return vm;
  };
  switch (route) {
    case 'GET /version':
      return { ...PVE_VERSION };
    case 'GET /nodes':
      return [...state.gpus.keys()].map((name) => ({ node: name, status: 'online', type: 'node' }));
    case 'GET /nodes/{node}/hardware/pci':
      return state.pciDevices(node, {
        verbose: p.verbose === undefined ? undefined : bool(p.verbose),
        blacklist: text(p['pci-class-blacklist']),
      });
    case 'GET /nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev':
      return state.mdevTypes(node, String(p['pci-id-or-mapping']));
    case 'GET /cluster/mapping/pci':
      return state.listMappings(text(p['check-node'])).filter((m) => {
        const held = state.privileges(caller, `/mapping/pci/${m.id}`);
        return held.has('*') || ['Mapping.Modify', 'Mapping.Use', 'Mapping.Audit'].some((x) => held.has(x));
      });
    case 'POST /cluster/mapping/pci':
      state.createMapping(String(p.id), {
        map: list(p.map) ?? [],
        mdev: bool(p.mdev),
        description: text(p.description),
        liveMigrationCapable:
          p['live-migration-capable'] === undefined ? undefined : bool(p['live-migration-capable']),
      });
      return null;
    case 'GET /cluster/mapping/pci/{id}': {
      const id = String(p.id);
      const digest = state.mappingDigest(id);
      return {
        ...state.mappingFields(state.mappings.get(id) as NonNullable<ReturnType<typeof state.mappings.get>>),
        digest,
      };
    }
    case 'PUT /cluster/mapping/pci/{id}':
      state.updateMapping(String(p.id), {
        map: list(p.map),
        mdev: p.mdev === undefined ? undefined : bool(p.mdev),
        description: text(p.description),
        liveMigrationCapable:
          p['live-migration-capable'] === undefined ? undefined : bool(p['live-migration-capable']),
        digest: text(p.digest),
        delete: p.delete === undefined ? undefined : splitList(String(p.delete)),
      });
      return null;
    case 'DELETE /cluster/mapping/pci/{id}':
      state.deleteMapping(String(p.id));
      return null;
    case 'GET /nodes/{node}/qemu':
      return [...state.vms.values()]
        .filter((vm) => vm.node === node)
        .filter((vm) => {
          const held = state.privileges(caller, `/vms/${vm.vmid}`);
          return held.has('*') || held.has('VM.Audit');
        })
        .map((vm) => ({ vmid: vm.vmid, name: vm.config.name, status: vm.status }));
    case 'GET /nodes/{node}/qemu/{vmid}/config': {
      vmOn();
      // qemu-server Qemu.pm vm_config; the simulator keeps no snapshots (AbstractConfig.pm load_snapshot_config).
      if (p.snapshot !== undefined && bool(p.current))
        throw paramError({
          snapshot: "cannot use 'snapshot' parameter with 'current'",
          current: "cannot use 'snapshot' parameter with 'current'",
        });
      if (p.snapshot !== undefined) throw new SimError(500, `snapshot '${p.snapshot}' does not exist`);
      return { ...state.configOf(vmid, bool(p.current)), digest: state.digest(vmid) };
    }
    case 'POST /nodes/{node}/qemu/{vmid}/config': {
      vmOn();
      const {
        node: _n,
        vmid: _v,
        digest,
        delete: del,
        revert,
        force,
        skiplock: _s,
        background_delay: _b,
        'import-working-storage': _i,
        ...changes
      } = p;
      // Checks and the change run in the call, as Proxmox does before forking the worker.
      state.updateConfig(
        vmid,
        Object.fromEntries(Object.entries(changes).map(([k, v]) => [k, String(v)])),
        caller,
        { digest: text(digest), delete: text(del), revert: text(revert), force: bool(force) },
      );
      return state.runTask(node, 'qmconfig', String(vmid), caller, () => {});
    }
    case 'GET /nodes/{node}/qemu/{vmid}/pending':
      vmOn();
      return state.pendingOf(vmid);
    case 'GET /nodes/{node}/qemu/{vmid}/status/current': {
      const vm = vmOn();
      return { vmid, status: vm.status, qmpstatus: vm.status, name: vm.config.name };
    }
    case 'POST /nodes/{node}/qemu/{vmid}/status/start':
      vmOn();
      return state.runTask(node, 'qmstart', String(vmid), caller, () => state.start(vmid));
    case 'POST /nodes/{node}/qemu/{vmid}/status/shutdown':
      vmOn();
      return state.shutdownTask(vmid, caller, num(p.timeout), bool(p.forceStop));
    case 'POST /nodes/{node}/qemu/{vmid}/status/stop':
      vmOn();
      return state.runTask(node, 'qmstop', String(vmid), caller, () => state.stop(vmid));
    case 'GET /nodes/{node}/tasks/{upid}/status':
      return state.taskStatus(node, String(p.upid), caller);
    case 'GET /nodes/{node}/tasks': {
      const { tasks, total } = state.taskList(node, caller, {
        start: num(p.start),
        limit: num(p.limit),
        userfilter: text(p.userfilter),
        typefilter: text(p.typefilter),
        vmid: num(p.vmid),
        errors: bool(p.errors),
        source: text(p.source),
        since: num(p.since),
        until: num(p.until),
        statusfilter: text(p.statusfilter),
      });
      // Proxmox leaves `total` out when it is 0.
      return total > 0 ? new Counted(tasks, total) : tasks;
    }
    case 'GET /nodes/{node}/status':
      return state.nodeStatus(node);
    case 'GET /cluster/resources':
      return state.resources(caller, text(p.type));
    case 'GET /access/permissions': {
      // pve-access-control src/PVE/API2/AccessControl.pm permissions (5ccd07d9): another
      // user's (not one's own token's) needs Sys.Audit on /access.
      const self = caller.token ? `${caller.user}!${caller.token}` : caller.user;
      const userid = text(p.userid) ?? self;
      if (userid !== self && userid.split('!')[0] !== self) state.check(caller, '/access', ['Sys.Audit']);
      const [user, token] = userid.split('!') as [string, string | undefined];
      const who: Caller = token ? { user, token } : { user };
      const paths = p.path === undefined ? [...(state.acl.get(userid)?.keys() ?? [])] : [String(p.path)];
      // root@pam holds every privilege; Proxmox lists them by name.
      const named = (path: string) => {
        const held = state.privileges(who, path);
        return held.has('*') ? ALL_PRIVILEGES : [...held];
      };
      return Object.fromEntries(
        paths
          .map((path) => [path, Object.fromEntries(named(path).map((priv) => [priv, 1]))] as const)
          .filter(([, privs]) => Object.keys(privs).length > 0),
      );
    }
  }
  throw new SimError(501, `${route} not implemented`);
}
