// host apply against fake Proxmox hosts: a real sshd whose sessions are chrooted into a
// copy of a captured host, with a shell and recording stand-ins for update-grub and
// proxmox-boot-tool.

import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { HostAccess } from '../../src/access/host.ts';
import { connectSsh } from '../../src/access/ssh.ts';
import { type IgpuSplitError, RefusedError, TargetError } from '../../src/core/errors.ts';
import { applyHostPlan, LOCK_FILE, STATE_FILE } from '../../src/host/apply.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { GRUB_DROPIN, MODULES_CONF, planHost } from '../../src/host/plan.ts';
import { rollbackHost } from '../../src/host/rollback.ts';
import {
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
} from '../../src/linux/kernel-guard/script.ts';
import { BOOT_ID } from '../../src/linux/reboot.ts';
import { K } from '../../src/sim/kube/controllers.ts';
import { startKubeSimulator } from '../../src/sim/kube/server.ts';
import { runCli, spawnCli } from '../support/cli.ts';
import { fixturePath } from '../support/fixtures.ts';
import { CALL_LOG, sshdAvailable, startSshd, type TestSshd } from '../support/sshd.ts';

async function withHost(
  fixture: string,
  prepare: (root: string) => Promise<void>,
  body: (sshd: TestSshd, host: HostAccess) => Promise<void>,
) {
  const sshd = await startSshd(fixturePath(fixture), { shell: true });
  try {
    await prepare(sshd.root);
    const host = await connectSsh({
      url: `ssh://root@${sshd.host}:${sshd.treePort}`,
      identityFile: sshd.identityFile,
      knownHostsFile: sshd.knownHostsFile,
    });
    try {
      await body(sshd, host);
    } finally {
      await host.close();
    }
  } finally {
    await sshd.stop();
  }
}

const calls = (root: string) => readFile(join(root, CALL_LOG), 'utf8').catch(() => '');
/** A failure of the given kind (a refusal is exit 1, the rest exit 2) whose line matches. */
const rejectsWith =
  (pattern: RegExp, kind: typeof IgpuSplitError = TargetError) =>
  (error: unknown) => {
    assert.ok(error instanceof kind, `${kind.name} expected: ${String(error)}`);
    assert.match(error.oneLine(), pattern);
    return true;
  };

test('plan → apply → plan: files written, update-grub once, state recorded, nothing left but the reboot', async (t) => {
  if (!sshdAvailable(t)) return;
  await withHost(
    'i5-8500t-before',
    async () => {},
    async (sshd, host) => {
      const grubBefore = await readFile(join(sshd.root, 'etc/default/grub'));
      const plan = planHost(await gatherHostFacts(host));
      const result = await applyHostPlan(host, plan, { runId: 'run1' });
      assert.equal(result.rebootNeeded, true);
      assert.deepEqual(
        result.done.map((id) => id.split('/').at(-1)),
        [
          'modules-load',
          'grub-dropin',
          'kernel-guard-settings',
          'kernel-guard',
          'kernel-guard-ahead',
          'update-grub',
        ],
      );
      assert.match(
        await readFile(join(sshd.root, GRUB_DROPIN), 'utf8'),
        /intel_iommu=on iommu=pt i915\.enable_gvt=1"/,
      );
      assert.match(await readFile(join(sshd.root, MODULES_CONF), 'utf8'), /^kvmgt$/m);
      assert.ok(
        (await readFile(join(sshd.root, 'etc/default/grub'))).equals(grubBefore),
        'the user’s file is untouched',
      );
      assert.equal(await calls(sshd.root), 'update-grub \n');
      const state = JSON.parse(await readFile(join(sshd.root, STATE_FILE), 'utf8'));
      assert.deepEqual(state.files, {
        [GRUB_DROPIN]: { created: true },
        [KERNEL_GUARD_CONF]: { created: true },
        [KERNEL_GUARD_AHEAD]: { created: true },
        [KERNEL_GUARD_HOOK]: { created: true },
        [MODULES_CONF]: { created: true },
      });
      // The hooks are executable: run-parts runs nothing else.
      for (const hook of [KERNEL_GUARD_HOOK, KERNEL_GUARD_AHEAD])
        assert.equal((await stat(join(sshd.root, hook))).mode & 0o777, 0o755);
      assert.deepEqual(state.params, ['intel_iommu=on', 'iommu=pt', 'i915.enable_gvt=1']);
      assert.deepEqual(state.modules, ['kvmgt']);
      assert.equal((await stat(join(sshd.root, STATE_FILE))).mode & 0o777, 0o600);
      assert.equal((await stat(join(sshd.root, '/var/lib/igpu-split'))).mode & 0o777, 0o700);
      await assert.rejects(stat(join(sshd.root, LOCK_FILE)), 'the lock is released');

      const again = planHost(await gatherHostFacts(host));
      assert.deepEqual(
        again.steps.map((s) => s.id.split('/').at(-1)),
        ['reboot'],
      );
      const second = await applyHostPlan(host, again);
      assert.deepEqual(second.done, []);
      assert.equal(await calls(sshd.root), 'update-grub \n', 'no second refresh');
    },
  );
});

