// SR-IOV through the boot-chain tier: what an SR-IOV host gets (src/host/sriov/files.ts and
// route.ts) consumed by the root's real update-grub, update-initramfs, systemd-tmpfiles and
// dkms. Only the i915 build is a stand-in (test/support/dkms-module.ts): a module named i915
// with an i915-sriov-dkms dkms.conf whose BUILD_EXCLUSIVE_KERNEL is the real release's
// (src/knowledge/i915-sriov-dkms.ts).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, watch } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { applyHostPlan } from '../../src/host/apply.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { planHost } from '../../src/host/plan.ts';
import { rollbackHost } from '../../src/host/rollback.ts';
import { INITRAMFS_MODULES, SRIOV_TMPFILES } from '../../src/host/sriov/files.ts';
import { chooseRoute, kernelKeepsSplit, routeParams } from '../../src/host/sriov/route.ts';
import {
  buildsFor,
  DKMS_PACKAGE,
  DKMS_RELEASES,
  type DkmsRelease,
} from '../../src/knowledge/i915-sriov-dkms.ts';
import { IGPU_PLATFORMS } from '../../src/knowledge/igpu-platforms.ts';
import { bootchainAvailable, bootchainHost, linuxLines } from '../support/bootchain.ts';
import { ChrootHost } from '../support/chroot-host.ts';
import { addRelease, literal, MODULE_C, removeRelease } from '../support/dkms-module.ts';
import { fixturePath } from '../support/fixtures.ts';

const PF = '0000:00:02.0';
const VFS = 7;
const pfDir = (root: string) => join(root, 'sys/bus/pci/devices', PF);
// Alder Lake-N (the N100 of the fixture): the i915-sriov-dkms route.
const ROUTE = chooseRoute(IGPU_PLATFORMS['alderlake-n'], 'auto');
if ('refused' in ROUTE) throw new Error(`alderlake-n: ${ROUTE.refused}`);
const CHOICE = ROUTE;

/**
 * The N100 fixture as it is before the split: no VFs yet (sriov_numvfs 0, autoprobe 1, as
 * the kernel starts a PF), Debian's default `quiet` command line.
 */
async function n100Before(root: string): Promise<void> {
  const devices = join(root, 'sys/bus/pci/devices');
  for (const name of await readdir(devices))
    if (name.startsWith('0000:00:02.') && name !== PF) await rm(join(devices, name), { recursive: true });
  await writeFile(join(pfDir(root), 'sriov_numvfs'), '0\n');
  await writeFile(join(pfDir(root), 'sriov_drivers_autoprobe'), '1\n');
  await cp(fixturePath('i5-8500t-before/etc/default/grub'), join(root, 'etc/default/grub'));
  await withoutCapturedKernel(root);
}

/**
 * The root's real kernel stands in for the capture's: its placeholder module folder goes
 * (update-initramfs -k all would try to build an initramfs for it).
 */
async function withoutCapturedKernel(root: string): Promise<void> {
  await rm(join(root, 'usr/lib/modules/6.8.12-4-pve'), { recursive: true, force: true });
}

/**
 * The host plan for the N100 with its driver already installed (the fixture's
 * i915-sriov-dkms 2025.07.22, built for the root's kernel: a placeholder module, the dkms
 * build itself is the next test's), applied; rollback undoes it. No package is installed,
 * so nothing leaves this machine.
 */
async function applySriov(host: ChrootHost): Promise<{ rollback: () => Promise<void> }> {
  const root = host.root;
  const status = join(root, 'var/lib/dpkg/status');
  await writeFile(
    status,
    `${await readFile(status, 'utf8')}\n${['build-essential', 'proxmox-default-headers']
      .map((name) => `Package: ${name}\nStatus: install ok installed\nVersion: 1\n`)
      .join('\n')}`,
  );
  for (const kernel of await readdir(join(root, 'lib/modules'))) {
    await mkdir(join(root, 'lib/modules', kernel, 'updates/dkms'), { recursive: true });
    await writeFile(join(root, 'lib/modules', kernel, 'updates/dkms/i915.ko'), '');
  }
  const plan = planHost(await gatherHostFacts(host), { wishes: { mode: 'auto', vfs: VFS, vmsOnHost: VFS } });
  assert.equal(plan.refused, undefined, `planHost refused the N100: ${plan.refused}`);
  assert.equal(plan.mode, 'sriov');
  assert.ok(!plan.steps.some((s) => s.install), 'the driver is installed already');
  await applyHostPlan(host, plan);
  return { rollback: async () => void (await rollbackHost(host)) };
}

const grubCfg = (root: string) => readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
const initrdOf = (cfg: string) => /initrd\s+(\/boot\/initrd\.img-\S+)/.exec(cfg)?.[1];

