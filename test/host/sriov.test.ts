// SR-IOV hosts: the plan (route, VFs, driver package, files, parameters, the kernel check,
// Secure Boot), apply through the demo's N100 host (apt and a reboot answered as a real
// host would: a stand-in, see the README), a second plan that is empty, and rollback.

import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import type { HostAccess } from '../../src/access/host.ts';
import { sriovHost } from '../../src/demo/sriov-host.ts';
import { applyHostPlan, hostPlanRefusal } from '../../src/host/apply.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { type HostPlan, planHost } from '../../src/host/plan.ts';
import { rollbackHost } from '../../src/host/rollback.ts';
import { SRIOV_TMPFILES } from '../../src/host/sriov/files.ts';
import type { SriovWishes } from '../../src/host/sriov/plan.ts';
import { rebootAndWait } from '../../src/linux/reboot.ts';
import { fixturePath } from '../support/fixtures.ts';
import { N100_KERNEL, n100BeforeTree } from '../support/n100.ts';

const URL_2025 =
  'https://github.com/strongtz/i915-sriov-dkms/releases/download/2025.07.22/i915-sriov-dkms_2025.07.22_amd64.deb';
const wishes = (more: Partial<SriovWishes> = {}): SriovWishes => ({
  mode: 'auto',
  vfs: 'auto',
  vmsOnHost: 2,
  driver: { url: URL_2025 },
  ...more,
});
const ids = (plan: HostPlan) => plan.steps.map((s) => s.id.split('/').at(-1));
const factsOf = async (root: string) => gatherHostFacts(await new CapturedRoot(root).open());

test('an N100 before SR-IOV: driver, vfio modules, initramfs, VFs at boot, GRUB parameters, one reboot', async () => {
  const tree = await n100BeforeTree();
  try {
    const plan = planHost(await factsOf(tree.root), { wishes: wishes() });
    assert.equal(plan.mode, 'sriov');
    assert.equal(plan.refused, undefined);
    assert.deepEqual(ids(plan), [
      'sriov-driver',
      'modules-load',
      'initramfs-modules',
      'modprobe',
      'update-initramfs',
      'sriov-vfs',
      'grub-dropin',
      'update-grub',
      'kernel-guard-settings',
      'kernel-guard',
      'kernel-guard-ahead',
      'reboot',
    ]);
    assert.deepEqual(plan.steps[0]?.install?.packages, [
      'dkms',
      'build-essential',
      'proxmox-default-headers',
    ]);
    assert.equal(plan.steps[0]?.install?.release?.release, '2025.07.22');
    assert.equal(
      plan.steps
        .find((s) => s.write?.path === SRIOV_TMPFILES)
        ?.write?.content.split('\n')
        .filter((l) => l.startsWith('w '))
        .join('\n'),
      'w /sys/bus/pci/devices/0000:00:02.0/sriov_drivers_autoprobe - - - - 0\nw /sys/bus/pci/devices/0000:00:02.0/sriov_numvfs - - - - 2',
    );
    assert.match(
      plan.steps.find((s) => s.id.endsWith('grub-dropin'))?.diff ?? '',
      /intel_iommu=on i915\.enable_guc=3 i915\.max_vfs=2 module_blacklist=xe"/,
    );
    assert.deepEqual(
      plan.checks.map((c) => `${c.id} ${c.status}`),
      ['sriov.next-kernel pass'],
    );
    assert.equal(plan.reboot, true);
  } finally {
    await tree.remove();
  }
});

