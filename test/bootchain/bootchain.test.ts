// Boot-chain tier: the tool's output consumed by the real grub-mkconfig (update-grub)
// and update-initramfs of a Debian bookworm root, through apply and rollback.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyHostPlan } from '../../src/host/apply.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { planHost } from '../../src/host/plan.ts';
import { rollbackHost } from '../../src/host/rollback.ts';
import { bootchainAvailable, bootchainHost, bootctlList, linuxLines } from '../support/bootchain.ts';
import { ChrootHost } from '../support/chroot-host.ts';
import { fixturePath } from '../support/fixtures.ts';

const grubCfg = async (root: string) => readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');

test('GRUB: update-grub writes our parameters after the user’s quiet; rollback takes them out again', async (t) => {
  if (!bootchainAvailable(t)) return;
  const { root, remove } = await bootchainHost(fixturePath('i5-8500t-before'));
  try {
    const host = await new ChrootHost(root).open();
    const plan = planHost(await gatherHostFacts(host));
    await applyHostPlan(host, plan);
    const normal = linuxLines(await grubCfg(root))[0] ?? '';
    assert.match(
      normal,
      /\/boot\/vmlinuz-\S+ root=\/dev\/sda1 ro\s+quiet intel_iommu=on iommu=pt i915\.enable_gvt=1$/,
    );

    const rolled = await rollbackHost(host);
    assert.deepEqual(rolled.refreshed, ['update-grub']);
    const after = linuxLines(await grubCfg(root))[0] ?? '';
    assert.match(after, /ro\s+quiet$/);
  } finally {
    await remove();
  }
});

test('passthrough: update-initramfs puts our vfio-pci binding into every initramfs; rollback removes it', async (t) => {
  if (!bootchainAvailable(t)) return;
  const { root, remove } = await bootchainHost(fixturePath('i5-1135g7-tigerlake'));
  try {
    // A GRUB host of the same hardware: no proxmox-boot-tool ESPs, the Debian GRUB defaults.
    await rm(join(root, 'etc/kernel/proxmox-boot-uuids'));
    await cp(fixturePath('i5-8500t-before/etc/default/grub'), join(root, 'etc/default/grub'));
    const host = await new ChrootHost(root).open();
    const plan = planHost(await gatherHostFacts(host));
    assert.equal(plan.mode, 'passthrough');
    await applyHostPlan(host, plan);
    const initrd = (await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8')).match(
      /initrd\s+(\/boot\/initrd\.img-\S+)/,
    )?.[1];
    assert.ok(initrd, 'grub.cfg names an initramfs');
    const listing = () => execFileSync('chroot', [root, 'lsinitramfs', initrd as string]).toString();
    assert.match(listing(), /^etc\/modprobe\.d\/igpu-split\.conf$/m);

    await rollbackHost(host);
    assert.doesNotMatch(listing(), /igpu-split\.conf/);
  } finally {
    await remove();
  }
});

test('systemd-boot: the ESP entries bootctl reads carry our parameters after the user’s; rollback restores them', async (t) => {
  if (!bootchainAvailable(t)) return;
  const { root, remove } = await bootchainHost(fixturePath('i7-6700k-sdboot'));
  try {
    await writeFile(join(root, 'etc/kernel/cmdline'), 'root=ZFS=rpool/ROOT/pve-1 boot=zfs quiet\n');
    const host = await new ChrootHost(root).open();
    await applyHostPlan(host, planHost(await gatherHostFacts(host)));
    assert.match(
      bootctlList(root),
      /options: root=ZFS=rpool\/ROOT\/pve-1 boot=zfs quiet intel_iommu=on iommu=pt i915\.enable_gvt=1\n/,
    );
    await rollbackHost(host);
    assert.match(bootctlList(root), /options: root=ZFS=rpool\/ROOT\/pve-1 boot=zfs quiet\n/);
  } finally {
    await remove();
  }
});