test('a failing update-grub restores every file and says what failed', async (t) => {
  if (!sshdAvailable(t)) return;
  await withHost(
    'i5-8500t-before',
    (root) => writeFile(join(root, 'etc/igpu-split-test-fail-update-grub'), ''),
    async (sshd, host) => {
      const plan = planHost(await gatherHostFacts(host));
      await assert.rejects(
        applyHostPlan(host, plan),
        rejectsWith(
          /update-grub failed \(exit 1\): update-grub: simulated failure — the files were restored/,
        ),
      );
      await assert.rejects(stat(join(sshd.root, GRUB_DROPIN)));
      await assert.rejects(stat(join(sshd.root, MODULES_CONF)));
      await assert.rejects(stat(join(sshd.root, LOCK_FILE)));
    },
  );
});

test('GRUB defaults a shell cannot source: nothing refreshed, originals intact', async (t) => {
  if (!sshdAvailable(t)) return;
  const broken = 'GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT="quiet\n';
  await withHost(
    'i5-8500t-before',
    (root) => writeFile(join(root, 'etc/default/grub'), broken),
    async (sshd, host) => {
      const plan = planHost(await gatherHostFacts(host));
      assert.match(plan.notes.join('\n'), /cannot evaluate/);
      await assert.rejects(applyHostPlan(host, plan), rejectsWith(/do not source cleanly/));
      assert.equal(await readFile(join(sshd.root, 'etc/default/grub'), 'utf8'), broken);
      await assert.rejects(stat(join(sshd.root, GRUB_DROPIN)));
      assert.equal(await calls(sshd.root), '');
    },
  );
});

test('a held lock and an unforced override are refused before anything changes', async (t) => {
  if (!sshdAvailable(t)) return;
  await withHost(
    'i9-9900k-guc',
    async (root) => {
      await mkdir(join(root, 'var/lib/igpu-split'), { recursive: true, mode: 0o700 });
      await writeFile(join(root, LOCK_FILE), '{"since":"earlier"}\n');
    },
    async (sshd, host) => {
      const plan = planHost(await gatherHostFacts(host));
      await assert.rejects(
        applyHostPlan(host, plan),
        rejectsWith(
          /overrides values you set \(i915\.enable_guc=3 → i915\.enable_guc=0\) — rerun with --force/,
          RefusedError,
        ),
      );
      await assert.rejects(
        applyHostPlan(host, plan, { force: true }),
        rejectsWith(/another igpu-split run holds .*lock.*since.*earlier/),
      );
      await assert.rejects(stat(join(sshd.root, GRUB_DROPIN)));
      await rm(join(sshd.root, LOCK_FILE));
      const result = await applyHostPlan(host, plan, { force: true });
      assert.ok(result.done.some((id) => id.endsWith('/grub-dropin')));
      const state = JSON.parse(await readFile(join(sshd.root, STATE_FILE), 'utf8'));
      assert.deepEqual(state.params, ['i915.enable_guc=0']);
    },
  );
});

