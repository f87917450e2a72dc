// Kill points: apply on the demo lab runs in a child process that is killed (SIGKILL, no
// cleanup) at every stage boundary and in the middle of every host file write — one run
// per kill point, right after every change sent to Proxmox and after every boot-loader refresh or
// reboot on a host — then rerun with --resume. Every run must converge; no host file may be
// corrupted or lost (each equals the uninterrupted run's, the user's files untouched);
// no VM may be left stopped unless the journal says its stage is not done.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bounded } from '../../src/core/bounded.ts';
import { type DemoLab, startDemoLab } from '../../src/demo/lab.ts';
import { Journal } from '../../src/engine/journal.ts';
import { planIsEmpty, planLab } from '../../src/engine/plan.ts';

const CHILD = fileURLToPath(new URL('../support/apply-child.ts', import.meta.url));
/** The files of each host that apply writes or must leave alone. */
const WATCHED = [
  '/etc/default/grub',
  '/etc/default/grub.d/igpu-split.cfg',
  '/etc/modules-load.d/igpu-split.conf',
  '/etc/kernel/cmdline',
  '/var/lib/igpu-split/state.json',
  // SR-IOV hosts (pve4): the VFs at boot, the initramfs module line, the vfio softdep.
  '/etc/tmpfiles.d/igpu-split-sriov.conf',
  '/etc/initramfs-tools/modules',
  '/etc/modprobe.d/igpu-split.conf',
];
/** What a guest boots with: its command line, our GRUB drop-in for the VF driver, its kernel. */
const GUEST_WATCHED = [
  '/proc/cmdline',
  '/etc/default/grub.d/99-igpu-split-sriov.cfg',
  '/proc/sys/kernel/osrelease',
];

function child(
  description: string,
  env: Record<string, string>,
): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [CHILD, description], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => {
      out += c.toString();
    });
    proc.stderr.on('data', (c: Buffer) => {
      out += c.toString();
    });
    proc.on('close', (code, signal) => resolve({ code, signal, out }));
  });
}

async function snapshot(demo: DemoLab): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  // A guest killed before its reboot still boots what it booted: its command line and kernel
  // change only with the reboot step (the drop-in may be written, grub.cfg then too).
  for (const [name, root] of Object.entries(demo.description.guestRoots))
    for (const path of GUEST_WATCHED)
      files[`${name}:${path}`] = await readFile(join(root, path), 'utf8').catch(() => '<absent>');
  for (const [node, root] of Object.entries(demo.description.roots)) {
    for (const path of WATCHED) {
      const text = await readFile(join(root, path), 'utf8').catch(() => '<absent>');
      // state.json names the run's backup folder (a timestamp): compare what it records.
      files[`${node}:${path}`] =
        path.endsWith('state.json') && text !== '<absent>'
          ? JSON.stringify(Object.keys(JSON.parse(text).files ?? {}))
          : createHash('sha256').update(text).digest('hex');
    }
  }
  return files;
}

async function withDemo<T>(body: (demo: DemoLab, file: string) => Promise<T>): Promise<T> {
  const demo = await startDemoLab();
  try {
    const file = join(demo.dir, 'description.json');
    await writeFile(file, JSON.stringify(demo.description));
    return await body(demo, file);
  } finally {
    await demo.close();
  }
}

