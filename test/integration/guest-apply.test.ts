// The Ubuntu guest path against fake node VMs: a real sshd chrooted into a captured
// Ubuntu 24.04 cloud-image guest, whose apt-get stand-in "installs" linux-generic (the
// files the captured after-state has) and whose reboot boots into it. Plan → apply →
// verify, a failing apt, a guest that never comes back, and the CLI end to end.

import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { HostAccess } from '../../src/access/host.ts';
import { connectSsh } from '../../src/access/ssh.ts';
import { TargetError } from '../../src/core/errors.ts';
import { applyUbuntuPlan } from '../../src/guest/ubuntu/apply.ts';
import { gatherUbuntuFacts } from '../../src/guest/ubuntu/gather.ts';
import { planUbuntu, ubuntuChecks } from '../../src/guest/ubuntu/plan.ts';
import { K } from '../../src/sim/kube/controllers.ts';
import { startKubeSimulator } from '../../src/sim/kube/server.ts';
import { runCli } from '../support/cli.ts';
import { CALL_LOG, sshdAvailable, startSshd, TEST_TOOLS, type TestSshd } from '../support/sshd.ts';

const GUESTS = fileURLToPath(new URL('../fixtures/guests/', import.meta.url));
const STAGE = '/var/lib/igpu-split-test';

/** apt-get: records, fails on request, and "installs" linux-generic from the staged after-state. */
const APT_GET = `#!/bin/sh
echo "apt-get $*" >> ${CALL_LOG}
[ -e /etc/igpu-split-test-fail-apt-get ] && { echo "E: Unable to locate package linux-generic" >&2; exit 100; }
case "$*" in *install*linux-generic*) ${TEST_TOOLS}/cp -a ${STAGE}/install/. / && : > ${STAGE}/installed ;; esac
exit 0
`;

/** systemctl reboot: a new boot id, booting the installed kernel when there is one. */
const SYSTEMCTL = `#!/bin/sh
echo "systemctl $*" >> ${CALL_LOG}
[ "$1" = reboot ] || exit 0
[ -e /etc/igpu-split-test-no-reboot ] && exit 0
[ -e ${STAGE}/installed ] && ${TEST_TOOLS}/cp -a ${STAGE}/boot/. /
echo "booted-$$" > /proc/sys/kernel/random/boot_id
exit 0
`;

async function withGuest(
  body: (sshd: TestSshd, guest: HostAccess, connect: () => Promise<HostAccess>) => Promise<void>,
) {
  const sshd = await startSshd(join(GUESTS, 'ubuntu-2404-cloud-before'), {
    shell: true,
    tools: true,
    standIns: { 'apt-get': APT_GET, systemctl: SYSTEMCTL },
  });
  try {
    // What installing linux-generic adds, and what the next boot shows: the after-state.
    const after = join(GUESTS, 'ubuntu-2404-cloud-after');
    for (const [part, dirs] of [
      ['install', ['lib', 'var']],
      ['boot', ['proc', 'sys', 'dev']],
    ] as const) {
      for (const dir of dirs) {
        await mkdir(join(sshd.root, STAGE, part), { recursive: true });
        await cp(join(after, dir), join(sshd.root, STAGE, part, dir), {
          recursive: true,
          verbatimSymlinks: true,
        });
      }
    }
    const connect = () =>
      connectSsh({
        url: `ssh://root@${sshd.host}:${sshd.treePort}`,
        identityFile: sshd.identityFile,
        knownHostsFile: sshd.knownHostsFile,
      });
    const guest = await connect();
    try {
      await body(sshd, guest, connect);
    } finally {
      await guest.close().catch(() => undefined);
    }
  } finally {
    await sshd.stop();
  }
}

const calls = (root: string) => readFile(join(root, CALL_LOG), 'utf8').catch(() => '');

test('plan → apply → verify: linux-generic installed, one reboot, i915 bound, renderD128; then nothing to do', async (t) => {
  if (!sshdAvailable(t)) return;
  await withGuest(async (sshd, guest, connect) => {
    const plan = planUbuntu(await gatherUbuntuFacts(guest));
    assert.equal(plan.steps.length, 2);
    const hooks: string[] = [];
    const result = await applyUbuntuPlan(guest, plan, {
      reconnect: connect,
      pollMs: 50,
      rebootTimeoutMs: 10_000,
      beforeReboot: async () => void hooks.push('drain'),
    });
    assert.deepEqual(hooks, ['drain']);
    assert.equal(
      await calls(sshd.root),
      'apt-get update\napt-get install -y linux-generic\nsystemctl reboot\n',
    );
    assert.equal(result.facts.kernel.release, '6.8.0-88-generic');
    assert.ok(
      ubuntuChecks(result.facts).every((c) => c.status === 'pass'),
      JSON.stringify(ubuntuChecks(result.facts)),
    );
    assert.deepEqual(planUbuntu(result.facts).steps, []);
    await result.guest.close();
  });
});