/** Every file under the fake host's /etc, for byte-for-byte comparisons. */
async function etcSnapshot(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(join(root, dir), { withFileTypes: true })) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) files.set(path, (await readFile(join(root, path))).toString('base64'));
    }
  };
  await walk('etc');
  return files;
}

test('rollback after apply leaves /etc byte-for-byte as it was (GRUB)', async (t) => {
  if (!sshdAvailable(t)) return;
  await withHost(
    'i5-8500t-before',
    async () => {},
    async (sshd, host) => {
      const before = await etcSnapshot(sshd.root);
      await applyHostPlan(host, planHost(await gatherHostFacts(host)));
      assert.notDeepEqual(await etcSnapshot(sshd.root), before);
      const result = await rollbackHost(host);
      assert.deepEqual(result.changed.sort(), [
        GRUB_DROPIN,
        KERNEL_GUARD_CONF,
        KERNEL_GUARD_AHEAD,
        KERNEL_GUARD_HOOK,
        MODULES_CONF,
      ]);
      assert.deepEqual(result.refreshed, ['update-grub']);
      assert.equal(result.rebootNeeded, false, 'the running kernel never had our parameters');
      assert.deepEqual(await etcSnapshot(sshd.root), before);
      assert.equal(await calls(sshd.root), 'update-grub \nupdate-grub \n');
      await assert.rejects(stat(join(sshd.root, STATE_FILE)));
      assert.deepEqual(await rollbackHost(host), {
        changed: [],
        refreshed: [],
        rebootNeeded: false,
      });
    },
  );
});

test('systemd-boot: apply appends to /etc/kernel/cmdline; rollback keeps the user’s own intel_iommu=on', async (t) => {
  if (!sshdAvailable(t)) return;
  const line = 'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on\n';
  await withHost(
    'i7-6700k-sdboot',
    (root) => writeFile(join(root, 'etc/kernel/cmdline'), line),
    async (sshd, host) => {
      const plan = planHost(await gatherHostFacts(host));
      assert.deepEqual(plan.params.present, ['intel_iommu=on']);
      await applyHostPlan(host, plan);
      assert.equal(
        await readFile(join(sshd.root, 'etc/kernel/cmdline'), 'utf8'),
        'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt i915.enable_gvt=1\n',
      );
      assert.equal(await calls(sshd.root), 'proxmox-boot-tool refresh\n');
      const result = await rollbackHost(host);
      assert.deepEqual(result.refreshed, ['proxmox-boot-tool refresh']);
      assert.equal(await readFile(join(sshd.root, 'etc/kernel/cmdline'), 'utf8'), line);
    },
  );
});