test('SR-IOV host files through the real update-grub, update-initramfs and systemd-tmpfiles; rollback', async (t) => {
  if (!bootchainAvailable(t)) return;
  const { root, remove } = await bootchainHost(fixturePath('n100-sriov'));
  try {
    await n100Before(root);
    const host = await new ChrootHost(root).open();
    const started = Date.now();
    const { rollback } = await applySriov(host);
    t.diagnostic(`plan+apply: ${Date.now() - started} ms`);
    const params = literal(routeParams(CHOICE, VFS, '46d1').join(' '));

    await t.test(
      'update-grub: every linux line carries the SR-IOV parameters after the user’s quiet',
      async () => {
        const lines = linuxLines(await grubCfg(root));
        assert.ok(lines.length > 0, 'grub.cfg has linux lines');
        const normal = lines[0] ?? '';
        assert.match(normal, new RegExp(`/boot/vmlinuz-\\S+ root=/dev/sda1 ro\\s+quiet ${params}$`));
      },
    );

    await t.test(
      'update-initramfs: the softdep, vfio-pci and the listed i915 are in the initramfs',
      async () => {
        const initrd = initrdOf(await grubCfg(root));
        assert.ok(initrd, 'grub.cfg names an initramfs');
        const kernel = (initrd as string).replace('/boot/initrd.img-', '');
        const listing = execFileSync('chroot', [root, 'lsinitramfs', initrd as string]).toString();
        assert.match(listing, /^etc\/modprobe\.d\/igpu-split\.conf$/m);
        const module = (path: string) =>
          new RegExp(
            `^(usr/)?lib/modules/${literal(kernel)}/kernel/${literal(path)}\\.ko(\\.xz|\\.zst)?$`,
            'm',
          );
        assert.match(listing, module('drivers/vfio/pci/vfio-pci'));
        assert.match(listing, module('drivers/gpu/drm/i915/i915'));
        // The file inside is ours, with the softdep.
        const unpacked = await mkdtemp(join(root, 'tmp/initrd-'));
        execFileSync('chroot', [root, 'unmkinitramfs', initrd as string, unpacked.slice(root.length)]);
        const inside = await readFile(join(unpacked, 'etc/modprobe.d/igpu-split.conf'), 'utf8');
        assert.match(inside, /^softdep i915 pre: vfio-pci$/m);
        // The initramfs's init loads what conf/modules (our /etc/initramfs-tools/modules) lists.
        assert.match(await readFile(join(unpacked, 'conf/modules'), 'utf8'), /^i915\s*$/m);
      },
    );

    await t.test(
      'systemd-tmpfiles (the boot service’s command) writes autoprobe 0, then numvfs',
      async () => {
        const order: string[] = [];
        // inotify keeps the order of the writes (node's fs.watch on Linux).
        const watcher = watch(pfDir(root), (_event, name) => {
          if (name && order.at(-1) !== name) order.push(name);
        });
        // With /proc, as at boot (systemd-tmpfiles refuses to run without it).
        const result = await new ChrootHost(root, { proc: true }).run(
          `systemd-tmpfiles --create ${SRIOV_TMPFILES}`,
        );
        await new Promise((resolve) => setTimeout(resolve, 200));
        watcher.close();
        assert.equal(result.code, 0, result.stderr);
        // tmpfiles writes the argument without truncating or a newline: on these plain files
        // one digit replaces one digit (sysfs takes the whole write).
        assert.equal((await readFile(join(pfDir(root), 'sriov_drivers_autoprobe'), 'utf8')).trim(), '0');
        assert.equal((await readFile(join(pfDir(root), 'sriov_numvfs'), 'utf8')).trim(), String(VFS));
        assert.deepEqual(order, ['sriov_drivers_autoprobe', 'sriov_numvfs']);
      },
    );

    await t.test('rollback: the parameters and the initramfs files are gone again', async () => {
      await rollback();
      const cfg = await grubCfg(root);
      assert.match(linuxLines(cfg)[0] ?? '', /ro\s+quiet$/);
      const listing = execFileSync('chroot', [root, 'lsinitramfs', initrdOf(cfg) as string]).toString();
      assert.doesNotMatch(listing, /igpu-split\.conf/);
      // Neither module is in the stock initramfs (MODULES=most): so vfio-pci came in only
      // through our softdep (mkinitramfs's manual_add_modules runs modprobe --show-depends
      // once more without --ignore-install to follow softdeps: pexip/os-initramfs-tools
      // hook-functions @ 6a8f96b), and i915 only through our modules line.
      assert.doesNotMatch(listing, /\/vfio-pci\.ko/);
      assert.doesNotMatch(listing, /\/i915\.ko/);
      assert.doesNotMatch(await readFile(join(root, INITRAMFS_MODULES), 'utf8'), /igpu-split/);
    });
  } finally {
    await remove();
  }
});

/** The tool's judgement of the kernel, from its real gather of the root. */
async function judge(host: ChrootHost, kernel: string, release: DkmsRelease) {
  const facts = await gatherHostFacts(host);
  assert.deepEqual(
    facts.sriovDriver.dkmsSources,
    [{ release: release.release, buildExclusiveKernel: release.buildExclusiveKernel }],
    'gather reads the release and its range from /usr/src',
  );
  return {
    verdict: kernelKeepsSplit(facts, CHOICE, kernel, facts.sriovDriver.dkmsSources[0], { built: true }),
    built: facts.sriovDriver.dkmsModules[kernel] ?? [],
  };
}

