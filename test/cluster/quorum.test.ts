// The quorum wait between waves: member nodes Ready, the API server's etcd check
// (/readyz?verbose from the project's API server, in kube-apiserver's words), and Talos
// members' rows of `talosctl etcd status`; a quorum that stays broken is one line naming who.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { openKube } from '../../src/cluster/kube.ts';
import { etcdCheck, readQuorum, unhealthyEtcd, waitQuorum } from '../../src/cluster/quorum.ts';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { type RunningKubeSimulator, startKubeSimulator } from '../../src/sim/kube/server.ts';

let dir: string;
let sim: RunningKubeSimulator;
let kube: ReturnType<typeof openKube>;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'igpu-quorum-'));
  sim = await startKubeSimulator({
    nodes: [
      { name: 'cp-1', labels: { 'node-role.kubernetes.io/control-plane': '' } },
      { name: 'cp-2', labels: { 'node-role.kubernetes.io/control-plane': '' } },
    ],
  });
  await writeFile(join(dir, 'kubeconfig'), sim.kubeconfig);
  kube = openKube({ kubeconfig: join(dir, 'kubeconfig') });
});
after(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

// The layout of siderolabs/talos cmd/talosctl/cmd/talos/etcd.go @v1.13.9, a tabwriter with 3 spaces of padding.
const STATUS = [
  'NODE         MEMBER             DB SIZE   IN USE            LEADER             RAFT INDEX   RAFT TERM   RAFT APPLIED INDEX   LEARNER   PROTOCOL   STORAGE   ERRORS',
  '10.0.1.11    1b2c3d4e5f607182   21 MB     10 MB (47.62%)    1b2c3d4e5f607182   41201        3           41201                false     3.5        3.6.0     ',
  '10.0.1.12    2c3d4e5f60718293   21 MB     10 MB (47.62%)    1b2c3d4e5f607182   41201        3           41201                true      3.5        3.6.0     ',
  '10.0.1.13    3d4e5f6071829304   21 MB     10 MB (47.62%)    1b2c3d4e5f607182   41188        3           41188                false     3.5        3.6.0     etcdserver: request timed out',
].join('\n');

test('talosctl etcd status: a learner or an ERRORS cell marks the member', () => {
  assert.deepEqual(unhealthyEtcd(STATUS), ['10.0.1.12', '10.0.1.13']);
  assert.deepEqual(unhealthyEtcd(STATUS.split('\n').slice(0, 2).join('\n')), []);
  assert.deepEqual(unhealthyEtcd('not a table'), []);
});

test('the API server’s etcd check, as /readyz?verbose words it', async () => {
  assert.equal(etcdCheck('[+]ping ok\n[+]etcd ok\nreadyz check passed'), 'ok');
  assert.equal(etcdCheck('[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed'), 'failed');
  assert.equal(etcdCheck('ok'), 'unknown');
  assert.equal((await readQuorum(kube, ['cp-1', 'cp-2'])).etcd, 'ok');
  sim.etcd.healthy = false;
  try {
    const read = await readQuorum(kube, ['cp-1', 'cp-2', 'cp-3']);
    assert.equal(read.etcd, 'failed');
    assert.deepEqual(read.unready, ['cp-3'], 'a member the cluster does not have is not Ready');
  } finally {
    sim.etcd.healthy = true;
  }
});

test('a Talos member still a learner stops the wait in one line naming it; healthy, the wait passes', async () => {
  let stdout = STATUS;
  const talos = {
    nodes: { 'cp-1': '10.0.1.11', 'cp-2': '10.0.1.12' },
    talosctl: async (args: string[]) => {
      assert.deepEqual(args, ['etcd', 'status', '--nodes', '10.0.1.11,10.0.1.12']);
      return { code: 0, stdout, stderr: '' };
    },
  };
  await assert.rejects(
    waitQuorum(kube, ['cp-1', 'cp-2'], { timeoutMs: 50, pollMs: 10, before: 'the turn of pve2', talos }),
    (error: unknown) => {
      assert.ok(error instanceof IgpuSplitError);
      assert.match(
        error.oneLine(),
        /talosctl etcd status shows cp-2 with errors or still a learner after 0 s; the turn of pve2 not started/,
      );
      return true;
    },
  );
  stdout = STATUS.split('\n').slice(0, 2).join('\n');
  await waitQuorum(kube, ['cp-1', 'cp-2'], { timeoutMs: 50, pollMs: 10, talos });
});
