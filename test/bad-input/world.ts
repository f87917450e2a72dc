// What the bad-input corpus runs against: for each case its own Proxmox simulator and
// Kubernetes API server (cases change them, and run side by side), a Talos Image Factory,
// and servers that misbehave on purpose — one that accepts connections and never answers,
// one that answers HTML, one with a certificate nobody trusts. Distinct secrets are planted
// in the token file, the token variable and the kubeconfig (token, client-key-data, and a
// password of another user), so that every form of each can be hunted for in what the
// tool prints and writes.

import { randomBytes, randomUUID } from 'node:crypto';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  type KubeSimulatorOptions,
  type RunningKubeSimulator,
  startKubeSimulator,
} from '../../src/sim/kube/server.ts';
import { loopbackCertificate } from '../../src/sim/loopback-tls.ts';
import { type RunningSimulator, startSimulator } from '../../src/sim/proxmox/server.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { type FakeFactory, startImageFactory } from '../../src/sim/talos-factory.ts';
import { fixturePath } from '../support/fixtures.ts';
import { LAYER_GRANTS, UHD630 } from '../support/simulator.ts';

export const TOKEN_ID = 'igpu-split@pve!lab';
export const ENV_TOKEN_ID = 'igpu-split@pve!env';
export const SECRET_ENV = 'IGPU_SPLIT_CORPUS_SECRET';

/** The secrets planted; none may reach any output or any file the tool writes. */
export interface Secrets {
  tokenFile: string;
  tokenEnv: string;
  kubeToken: string;
  /** client-key-data as the kubeconfig holds it (base64 of a PEM key). */
  clientKeyData: string;
  /** Its certificate (not a secret). */
  clientCertData: string;
  /** The password of a second kubeconfig user. */
  password: string;
  /** What an exec credential plugin hands out at request time (the kubeconfig never holds it). */
  execToken: string;
}

export async function makeSecrets(): Promise<Secrets> {
  // A real client key and certificate: client-node hands both to TLS.
  const client = await loopbackCertificate('igpu-split corpus client');
  return {
    tokenFile: randomUUID(),
    tokenEnv: randomUUID(),
    kubeToken: randomBytes(30).toString('base64url'),
    clientKeyData: Buffer.from(client.key).toString('base64'),
    clientCertData: Buffer.from(client.cert).toString('base64'),
    password: `pw-${randomBytes(12).toString('hex')}`,
    execToken: `exec-${randomBytes(20).toString('hex')}`,
  };
}

/**
 * Every string that counts as a leak of `secret`, lower-cased (the search ignores case):
 * itself and its 8-character pieces, hex, percent-encoding, and base64 and base64url of it
 * at any offset of what was encoded (one to three leading bytes of something else shift it;
 * only the characters made of the secret's bits alone are searched for).
 */
export function leakForms(secret: string, skipPrefix = 0): string[] {
  const bytes = Buffer.from(secret);
  const forms = new Set([secret, bytes.toString('hex'), encodeURIComponent(secret)]);
  for (const alphabet of ['base64', 'base64url'] as const) {
    forms.add(bytes.toString(alphabet));
    for (const before of ['', '?', '??']) {
      const text = Buffer.concat([Buffer.from(before), bytes]).toString(alphabet);
      // 4 characters per 3 bytes: drop those that hold a neighbour's bits too.
      forms.add(
        text.slice(Math.ceil((before.length * 4) / 3), Math.floor(((before.length + bytes.length) * 4) / 3)),
      );
    }
  }
  for (let i = skipPrefix; i + 8 <= secret.length; i++) forms.add(secret.slice(i, i + 8));
  return [...forms].map((form) => form.toLowerCase());
}

export function allLeakForms(secrets: Secrets): { secret: string; forms: string[] }[] {
  const keyPem = Buffer.from(secrets.clientKeyData, 'base64').toString();
  const keyBody = keyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return [
    { secret: 'token file', forms: leakForms(secrets.tokenFile) },
    { secret: 'token variable', forms: leakForms(secrets.tokenEnv) },
    { secret: 'kubeconfig token', forms: leakForms(secrets.kubeToken) },
    // Every PEM's base64 starts alike ("-----BEGIN "): its first 20 characters are no secret.
    { secret: 'kubeconfig client-key-data', forms: leakForms(secrets.clientKeyData, 20) },
    { secret: 'client key (decoded)', forms: leakForms(keyBody) },
    { secret: 'kubeconfig password', forms: leakForms(secrets.password) },
    { secret: 'exec plugin token', forms: leakForms(secrets.execToken) },
  ];
}

