// The Proxmox VE simulator's HTTPS front: /api2/json for the endpoints in api-spec.ts,
// token authentication, each endpoint's privilege check, parameter validation against
// the compact schema, and Proxmox's answer shapes ({data}, errors in the status line,
// 400 with per-parameter `errors`). It listens on loopback only, with a self-signed
// certificate made at start, so clients connect with a pinned fingerprint as they
// would to a fresh Proxmox node.

import { X509Certificate } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { loopbackCertificate } from '../../core/loopback-tls.ts';
import { ENDPOINTS, type EndpointSpec, type ParamSpec } from '../api-spec.ts';
import { normalizeFingerprint } from '../client.ts';
import { type Caller, SimError, type SimulatorState } from './state.ts';

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

const ROUTES: Route[] = ENDPOINTS.map((spec) => {
  const names: string[] = [];
  const source = spec.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    names.push(name);
    return '([^/]+)';
  });
  return { spec, pattern: new RegExp(`^${source}$`), names };
});

export type Params = Record<string, unknown>;

export async function startSimulator(
  state: SimulatorState,
  options: { port?: number; tls?: { key: string; cert: string } } = {},
): Promise<RunningSimulator> {
  const tls: { key: string; cert: string } = options.tls ?? (await loopbackCertificate('pve-simulator'));
  const unavailable = { count: 0 };
  const server: Server = createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    if (unavailable.count > 0) {
      unavailable.count--;
      return answer(res, 503, 'Service Unavailable', null);
    }
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
  const given = req.method === 'GET' ? Object.fromEntries(url.searchParams) : await readBody(req);
  const reply =
    given === undefined
      ? { status: 400, reason: 'Parameter verification failed.', data: null, errors: { body: 'not JSON' } }
      : simulate(state, caller, req.method ?? 'GET', url.pathname.slice('/api2/json'.length), given);
  answer(res, reply.status, reply.reason, reply.data, reply.errors ? { errors: reply.errors } : {});
}

export interface SimReply {
  status: number;
  reason: string;
  data: unknown;
  errors?: Record<string, string>;
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
  const match = route.pattern.exec(path) as RegExpExecArray;
  const params: Params = {};
  route.names.forEach((name, i) => {
    params[name] = decodeURIComponent(match[i + 1] as string);
  });
  Object.assign(params, given);
  const errors = validate(route.spec, params);
  if (Object.keys(errors).length > 0)
    return { status: 400, reason: 'Parameter verification failed.', data: null, errors };
  try {
    if (route.spec.permission) {
      const permPath = route.spec.permission.path.replace(/\{([^}]+)\}/g, (_, n: string) =>
        String(params[n]),
      );
      state.check(caller, permPath, route.spec.permission.privileges, route.spec.permission.any);
    }
    return {
      status: 200,
      reason: 'OK',
      data: dispatch(state, caller, `${route.spec.method} ${route.spec.path}`, params),
    };
  } catch (error) {
    if (error instanceof SimError) return { status: error.status, reason: error.message, data: null };
    throw error;
  }
}

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
    } catch {
      return undefined;
    }
  }
  // application/x-www-form-urlencoded, as pvesh and curl send; repeated keys make arrays.
  const params: Params = {};
  for (const [key, value] of new URLSearchParams(text)) {
    const previous = params[key];
    params[key] = previous === undefined ? value : [previous, value].flat();
  }
  return params;
}