describe('igpu-split host apply/verify/rollback (CLI)', () => {
  const bootId = async (root: string) => {
    await mkdir(join(root, 'proc/sys/kernel/random'), { recursive: true });
    await writeFile(join(root, BOOT_ID), 'first-boot\n');
  };
  const args = (sshd: TestSshd) => [
    '--host',
    `ssh://root@${sshd.host}:${sshd.treePort}`,
    '--identity',
    sshd.identityFile,
    '--known-hosts',
    sshd.knownHostsFile,
  ];

  test('without --yes and without a terminal nothing changes', async (t) => {
    if (!sshdAvailable(t)) return;
    await withHost('i5-8500t-before', bootId, async (sshd) => {
      // No terminal to ask: a process of its own, whose stdin is closed.
      const result = await spawnCli(['host', 'apply', ...args(sshd)]);
      assert.equal(result.code, 2);
      assert.match(
        result.stderr,
        /refusing to change anything without confirmation: no terminal to ask — review igpu-split host plan, then rerun with --yes/,
      );
      const json = await runCli(['host', 'apply', ...args(sshd), '--json']);
      assert.equal(json.code, 2);
      assert.match(json.stderr, /--json needs --yes/);
      await assert.rejects(stat(join(sshd.root, GRUB_DROPIN)));
    });
  });

  test('--yes --reboot: apply, reboot, wait for the new boot, verify our parameters are live', async (t) => {
    if (!sshdAvailable(t)) return;
    await withHost('i5-8500t-before', bootId, async (sshd) => {
      // A host by its address alone: its node VMs are not known, so the reboot needs --no-drain.
      const refused = await runCli(['host', 'apply', ...args(sshd), '--yes', '--reboot']);
      assert.equal(refused.code, 2);
      assert.match(
        refused.stderr,
        /--reboot: no lab file, so the Kubernetes nodes of this host’s VMs are not known/,
      );
      assert.equal(await calls(sshd.root), '', 'refused before anything changed');
      const result = await runCli([
        'host',
        'apply',
        ...args(sshd),
        '--yes',
        '--reboot',
        '--no-drain',
        '--reboot-timeout',
        '20',
      ]);
      assert.equal(
        result.code,
        1,
        'verify fails on GVT-g checks: the fake kernel cannot really enable GVT-g',
      );
      assert.match(result.stdout, /applied 6 steps/);
      assert.match(result.stdout, /rebooting/);
      assert.match(
        result.stdout,
        /PASS\s+host\.cmdline\s+\/proc\/cmdline has intel_iommu=on iommu=pt i915\.enable_gvt=1/,
      );
      assert.equal(await calls(sshd.root), 'update-grub \nsystemctl reboot\n');
      const verify = await runCli(['host', 'verify', ...args(sshd)]);
      assert.match(verify.stdout, /PASS\s+host\.cmdline/);
      const replan = await runCli(['host', 'plan', ...args(sshd)]);
      assert.match(
        replan.stdout,
        /nothing to do: this host is converged/,
        'after the reboot the plan is empty',
      );
      const rollback = await runCli(['host', 'rollback', ...args(sshd), '--json', '--yes']);
      assert.equal(rollback.code, 0, rollback.stderr);
      const rolled = JSON.parse(rollback.stdout).result;
      assert.ok(rolled.changed.includes(GRUB_DROPIN));
      assert.equal(rolled.rebootNeeded, true, 'the running kernel still has our parameters');
    });
  });

  test('--reboot --lab: the nodes of the host’s VMs are drained before the reboot and uncordoned after', async (t) => {
    if (!sshdAvailable(t)) return;
    const kube = await startKubeSimulator({
      nodes: [
        { name: 'k3s-1', gpus: 1 },
        { name: 'k3s-2', gpus: 1 },
      ],
    });
    try {
      await withHost('i5-8500t-before', bootId, async (sshd) => {
        const kubeconfig = join(sshd.scratch, 'kubeconfig');
        await writeFile(kubeconfig, kube.kubeconfig, { mode: 0o600 });
        const lab = join(sshd.scratch, 'igpu-split.yaml');
        await writeFile(
          lab,
          `proxmox: { url: https://127.0.0.1:8006, token: a@pve!b, tokenSecretEnv: NOPE }
hosts:
  - { node: pve1, ssh: "ssh://root@${sshd.host}:${sshd.treePort}" }
  - { node: pve2 }
vms:
  - { vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1 }
  - { vmid: 102, host: pve2, os: ubuntu, kubernetesNode: k3s-2 }
kubernetes: { kubeconfig: ${kubeconfig} }
`,
        );
        const result = await runCli([
          'host',
          'apply',
          ...args(sshd),
          '--lab',
          lab,
          '--yes',
          '--reboot',
          '--reboot-timeout',
          '20',
        ]);
        assert.equal(result.code, 1, result.stderr);
        // Only the node of this host's VM, drained before the reboot and uncordoned after it.
        assert.match(
          result.stdout,
          /rebooting [^\n]*\ndraining k3s-1 \(VM 101\)\ndrained k3s-1\n[\s\S]*PASS\s+host\.cmdline[\s\S]*\nuncordoned k3s-1\n/,
        );
        assert.doesNotMatch(result.stdout, /k3s-2/);
        const node = kube.store.get(K.Node, undefined, 'k3s-1')?.spec as { unschedulable?: boolean };
        assert.notEqual(node?.unschedulable, true);
      });
    } finally {
      await kube.close();
    }
  });

  test('a host that never comes back: one line, exit 2, how to resume', async (t) => {
    if (!sshdAvailable(t)) return;
    await withHost(
      'i5-8500t-before',
      async (root) => {
        await bootId(root);
        await writeFile(join(root, 'etc/igpu-split-test-no-reboot'), '');
      },
      async (sshd) => {
        const result = await runCli([
          'host',
          'apply',
          ...args(sshd),
          '--yes',
          '--reboot',
          '--no-drain',
          '--reboot-timeout',
          '2',
        ]);
        assert.equal(result.code, 2);
        // Besides the "still waiting" lines a wait over 2 s prints, one line.
        const lines = result.stderr
          .trim()
          .split('\n')
          .filter((line) => !line.includes(': still waiting for '));
        assert.match(
          lines.join('\n'),
          /^igpu-split: ssh:\/\/.*: the machine did not come back from its reboot within 2 s — .*host verify/,
        );
        assert.equal(lines.length, 1);
      },
    );
  });
});

