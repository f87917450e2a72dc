// The kubeconfig read as kubectl reads it (client-go tools/clientcmd loader.go at v0.34.10):
// a $KUBECONFIG list merged with the first file winning, missing files skipped, relative
// paths taken from each file's folder — and never a line of it quoted in an error.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { loadKubeconfig } from '../../src/cluster/kubeconfig.ts';
import { IgpuSplitError } from '../../src/core/errors.ts';

let dir: string;
const saved = process.env.KUBECONFIG;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'igpu-kubeconfig-'));
});
after(async () => {
  if (saved === undefined) delete process.env.KUBECONFIG;
  else process.env.KUBECONFIG = saved;
  await rm(dir, { recursive: true, force: true });
});

const config = (parts: {
  cluster?: string;
  server?: string;
  user?: string;
  token?: string;
  current?: string;
  ca?: string;
}) =>
  [
    'apiVersion: v1',
    'kind: Config',
    ...(parts.cluster
      ? [
          'clusters:',
          `- name: ${parts.cluster}`,
          '  cluster:',
          `    server: ${parts.server}`,
          ...(parts.ca ? [`    certificate-authority: ${parts.ca}`] : []),
        ]
      : []),
    ...(parts.user ? ['users:', `- name: ${parts.user}`, '  user:', `    token: ${parts.token}`] : []),
    ...(parts.cluster && parts.user
      ? [
          'contexts:',
          `- name: ${parts.cluster}`,
          '  context:',
          `    cluster: ${parts.cluster}`,
          `    user: ${parts.user}`,
        ]
      : []),
    ...(parts.current ? [`current-context: ${parts.current}`] : []),
    '',
  ].join('\n');

test('a KUBECONFIG list: empty and missing entries skipped, the first file wins every name and the current-context', async () => {
  const a = join(dir, 'a.conf');
  const b = join(dir, 'sub', 'b.conf');
  await writeFile(
    a,
    config({
      cluster: 'home',
      server: 'https://10.0.0.1:6443',
      user: 'me',
      token: 'first-token-aaaa',
      current: 'home',
      ca: 'ca.crt',
    }),
  );
  await import('node:fs/promises').then((fs) => fs.mkdir(join(dir, 'sub')));
  await writeFile(
    b,
    config({
      cluster: 'home',
      server: 'https://10.9.9.9:6443',
      user: 'me',
      token: 'second-token-bbbb',
      current: 'other',
    }),
  );
  process.env.KUBECONFIG = `${join(dir, 'missing.conf')}::${a}:${b}:${a}`;
  // The CA file is read in, relative to the file that named it (not the sub/ one's).
  await writeFile(join(dir, 'ca.crt'), 'the CA of a.conf\n');
  await writeFile(join(dir, 'sub', 'ca.crt'), 'the CA of b.conf\n');
  const { config: kube } = loadKubeconfig({});
  assert.equal(kube.getCurrentContext(), 'home');
  assert.equal(kube.getCurrentCluster()?.server, 'https://10.0.0.1:6443');
  assert.equal(kube.getCurrentUser()?.token, 'first-token-aaaa');
  assert.equal(
    Buffer.from(kube.getCurrentCluster()?.caData ?? '', 'base64').toString(),
    'the CA of a.conf\n',
    'relative to the file it came from',
  );
  assert.equal(kube.getCurrentCluster()?.caFile, undefined, 'client-node gets the content, not the path');
});

test('a name defined only in the second file is taken from it', async () => {
  const first = join(dir, 'only-current.conf');
  const second = join(dir, 'defines.conf');
  await writeFile(first, 'apiVersion: v1\nkind: Config\ncurrent-context: lab\n');
  await writeFile(
    second,
    config({
      cluster: 'lab',
      server: 'https://10.1.1.1:6443',
      user: 'admin',
      token: 't0k3n-lab-cccc',
      current: 'else',
    }),
  );
  process.env.KUBECONFIG = `${first}:${second}`;
  assert.equal(loadKubeconfig({}).config.getCurrentCluster()?.server, 'https://10.1.1.1:6443');
});