/** Names and types as the official schema defines them (the compact spec is checked against it). */
function validate(spec: EndpointSpec, params: Params): Record<string, string> {
  const errors: Record<string, string> = {};
  const specOf = (name: string): ParamSpec | undefined =>
    spec.params[name] ??
    Object.entries(spec.params).find(
      ([key]) => key.endsWith('[n]') && new RegExp(`^${key.slice(0, -3)}\\d+$`).test(name),
    )?.[1];
  for (const [name, value] of Object.entries(params)) {
    const param = specOf(name);
    if (!param) {
      errors[name] = 'property is not defined in schema and the schema does not allow additional properties';
      continue;
    }
    const text = String(value);
    if (param.type === 'integer' && !/^-?\d+$/.test(text))
      errors[name] = `type check ('integer') failed - got '${text}'`;
    if (param.type === 'boolean' && !/^(0|1|true|false)$/.test(text))
      errors[name] = `type check ('boolean') failed - got '${text}'`;
  }
  for (const [name, param] of Object.entries(spec.params)) {
    if (!param.optional && !name.endsWith('[n]') && params[name] === undefined)
      errors[name] = 'property is missing and it is not optional';
  }
  return errors;
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

function dispatch(state: SimulatorState, caller: Caller, route: string, p: Params): unknown {
  const vmid = Number(p.vmid);
  const node = String(p.node);
  const vmOn = () => {
    // pveproxy sends a node's requests to that node first: an unknown node fails there.
    state.node(node);
    const vm = state.vm(vmid, node);
    if (vm.node !== node)
      throw new SimError(500, `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`);
    return vm;
  };
  switch (route) {
    case 'GET /version':
      return { version: '8.4.1', release: '8.4', repoid: '2a5fa54a' };
    case 'GET /nodes':
      return [...state.gpus.keys()].map((name) => ({ node: name, status: 'online', type: 'node' }));
    case 'GET /nodes/{node}/hardware/pci':
      return state.pciDevices(node);
    case 'GET /nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev':
      return state.mdevTypes(node, String(p['pci-id-or-mapping']));
    case 'GET /cluster/mapping/pci':
      return state
        .listMappings(p['check-node'] === undefined ? undefined : String(p['check-node']))
        .filter((m) => {
          const held = state.privileges(caller, `/mapping/pci/${m.id}`);
          return held.has('*') || ['Mapping.Modify', 'Mapping.Use', 'Mapping.Audit'].some((x) => held.has(x));
        });
    case 'POST /cluster/mapping/pci':
      state.createMapping(String(p.id), {
        map: list(p.map) ?? [],
        mdev: bool(p.mdev),
        description: p.description === undefined ? undefined : String(p.description),
      });
      return null;
    case 'GET /cluster/mapping/pci/{id}': {
      const id = String(p.id);
      const mapping = state.mappings.get(id);
      if (!mapping) throw new SimError(500, `PCI mapping '${id}' does not exist`);
      return { ...mapping, mdev: mapping.mdev ? 1 : 0, digest: state.mappingDigest(id) };
    }
    case 'PUT /cluster/mapping/pci/{id}':
      state.updateMapping(String(p.id), {
        map: list(p.map),
        mdev: p.mdev === undefined ? undefined : bool(p.mdev),
        digest: p.digest === undefined ? undefined : String(p.digest),
      });
      return null;
    case 'DELETE /cluster/mapping/pci/{id}':
      state.deleteMapping(String(p.id));
      return null;
    case 'GET /nodes/{node}/qemu':
      state.node(node);
      return [...state.vms.values()]
        .filter((vm) => vm.node === node)
        .filter((vm) => {
          const held = state.privileges(caller, `/vms/${vm.vmid}`);
          return held.has('*') || held.has('VM.Audit');
        })
        .map((vm) => ({ vmid: vm.vmid, name: vm.config.name, status: vm.status }));
    case 'GET /nodes/{node}/qemu/{vmid}/config':
      vmOn();
      return { ...state.configOf(vmid, bool(p.current)), digest: state.digest(vmid) };
    case 'POST /nodes/{node}/qemu/{vmid}/config': {
      vmOn();
      const { node: _n, vmid: _v, digest, delete: del, ...changes } = p;
      // Checks and the change run in the call, as Proxmox does before forking the worker.
      state.updateConfig(
        vmid,
        Object.fromEntries(Object.entries(changes).map(([k, v]) => [k, String(v)])),
        caller,
        {
          digest: digest === undefined ? undefined : String(digest),
          delete: del === undefined ? undefined : String(del),
        },
      );
      return state.runTask(node, 'qmconfig', String(vmid), caller, () => {});
    }
    case 'GET /nodes/{node}/qemu/{vmid}/status/current': {
      const vm = vmOn();
      return { vmid, status: vm.status, qmpstatus: vm.status, name: vm.config.name };
    }
    case 'POST /nodes/{node}/qemu/{vmid}/status/start':
      vmOn();
      return state.runTask(node, 'qmstart', String(vmid), caller, () => state.start(vmid));
    case 'POST /nodes/{node}/qemu/{vmid}/status/shutdown':
      vmOn();
      return state.shutdownTask(
        vmid,
        caller,
        p.timeout === undefined ? undefined : Number(p.timeout),
        bool(p.forceStop),
      );
    case 'POST /nodes/{node}/qemu/{vmid}/status/stop':
      vmOn();
      return state.runTask(node, 'qmstop', String(vmid), caller, () => state.stop(vmid));
    case 'GET /nodes/{node}/tasks/{upid}/status': {
      const task = state.tasks.get(String(p.upid));
      if (!task || task.node !== node) throw new SimError(500, `unable to parse worker upid '${p.upid}'`);
      return { ...task, pid: 0, pstart: 0, starttime: 0 };
    }
    case 'GET /access/permissions': {
      const paths =
        p.path === undefined
          ? [...(state.acl.get(`${caller.user}!${caller.token}`)?.keys() ?? [])]
          : [String(p.path)];
      // root@pam holds every privilege; Proxmox lists them by name.
      const named = (path: string) => {
        const held = state.privileges(caller, path);
        return held.has('*') ? ALL_PRIVILEGES : [...held];
      };
      return Object.fromEntries(
        paths.map((path) => [path, Object.fromEntries(named(path).map((priv) => [priv, 1]))]),
      );
    }
  }
  throw new SimError(501, `${route} not implemented`);
}
