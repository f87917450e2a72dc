// Host plans from captured hosts: the right files, commands and reboots, nothing on a
// converged host, and the user's own settings left alone.

import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import type { HostFacts } from '../../src/host/facts.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { hostLayer } from '../../src/host/layer.ts';
import { GRUB_DROPIN, type HostPlan, MODULES_CONF, planHost } from '../../src/host/plan.ts';
import {
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
} from '../../src/linux/kernel-guard/script.ts';
import { fixturePath } from '../support/fixtures.ts';

const facts = async (tree: string) => gatherHostFacts(await new CapturedRoot(tree).open());
const ids = (plan: HostPlan) => plan.steps.map((s) => s.id.split('/').at(-1));
/** The kernel guard's three files (src/host/guard/plan.ts), written before the reboot. */
const GUARD = ['kernel-guard-settings', 'kernel-guard', 'kernel-guard-ahead'];

/** What apply will do to the files, done to the facts, so a second plan can be checked. */
function applied(before: HostFacts, plan: HostPlan): HostFacts {
  const after = structuredClone(before);
  for (const step of plan.steps) {
    if (!step.write) continue;
    const { path, content } = step.write;
    if (path === KERNEL_GUARD_CONF) after.kernelGuard.conf = content;
    else if (path === KERNEL_GUARD_HOOK) after.kernelGuard.hook = content;
    else if (path === KERNEL_GUARD_AHEAD) after.kernelGuard.ahead = content;
    else if (path === MODULES_CONF)
      after.moduleFiles = [...after.moduleFiles.filter((f) => f.path !== path), { path, content }];
    else if (after.bootloader.kind === 'grub') {
      after.bootloader.files = [...after.bootloader.files.filter((f) => f.path !== path), { path, content }];
    } else if (after.bootloader.kind === 'systemd-boot') after.bootloader.cmdline = content.trim();
  }
  return after;
}

