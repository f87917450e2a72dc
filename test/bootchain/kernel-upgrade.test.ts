// What Debian's real dkms does when a new kernel package is configured on a host with an
// i915-sriov-dkms release (the stand-in i915 of test/support/dkms-module.ts), in a bookworm
// root (Proxmox VE 8's base, dkms 3.0.10) and a trixie root (Proxmox VE 9's, dkms 3.2.2): the
// fake Proxmox kernel of test/support/fake-kernel.ts installed with dpkg -i, whose postinst runs
// /etc/kernel/postinst.d through `run-parts --verbose --exit-on-error` as Proxmox's does. These
// are the facts the kernel-upgrade guard (issue 17) relies on; a changed dkms fails here first.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { DKMS_PACKAGE } from '../../src/knowledge/i915-sriov-dkms.ts';
import {
  bootchainAvailable,
  bootchainHost,
  grubDefaultKernel,
  SUITES,
  type Suite,
} from '../support/bootchain.ts';
import { ChrootHost } from '../support/chroot-host.ts';
import { addRelease, literal, removeRelease, standInRelease, type Variant } from '../support/dkms-module.ts';
import {
  dpkgStatus,
  fakeKernelVersion,
  hooksRun,
  installFakeKernel,
  kernelPackage,
  postinstHooks,
  realKernel,
} from '../support/fake-kernel.ts';

interface Outcome {
  /** dpkg -i's exit code. */
  dpkg: number;
  /** The dkms hook's exit code, as run-parts reports it (0: it reported none). */
  hook: number;
  /** dpkg's status of the kernel package afterwards. */
  status: string;
  /** The hooks run-parts ran, in order. */
  ran: string[];
  /** Whether dkms left i915.ko* in /lib/modules/<kver>/updates/dkms. */
  built: boolean;
  /** What dkms said about the module or the kernel. */
  says: RegExp;
}

const ALL_HOOKS = ['dkms', 'initramfs-tools', 'zz-proxmox-boot', 'zz-systemd-boot', 'zz-update-grub'];

type Scenario = `${Variant}` | 'no-headers';

// Read from the runs of 2026-12-01 (bookworm: dkms 3.0.10-8+deb12u1; trixie: dkms 3.2.2-1~deb13u1).
const EXPECTED: Record<Suite, { dkms: string; outcomes: Record<Scenario, Outcome> }> = {
  bookworm: {
    dkms: 'dkms-3.0.10',
    outcomes: {
      // 3.0.10 counts a BUILD_EXCLUSIVE skip as an autoinstall failure: exit 11 stops run-parts
      // after dkms, so the kernel stays half-configured, without initramfs or grub entry.
      skips: {
        dpkg: 1,
        hook: 11,
        status: 'half-configured',
        ran: ['dkms'],
        built: false,
        says: /includes a BUILD_EXCLUSIVE directive which does not match this kernel/,
      },
      fails: {
        dpkg: 1,
        hook: 11,
        status: 'half-configured',
        ran: ['dkms'],
        built: false,
        says: /Error! Bad return status for module build on kernel: \S+-pve/,
      },
      builds: { dpkg: 0, hook: 0, status: 'installed', ran: ALL_HOOKS, built: true, says: /depmod/ },
      'no-headers': {
        dpkg: 0,
        hook: 0,
        status: 'installed',
        ran: ALL_HOOKS,
        built: false,
        says: /dkms: autoinstall for kernel \S+ was skipped since the kernel headers for this kernel do not seem to be installed\./,
      },
    },
  },
  trixie: {
    dkms: 'dkms-3.2.2',
    outcomes: {
      // 3.2.2 counts the skip as success: the kernel installs and boots next without the module.
      skips: {
        dpkg: 0,
        hook: 0,
        status: 'installed',
        ran: ALL_HOOKS,
        built: false,
        says: /Autoinstall on \S+ was skipped for module\(s\) i915-sriov-dkms\./,
      },
      // A build failure: the hook exits 1 (not 11 as in 3.0.10).
      fails: {
        dpkg: 1,
        hook: 1,
        status: 'half-configured',
        ran: ['dkms'],
        built: false,
        says: /Autoinstall on \S+ failed for module\(s\) i915-sriov-dkms\(10\)\./,
      },
      builds: {
        dpkg: 0,
        hook: 0,
        status: 'installed',
        ran: ALL_HOOKS,
        built: true,
        says: /Autoinstall on \S+ succeeded for module\(s\) i915-sriov-dkms\./,
      },
      'no-headers': {
        dpkg: 0,
        hook: 0,
        status: 'installed',
        ran: ALL_HOOKS,
        built: false,
        says: /Automatic installation of modules for kernel \S+ was skipped since the kernel headers for this kernel do not seem to be installed\./,
      },
    },
  },
};

const SCENARIOS: { scenario: Scenario; variant: Variant; headers: boolean }[] = [
  { scenario: 'skips', variant: 'skips', headers: true },
  { scenario: 'fails', variant: 'fails', headers: true },
  { scenario: 'builds', variant: 'builds', headers: true },
  { scenario: 'no-headers', variant: 'builds', headers: false },
];