const oneLine = (r: { code: number; stdout: string; stderr: string }) =>
  `exit ${r.code}: ${(r.stdout + r.stderr).trim().split('\n').slice(-3).join(' | ')}`;

test('real dkms on the stand-in i915: a release outside the kernel range, one inside it, one that fails to build', async (t) => {
  if (!bootchainAvailable(t)) return;
  const { root, remove } = await bootchainHost(fixturePath('n100-sriov'));
  try {
    // Only the real dkms's own releases: not the capture's installed one, nor its kernel.
    await withoutCapturedKernel(root);
    for (const entry of await readdir(join(root, 'usr/src')))
      if (entry.startsWith(`${DKMS_PACKAGE}-`)) await rm(join(root, 'usr/src', entry), { recursive: true });
    const host = await new ChrootHost(root, { proc: true }).open();
    const [kernel = ''] = await readdir(join(root, 'lib/modules'));
    // From the table: the newest release whose range holds the root's kernel, and the newest that excludes it.
    const inside = DKMS_RELEASES.findLast((r) => buildsFor(r.buildExclusiveKernel, kernel));
    const outside = DKMS_RELEASES.findLast((r) => !buildsFor(r.buildExclusiveKernel, kernel));
    assert.ok(inside && outside, `the table has releases on both sides of ${kernel}`);

    await t.test(
      `(a) ${outside.release} (${outside.buildExclusiveKernel}) is skipped for ${kernel}`,
      async () => {
        const module = await addRelease(host, outside);
        const install = await host.run(`dkms install ${module} -k ${kernel}`);
        // What the kernel's postinst hook runs (/etc/kernel/postinst.d/dkms) and the plain autoinstall.
        const hook = await host.run(`/usr/lib/dkms/dkms_autoinstaller start ${kernel}`);
        const autoinstall = await host.run(`dkms autoinstall -k ${kernel}`);
        t.diagnostic(`dkms install ${oneLine(install)}`);
        t.diagnostic(`dkms_autoinstaller start ${oneLine(hook)}`);
        t.diagnostic(`dkms autoinstall ${oneLine(autoinstall)}`);
        assert.match(install.stdout + install.stderr, /BUILD_EXCLUSIVE/);
        // What Debian 12's dkms 3.0.10 does with a release it skips (issue 17 reads these): dkms
        // install exits 77; autoinstall, and so the kernel's postinst hook, exits 11.
        assert.deepEqual([install.code, hook.code, autoinstall.code], [77, 11, 11]);
        const { verdict, built } = await judge(host, kernel, outside);
        assert.deepEqual(built, []);
        assert.ok(!verdict.ok);
        assert.match(verdict.why, new RegExp(`builds only for kernels .*, not ${literal(kernel)}`));
        assert.match(verdict.fix, /use a release whose range holds/);
        await removeRelease(host, outside);
      },
    );

    await t.test(
      `(b) ${inside.release} (${inside.buildExclusiveKernel}) builds i915 for ${kernel}`,
      async () => {
        const module = await addRelease(host, inside);
        const install = await host.run(`dkms install ${module} -k ${kernel}`);
        t.diagnostic(`dkms install ${oneLine(install)}`);
        assert.equal(install.code, 0, install.stdout + install.stderr);
        const { verdict, built } = await judge(host, kernel, inside);
        assert.ok(
          built.some((f) => /^i915\.ko/.test(f)),
          `updates/dkms holds ${built.join(', ')}`,
        );
        assert.deepEqual(verdict, {
          ok: true,
          evidence: `i915-sriov-dkms ${inside.release} built for ${kernel}`,
        });
        await removeRelease(host, inside);
        // dkms remove takes its i915.ko out again, so (c) starts with none.
        const updates = join(root, 'lib/modules', kernel, 'updates/dkms');
        assert.deepEqual(existsSync(updates) ? await readdir(updates) : [], []);
      },
    );

    await t.test(
      `(c) ${inside.release} whose source does not compile fails, and the tool says so`,
      async () => {
        const module = await addRelease(host, inside, { source: `${MODULE_C}\nthis is not C;\n` });
        const install = await host.run(`dkms install ${module} -k ${kernel}`);
        t.diagnostic(`dkms install ${oneLine(install)}`);
        assert.notEqual(install.code, 0);
        const { verdict, built } = await judge(host, kernel, inside);
        assert.deepEqual(built, []);
        assert.ok(!verdict.ok);
        assert.match(verdict.why, /dkms has not installed i915 for kernel/);
        assert.match(verdict.fix, new RegExp(`dkms autoinstall -k ${literal(kernel)}`));
      },
    );
  } finally {
    await remove();
  }
});