test('apply installs, reboots once into the VFs; the next plan is empty; rollback removes exactly ours', async () => {
  const tree = await n100BeforeTree();
  const seen: number[] = [];
  try {
    const handler = sriovHost({ node: 'pve4', onVfs: (_node, vfs) => void seen.push(vfs) });
    const userModules = '# the user’s own list\nnvme\n';
    await mkdir(join(tree.root, 'etc/initramfs-tools'), { recursive: true });
    await writeFile(join(tree.root, 'etc/initramfs-tools/modules'), userModules);
    let host: HostAccess = await new DirectoryHost(tree.root, handler, 'pve4').open();
    const plan = planHost(await gatherHostFacts(host), { wishes: wishes() });
    const result = await applyHostPlan(host, plan);
    assert.equal(result.rebootNeeded, true);
    assert.ok(result.done.includes('host/pve4/sriov-driver'));
    host = await rebootAndWait(host, { reconnect: async () => host, timeoutMs: 5_000, pollMs: 10 });
    assert.deepEqual(seen, [2]);
    const after = await gatherHostFacts(host);
    assert.equal(after.displayDevices.find((d) => d.bdf === '0000:00:02.0')?.sriov?.numVfs, 2);
    assert.deepEqual(
      after.displayDevices.filter((d) => d.virtualFunction).map((d) => `${d.bdf} ${d.driver ?? 'none'}`),
      ['0000:00:02.1 none', '0000:00:02.2 none'],
    );
    const again = planHost(after, { wishes: wishes() });
    assert.deepEqual(again.steps, [], 'converged: nothing to do, no second reboot');

    const rolled = await rollbackHost(host);
    assert.ok(rolled.refreshed.includes('update-initramfs -u -k all'));
    assert.equal(await readFile(join(tree.root, 'etc/initramfs-tools/modules'), 'utf8'), userModules);
    const left = await gatherHostFacts(host);
    assert.deepEqual(left.packages, {}, 'the packages we installed are purged');
    assert.deepEqual(
      left.sriovFiles.map((f) => f.path),
      ['/etc/initramfs-tools/modules'],
    );
  } finally {
    await tree.remove();
  }
});

test('the kernel the host boots next must keep the split: plan warns, apply refuses without --force', async () => {
  const tree = await n100BeforeTree();
  try {
    // Proxmox VE 9's 6.17 kernel installed beside 6.8: release 2025.07.22 builds for 6.8–6.16 only.
    const next = join(tree.root, 'lib/modules/6.17.2-1-pve');
    await mkdir(join(next, 'build'), { recursive: true });
    await writeFile(join(next, 'modules.dep'), '');
    await writeFile(join(next, 'build/Makefile'), '');
    const plan = planHost(await factsOf(tree.root), { wishes: wishes() });
    const check = plan.checks.find((c) => c.id === 'sriov.next-kernel');
    assert.equal(check?.status, 'warn');
    assert.match(
      check?.evidence ?? '',
      /next boot \(6\.17\.2-1-pve\): i915-sriov-dkms 2025\.07\.22 builds only for kernels 6\.8–6\.16/,
    );
    assert.equal(plan.steps.at(-1)?.needsForce, true);
    assert.match(hostPlanRefusal(plan)?.message ?? '', /reboot into a kernel that loses the split/);
    assert.equal(hostPlanRefusal(plan, { force: true }), undefined);
    // A pin on 6.8 keeps it: proxmox-boot-tool kernel pin.
    await writeFile(join(tree.root, 'etc/kernel/proxmox-boot-pin'), `${N100_KERNEL}\n`);
    const pinned = planHost(await factsOf(tree.root), { wishes: wishes() });
    assert.equal(pinned.checks.find((c) => c.id === 'sriov.next-kernel')?.status, 'pass');
  } finally {
    await tree.remove();
  }
});

test('bad input: no driver named, a file that is no release, a mode the hardware cannot do, more VMs than VFs', async () => {
  const tree = await n100BeforeTree();
  try {
    const facts = await factsOf(tree.root);
    assert.match(
      planHost(facts, { wishes: wishes({ driver: undefined }) }).refused ?? '',
      /names no package: set sriov\.hostDriver/,
    );
    assert.match(
      planHost(facts, { wishes: wishes({ driver: { file: '/tmp/driver.deb' } }) }).refused ?? '',
      /driver\.deb: not an i915-sriov-dkms release file/,
    );
    assert.match(
      planHost(facts, { wishes: wishes({ mode: 'gvt-g' }) }).refused ?? '',
      /mode gvt-g cannot be planned here: Alder Lake-N iGPU has no GVT-g/,
    );
    const crowded = planHost(facts, { wishes: wishes({ vfs: 2, vmsOnHost: 3 }) });
    const count = crowded.checks.find((c) => c.id === 'sriov.vf-count');
    assert.equal(count?.status, 'fail');
    assert.match(count?.fix ?? '', /raise hosts\[\]\.vfs to 3/);
    const huge = planHost(facts, { wishes: wishes({ vmsOnHost: 9 }) });
    assert.match(
      huge.checks.find((c) => c.id === 'sriov.vf-count')?.fix ?? '',
      /move 2 of them to another host: the iGPU offers at most 7/,
    );
  } finally {
    await tree.remove();
  }
});