for (const suite of SUITES) {
  test(`${suite}: a new kernel meets i915-sriov-dkms through Debian's real dkms`, async (t) => {
    if (!bootchainAvailable(t)) return;
    const { root, stock, remove } = await bootchainHost(undefined, { suite });
    try {
      await copyFile(join(root, 'usr/share/grub/default/grub'), join(root, 'etc/default/grub'));
      const host = await new ChrootHost(root, { proc: true }).open();
      assert.equal((await host.run('update-grub')).code, 0);
      const real = await realKernel(root);
      const expected = EXPECTED[suite];

      await t.test(`dkms is ${expected.dkms}`, async () => {
        assert.equal((await host.run('dkms --version')).stdout.trim(), expected.dkms);
      });

      await t.test(
        'hook order: a hook named a-igpu-split-kernel-guard before dkms, z-igpu-split-kernel-guard after initramfs-tools and before the boot loaders',
        async () => {
          const kver = fakeKernelVersion(real);
          assert.deepEqual(await postinstHooks(host, kver), ALL_HOOKS);
          const names = ['a-igpu-split-kernel-guard', 'z-igpu-split-kernel-guard'];
          for (const name of names)
            await writeFile(join(root, 'etc/kernel/postinst.d', name), '#!/bin/sh\nexit 0\n', {
              mode: 0o755,
            });
          assert.deepEqual(await postinstHooks(host, kver), [
            'a-igpu-split-kernel-guard',
            'dkms',
            'initramfs-tools',
            'z-igpu-split-kernel-guard',
            ...ALL_HOOKS.slice(2),
          ]);
          for (const name of names) await rm(join(root, 'etc/kernel/postinst.d', name));
        },
      );

      for (const [index, { scenario, variant, headers }] of SCENARIOS.entries()) {
        const kver = fakeKernelVersion(real, 1, index + 1);
        const want = expected.outcomes[scenario];
        const { says, ...facts } = want;
        await t.test(
          `${scenario}: dpkg -i exits ${want.dpkg}, the kernel is ${want.status}, i915 ${want.built ? 'built' : 'not built'}`,
          async () => {
            const { release, brokenFor } = standInRelease(variant, real);
            await addRelease(host, release, brokenFor ? { brokenFor } : {});
            if (scenario === 'fails') {
              // The source compiles for the running kernel: only the new one breaks it.
              const build = await host.run(`dkms build -m ${DKMS_PACKAGE} -v ${release.release} -k ${real}`);
              assert.equal(build.code, 0, build.stdout + build.stderr);
            }
            const installed = await installFakeKernel(host, { kver, headers, stock });
            t.diagnostic(`${suite} ${scenario}: dpkg -i exit ${installed.code}`);
            const hook = /run-parts: \/etc\/kernel\/postinst\.d\/dkms exited with return code (\d+)/.exec(
              installed.output,
            );
            const updates = join(root, 'usr/lib/modules', kver, 'updates/dkms');
            const parm = await host.run(`modinfo -k ${kver} -F parm i915`);
            assert.deepEqual(
              {
                dpkg: installed.code,
                hook: Number(hook?.[1] ?? 0),
                status: await dpkgStatus(host, kernelPackage(kver)),
                ran: hooksRun(installed.output),
                built: existsSync(updates) && (await readdir(updates)).some((f) => /^i915\.ko/.test(f)),
              },
              facts,
              installed.output,
            );
            assert.match(installed.output, says);
            // modinfo finds the stand-in (with max_vfs) only where dkms installed it; the
            // kernel's own i915 has no max_vfs.
            assert.equal(/^max_vfs:/m.test(parm.stdout), want.built, parm.stdout);
            // What ran after dkms: an initramfs and a grub entry for the kernel, or neither.
            const bootReady = want.ran.includes('zz-update-grub');
            assert.equal(existsSync(join(root, `boot/initrd.img-${kver}`)), bootReady);
            const grub = await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
            assert.equal(new RegExp(`/boot/vmlinuz-${literal(kver)} `).test(grub), bootReady);
            if (want.dpkg !== 0) {
              assert.match(installed.output, /Failed to process \/etc\/kernel\/postinst\.d/);
              if (scenario === 'fails') {
                const log = await readFile(
                  join(root, 'var/lib/dkms', DKMS_PACKAGE, release.release, 'build/make.log'),
                  'utf8',
                );
                assert.match(log, /i915\.c:\d+:\d+: error: /, 'the build failed on the broken source');
              }
              // The half-configured kernel is still in /boot: the next update-grub anything runs
              // (a grub upgrade, apply, another kernel) makes it grub's default, with no initrd,
              // and no kernel hook (the guard included) has seen it. Retrying its configure
              // fails the same way.
              const later = await host.run('update-grub');
              assert.equal(later.code, 0, later.stderr);
              const cfg = await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
              assert.equal(grubDefaultKernel(cfg), kver);
              assert.doesNotMatch(cfg, new RegExp(`initrd\\s+/boot/initrd\\.img-${literal(kver)}`));
              const retry = await host.run('dpkg --configure -a');
              assert.equal(retry.code, 1);
              assert.equal(await dpkgStatus(host, kernelPackage(kver)), 'half-configured');
            }
            // Out again: the kernel, what its hooks made, the release.
            const purge = await host.run(`dpkg --purge ${kernelPackage(kver)}`);
            assert.equal(purge.code, 0, purge.stdout + purge.stderr);
            await removeRelease(host, release);
            await rm(join(root, 'usr/lib/modules', kver), { recursive: true, force: true });
            await rm(join(root, `boot/initrd.img-${kver}`), { force: true });
          },
        );
      }
    } finally {
      await remove();
    }
  });
}