/** Servers that misbehave, shared by all cases (they keep no state). */
export interface Misbehaving {
  /** Accepts TCP connections and never says a word. */
  silentPort: number;
  /** HTTPS (certificate trusted through `htmlCa`) answering every request with a login page. */
  htmlUrl: string;
  htmlCa: string;
  /** Plain HTTP answering JSON. */
  httpUrl: string;
  /** A port nothing listens on. */
  closedPort: number;
  /** HTTPS (trusted through `htmlCa`): 200, then a body that never ends. */
  endlessUrl: string;
  /** HTTPS (trusted through `htmlCa`): 200, then one byte every two seconds. */
  trickleUrl: string;
  /** HTTPS (trusted through `htmlCa`): the connection is made, the request never answered. */
  muteUrl: string;
  /**
   * HTTPS (trusted through `htmlCa`), answering by the first part of the path:
   * `/no-kind` JSON without a kind, `/gzip` a compressed body nobody asked for,
   * `/echo` a 403 Status that repeats the Authorization header it was sent,
   * `/big-header` a 100 KB header line, `/redirect` and `/api2/…` (the Proxmox API's paths)
   * a 302 to a login portal.
   */
  oddUrl: string;
  /**
   * HTTPS (trusted through `htmlCa`) answering 403 with the credential it was sent in one of
   * the forms the CLI must not print: in the status line (as Proxmox gives its reason) and in
   * a Kubernetes Status message.
   */
  echoUrls: Record<EchoForm, string>;
  /** HTTPS (trusted through `htmlCa`) answering every request with JSON of another API (a Kubernetes list). */
  otherJsonUrl: string;
  close(): Promise<void>;
}

/** How an echoing server turns the credential round, as a server (or a proxy) might. */
export const ECHO_FORMS = {
  /** base64 with one byte before the secret, so its encoding is shifted. */
  'base64-offset-1': (credential: string) => Buffer.from(`x${credential}`).toString('base64'),
  'base64url-offset-2': (credential: string) => Buffer.from(`xy${credential}`).toString('base64url'),
  /** base64 of the whole Authorization header value (`PVEAPIToken=user@realm!id=secret`, `Bearer token`). */
  'base64-header': (_credential: string, header: string) => Buffer.from(header).toString('base64'),
  upper: (credential: string) => credential.toUpperCase(),
  hex: (credential: string) => Buffer.from(credential).toString('hex').toUpperCase(),
} satisfies Record<string, (credential: string, header: string) => string>;
export type EchoForm = keyof typeof ECHO_FORMS;

