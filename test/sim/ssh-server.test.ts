// The playground's SSH server (src/sim/ssh-server.ts) checked with clients nobody here
// wrote: OpenSSH's ssh and sftp (Debian's openssh-client) — the exec channel with stdin and
// exit codes, SFTP reads, listings, links, and writes that end in posix-rename@openssh.com
// (sftp's `rename` uses it only when the server announces it) — and with igpu-split's own
// client, which must work against it unchanged.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import ssh2 from 'ssh2';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import { connectSsh } from '../../src/access/ssh.ts';
import { newKeyPair, type RunningSshServer, serveOverSsh } from '../../src/sim/ssh-server.ts';
import { collect } from '../support/collect.ts';

const work = mkdtempSync(join(tmpdir(), 'igpu-split-ssh-sim-'));
const root = join(work, 'machine');
const identity = join(work, 'id');
const knownHosts = join(work, 'known_hosts');
let server: RunningSshServer;

before(async () => {
  mkdirSync(join(root, 'etc/modules-load.d'), { recursive: true });
  mkdirSync(join(root, 'sys/devices/pci0000:00/0000:00:02.0'), { recursive: true });
  mkdirSync(join(root, 'sys/bus/pci/devices'), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'pve1\n');
  writeFileSync(join(root, 'sys/devices/pci0000:00/0000:00:02.0/vendor'), '0x8086\n');
  // An absolute link, as sysfs has: it must resolve inside the machine, never on this one.
  symlinkSync('/sys/devices/pci0000:00/0000:00:02.0', join(root, 'sys/bus/pci/devices/0000:00:02.0'));
  const client = newKeyPair('test');
  writeFileSync(identity, client.private, { mode: 0o600 });
  const machine = await new DirectoryHost(root, async (command, _host, stdin) => {
    if (command === 'cat') return { code: 0, stdout: stdin ?? '', stderr: '' };
    if (command === 'fail') return { code: 7, stdout: '', stderr: 'failed on purpose\n' };
    return { code: 127, stdout: '', stderr: `${command}: not emulated\n` };
  }).open();
  server = await serveOverSsh(machine, newKeyPair('pve1'), client);
  writeFileSync(knownHosts, `${server.knownHostsLine}\n`);
});

after(async () => {
  await server.close();
  rmSync(work, { recursive: true, force: true });
});

const OPENSSH = [
  '-o',
  'BatchMode=yes',
  '-o',
  `UserKnownHostsFile=${knownHosts}`,
  '-o',
  'StrictHostKeyChecking=yes',
  '-o',
  'IdentitiesOnly=yes',
  '-i',
  identity,
];

// Not spawnSync: the server answers from this same process.
const ssh = (command: string, input = '') =>
  collect('ssh', [...OPENSSH, '-p', String(server.port), 'root@127.0.0.1', command], {
    input,
    timeoutMs: 20_000,
  });

const sftp = (batch: string) =>
  collect('sftp', [...OPENSSH, '-P', String(server.port), '-b', '-', 'root@127.0.0.1'], {
    input: batch,
    timeoutMs: 20_000,
  });

test('OpenSSH ssh: the host key is the known one, stdin reaches the command, exit codes and stderr come back', async () => {
  const echoed = await ssh('cat', 'hello\n');
  assert.equal(echoed.code, 0, echoed.stderr);
  assert.equal(echoed.stdout, 'hello\n');
  const failed = await ssh('fail');
  assert.equal(failed.code, 7);
  assert.match(failed.stderr, /failed on purpose/);
});

test('OpenSSH ssh: a key that is not the playground’s is refused', async () => {
  const stranger = join(work, 'stranger');
  writeFileSync(stranger, newKeyPair('stranger').private, { mode: 0o600 });
  const refused = await collect('ssh', [
    ...OPENSSH.slice(0, -1),
    stranger,
    '-p',
    String(server.port),
    'root@127.0.0.1',
    'cat',
  ]);
  assert.equal(refused.code, 255);
  assert.match(refused.stderr, /Permission denied/);
});

test('OpenSSH sftp: get, ls, links inside the machine, put and rename (posix-rename@openssh.com)', async () => {
  const got = join(work, 'hostname');
  const result = await sftp(
    [
      `get /etc/hostname ${got}`,
      'ls /etc',
      'ls -l /sys/bus/pci/devices/0000:00:02.0/vendor',
      `put ${got} /etc/modules-load.d/new.conf`,
      'rename /etc/modules-load.d/new.conf /etc/modules-load.d/igpu-split.conf',
      'mkdir /etc/made',
      'rm /etc/hostname',
    ].join('\n'),
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(readFileSync(got, 'utf8'), 'pve1\n');
  assert.match(result.stdout, /modules-load\.d/);
  assert.equal(readFileSync(join(root, 'etc/modules-load.d/igpu-split.conf'), 'utf8'), 'pve1\n');
  assert.throws(() => readFileSync(join(root, 'etc/hostname')), /ENOENT/);
  assert.throws(() => readFileSync(join(root, 'etc/modules-load.d/new.conf')), /ENOENT/);
});

test('igpu-split’s own client: reads through links, atomic writes, commands', async () => {
  const host = await connectSsh({
    url: `ssh://root@127.0.0.1:${server.port}`,
    identityFile: identity,
    knownHostsFile: knownHosts,
  });
  try {
    assert.equal((await host.readFile('/sys/bus/pci/devices/0000:00:02.0/vendor')).toString(), '0x8086\n');
    assert.equal(await host.entryType('/sys/bus/pci/devices/0000:00:02.0'), 'link');
    assert.equal(await host.entryType('/etc/none'), undefined);
    await host.writeFileAtomic('/etc/modules-load.d/kvmgt.conf', 'kvmgt\n', { mode: 0o644 });
    assert.equal(readFileSync(join(root, 'etc/modules-load.d/kvmgt.conf'), 'utf8'), 'kvmgt\n');
    await host.createExclusive('/etc/lock', 'pid 1\n', 0o600);
    await assert.rejects(host.createExclusive('/etc/lock', 'pid 2\n', 0o600), { code: 'EEXIST' });
    assert.deepEqual(await host.run('cat', { stdin: 'x' }), { code: 0, stdout: 'x', stderr: '' });
    await assert.rejects(host.readFile('/etc/absent'), { code: 'ENOENT' });
  } finally {
    await host.close();
  }
});

test('every key pair the playground makes is one ssh2 itself can read (its generator alone fails about 1 in 200)', () => {
  for (let i = 0; i < 1000; i++) {
    const pair = newKeyPair('check');
    assert.ok(!(ssh2.utils.parseKey(pair.private) instanceof Error), `private key ${i}`);
    assert.ok(!(ssh2.utils.parseKey(pair.public) instanceof Error), `public key ${i}`);
  }
});
