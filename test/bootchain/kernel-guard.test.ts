// The kernel guard (src/linux/kernel-guard/) under a real kernel upgrade: installed in the bookworm
// and trixie roots as the host plan writes it (guardSteps: its settings and its two hooks), then the
// fake Proxmox kernel (test/support/fake-kernel.ts) installed with dpkg -i meets each stand-in
// i915-sriov-dkms release (test/support/dkms-module.ts). Its postinst runs the real hooks through
// run-parts: the guard's hook ahead, Debian's dkms, initramfs-tools, the guard's check, the proxmox-boot-tool stand-in's
// zz-proxmox-boot and the real zz-update-grub; what boots next is read from the real grub.cfg
// and the real bootctl. Also: shellcheck on every rendered guard.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import type { HostFacts } from '../../src/host/facts.ts';
import { guardSteps } from '../../src/host/guard/plan.ts';
import { DKMS_PACKAGE } from '../../src/knowledge/i915-sriov-dkms.ts';
import { type GuardSpec, shortfall, splitRequirements } from '../../src/linux/kernel-guard/requirements.ts';
import {
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_HOOK,
  KERNEL_GUARD_STATE,
  kernelGuardScript,
} from '../../src/linux/kernel-guard/script.ts';
import { NO_GUARD_FACTS, parseGuardRecord } from '../../src/linux/kernel-guard/state.ts';
import {
  bootchainAvailable,
  bootchainHost,
  bootctlDefault,
  bootctlList,
  grubDefaultKernel,
  SUITES,
} from '../support/bootchain.ts';
import {
  addRelease,
  literal,
  removeRelease,
  type StandInRelease,
  standInRelease,
  type Variant,
} from '../support/dkms-module.ts';
import {
  dpkgStatus,
  fakeKernelVersion,
  grubHost,
  hooksRun,
  installFakeKernel,
  kernelPackage,
  postinstHooks,
} from '../support/fake-kernel.ts';
import { shellcheck, shellcheckAvailable } from '../support/shellcheck.ts';

// What an N100 host on the i915-sriov-dkms route gets (src/host/sriov/route.ts routeGuardSpec).
const SPEC: GuardSpec = { mode: 'sriov', route: 'i915-sriov-dkms' };
const AHEAD = 'a-igpu-split-kernel-guard';
const GUARD = 'z-igpu-split-kernel-guard';
const HOOKS = [
  AHEAD,
  'dkms',
  'initramfs-tools',
  GUARD,
  'zz-proxmox-boot',
  'zz-systemd-boot',
  'zz-update-grub',
];

/**
 * The guard's files as the host plan writes them: guardSteps' write steps (path, content,
 * mode), on a host that has neither yet.
 */
async function installGuard(root: string, strict: boolean): Promise<void> {
  const facts = {
    target: 'bootchain',
    kernelGuard: { ...NO_GUARD_FACTS, readAt: '' },
  } as unknown as HostFacts;
  const steps = guardSteps(facts, SPEC, { strict, maxPinDays: 30 });
  assert.deepEqual(
    steps.map((s) => s.write?.path),
    ['/etc/igpu-split/kernel-guard.conf', KERNEL_GUARD_HOOK, KERNEL_GUARD_AHEAD],
  );
  for (const step of steps) {
    const write = step.write;
    if (!write) continue;
    await mkdir(dirname(join(root, write.path)), { recursive: true });
    await writeFile(join(root, write.path), write.content);
    await chmod(join(root, write.path), write.mode ?? 0o644);
  }
}

/** What a hook printed (the guard's check by default): the lines between run-parts starting it and the next hook. */
function guardOutput(output: string, hook = GUARD): string | undefined {
  const start = output.indexOf(`run-parts: executing /etc/kernel/postinst.d/${hook} `);
  if (start < 0) return undefined;
  const body = output.slice(output.indexOf('\n', start) + 1);
  const end = body.search(/^run-parts: /m);
  return end < 0 ? body : body.slice(0, end);
}