test('a full file system mid-way: the files already written are restored, one clear error', async (t) => {
  if (!sshdAvailable(t)) return;
  await withHost(
    'i5-8500t-before',
    async (root) => {
      await mkdir(join(root, 'etc/modules-load.d'), { recursive: true });
    },
    async (sshd, host) => {
      // A tiny, full file system where the second file goes, mounted where sshd's sessions
      // see it (its own mount namespace): that write fails after the first succeeded.
      const full = join(sshd.root, 'etc/modules-load.d');
      sshd.inHost([
        'sh',
        '-c',
        `mount -t tmpfs -o size=4k igpu-split-test-full ${full} && head -c 4096 /dev/zero > ${full}/filler`,
      ]);
      const grubBefore = await readFile(join(sshd.root, 'etc/default/grub'));
      const plan = planHost(await gatherHostFacts(host));
      await assert.rejects(
        applyHostPlan(host, plan),
        rejectsWith(/applying stopped: .*— the files were restored/),
      );
      await assert.rejects(stat(join(sshd.root, GRUB_DROPIN)), 'the first file is gone again');
      assert.ok((await readFile(join(sshd.root, 'etc/default/grub'))).equals(grubBefore));
      assert.equal(await calls(sshd.root), '', 'no boot loader refresh');
      await assert.rejects(stat(join(sshd.root, LOCK_FILE)));
    },
  );
});

test('a multi-line /etc/kernel/cmdline is refused by the plan, with its line count; nothing is written', async (t) => {
  if (!sshdAvailable(t)) return;
  const twoLines = 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\nquiet\n';
  await withHost(
    'i7-6700k-sdboot',
    (root) => writeFile(join(root, 'etc/kernel/cmdline'), twoLines),
    async (sshd, host) => {
      const plan = planHost(await gatherHostFacts(host));
      assert.match(
        plan.unsupported ?? '',
        /\/etc\/kernel\/cmdline has 2 lines, and proxmox-boot-tool uses only the first/,
      );
      assert.deepEqual(plan.steps, []);
      await assert.rejects(applyHostPlan(host, plan), rejectsWith(/cmdline has 2 lines/, RefusedError));
      assert.equal(await readFile(join(sshd.root, 'etc/kernel/cmdline'), 'utf8'), twoLines);
      assert.equal(await calls(sshd.root), '', 'proxmox-boot-tool never ran');
    },
  );
});

test('a refresh that ran before a later one failed runs again on the restored files', async (t) => {
  if (!sshdAvailable(t)) return;
  await withHost(
    'i5-1135g7-tigerlake',
    async (root) => {
      await writeFile(join(root, 'etc/kernel/cmdline'), 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n');
      await writeFile(join(root, 'etc/igpu-split-test-fail-proxmox-boot-tool'), '');
    },
    async (sshd, host) => {
      const plan = planHost(await gatherHostFacts(host));
      await assert.rejects(applyHostPlan(host, plan), rejectsWith(/proxmox-boot-tool refresh failed/));
      assert.equal(
        await readFile(join(sshd.root, 'etc/kernel/cmdline'), 'utf8'),
        'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n',
      );
      assert.equal(
        await calls(sshd.root),
        'update-initramfs -u -k all\nproxmox-boot-tool refresh\nupdate-initramfs -u -k all\n',
      );
    },
  );
});