test('every kill point: the resumed apply converges, no file is corrupted or lost, no VM is left stopped unnoticed', async (t) => {
  // The uninterrupted run: its stages, its count of writes, and the end state to compare with.
  const reference = await withDemo(async (demo, file) => {
    const before = await snapshot(demo);
    const run = await child(file, {});
    assert.equal(run.code, 0, run.out);
    const { done, writes, calls, commands, guestCommands } = JSON.parse(
      run.out.trim().split('\n').pop() as string,
    ) as {
      done: string[];
      writes: number;
      calls: number;
      commands: number;
      guestCommands: number;
    };
    return { done, writes, calls, commands, guestCommands, before, after: await snapshot(demo) };
  });
  const points = [
    ...reference.done.map((id) => ({ name: `after stage ${id}`, env: { KILL_AT_STAGE: id } })),
    ...Array.from({ length: reference.writes }, (_, i) => ({
      name: `mid-write ${i + 1}`,
      env: { KILL_AT_WRITE: String(i + 1) },
    })),
    ...Array.from({ length: reference.calls }, (_, i) => ({
      name: `after Proxmox change ${i + 1}`,
      env: { KILL_AT_CALL: String(i + 1) },
    })),
    ...Array.from({ length: reference.commands }, (_, i) => ({
      name: `after host command ${i + 1}`,
      env: { KILL_AT_COMMAND: String(i + 1) },
    })),
    ...Array.from({ length: reference.guestCommands }, (_, i) => ({
      name: `after guest command ${i + 1}`,
      env: { KILL_AT_GUEST_COMMAND: String(i + 1) },
    })),
  ];
  let survived = 0;
  // Each kill point has a demo lab of its own: three at a time.
  await bounded(points, 3, async (point) => {
    await withDemo(async (demo, file) => {
      const killed = await child(file, point.env);
      assert.equal(killed.signal, 'SIGKILL', `${point.name}: the child was not killed: ${killed.out}`);
      // Before resuming: a stopped VM must belong to a stage the journal does not have.
      const journal = new Journal(demo.labFile);
      await journal.start(true);
      for (const vm of demo.lab.vms) {
        if ((await demo.connections.proxmox.vmStatus(vm.host, vm.vmid)).status === 'stopped') {
          assert.ok(
            !journal.ids().includes(`${vm.host}/vms`) || journal.stoppedVms().includes(vm.vmid),
            `${point.name}: VM ${vm.vmid} stopped and the journal does not say so`,
          );
        }
      }
      // The user's own files are never touched, even mid-run.
      for (const node of Object.keys(demo.description.roots)) {
        assert.equal(
          (await snapshot(demo))[`${node}:/etc/default/grub`],
          reference.before[`${node}:/etc/default/grub`],
          `${point.name}: /etc/default/grub changed`,
        );
      }
      // A guest killed before its reboot step boots as it did: the running command line and kernel are the old ones.
      const now = await snapshot(demo);
      for (const name of Object.keys(demo.description.guestRoots))
        for (const path of ['/proc/cmdline', '/proc/sys/kernel/osrelease'])
          assert.ok(
            now[`${name}:${path}`] === reference.before[`${name}:${path}`] ||
              now[`${name}:${path}`] === reference.after[`${name}:${path}`],
            `${point.name}: ${name} ${path} is neither the old nor the new one`,
          );
      const resumed = await child(file, { RESUME: '1' });
      assert.equal(resumed.code, 0, `${point.name}: resume failed: ${resumed.out}`);
      assert.deepEqual(
        await snapshot(demo),
        reference.after,
        `${point.name}: files differ from the uninterrupted run`,
      );
      assert.ok(planIsEmpty(await planLab(demo.lab, demo.connections)), `${point.name}: not converged`);
      for (const vm of demo.lab.vms)
        assert.equal((await demo.connections.proxmox.vmStatus(vm.host, vm.vmid)).status, 'running');
      for (const name of ['k3s-1', 'k3s-2', 'talos-1'])
        assert.equal(
          (await demo.connections.kube.get('v1', 'Node', name))?.spec?.unschedulable,
          undefined,
          `${point.name}: ${name} left cordoned`,
        );
      assert.deepEqual(
        // The run users make (applyLab) takes the emptied folder away too.
        (await readdir(join(demo.dir, '.igpu-split')).catch(() => [] as string[])).filter(
          (f) => f === 'lock' || f === 'journal.json',
        ),
        [],
        'lock and journal gone',
      );
      survived++;
    });
  });
  t.diagnostic(
    `kill points survived: ${survived} / ${points.length} (${reference.done.length} stage boundaries, ${reference.writes} mid-write, ${reference.calls} between VM steps, ${reference.commands} after a boot-loader refresh or reboot, ${reference.guestCommands} after a guest command)`,
  );
  assert.equal(survived, points.length);
});
