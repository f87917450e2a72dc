// The command line as users meet it: exit codes, one-line errors, no stack traces.

import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli } from '../support/cli.ts';
import { fixturePath, withKernelGuard } from '../support/fixtures.ts';

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'igpu-cli-'));
});
after(() => rm(work, { recursive: true, force: true }));

/** Exit 2, exactly one line on stderr, naming what to do, and no stack trace. */
function assertOneLineError(result: { code: number; stdout: string; stderr: string }, pattern: RegExp) {
  assert.equal(result.code, 2, result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] as string, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
}

describe('igpu-split', () => {
  test('--help lists the commands and exits 0', async () => {
    const result = await runCli(['--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /doctor/);
    assert.match(result.stdout, /capture/);
  });

  test('an unknown option is a usage error (exit 2)', async () => {
    const result = await runCli(['doctor', '--frobnicate']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /unknown option '--frobnicate'/);
  });

  test('doctor exits 0 when nothing fails and 1 when a check fails', async () => {
    const ok = await runCli(['doctor', '--root', fixturePath('i5-8500t-gvt')]);
    assert.equal(ok.code, 0, ok.stdout);
    assert.match(ok.stdout, /Mode\s+gvt-g/);
    const failing = await runCli(['doctor', '--root', fixturePath('i5-8500t-before')]);
    assert.equal(failing.code, 1);
    assert.match(failing.stdout, /FAIL\s+gvt\.enabled/);
    assert.match(failing.stdout, /fix: add i915\.enable_gvt=1/);
  });

  test('doctor --json prints one object with the documented fields', async () => {
    const result = await runCli(['doctor', '--root', fixturePath('i5-8500t-before'), '--json']);
    assert.equal(result.code, 1);
    const report = JSON.parse(result.stdout).result;
    assert.equal(report.schemaVersion, 1);
    assert.equal(report.mode, 'gvt-g');
    assert.deepEqual(report.vgpu, { predicted: { 'i915-GVTg_V5_8': 2, 'i915-GVTg_V5_4': 1 }, live: {} });
    assert.equal(report.gpu.deviceId, '3e92');
    for (const check of report.checks) {
      assert.deepEqual(
        Object.keys(check).filter((k) => !['id', 'status', 'evidence', 'fix'].includes(k)),
        [],
      );
      if (check.status !== 'pass') assert.ok(check.fix, `${check.id} has no fix`);
    }
  });

  test('bad --root values fail with one line naming the target and what to do', async () => {
    assertOneLineError(
      await runCli(['doctor', '--root', join(work, 'nope')]),
      /is not a directory — point --root at the unpacked capture/,
    );
    const empty = join(work, 'empty');
    await mkdir(empty);
    await writeFile(join(empty, 'README.txt'), 'not a host');
    assertOneLineError(
      await runCli(['doctor', '--root', empty]),
      /does not look like a Linux host.*— point --root/,
    );
  });

  test('bad --host values and conflicting options are usage errors', async () => {
    assertOneLineError(
      await runCli(['doctor', '--host', 'http://pve1']),
      /unsupported scheme http.*ssh:\/\/user@host/,
    );
    assertOneLineError(
      await runCli(['doctor', '--host', 'ssh://pve1', '--root', fixturePath('i5-8500t-gvt')]),
      /--host and --root exclude each other/,
    );
    assertOneLineError(
      await runCli(['doctor', '--host', 'ssh://127.0.0.1:1', '--connect-timeout', 'soon']),
      /--connect-timeout must be a number of seconds from 1 to 300/,
    );
  });

  test('a refused SSH connection is one line with exit 2; --debug adds the stack', async () => {
    const env = { ...process.env, SSH_AUTH_SOCK: '/nonexistent/agent.sock' };
    const args = ['doctor', '--host', 'ssh://root@127.0.0.1:1', '--known-hosts', join(work, 'kh')];
    assertOneLineError(
      await runCli(args, env),
      /ssh:\/\/root@127\.0\.0\.1:1: connection refused by 127\.0\.0\.1:1/,
    );
    const debug = await runCli(['--debug', ...args], env);
    assert.equal(debug.code, 2);
    assert.match(debug.stderr, /\n\s+at /);
  });

  test('garbled and truncated cpuinfo never crash doctor', async () => {
    for (const [name, text] of [
      ['garbled', '\u0000\u0001 processor : zero\nvendor_id GenuineIntel\n'],
      ['truncated', 'processor\t: 0\nvendor_id\t: GenuineIntel\ncpu fam'],
      ['empty', ''],
    ] as const) {
      const tree = join(work, `cpuinfo-${name}`);
      await cp(fixturePath('i5-8500t-gvt'), tree, { recursive: true, verbatimSymlinks: true });
      await writeFile(join(tree, 'proc/cpuinfo'), text);
      const result = await runCli(['doctor', '--root', tree, '--json']);
      assert.equal(result.code, 1, `${name}: ${result.stderr}`);
      const report = JSON.parse(result.stdout).result;
      assert.equal(report.cpu, null);
      assert.equal(report.mode, 'gvt-g', 'the GPU still decides the mode');
      assert.ok(
        report.checks.some(
          (c: { id: string; status: string }) => c.id === 'host.readable' && c.status === 'warn',
        ),
      );
    }
  });
});

describe('igpu-split host plan', () => {
  test('prints steps with diffs and commands, exit 0; changes nothing', async () => {
    const result = await runCli(['host', 'plan', '--root', fixturePath('i5-8500t-before')]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\+GRUB_CMDLINE_LINUX_DEFAULT="\$GRUB_CMDLINE_LINUX_DEFAULT intel_iommu=on/);
    assert.match(result.stdout, /\$ update-grub/);
    assert.match(result.stdout, /a reboot is needed/);
  });

  test('a converged host says so; --json gives the plan object', async () => {
    // Set up before the kernel guard existed: the guard is all it lacks, and no reboot.
    const old = await runCli(['host', 'plan', '--root', fixturePath('i5-8500t-gvt'), '--json']);
    const planned = JSON.parse(old.stdout).result;
    assert.deepEqual(
      planned.steps.map((s: { write?: { path: string } }) => s.write?.path),
      [
        '/etc/igpu-split/kernel-guard.conf',
        '/etc/kernel/postinst.d/z-igpu-split-kernel-guard',
        '/etc/kernel/postinst.d/a-igpu-split-kernel-guard',
      ],
    );
    assert.equal(planned.reboot, false);
    const tree = await withKernelGuard('i5-8500t-gvt', { mode: 'gvt-g' });
    try {
      const text = await runCli(['host', 'plan', '--root', tree.root]);
      assert.match(text.stdout, /nothing to do: this host is converged/);
      const json = await runCli(['host', 'plan', '--root', tree.root, '--json']);
      assert.deepEqual(JSON.parse(json.stdout).result.steps, []);
    } finally {
      await tree.remove();
    }
  });

  test('an SR-IOV host without a driver package named exits 1 with the reason', async () => {
    const result = await runCli(['host', 'plan', '--root', fixturePath('n100-before')]);
    assert.equal(result.code, 1);
    assert.match(result.stdout, /not planned: .*names no package: set sriov\.hostDriver/);
  });

  test('--acs-override explains the isolation trade-off in its help', async () => {
    const help = await runCli(['host', 'plan', '--help']);
    assert.match(help.stdout.replace(/\s+/g, ' '), /--acs-override .*DMA/);
  });
});
