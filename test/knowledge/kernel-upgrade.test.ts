// What the kernel guard takes from Proxmox's packaging, held against snapshots/kernel-upgrade.json
// (scripts/extract-kernel-upgrade-facts.ts: proxmox/pve-kernel's postinst and control,
// proxmox-kernel-helper's functions and proxmox-boot-tool at the commits its header names).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { test } from 'node:test';
import { releasePinCommands } from '../../src/host/guard/plan.ts';
import { PROXMOX_HEADERS_PREFIX } from '../../src/linux/kernel-guard/requirements.ts';
import {
  GUEST_PIN_DROPIN,
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_HOOK,
  kernelGuardScript,
} from '../../src/linux/kernel-guard/script.ts';
import { PATHS } from '../../src/linux/paths.ts';
import { postinst } from '../support/fake-kernel.ts';

interface KernelUpgradeFacts {
  kernelPostinst: { runParts: string; hookDir: string; depmodFirst: boolean };
  kernelPackages: { kernel: string; headers: string };
  pins: { pin: string; nextBootPin: string; grubSnippet: string; grubEntry: string };
  proxmoxBootToolKernel: { subcommands: string[]; nextBoot: boolean };
}

const facts = JSON.parse(
  readFileSync(new URL('../../snapshots/kernel-upgrade.json', import.meta.url), 'utf8'),
) as KernelUpgradeFacts;

test('the guard is two hooks in the folder the kernel postinst runs: before dkms, and between it and the boot loader hooks', () => {
  assert.equal(dirname(KERNEL_GUARD_HOOK), facts.kernelPostinst.hookDir);
  assert.equal(dirname(KERNEL_GUARD_AHEAD), facts.kernelPostinst.hookDir);
  assert.match(facts.kernelPostinst.runParts, /--exit-on-error/, 'a failing hook stops the configure step');
  // run-parts sorts names byte by byte (LC_ALL=C in the postinst's environment is not promised;
  // the boot-chain tier runs `run-parts --test` on the real folder): dkms < ours < the rest.
  const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);
  const order = [
    base(KERNEL_GUARD_AHEAD),
    'apt-auto-removal',
    'dkms',
    'initramfs-tools',
    'proxmox-auto-removal',
    base(KERNEL_GUARD_HOOK),
    'zz-proxmox-boot',
    'zz-update-grub',
  ];
  assert.deepEqual([...order].sort(), order);
  for (const path of [KERNEL_GUARD_AHEAD, KERNEL_GUARD_HOOK])
    assert.match(base(path), /^[A-Za-z0-9_-]+$/, 'run-parts skips names with other characters');
});

test('pins: the files proxmox-boot-tool keeps them in, and the commands that set and release them', () => {
  assert.equal(PATHS.kernelPin, facts.pins.pin);
  assert.equal(PATHS.kernelNextBootPin, facts.pins.nextBootPin);
  for (const sub of ['pin', 'unpin']) assert.ok(facts.proxmoxBootToolKernel.subcommands.includes(sub), sub);
  assert.ok(facts.proxmoxBootToolKernel.nextBoot);
  const record = (kind: 'persistent' | 'next-boot') => ({
    checkedKernel: '6.17.2-1-pve',
    checkedAt: '',
    verdict: 'breaks' as const,
    why: '',
    fix: '',
    action: 'pinned',
    boots: '6.14.8-2-pve',
    strict: false,
    pin: { kernel: '6.14.8-2-pve', kind, since: '' },
    kernels: {},
  });
  assert.deepEqual(
    releasePinCommands(record('persistent'), { pinned: '6.14.8-2-pve', nextBootPin: '6.8.12-4-pve' }),
    ['proxmox-boot-tool kernel unpin', 'proxmox-boot-tool kernel pin 6.8.12-4-pve --next-boot'],
    'unpin removes both files: someone else’s next-boot pin is set again',
  );
  assert.deepEqual(
    releasePinCommands(record('next-boot'), { pinned: undefined, nextBootPin: '6.14.8-2-pve' }),
    ['proxmox-boot-tool kernel unpin --next-boot'],
  );
  assert.deepEqual(
    releasePinCommands(record('persistent'), { pinned: '6.17.2-1-pve', nextBootPin: undefined }),
    [],
    'a pin someone changed since is theirs',
  );
});

test('a guest pins with the GRUB_DEFAULT entry proxmox-boot-tool writes, in a drop-in of its own', () => {
  // set_grub_default: "gnulinux-advanced-${root_devid}>gnulinux-${kver}-advanced-${root_devid}".
  const entry = facts.pins.grubEntry.replaceAll('${root_devid}', '$id').replace('${kver}', '$good');
  const script = kernelGuardScript({ mode: 'sriov', route: 'i915-sriov-dkms' }, 'ubuntu');
  assert.ok(script.includes(`entry="${entry}"`), `the guard writes ${entry}`);
  assert.equal(dirname(GUEST_PIN_DROPIN), dirname(facts.pins.grubSnippet));
  assert.notEqual(GUEST_PIN_DROPIN, facts.pins.grubSnippet, 'never the file proxmox-boot-tool owns');
});

test('the headers package the guard names is the one Proxmox builds for each kernel', () => {
  assert.equal(`${PROXMOX_HEADERS_PREFIX}@KVNAME@`, facts.kernelPackages.headers);
});

test('the boot-chain tier’s fake kernel runs its hooks with the call Proxmox’s kernel postinst makes', () => {
  const fake = /system\("(run-parts [^"]+)"\)/.exec(postinst('6.12.96-1-pve'))?.[1] ?? '';
  // The same command but for the variables' names ($version, $imagedir there; $kernel, $boot here).
  const words = (command: string) => command.replace(/\$\w+/g, '$').split(' ');
  assert.deepEqual(words(fake), words(facts.kernelPostinst.runParts));
  assert.ok(facts.kernelPostinst.depmodFirst);
  assert.match(postinst('6.12.96-1-pve'), /system\("depmod \$kernel"\);[\s\S]*run-parts/);
});