export async function startMisbehaving(): Promise<Misbehaving> {
  const held: Socket[] = [];
  const silent: Server = createTcpServer((socket) => {
    held.push(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const html = await loopbackCertificate('html-server');
  const htmlServer = createHttpsServer(html, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body><form>Login</form></body></html>');
  });
  await new Promise<void>((resolve) => htmlServer.listen(0, '127.0.0.1', resolve));
  const http: HttpServer = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"data":null}');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const timers = new Set<NodeJS.Timeout>();
  const endless = createHttpsServer(html, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"data":[');
    const chunk = `${'{"node":"pve1","status":"online"},'.repeat(2000)}`;
    const pump = () => {
      while (res.write(chunk)) {}
      res.once('drain', pump);
    };
    pump();
    res.on('error', () => {});
  });
  await new Promise<void>((resolve) => endless.listen(0, '127.0.0.1', resolve));
  const trickle = createHttpsServer(html, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    const timer = setInterval(() => res.write(' '), 2000);
    timers.add(timer);
    res.on('close', () => clearInterval(timer));
    res.on('error', () => {});
  });
  await new Promise<void>((resolve) => trickle.listen(0, '127.0.0.1', resolve));
  const mute = createHttpsServer(html, () => {
    // Never answers.
  });
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve));
  const odd = createHttpsServer(html, (req, res) => {
    const what = req.url?.split('/')[1];
    if (what === 'redirect' || what === 'api2') {
      // Never followed: a login portal's address, no lookup of it is ever made.
      res.writeHead(302, { location: 'https://login.example/sso' });
      res.end();
    } else if (what === 'gzip') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' });
      res.end(Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
    } else if (what === 'echo') {
      res.writeHead(403, { 'content-type': 'application/json' });
      const message = `denied for ${req.headers.authorization ?? 'nobody'}`;
      res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, code: 403 }));
    } else if (what === 'big-header') {
      res.writeHead(200, { 'content-type': 'application/json', 'x-padding': 'x'.repeat(100_000) });
      res.end('{}');
    } else {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"data":[[[1]]],"resources":null}');
    }
  });
  await new Promise<void>((resolve) => odd.listen(0, '127.0.0.1', resolve));
  const echoes = Object.entries(ECHO_FORMS).map(([form, turn]) => {
    const server = createHttpsServer(html, (req, res) => {
      const header = req.headers.authorization ?? '';
      // The secret after the token id (Proxmox) or the bearer token (Kubernetes).
      const credential = header.startsWith('Bearer ')
        ? header.slice(7)
        : header.slice(header.lastIndexOf('=') + 1);
      const echoed = turn(credential, header);
      res.statusMessage = `Permission check failed ${echoed}`;
      res.writeHead(403, { 'content-type': 'application/json' });
      const message = `denied: ${echoed}`;
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message,
          code: 403,
          data: null,
        }),
      );
    });
    return { form: form as EchoForm, server };
  });
  for (const { server } of echoes)
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const otherJson = createHttpsServer(html, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"kind":"NodeList","apiVersion":"v1","items":[]}');
  });
  await new Promise<void>((resolve) => otherJson.listen(0, '127.0.0.1', resolve));
  const spare = createTcpServer();
  await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
  const closedPort = (spare.address() as { port: number }).port;
  await new Promise((resolve) => spare.close(resolve));
  const port = (server: { address(): unknown }) => (server.address() as { port: number }).port;
  return {
    silentPort: port(silent),
    htmlUrl: `https://127.0.0.1:${port(htmlServer)}`,
    htmlCa: html.cert,
    httpUrl: `http://127.0.0.1:${port(http)}`,
    closedPort,
    endlessUrl: `https://127.0.0.1:${port(endless)}`,
    trickleUrl: `https://127.0.0.1:${port(trickle)}`,
    muteUrl: `https://127.0.0.1:${port(mute)}`,
    oddUrl: `https://127.0.0.1:${port(odd)}`,
    echoUrls: Object.fromEntries(
      echoes.map(({ form, server }) => [form, `https://127.0.0.1:${port(server)}`]),
    ) as Record<EchoForm, string>,
    otherJsonUrl: `https://127.0.0.1:${port(otherJson)}`,
    close: async () => {
      for (const socket of held) socket.destroy();
      for (const timer of timers) clearInterval(timer);
      const echoServers = [...echoes.map(({ server }) => server), otherJson];
      for (const server of [htmlServer, http, endless, trickle, mute, odd, ...echoServers])
        server.closeAllConnections();
      await Promise.all(
        [silent, htmlServer, http, endless, trickle, mute, odd, ...echoServers].map(
          (s) => new Promise((resolve) => s.close(() => resolve(undefined))),
        ),
      );
    },
  };
}

/** One case's own lab: simulators, files, and the lab file that names them. */
export interface CaseLab {
  dir: string;
  labFile: string;
  tokenFile: string;
  kubeconfigFile: string;
  state: SimulatorState;
  pve: RunningSimulator;
  kube: RunningKubeSimulator;
  factory: FakeFactory;
  /** The lab file's text, with `edit` applied to its lines. */
  labText(edit?: (text: string) => string): string;
  close(): Promise<void>;
}

/**
 * pve1 (UHD 630) with VM 101, an Ubuntu K3s node that is running, and VM 102, a Talos node;
 * pve2 (UHD 630) with VM 103 on i440fx (refused without --change-machine) when `i440fx`.
 */
