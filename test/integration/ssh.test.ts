// SSH host access against real sshd processes on loopback.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chown, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, type TestContext, test } from 'node:test';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { isMissing } from '../../src/access/host.ts';
import { connectSsh } from '../../src/access/ssh.ts';
import { TargetError } from '../../src/core/errors.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { fixturePath } from '../support/fixtures.ts';
import { keygen, sshdAvailable, startSshd, type TestSshd } from '../support/sshd.ts';

const rejectsWith = (pattern: RegExp) => (error: unknown) => {
  assert.ok(error instanceof TargetError, `expected TargetError, got ${String(error)}`);
  assert.match(error.oneLine(), pattern);
  return true;
};

describe('SSH host access', () => {
  let sshd: TestSshd | undefined;
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'igpu-ssh-'));
  });
  after(async () => {
    await sshd?.stop();
    await rm(work, { recursive: true, force: true });
  });
  const open = (s: TestSshd, port: number) =>
    connectSsh({
      url: `ssh://root@${s.host}:${port}`,
      identityFile: s.identityFile,
      knownHostsFile: s.knownHostsFile,
    });
  // One sshd for the whole suite, started by the first test that needs it.
  async function server(t: TestContext): Promise<TestSshd | undefined> {
    if (!sshdAvailable(t)) return undefined;
    sshd ??= await startSshd(fixturePath('i5-8500t-gvt'));
    return sshd;
  }

  test('reads a captured tree through the chroot the same as locally', async (t) => {
    const s = await server(t);
    if (!s) return;
    const host = await open(s, s.treePort);
    try {
      const remote = await gatherHostFacts(host);
      const local = await gatherHostFacts(new CapturedRoot(fixturePath('i5-8500t-gvt')));
      assert.deepEqual({ ...remote, target: '' }, { ...local, target: '' });
      assert.equal(remote.target, `ssh://root@${s.host}:${s.treePort}`);
    } finally {
      await host.close();
    }
  });

  test('reads real procfs and sysfs files (sizes 0 and 4096) whole over SFTP', async (t) => {
    const s = await server(t);
    if (!s) return;
    const host = await open(s, s.shellPort);
    try {
      const [remote, local] = await Promise.all([
        gatherHostFacts(host),
        gatherHostFacts(new CapturedRoot('/')),
      ]);
      assert.ok(remote.cmdline && remote.cmdline.length > 0);
      // The kernel log (read for an SR-IOV-capable iGPU only) is a command's output, which only
      // the SSH side can run: the files are compared.
      const files = (facts: typeof remote) => ({
        ...facts,
        target: '',
        sriovDriver: { ...facts.sriovDriver, kernelLog: undefined },
      });
      assert.deepEqual(files(remote), files(local));
    } finally {
      await host.close();
    }
  });

  test('runs commands and reports their exit code and output', async (t) => {
    const s = await server(t);
    if (!s) return;
    const host = await open(s, s.shellPort);
    try {
      const result = await host.run('echo out; echo err >&2; exit 3');
      assert.deepEqual(result, { code: 3, stdout: 'out\n', stderr: 'err\n' });
      assert.equal((await host.run('cat', { stdin: 'piped' })).stdout, 'piped');
    } finally {
      await host.close();
    }
  });

  test('files larger than one SFTP read, directories and links come back whole', async (t) => {
    const s = await server(t);
    if (!s) return;
    const big = Buffer.alloc(100_000 + 17, 'x');
    await writeFile(join(s.scratch, 'big'), big);
    const host = await open(s, s.shellPort);
    try {
      assert.ok((await host.readFile(join(s.scratch, 'big'))).equals(big));
      await assert.rejects(host.readFile(join(s.scratch, 'missing')), (error: unknown) => isMissing(error));
      assert.equal(await host.entryType(join(s.scratch, 'missing')), undefined);
      assert.equal(await host.entryType(s.scratch), 'dir');
    } finally {
      await host.close();
    }
  });

  test('atomic writes keep an existing file’s mode and owner and leave no temp file', async (t) => {
    const s = await server(t);
    if (!s) return;
    const dir = join(s.scratch, 'atomic');
    await mkdir(dir);
    const file = join(dir, 'grub');
    await writeFile(file, 'old\n', { mode: 0o640 });
    await chown(file, 1234, 2345);
    const host = await open(s, s.shellPort);
    try {
      await host.writeFileAtomic(file, 'new\n');
      await host.writeFileAtomic(join(dir, 'fresh'), 'x', { mode: 0o600 });
    } finally {
      await host.close();
    }
    const info = await stat(file);
    assert.equal(await readFile(file, 'utf8'), 'new\n');
    assert.equal(info.mode & 0o7777, 0o640);
    assert.deepEqual([info.uid, info.gid], [1234, 2345]);
    assert.equal((await stat(join(dir, 'fresh'))).mode & 0o7777, 0o600);
    assert.deepEqual((await readdir(dir)).sort(), ['fresh', 'grub']);
  });

  test('an unknown host key is refused with the offered fingerprint, then accepted on request', async (t) => {
    const s = await server(t);
    if (!s) return;
    const knownHosts = join(work, 'known_hosts_new');
    const offered = execFileSync('ssh-keygen', ['-lf', '-'], { input: s.hostKeyPub })
      .toString()
      .split(' ')[1] as string;
    const url = `ssh://root@${s.host}:${s.treePort}`;
    await assert.rejects(
      connectSsh({ url, identityFile: s.identityFile, knownHostsFile: knownHosts }),
      rejectsWith(
        new RegExp(
          `host key not known \\(offered ssh-ed25519 ${offered.replace(/[+/]/g, '\\$&')}\\).*--accept-new-host-key`,
        ),
      ),
    );
    const host = await connectSsh({
      url,
      identityFile: s.identityFile,
      knownHostsFile: knownHosts,
      acceptNewHostKey: true,
    });
    await host.close();
    assert.match(
      await readFile(knownHosts, 'utf8'),
      new RegExp(`^\\[${s.host.replaceAll('.', '\\.')}\\]:${s.treePort} ssh-ed25519 `),
    );
    const again = await connectSsh({ url, identityFile: s.identityFile, knownHostsFile: knownHosts });
    await again.close();
  });

  test('a changed host key is refused even with --accept-new-host-key, naming both fingerprints', async (t) => {
    const s = await server(t);
    if (!s) return;
    await keygen(join(work, 'other_host'));
    const [type, data] = (await readFile(join(work, 'other_host.pub'), 'utf8')).split(' ');
    const knownHosts = join(work, 'known_hosts_changed');
    await writeFile(knownHosts, `[${s.host}]:${s.treePort} ${type} ${data}\n`);
    await assert.rejects(
      connectSsh({
        url: `ssh://root@${s.host}:${s.treePort}`,
        identityFile: s.identityFile,
        knownHostsFile: knownHosts,
        acceptNewHostKey: true,
      }),
      rejectsWith(
        /host key changed: offered ssh-ed25519 SHA256:\S+, .*known_hosts_changed:1 has SHA256:\S+ — .*ssh-keygen -R/,
      ),
    );
  });

  test('keys can come from ssh-agent; a passphrase-protected --identity is one clear line', async (t) => {
    const s = await server(t);
    if (!s) return;
    const socket = join(work, 'agent.sock');
    const agent = execFileSync('ssh-agent', ['-a', socket, '-s']).toString();
    const pid = /SSH_AGENT_PID=(\d+)/.exec(agent)?.[1];
    try {
      execFileSync('ssh-add', ['-q', s.identityFile], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
      const host = await connectSsh({
        url: `ssh://root@${s.host}:${s.treePort}`,
        agentSocket: socket,
        knownHostsFile: s.knownHostsFile,
      });
      await host.close();
    } finally {
      if (pid) process.kill(Number(pid));
    }
    const locked = join(work, 'locked');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', 'a passphrase', '-f', locked]);
    await assert.rejects(
      connectSsh({
        url: `ssh://root@${s.host}:${s.treePort}`,
        identityFile: locked,
        knownHostsFile: s.knownHostsFile,
      }),
      rejectsWith(
        /cannot use identity file .*locked: it is protected by a passphrase — load it into ssh-agent/,
      ),
    );
  });

  test('a key the host does not accept fails authentication with a fix', async (t) => {
    const s = await server(t);
    if (!s) return;
    await keygen(join(work, 'stranger'));
    await assert.rejects(
      connectSsh({
        url: `ssh://root@${s.host}:${s.treePort}`,
        identityFile: join(work, 'stranger'),
        knownHostsFile: s.knownHostsFile,
      }),
      rejectsWith(/authentication failed for user root — .*authorized_keys/),
    );
  });

  test('refused and silent ports give one clear line each', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const key = join(work, 'any_key');
    await keygen(key);
    await assert.rejects(
      connectSsh({
        url: `ssh://root@127.0.0.1:${closedPort}`,
        identityFile: key,
        knownHostsFile: join(work, 'none'),
      }),
      rejectsWith(/connection refused by 127\.0\.0\.1:\d+ — check that sshd runs/),
    );
    // A server that accepts TCP but never speaks SSH.
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      await assert.rejects(
        connectSsh({
          url: `ssh://root@127.0.0.1:${(silent.address() as { port: number }).port}`,
          identityFile: key,
          knownHostsFile: join(work, 'none'),
          connectTimeoutMs: 500,
        }),
        rejectsWith(/no SSH answer from 127\.0\.0\.1:\d+ within 1 s/),
      );
    } finally {
      silent.close();
    }
  });
});