test('the enterprise repository without a subscription is named, and nothing changes', async () => {
  const tree = await n100BeforeTree();
  try {
    const host = await new DirectoryHost(
      tree.root,
      sriovHost({ node: 'pve4', enterpriseRepoWithoutSubscription: true }),
      'pve4',
    ).open();
    const plan = planHost(await gatherHostFacts(host), { wishes: wishes() });
    await assert.rejects(applyHostPlan(host, plan), (error: Error) => {
      assert.match(
        error.message,
        /apt-get update failed: E: Failed to fetch https:\/\/enterprise\.proxmox\.com\/debian\/pve\/dists\/trixie\/InRelease/,
      );
      return true;
    });
    const after = await gatherHostFacts(host);
    assert.equal(
      after.bootloader.kind === 'grub' && after.bootloader.files.length,
      1,
      'no GRUB drop-in written',
    );
    assert.deepEqual(after.sriovFiles, []);
  } finally {
    await tree.remove();
  }
});

test('dkms builds nothing for the kernel the host boots next: apply stops before any boot file', async () => {
  const tree = await n100BeforeTree();
  try {
    // The package installs, but its build for 6.8 fails (what a compiler error leaves: no i915.ko).
    const demoHost = sriovHost({ node: 'pve4' });
    const failingBuild: typeof demoHost = async (command, host, stdin) => {
      const result = await demoHost(command, host, stdin);
      if (command.includes('apt-get install -y'))
        await rm(join(tree.root, `lib/modules/${N100_KERNEL}/updates/dkms/i915.ko`), { force: true });
      return result;
    };
    const host = await new DirectoryHost(tree.root, failingBuild, 'pve4').open();
    const plan = planHost(await gatherHostFacts(host), { wishes: wishes() });
    await assert.rejects(applyHostPlan(host, plan), (error: Error) => {
      assert.match(
        error.message,
        new RegExp(`dkms did not install i915 for kernel ${N100_KERNEL.replaceAll('.', '\\.')}`),
      );
      return true;
    });
    const after = await gatherHostFacts(host);
    assert.equal(after.bootloader.kind === 'grub' && after.bootloader.files.length, 1, 'no GRUB drop-in');
    assert.deepEqual(after.sriovFiles, [], 'no tmpfiles line, no initramfs module line');
    // What was installed is recorded, so rollback can take it away.
    assert.ok((await rollbackHost(host)).changed.length === 0);
    assert.deepEqual((await gatherHostFacts(host)).packages, {});
  } finally {
    await tree.remove();
  }
});

test('Secure Boot on with the dkms key not enrolled: apply stops at a manual step instead of rebooting', async () => {
  const tree = await n100BeforeTree();
  try {
    const facts = await factsOf(tree.root);
    const plan = planHost({ ...facts, firmware: { uefi: true, secureBoot: true } }, { wishes: wishes() });
    assert.equal(ids(plan).at(-1), 'mok-enrol');
    assert.ok(!plan.steps.some((s) => s.disturbs.includes('host-reboot')));
    assert.match(
      plan.steps.at(-1)?.manual?.commands[0] ?? '',
      /^mokutil --import \/var\/lib\/dkms\/mok\.pub/,
    );
    assert.match(plan.steps.at(-1)?.description ?? '', /two reboots/);
  } finally {
    await tree.remove();
  }
});

test('Tiger Lake: auto never takes the experimental route; mode sriov opts in and says so', async () => {
  const facts = await factsOf(fixturePath('i5-1135g7-tigerlake'));
  assert.equal(planHost(facts, { wishes: wishes({ vmsOnHost: 1 }) }).mode, 'passthrough');
  const opted = planHost(facts, {
    wishes: wishes({
      mode: 'sriov',
      vmsOnHost: 1,
      driver: { url: URL_2025.replaceAll('2025.07.22', '2026.05.06') },
    }),
  });
  assert.equal(opted.mode, 'sriov');
  assert.equal(opted.checks.find((c) => c.id === 'sriov.route')?.status, 'warn');
});