/** The guard's words for a requirement missed (requirements.ts: the text plan and doctor use too). */
function why(kind: string, values: { kernel: string; release: string; range: string }): string {
  const req = splitRequirements(SPEC).find((r) => r.kind === kind);
  assert.ok(req, kind);
  return shortfall(req, { ...values, platform: 'proxmox' }).why;
}

interface Upgrade {
  dpkg: number;
  output: string;
  ran: string[];
  said: string | undefined;
  /** What the hook before dkms printed. */
  aheadSaid: string | undefined;
  status: string;
  record: ReturnType<typeof parseGuardRecord>;
  grubDefault: string | undefined;
}

for (const suite of SUITES) {
  test(`${suite}: the kernel guard under a real kernel upgrade, dkms and update-grub`, async (t) => {
    if (!bootchainAvailable(t)) return;
    const { root, stock, remove } = await bootchainHost(undefined, { suite });
    try {
      const { host, run, real } = await grubHost(root);
      const grubDefault = async () =>
        grubDefaultKernel(await readFile(join(root, 'boot/grub/grub.cfg'), 'utf8'));
      let abi = 0;

      /** The host's running kernel keeps the split: the release installed and built for it. */
      const withRelease = async (variant: Variant) => {
        const { release, brokenFor } = standInRelease(variant, real);
        const module = await addRelease(host, release, brokenFor ? { brokenFor } : {});
        await run(`dkms install ${module} -k ${real}`);
        return release;
      };
      const upgrade = async (kver: string, headers: boolean): Promise<Upgrade> => {
        const installed = await installFakeKernel(host, { kver, headers, stock });
        return {
          dpkg: installed.code,
          output: installed.output,
          ran: hooksRun(installed.output),
          said: guardOutput(installed.output),
          aheadSaid: guardOutput(installed.output, AHEAD),
          status: await dpkgStatus(host, kernelPackage(kver)),
          record: parseGuardRecord(
            (await readFile(join(root, KERNEL_GUARD_STATE), 'utf8').catch(() => '')) || '',
          ),
          grubDefault: await grubDefault(),
        };
      };
      /** Back to the host before the upgrade: no kernel of ours, no pin, no record. */
      const undo = async (kver: string, release?: StandInRelease) => {
        await run(`dpkg --purge ${kernelPackage(kver)}`);
        await rm(join(root, 'usr/lib/modules', kver), { recursive: true, force: true });
        await rm(join(root, `boot/initrd.img-${kver}`), { force: true });
        await rm(join(root, KERNEL_GUARD_STATE), { force: true });
        await rm(join(root, 'etc/kernel/proxmox-boot-uuids'), { force: true });
        await run('proxmox-boot-tool kernel unpin');
        if (release) await removeRelease(host, release);
      };
      const next = () => fakeKernelVersion(real, 1, ++abi);
      /**
       * The dkms hook stopped run-parts after the guard's hook before it and before its check:
       * the kernel is half-configured, and the pin set ahead keeps the running kernel the
       * default, also when update-grub runs again later (without the pin, the half-configured
       * kernel, with no initramfs, became grub's default then).
       */
      const heldAhead = async (up: Upgrade, kver: string) => {
        assert.deepEqual([up.dpkg, up.status, up.ran], [1, 'half-configured', [AHEAD, 'dkms']], up.output);
        assert.equal(up.aheadSaid, '');
        assert.equal(up.said, undefined, 'the check never ran');
        assert.deepEqual(
          [up.record?.verdict, up.record?.action, up.record?.pin?.kernel, up.record?.checkedKernel],
          ['pending', 'pinned-ahead', real, kver],
        );
        assert.equal((await readFile(join(root, 'etc/kernel/proxmox-boot-pin'), 'utf8')).trim(), real);
        assert.equal(up.grubDefault, real);
        assert.ok(!existsSync(join(root, `boot/initrd.img-${kver}`)), 'no initramfs was built for it');
        await run('update-grub');
        assert.equal(await grubDefault(), real, 'a later update-grub keeps the pinned kernel the default');
      };

      await installGuard(root, false);

      await t.test(
        'run-parts runs the guard ahead of dkms, and its check after initramfs-tools, before the boot loaders',
        async () => {
          assert.deepEqual(await postinstHooks(host, fakeKernelVersion(real)), HOOKS);
        },
      );

      await t.test(
        suite === 'bookworm'
          ? 'skipped build: dkms 3.0.10 fails its hook before the check runs; the pin set ahead keeps the running kernel the default, through later update-grub runs too'
          : 'skipped build: the guard pins the running kernel, and update-grub makes it the default',
        async () => {
          const release = await withRelease('skips');
          const kver = next();
          const up = await upgrade(kver, true);
          if (suite === 'bookworm') {
            await heldAhead(up, kver);
          } else {
            assert.deepEqual([up.dpkg, up.status, up.ran], [0, 'installed', HOOKS], up.output);
            const reason = why('dkms-range', {
              kernel: kver,
              release: release.release,
              range: release.buildExclusiveKernel,
            });
            assert.match(
              up.said ?? '',
              new RegExp(`kernel ${literal(kver)} would boot WITHOUT the GPU split: ${literal(reason)}`),
            );
            assert.match(
              up.said ?? '',
              new RegExp(
                `This machine keeps booting kernel ${literal(real)} \\(pinned by the igpu-split kernel guard\\)`,
              ),
            );
            assert.equal((await readFile(join(root, 'etc/kernel/proxmox-boot-pin'), 'utf8')).trim(), real);
            assert.deepEqual(
              [
                up.record?.verdict,
                up.record?.action,
                up.record?.boots,
                up.record?.pin?.kernel,
                up.record?.pin?.kind,
              ],
              ['breaks', 'pinned', real, real, 'persistent'],
            );
            assert.deepEqual(up.record?.kernels, { [real]: 'keeps', [kver]: 'breaks' });
            // The real zz-update-grub ran after the guard, and the pin holds in its grub.cfg.
            assert.equal(up.grubDefault, real);
          }
          await undo(kver, release);
        },
      );

      await t.test(
        'failed build: the dkms hook stops run-parts before the check; the pin set ahead keeps the old default, through later update-grub runs too',
        async () => {
          const release = await withRelease('fails');
          const kver = next();
          await heldAhead(await upgrade(kver, true), kver);
          await undo(kver, release);
        },
      );

      // The rest use the release that builds for both kernels.
      const release = await withRelease('builds');

      await t.test(
        'a kernel the module builds for: no pin, the guard says nothing, the new kernel boots',
        async () => {
          const kver = next();
          const up = await upgrade(kver, true);
          assert.deepEqual([up.dpkg, up.status, up.ran], [0, 'installed', HOOKS], up.output);
          assert.equal(up.aheadSaid, '', 'the pin ahead is quiet');
          assert.equal(
            up.said,
            `igpu-split kernel guard: kernel ${kver} keeps the GPU split: released the guard's pin\n`,
          );
          assert.deepEqual(
            [up.record?.verdict, up.record?.action, up.record?.boots, up.record?.pin],
            ['keeps', 'unpinned', kver, undefined],
          );
          assert.ok(!existsSync(join(root, 'etc/kernel/proxmox-boot-pin')));
          assert.equal(up.grubDefault, kver);
          await undo(kver);
        },
      );

      await t.test(
        'no headers for the new kernel: dkms skips it, the guard pins the running kernel',
        async () => {
          const kver = next();
          const up = await upgrade(kver, false);
          assert.deepEqual([up.dpkg, up.status, up.ran], [0, 'installed', HOOKS], up.output);
          const reason = why('headers', { kernel: kver, release: '', range: '' });
          assert.match(up.said ?? '', new RegExp(literal(reason)));
          assert.match(up.said ?? '', new RegExp(`fix: apt-get install proxmox-headers-${literal(kver)}`));
          assert.deepEqual([up.record?.action, up.record?.pin?.kernel], ['pinned', real]);
          assert.equal((await readFile(join(root, 'etc/kernel/proxmox-boot-pin'), 'utf8')).trim(), real);
          assert.equal(up.grubDefault, real);
          await undo(kver);
        },
      );

      await t.test(
        'ESP host: the pin the guard set is what zz-proxmox-boot writes to loader.conf; bootctl boots it',
        async () => {
          await writeFile(join(root, 'etc/kernel/proxmox-boot-uuids'), '5C1E-2F7A\n');
          await writeFile(join(root, 'etc/kernel/cmdline'), 'root=/dev/sda1 ro quiet\n');
          const kver = next();
          const up = await upgrade(kver, false);
          assert.deepEqual([up.dpkg, up.status, up.ran], [0, 'installed', HOOKS], up.output);
          assert.match(
            up.said ?? '',
            new RegExp(
              `This machine keeps booting kernel ${literal(real)} \\(pinned by the igpu-split kernel guard\\)`,
            ),
          );
          assert.deepEqual([up.record?.action, up.record?.pin?.kernel], ['pinned', real]);
          const list = bootctlList(root);
          assert.match(
            list,
            new RegExp(`id: proxmox-${literal(kver)}\\.conf`),
            'the new kernel has its entry',
          );
          assert.equal(bootctlDefault(list), `proxmox-${real}.conf`);
          await undo(kver);
        },
      );

      await t.test('strict mode: the guard fails the kernel’s configure step with the way back', async () => {
        await installGuard(root, true);
        const kver = next();
        const up = await upgrade(kver, false);
        const pkg = kernelPackage(kver);
        assert.deepEqual(
          [up.dpkg, up.status, up.ran],
          [1, 'half-configured', [AHEAD, 'dkms', 'initramfs-tools', GUARD]],
          up.output,
        );
        assert.match(
          up.output,
          new RegExp(`run-parts: /etc/kernel/postinst.d/${GUARD} exited with return code 1`),
        );
        assert.match(
          up.said ?? '',
          new RegExp(
            `strict mode: this stops the configure step of ${literal(pkg)}, which stays half-configured\\.`,
          ),
        );
        assert.match(
          up.said ?? '',
          new RegExp(`Then run dpkg --configure -a, or remove that kernel \\(apt remove ${literal(pkg)}\\)`),
        );
        // The pin set ahead stays: a later update-grub cannot make the refused kernel the default.
        assert.deepEqual([up.record?.action, up.record?.pin?.kernel], ['refused', real]);
        assert.equal((await readFile(join(root, 'etc/kernel/proxmox-boot-pin'), 'utf8')).trim(), real);
        assert.equal(up.grubDefault, real);
        await run('update-grub');
        assert.equal(await grubDefault(), real);
        await undo(kver, release);
        await installGuard(root, false);
      });

      t.diagnostic(
        `${suite}: dkms ${(await host.run('dkms --version')).stdout.trim()}, module ${DKMS_PACKAGE}`,
      );
    } finally {
      await remove();
    }
  });
}

test('every rendered guard (each spec, Proxmox and Ubuntu) has no shellcheck findings', async (t) => {
  if (!shellcheckAvailable(t)) return;
  const specs: GuardSpec[] = [
    SPEC,
    { mode: 'sriov', route: 'xe', forceProbe: false },
    { mode: 'sriov', route: 'xe', forceProbe: true },
    { mode: 'gvt-g' },
    { mode: 'passthrough' },
  ];
  const dir = await mkdtemp(join(tmpdir(), 'igpu-guard-shellcheck-'));
  try {
    for (const [index, spec] of specs.entries())
      for (const platform of ['proxmox', 'ubuntu'] as const) {
        const path = join(dir, `guard-${index}-${platform}`);
        await writeFile(path, kernelGuardScript(spec, platform));
        const { code, findings } = shellcheck(path);
        assert.equal(findings, '', `${JSON.stringify(spec)} on ${platform}`);
        assert.equal(code, 0);
      }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
