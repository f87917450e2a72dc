// The Proxmox client against local HTTPS servers: TLS trust, auth and error answers.

import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { IgpuSplitError } from '../../src/core/errors.ts';
import {
  loadTokenSecret,
  normalizeFingerprint,
  ProxmoxClient,
  type TlsTrust,
} from '../../src/proxmox/client.ts';
import { makeCertificates, type TestCertificates } from '../support/tls.ts';

const SECRET = '5e1f0b7a-test-secret-never-printed';
let certs: TestCertificates;
const servers: Server[] = [];

before(async () => {
  certs = await makeCertificates();
});
after(async () => {
  for (const server of servers) server.close();
  await rm(certs.dir, { recursive: true, force: true });
});

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

async function serve(handler: Handler, cert = certs.cert): Promise<string> {
  const server = createServer({ key: certs.key, cert }, handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `https://127.0.0.1:${(server.address() as { port: number }).port}`;
}

const json =
  (status: number, body: unknown, reason?: string): Handler =>
  (_req, res) => {
    res.writeHead(status, reason ?? '', { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

const client = (baseUrl: string, tls: TlsTrust) =>
  new ProxmoxClient({ baseUrl, tokenId: 'igpu@pve!split', secret: SECRET, tls, backoffMs: 1 });

/** Expects one error line that matches, and never the secret in it. */
async function fails(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError, String(error));
    assert.match(error.oneLine(), pattern);
    assert.ok(!error.oneLine().includes(SECRET) && !String(error.stack).includes(SECRET), 'secret leaked');
    return true;
  });
}

test('a CA file or the right fingerprint is trusted, and the token goes in the header', async () => {
  let auth = '';
  const url = await serve((req, res) => {
    auth = req.headers.authorization ?? '';
    json(200, { data: { version: '8.2.7', release: '8.2' } })(req, res);
  });
  assert.deepEqual(await client(url, { caFile: certs.caFile }).get('/version'), {
    version: '8.2.7',
    release: '8.2',
  });
  assert.equal(auth, `PVEAPIToken=igpu@pve!split=${SECRET}`);
  const pinned = client(url, { fingerprint: certs.fingerprint.toLowerCase().replaceAll(':', '') });
  assert.deepEqual(await pinned.get('/version'), { version: '8.2.7', release: '8.2' });
});

test('a wrong fingerprint is refused showing both; no trust given is refused too', async () => {
  const url = await serve(json(200, { data: {} }));
  const wrong = `AA:${certs.fingerprint.slice(3)}`;
  await fails(
    client(url, { fingerprint: wrong }).get('/version'),
    new RegExp(`fingerprint ${certs.fingerprint} is not the pinned ${wrong}`),
  );
  await fails(
    client(url, { system: true }).get('/version'),
    /not trusted.* offered the certificate with SHA-256 fingerprint .*give the cluster CA file .*, or pin this certificate/,
  );
});

test('an expired certificate is refused even from the trusted CA', async () => {
  const url = await serve(json(200, { data: {} }), certs.expiredCert);
  await fails(client(url, { caFile: certs.caFile }).get('/version'), /certificate has expired/);
});

test('401, 403 with the missing privilege, HTML pages and truncated JSON give clear errors', async () => {
  const trust = { caFile: certs.caFile };
  await fails(
    client(await serve(json(401, { data: null }, 'authentication failure')), trust).get('/nodes'),
    /authentication failed for token igpu@pve!split/,
  );
  const denied = await serve(json(403, { data: null }, 'Permission check failed (/vms/100, VM.Config.HW)'));
  await fails(
    client(denied, trust).put('/nodes/pve1/qemu/100/config', { hostpci0: 'mapping=iGPU' }),
    /permission denied — VM\.Config\.HW on \/vms\/100 — grant the token VM\.Config\.HW on \/vms\/100/,
  );
  const html = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body>Login</body></html>');
  });
  // The body is not quoted: a proxy may echo what it was sent.
  await fails(client(html, trust).get('/nodes'), /not JSON \(text\/html, 31 bytes\)/);
  const truncated = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"data":[{"node":"pve1"');
  });
  await fails(client(truncated, trust).get('/nodes'), /not JSON/);
});

test('GET retries a 500 then succeeds; POST is not retried', async () => {
  let gets = 0;
  let posts = 0;
  const url = await serve((req, res) => {
    if (req.method === 'GET') gets++;
    else posts++;
    const first = req.method === 'GET' ? gets === 1 : true;
    (first ? json(500, { data: null }, 'internal error') : json(200, { data: [{ node: 'pve1' }] }))(req, res);
  });
  const api = client(url, { caFile: certs.caFile });
  assert.deepEqual(await api.get('/nodes'), [{ node: 'pve1' }]);
  assert.equal(gets, 2);
  await fails(api.post('/nodes/pve1/qemu/100/status/start'), /HTTP 500 internal error/);
  assert.equal(posts, 1);
});