export async function startCaseLab(
  dir: string,
  secrets: Secrets,
  options: {
    i440fx?: boolean;
    talos?: boolean;
    kube?: Pick<KubeSimulatorOptions, 'version' | 'features'>;
  } = {},
): Promise<CaseLab> {
  await mkdir(dir, { recursive: true });
  const state = new SimulatorState({ taskMs: 2, secondMs: 2 });
  state.addNode('pve1', { ...UHD630 });
  state.addVm({
    vmid: 101,
    node: 'pve1',
    status: 'running',
    config: { name: 'k3s-1', machine: 'q35', bios: 'ovmf' },
  });
  if (options.talos)
    state.addVm({
      vmid: 102,
      node: 'pve1',
      status: 'stopped',
      config: { name: 'talos-1', machine: 'q35', bios: 'ovmf' },
    });
  if (options.i440fx) {
    state.addNode('pve2', { ...UHD630 });
    state.addVm({
      vmid: 103,
      node: 'pve2',
      status: 'stopped',
      config: { name: 'old-1', machine: 'pc-i440fx-9.0', bios: 'ovmf' },
    });
  }
  state.addToken(TOKEN_ID, secrets.tokenFile, LAYER_GRANTS);
  state.addToken(ENV_TOKEN_ID, secrets.tokenEnv, LAYER_GRANTS);
  const pve = await startSimulator(state);
  const kube = await startKubeSimulator({
    nodes: [
      { name: 'k3s-1', gpus: 1 },
      { name: 'talos-1', gpus: options.talos ? 1 : 0 },
    ],
    token: secrets.kubeToken,
    ...options.kube,
  });
  const factory = await startImageFactory();
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, `${secrets.tokenFile}\n`, { mode: 0o600 });
  const kubeconfigFile = join(dir, 'kubeconfig');
  await writeFile(kubeconfigFile, kubeconfigWithSecrets(kube, secrets), { mode: 0o600 });
  const vms = [
    '  - { vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1 }',
    ...(options.talos
      ? [
          '  - vmid: 102',
          '    host: pve1',
          '    os: talos',
          '    kubernetesNode: talos-1',
          '    talos: { node: 127.0.0.1, version: v1.10.9, extensions: [siderolabs/iscsi-tools] }',
        ]
      : []),
    ...(options.i440fx ? ['  - { vmid: 103, host: pve2, os: ubuntu }'] : []),
  ];
  const base = [
    'proxmox:',
    `  url: ${pve.url}`,
    `  token: ${TOKEN_ID}`,
    '  tokenSecretFile: token',
    `  fingerprint: "${pve.fingerprint}"`,
    'hosts:',
    '  - node: pve1',
    ...(options.i440fx ? ['  - node: pve2'] : []),
    'vms:',
    ...vms,
    'kubernetes:',
    '  kubeconfig: kubeconfig',
    `imageFactory: ${factory.url}`,
    '',
  ].join('\n');
  const labFile = join(dir, 'igpu-split.yaml');
  const labText = (edit?: (text: string) => string) => (edit ? edit(base) : base);
  await writeFile(labFile, base);
  return {
    dir,
    labFile,
    tokenFile,
    kubeconfigFile,
    state,
    pve,
    kube,
    factory,
    labText,
    close: async () => {
      await Promise.all([pve.close(), kube.close(), factory.close()]);
    },
  };
}

/** The simulator's kubeconfig, plus a client certificate and key, and a second user with a password. */
export function kubeconfigWithSecrets(kube: RunningKubeSimulator, secrets: Secrets): string {
  return kube.kubeconfig
    .replace(
      /^(- name: igpu-sim\n {2}user:\n {4}token: .*)$/m,
      `$1\n    client-certificate-data: ${secrets.clientCertData}\n    client-key-data: ${secrets.clientKeyData}`,
    )
    .replace(
      /^contexts:/m,
      `- name: basic-admin\n  user:\n    username: admin\n    password: ${secrets.password}\ncontexts:`,
    );
}

/** A copy of a captured host, to damage. */
export async function hostCopy(fixture: string, dir: string): Promise<string> {
  const root = join(dir, fixture);
  await cp(fixturePath(fixture), root, { recursive: true, verbatimSymlinks: true });
  return root;
}