async function withTree(name: string, edit: (tree: string) => Promise<void>): Promise<HostFacts> {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-plan-'));
  try {
    await cp(fixturePath(name), tree, { recursive: true, verbatimSymlinks: true });
    await edit(tree);
    return await facts(tree);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

test('GRUB host before GVT-g: a drop-in, update-grub, kvmgt at boot, one reboot', async () => {
  const before = await facts(fixturePath('i5-8500t-before'));
  const plan = planHost(before);
  assert.equal(plan.mode, 'gvt-g');
  assert.deepEqual(ids(plan), ['modules-load', 'grub-dropin', 'update-grub', ...GUARD, 'reboot']);
  const dropin = plan.steps[1];
  assert.equal(dropin?.write?.path, GRUB_DROPIN);
  assert.match(
    dropin?.diff ?? '',
    /\+GRUB_CMDLINE_LINUX_DEFAULT="\$GRUB_CMDLINE_LINUX_DEFAULT intel_iommu=on iommu=pt i915\.enable_gvt=1"/,
  );
  assert.equal(plan.steps[2]?.command, 'update-grub');
  assert.ok(
    !plan.steps.some((s) => s.command?.includes('proxmox-boot-tool')),
    'no proxmox-boot-tool on GRUB hosts',
  );
  assert.ok(
    !plan.steps.some((s) => s.write?.path === '/etc/default/grub'),
    'the user’s file is never edited',
  );
  assert.equal(plan.steps[0]?.write?.content.split('\n').at(1), 'kvmgt');
  assert.deepEqual(plan.steps.at(-1)?.disturbs, ['host-reboot']);
  assert.equal(plan.reboot, true);
  assert.deepEqual(plan.problems, []);

  // After apply the configuration is converged: only the reboot is left to do.
  const again = planHost(applied(before, plan));
  assert.deepEqual(ids(again), ['reboot']);
});

test('converged hosts plan only the kernel guard, then nothing, and need no reboot', async () => {
  for (const name of ['i5-8500t-gvt', 'i7-6700k-sdboot', 'i5-10500-cometlake', 'i5-8500t-mismatch']) {
    const before = await facts(fixturePath(name));
    const plan = planHost(before);
    // These hosts were set up before the guard existed: it is all they lack.
    assert.deepEqual(ids(plan), GUARD, name);
    assert.equal(plan.reboot, false, name);
    assert.deepEqual(planHost(applied(before, plan)).steps, [], name);
  }
  // A host that has GVT-g working but lacks one of our parameters gets just that one.
  const broadwell = planHost(await facts(fixturePath('i7-5775c-broadwell')));
  assert.deepEqual(broadwell.params.add, ['iommu=pt']);
  assert.deepEqual(broadwell.params.present, ['intel_iommu=on', 'i915.enable_gvt=1']);
});

test('stale module names in /etc/modules are reported, not removed', async () => {
  const plan = planHost(await facts(fixturePath('i5-10500-cometlake')));
  assert.deepEqual(
    plan.staleModules.map((s) => `${s.path}:${s.line} ${s.name}`),
    ['/etc/modules:10 vfio_virqfd'],
  );
  assert.ok(!plan.steps.some((s) => s.write?.path === '/etc/modules'));
});

test('systemd-boot: the one line of /etc/kernel/cmdline is extended, then proxmox-boot-tool refresh', async () => {
  const before = await withTree('i7-6700k-sdboot', (tree) =>
    writeFile(join(tree, 'etc/kernel/cmdline'), 'root=ZFS=rpool/ROOT/pve-1 boot=zfs\n'),
  );
  const plan = planHost(before);
  assert.deepEqual(ids(plan), ['kernel-cmdline', 'proxmox-boot-tool-refresh', ...GUARD]);
  assert.equal(
    plan.steps[0]?.write?.content,
    'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on iommu=pt i915.enable_gvt=1\n',
  );
  assert.equal(plan.steps[1]?.command, 'proxmox-boot-tool refresh');
  assert.ok(!plan.steps.some((s) => s.command === 'update-grub'));
  assert.equal(plan.reboot, false, 'the running kernel already has them');
  assert.deepEqual(ids(planHost(applied(before, plan))), []);
});

test('a user value that disagrees is planned as an override that needs --force', async () => {
  const plan = planHost(await facts(fixturePath('i9-9900k-guc')));
  assert.deepEqual(plan.params.conflicts, [{ have: 'i915.enable_guc=3', want: 'i915.enable_guc=0' }]);
  const dropin = plan.steps.find((s) => s.write?.path === GRUB_DROPIN);
  assert.equal(dropin?.needsForce, true);
  assert.match(dropin?.description ?? '', /override the user's i915\.enable_guc=3 with i915\.enable_guc=0/);
});

test('passthrough hosts get the vfio modules; an SR-IOV host without a driver package and no-iGPU hosts are not planned', async () => {
  const tiger = planHost(await facts(fixturePath('i5-1135g7-tigerlake')));
  assert.equal(tiger.mode, 'passthrough');
  assert.deepEqual(ids(tiger), ['modules-load', 'modprobe', 'update-initramfs', ...GUARD, 'reboot']);
  assert.match(tiger.steps[0]?.write?.content ?? '', /^vfio\nvfio_iommu_type1\nvfio_pci\n$/m);
  assert.match(tiger.steps[1]?.write?.content ?? '', /^options vfio-pci ids=8086:9a49$/m);
  assert.match(tiger.steps[1]?.write?.content ?? '', /^softdep i915 pre: vfio-pci$/m);
  assert.equal(tiger.steps[2]?.command, 'update-initramfs -u -k all');
  assert.match(tiger.steps.at(-1)?.description ?? '', /0000:00:02\.0 on vfio-pci/);
  const n100 = planHost(await facts(fixturePath('n100-before')));
  assert.match(n100.unsupported ?? '', /the lab names no package: set sriov\.hostDriver/);
  assert.deepEqual(n100.steps, []);
  assert.match(planHost(await facts(fixturePath('ryzen-5600g-amd'))).unsupported ?? '', /nothing to share/);
});

test('pcie_acs_override only when asked for', async () => {
  const before = await facts(fixturePath('i5-8500t-before'));
  assert.ok(!JSON.stringify(planHost(before)).includes('pcie_acs_override'));
  assert.match(
    planHost(before, { acsOverride: true }).steps[1]?.diff ?? '',
    /pcie_acs_override=downstream,multifunction/,
  );
});

test('a later drop-in that resets the command line is named as a problem', async () => {
  const before = await withTree('i5-8500t-before', async (tree) => {
    await mkdir(join(tree, 'etc/default/grub.d'), { recursive: true });
    await writeFile(
      join(tree, 'etc/default/grub.d/zz-serial.cfg'),
      'GRUB_CMDLINE_LINUX_DEFAULT="console=ttyS0"\n',
    );
  });
  const plan = planHost(before);
  assert.match(
    plan.problems.join('\n'),
    /zz-serial\.cfg sets the kernel command line again after .*igpu-split\.cfg/,
  );
});

test('the host layer object runs the same gather, plan and verify', async () => {
  const host = await new CapturedRoot(fixturePath('i5-8500t-before')).open();
  const layer = hostLayer(host);
  const facts = await layer.gather();
  assert.deepEqual(layer.plan(facts), planHost(facts));
  const checks = await layer.verify();
  assert.equal(checks.find((c) => c.id === 'gvt.enabled')?.status, 'fail');
  assert.equal(
    checks.find((c) => c.id === 'host.cmdline'),
    undefined,
    'nothing applied yet, nothing of ours to look for',
  );
});