test('refusals name the file and never quote it', async () => {
  const fails = (pattern: RegExp, secret?: string) => (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError, String(error));
    assert.match(error.oneLine(), pattern);
    if (secret) assert.ok(!error.oneLine().includes(secret), 'the kubeconfig was quoted');
    return true;
  };
  process.env.KUBECONFIG = `${join(dir, 'x.conf')}:${join(dir, 'y.conf')}`;
  assert.throws(
    () => loadKubeconfig({}),
    fails(/none of the kubeconfig files in KUBECONFIG \(.*x\.conf:.*y\.conf\) exists/),
  );
  delete process.env.KUBECONFIG;
  const broken = join(dir, 'broken.conf');
  await writeFile(broken, `users:\n- name: me\n  user:\n    token: s3cr3t-token-dddd: [\n`);
  assert.throws(
    () => loadKubeconfig({ kubeconfig: broken }),
    fails(/broken\.conf:4:\d+: not valid YAML/, 's3cr3t-token-dddd'),
  );
  assert.throws(() => loadKubeconfig({ kubeconfig: dir }), fails(/kubeconfig .* is a directory/));
  const plain = join(dir, 'plain.conf');
  await writeFile(
    plain,
    config({
      cluster: 'c',
      server: 'http://10.0.0.1:8080',
      user: 'u',
      token: 'plain-token-eeee',
      current: 'c',
    }),
  );
  assert.throws(() => loadKubeconfig({ kubeconfig: plain }), fails(/reached over http, not https/));
  assert.throws(
    () => loadKubeconfig({ kubeconfig: plain, context: 'nope' }),
    fails(/has no context nope — set kubernetes\.context in the lab file to one of: c/),
  );
  const none = join(dir, 'none.conf');
  await writeFile(
    none,
    config({ cluster: 'c', server: 'https://10.0.0.1:6443', user: 'u', token: 'x-token-ffff' }),
  );
  assert.throws(
    () => loadKubeconfig({ kubeconfig: none, kubeconfigShown: 'k.conf' }),
    fails(/kubeconfig k\.conf \(.*none\.conf\) has no current-context/),
  );
});

test('with NODE_TLS_REJECT_UNAUTHORIZED=0 in the process, a server the kubeconfig does not trust is still refused', async () => {
  const { startKubeSimulator } = await import('../../src/sim/kube/server.ts');
  const { openKube } = await import('../../src/cluster/kube.ts');
  const sim = await startKubeSimulator({ nodes: [{ name: 'k3s-1' }] });
  const file = join(dir, 'no-ca.conf');
  await writeFile(file, sim.kubeconfig.replace(/ {4}certificate-authority-data: [^\n]+\n/, ''));
  const saved = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
  process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
  try {
    await assert.rejects(
      openKube({ kubeconfig: file, attempts: 1 }).list('v1', 'Node'),
      (error: unknown) =>
        error instanceof IgpuSplitError && /self.signed|unable to verify|certificate/i.test(error.oneLine()),
    );
    // The same server, trusted through its CA, answers: the refusal above is the certificate's.
    const trusted = join(dir, 'ca.conf');
    await writeFile(trusted, sim.kubeconfig);
    assert.equal((await openKube({ kubeconfig: trusted }).list('v1', 'Node')).length, 1);
  } finally {
    if (saved === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
    else process.env.NODE_TLS_REJECT_UNAUTHORIZED = saved;
    await sim.close();
  }
});

test('a user tokenFile is read as client-go reads it: relative to the kubeconfig, trimmed, winning over token; a bad one is named, not read whole', async () => {
  const { execFileSync } = await import('node:child_process');
  const { startKubeSimulator } = await import('../../src/sim/kube/server.ts');
  const { openKube } = await import('../../src/cluster/kube.ts');
  const sim = await startKubeSimulator({ nodes: [{ name: 'k3s-1' }], token: 'file-token-0123456789' });
  const sub = join(dir, 'tokens');
  await import('node:fs/promises').then((fs) => fs.mkdir(sub, { recursive: true }));
  const withFile = (file: string, key = 'tokenFile') =>
    sim.kubeconfig.replace(/^( {4})token: .*$/m, `$1token: stale-token-9999\n$1${key}: ${file}`);
  try {
    await writeFile(join(sub, 'tok'), '  file-token-0123456789\n\n');
    const good = join(sub, 'file.conf');
    await writeFile(good, withFile('tok'));
    assert.equal((await openKube({ kubeconfig: good, attempts: 1 }).list('v1', 'Node')).length, 1);
    const refused = (file: string, pattern: RegExp) => {
      assert.throws(
        () => loadKubeconfig({ kubeconfig: file }),
        (error: unknown) => error instanceof IgpuSplitError && pattern.test(error.oneLine()),
      );
    };
    await writeFile(join(sub, 'blank'), ' \n');
    await writeFile(join(sub, 'blank.conf'), withFile('blank'));
    refused(join(sub, 'blank.conf'), /the tokenFile of user igpu-sim is empty/);
    execFileSync('mkfifo', [join(sub, 'pipe')]);
    await writeFile(join(sub, 'pipe.conf'), withFile('pipe'));
    refused(join(sub, 'pipe.conf'), /cannot read the tokenFile of user igpu-sim, .*pipe: not a regular file/);
    // The same for the certificate files: client-node would read a pipe there and hang.
    await writeFile(
      join(sub, 'ca-pipe.conf'),
      sim.kubeconfig.replace(/certificate-authority-data: [^\n]+/, 'certificate-authority: pipe'),
    );
    refused(
      join(sub, 'ca-pipe.conf'),
      /cannot read the certificate-authority of cluster \S+, .*pipe: not a regular file/,
    );
    // client-node's own `token-file`, which kubectl does not know, is not read at all.
    await writeFile(join(sub, 'dashed.conf'), withFile('pipe', 'token-file'));
    assert.equal(
      loadKubeconfig({ kubeconfig: join(sub, 'dashed.conf') }).config.getCurrentUser()?.token,
      'stale-token-9999',
    );
  } finally {
    await sim.close();
  }
});
