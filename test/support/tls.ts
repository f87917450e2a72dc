// Certificates for TLS tests, made with openssl: a CA, a server certificate for
// 127.0.0.1 signed by it, and one that expired in 2020.

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificates {
  dir: string;
  caFile: string;
  ca: string;
  key: string;
  cert: string;
  expiredCert: string;
  /** SHA-256 fingerprint of `cert`, `AB:CD:…` */
  fingerprint: string;
}

export async function makeCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-tls-'));
  const at = (name: string) => join(dir, name);
  const ssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '30',
    '-subj',
    '/CN=igpu-split test CA',
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=127.0.0.1',
  );
  await writeFile(at('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
  ssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '30',
    '-extfile',
    'ext.cnf',
  );
  // `openssl ca` can set a validity window in the past: an expired certificate.
  await writeFile(at('index.txt'), '');
  await writeFile(at('serial'), '1000\n');
  await writeFile(
    at('ca.cnf'),
    [
      '[ca]',
      'default_ca=test',
      '[test]',
      `dir=${dir}`,
      'database=$dir/index.txt',
      'serial=$dir/serial',
      'new_certs_dir=$dir',
      'default_md=sha256',
      'policy=any',
      'copy_extensions=none',
      'x509_extensions=ext',
      '[any]',
      'commonName=supplied',
      '[ext]',
      'subjectAltName=IP:127.0.0.1',
      '',
    ].join('\n'),
  );
  ssl(
    'ca',
    '-batch',
    '-config',
    'ca.cnf',
    '-cert',
    'ca.pem',
    '-keyfile',
    'ca.key',
    '-in',
    'server.csr',
    '-out',
    'expired.pem',
    '-startdate',
    '20200101000000Z',
    '-enddate',
    '20200102000000Z',
    '-notext',
  );
  const cert = await readFile(at('server.pem'), 'utf8');
  return {
    dir,
    caFile: at('ca.pem'),
    ca: await readFile(at('ca.pem'), 'utf8'),
    key: await readFile(at('server.key'), 'utf8'),
    cert,
    expiredCert: await readFile(at('expired.pem'), 'utf8'),
    fingerprint: new X509Certificate(cert).fingerprint256,
  };
}