test('the secret comes from a file or a variable, and errors name the source, not the value', async () => {
  const file = join(certs.dir, 'token');
  await writeFile(file, `${SECRET}\n`);
  assert.equal(await loadTokenSecret({ file }), SECRET);
  await fails(
    loadTokenSecret({ file: join(certs.dir, 'missing') }),
    /cannot read the API token secret file .*missing: no such file/,
  );
  process.env.IGPU_TEST_SECRET = SECRET;
  assert.equal(await loadTokenSecret({ env: 'IGPU_TEST_SECRET' }), SECRET);
  delete process.env.IGPU_TEST_SECRET;
  await fails(loadTokenSecret({ env: 'IGPU_TEST_SECRET' }), /IGPU_TEST_SECRET .* is not set/);
  assert.equal(normalizeFingerprint(`sha256 ${'ab'.repeat(32)}`), Array(32).fill('AB').join(':'));
});

test('an answer of the wrong shape is one clear line from the typed API, not a crash later', async () => {
  const { ProxmoxApi } = await import('../../src/proxmox/api.ts');
  const url = await serve((req, res) => {
    const body = req.url?.includes('/nodes/pve1/qemu/101/status/start')
      ? { data: 'started' }
      : { data: [{ node: 'pve1', status: 'sleeping' }] };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  const api = new ProxmoxApi(client(url, { caFile: certs.caFile }), 'igpu@pve!split');
  await fails(api.nodes(), /GET \/nodes: unexpected answer \(0\.status: Invalid option: expected one of/);
  await fails(api.vmPower('pve1', 101, 'start'), /start: expected a task id, got "started"/);
  await api.transport.close();
});

test('a node that never answers: one attempt within the request timeout, one line naming it', async () => {
  let requests = 0;
  const url = await serve(() => {
    requests++; // and never answers
  });
  const slow = new ProxmoxClient({
    baseUrl: url,
    tokenId: 'igpu@pve!split',
    secret: SECRET,
    tls: { caFile: certs.caFile },
    requestTimeoutMs: 300,
    attempts: 3,
    backoffMs: 1,
  });
  const started = Date.now();
  await fails(
    slow.get('/version'),
    new RegExp(
      `GET /version failed: no answer within 0\\.3 s — check the address, that 127\\.0\\.0\\.1:${new URL(url).port} is reachable`,
    ),
  );
  assert.ok(Date.now() - started < 2_000, 'bounded by the request timeout');
  assert.equal(requests, 1, 'a request that ran out of time is not sent again');
  await slow.close();
});

test('a certificate the CA file or the system does not trust: the error names the real address and the fingerprint to pin', async () => {
  // The loopback server's own certificate, on a port that is not 8006.
  const { loopbackCertificate } = await import('../../src/sim/loopback-tls.ts');
  const { X509Certificate } = await import('node:crypto');
  const own = await loopbackCertificate('pve-test');
  const server = createServer({ key: own.key, cert: own.cert }, json(200, { data: {} }));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  assert.notEqual(port, 8006);
  const url = `https://127.0.0.1:${port}`;
  const offered = normalizeFingerprint(new X509Certificate(own.cert).fingerprint256);
  for (const tls of [{ system: true }, { caFile: certs.caFile }] as TlsTrust[]) {
    const untrusted = client(url, tls);
    await fails(
      untrusted.get('/version'),
      new RegExp(
        `not trusted .*127\\.0\\.0\\.1:${port} offered the certificate with SHA-256 fingerprint ${offered} — .*fingerprint: "${offered}"`,
      ),
    );
    await untrusted.close();
  }
  // What it says to pin is what the lab file takes: pinned, the same server is trusted.
  const pinned = client(url, { fingerprint: offered });
  assert.deepEqual(await pinned.get('/version'), {});
  await pinned.close();
  // The lab file's fingerprint: takes it as it is (the published schema's pattern).
  const { readFile } = await import('node:fs/promises');
  const schema = JSON.parse(
    await readFile(new URL('../../docs/schemas/lab.schema.json', import.meta.url), 'utf8'),
  );
  const pattern = new RegExp(schema.properties.proxmox.properties.fingerprint.pattern);
  assert.match(offered, pattern);
});

test('a refused connection is tried three times, and the line counts them', async () => {
  const { createServer: createTcp } = await import('node:net');
  const spare = createTcp();
  await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
  const port = (spare.address() as { port: number }).port;
  await new Promise((resolve) => spare.close(resolve));
  const refused = client(`https://127.0.0.1:${port}`, { caFile: certs.caFile });
  await fails(refused.get('/nodes'), /GET \/nodes failed \(3 attempts\): connection refused/);
  await refused.close();
});

test('an http:// URL is refused before anything is sent', () => {
  assert.throws(
    () => client('http://127.0.0.1:8006', { system: true }),
    /the Proxmox URL http:\/\/127\.0\.0\.1:8006 is not https:\/\/: the token secret would be sent in clear/,
  );
});
