// doctor --host (a real sshd serving a captured tree) and doctor --root on the same
// tree must give the same JSON and exit code, for every fixture.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';
import { fixtureNames, fixturePath } from '../support/fixtures.ts';
import { sshdAvailable, startSshd } from '../support/sshd.ts';

for (const name of fixtureNames()) {
  test(`doctor --host equals doctor --root: ${name}`, async (t) => {
    if (!sshdAvailable(t)) return;
    const sshd = await startSshd(fixturePath(name));
    try {
      const url = `ssh://root@127.0.0.1:${sshd.treePort}`;
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
      const remoteReport = JSON.parse(remote.stdout);
      assert.equal(remoteReport.target, url);
      assert.deepEqual({ ...remoteReport, target: '' }, { ...JSON.parse(local.stdout), target: '' });
    } finally {
      await sshd.stop();
    }
  });
}