test('apt failing: one line with what apt said, and no reboot', async (t) => {
  if (!sshdAvailable(t)) return;
  await withGuest(async (sshd, guest, connect) => {
    await writeFile(join(sshd.root, 'etc/igpu-split-test-fail-apt-get'), '');
    const plan = planUbuntu(await gatherUbuntuFacts(guest));
    await assert.rejects(applyUbuntuPlan(guest, plan, { reconnect: connect }), (error: unknown) => {
      assert.ok(error instanceof TargetError);
      assert.match(
        error.oneLine(),
        /installing linux-generic failed \(exit 100\): E: Unable to locate package linux-generic; the guest was not rebooted — fix apt/,
      );
      return true;
    });
    assert.doesNotMatch(await calls(sshd.root), /systemctl/);
  });
});

test('a guest that never comes back: bounded wait, then the fix', async (t) => {
  if (!sshdAvailable(t)) return;
  await withGuest(async (sshd, guest, connect) => {
    await writeFile(join(sshd.root, 'etc/igpu-split-test-no-reboot'), '');
    const plan = planUbuntu(await gatherUbuntuFacts(guest));
    await assert.rejects(
      applyUbuntuPlan(guest, plan, { reconnect: connect, pollMs: 50, rebootTimeoutMs: 1_000 }),
      (error: unknown) => {
        assert.ok(error instanceof TargetError);
        assert.match(
          error.oneLine(),
          /did not come back from its reboot within 1 s — check the VM console in Proxmox.*guest verify/,
        );
        return true;
      },
    );
  });
});

test('the CLI: guest plan, guest apply --yes, guest verify from a lab file', async (t) => {
  if (!sshdAvailable(t)) return;
  await withGuest(async (sshd) => {
    const lab = join(sshd.scratch, 'igpu-split.yaml');
    await writeFile(
      lab,
      `proxmox: { url: https://127.0.0.1:8006, token: a@pve!b, tokenSecretEnv: NOPE }
hosts: [{ node: pve1 }]
vms:
  - { vmid: 101, host: pve1, os: ubuntu, guest: "ssh://root@${sshd.host}:${sshd.treePort}" }
`,
    );
    const ssh = ['--lab', lab, '--identity', sshd.identityFile, '--known-hosts', sshd.knownHostsFile];
    const plan = await runCli(['guest', 'plan', ...ssh]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /FAIL\s+guest\.kernel\s+6\.8\.0-85-generic has no i915 module/);
    assert.match(plan.stdout, /install linux-generic/);
    const apply = await runCli(['guest', 'apply', '--yes', '--reboot-timeout', '20', ...ssh]);
    assert.equal(apply.code, 0, apply.stdout + apply.stderr);
    assert.match(apply.stdout, /0 failed, 0 warnings, 7 passed/);
    const verify = await runCli(['guest', 'verify', ...ssh]);
    assert.equal(verify.code, 0, verify.stdout);
    assert.match(verify.stdout, /vm\.101\.guest\.render\s+Intel render node \/dev\/dri\/renderD128/);
  });
});

test('the CLI: guest apply drains the guest’s Kubernetes node before the reboot and uncordons it after', async (t) => {
  if (!sshdAvailable(t)) return;
  const kube = await startKubeSimulator({ nodes: [{ name: 'k3s-1', gpus: 1 }] });
  try {
    // A pod a ReplicaSet owns, on k3s-1: the drain evicts it.
    kube.store.update(K.Pod, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'web-1',
        namespace: 'default',
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web', uid: 'u-1' }],
      },
      spec: { nodeName: 'k3s-1', containers: [{ name: 'web', image: 'nginx' }] },
      status: { phase: 'Running' },
    });
    await withGuest(async (sshd) => {
      const kubeconfig = join(sshd.scratch, 'kubeconfig');
      await writeFile(kubeconfig, kube.kubeconfig, { mode: 0o600 });
      const lab = join(sshd.scratch, 'igpu-split.yaml');
      await writeFile(
        lab,
        `proxmox: { url: https://127.0.0.1:8006, token: a@pve!b, tokenSecretEnv: NOPE }
hosts: [{ node: pve1 }]
vms:
  - { vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1, guest: "ssh://root@${sshd.host}:${sshd.treePort}" }
kubernetes: { kubeconfig: ${kubeconfig} }
`,
      );
      const ssh = ['--lab', lab, '--identity', sshd.identityFile, '--known-hosts', sshd.knownHostsFile];
      const apply = await runCli(['guest', 'apply', '--yes', '--reboot-timeout', '20', ...ssh]);
      assert.equal(apply.code, 0, apply.stdout + apply.stderr);
      assert.match(apply.stdout, /drained k3s-1\n[\s\S]*reboot[\s\S]*\n {2}uncordoned k3s-1\n/);
      assert.equal(kube.store.get(K.Pod, 'default', 'web-1'), undefined, 'the pod was evicted');
      const node = kube.store.get(K.Node, undefined, 'k3s-1')?.spec as { unschedulable?: boolean };
      assert.notEqual(node?.unschedulable, true, 'uncordoned after');
    });
  } finally {
    await kube.close();
  }
});
