// doctor --host (a real sshd serving a captured tree) and doctor --root on the same
// tree must give the same JSON and exit code, for every fixture.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { extract } from 'tar';
import { runCli } from '../support/cli.ts';
import { fixtureNames, fixturePath } from '../support/fixtures.ts';
import { sshdAvailable, startSshd } from '../support/sshd.ts';

for (const name of fixtureNames()) {
  test(`doctor --host equals doctor --root: ${name}`, async (t) => {
    if (!sshdAvailable(t)) return;
    const sshd = await startSshd(fixturePath(name));
    try {
      const url = `ssh://root@${sshd.host}:${sshd.treePort}`;
      const [remote, local] = await Promise.all([
        runCli([
          'doctor',
          '--host',
          url,
          '--identity',
          sshd.identityFile,
          '--known-hosts',
          sshd.knownHostsFile,
          '--json',
        ]),
        runCli(['doctor', '--root', fixturePath(name), '--json']),
      ]);
      assert.equal(remote.stderr, '');
      assert.equal(remote.code, local.code);
      const remoteReport = JSON.parse(remote.stdout).result;
      assert.equal(remoteReport.target, url);
      assert.deepEqual({ ...remoteReport, target: '' }, { ...JSON.parse(local.stdout).result, target: '' });
    } finally {
      await sshd.stop();
    }
  });
}

test('capture --host packs what doctor --host reads', async (t) => {
  if (!sshdAvailable(t)) return;
  const sshd = await startSshd(fixturePath('i5-8500t-gvt'));
  const work = await mkdtemp(join(tmpdir(), 'igpu-capture-ssh-'));
  try {
    const ssh = ['--host', `ssh://root@${sshd.host}:${sshd.treePort}`, '--identity', sshd.identityFile];
    const knownHosts = ['--known-hosts', sshd.knownHostsFile];
    const archive = join(work, 'pve.tar.gz');
    const captured = await runCli(['capture', ...ssh, ...knownHosts, '--out', archive]);
    assert.equal(captured.code, 0, captured.stderr);
    await extract({ file: archive, cwd: work });
    const folder = /--root (igpu-split-capture-\S+)\n$/.exec(captured.stdout)?.[1];
    assert.ok(folder, captured.stdout);
    const [remote, unpacked] = await Promise.all([
      runCli(['doctor', ...ssh, ...knownHosts, '--json']),
      runCli(['doctor', '--root', join(work, folder), '--json']),
    ]);
    assert.deepEqual(
      { ...JSON.parse(unpacked.stdout).result, target: '' },
      { ...JSON.parse(remote.stdout).result, target: '' },
    );
  } finally {
    await sshd.stop();
    await rm(work, { recursive: true, force: true });
  }
});
