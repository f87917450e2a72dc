// The kernel guard (src/linux/kernel-guard/script.ts) run for real by sh in a small root of its own
// (test/support/guard-root.ts): what it decides, prints, pins and records for kernels that keep
// the split and kernels that break it, strict mode, someone else's pin, bad input; and what
// doctor makes of its record. The boot-chain tier runs it under a real kernel package's
// postinst, with Debian's dkms, run-parts and update-grub.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import { applyHostPlan } from '../../src/host/apply.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { planHost } from '../../src/host/plan.ts';
import { rollbackHost } from '../../src/host/rollback.ts';
import { verifyHost } from '../../src/host/verify.ts';
import { guardChecks } from '../../src/linux/kernel-guard/checks.ts';
import type { GuardSpec } from '../../src/linux/kernel-guard/requirements.ts';
import {
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
  KERNEL_GUARD_STATE,
  kernelGuardAheadScript,
  kernelGuardConfig,
  kernelGuardScript,
} from '../../src/linux/kernel-guard/script.ts';
import { NO_GUARD_FACTS, parseGuardRecord } from '../../src/linux/kernel-guard/state.ts';
import { fixturePath, withKernelGuard } from '../support/fixtures.ts';
import { type GuardRoot, guardRoot } from '../support/guard-root.ts';

const SRIOV: GuardSpec = { mode: 'sriov', route: 'i915-sriov-dkms' };
const config = (strict = false, spec: GuardSpec = SRIOV) =>
  kernelGuardConfig({ spec, strict, pinWith: 'proxmox-boot-tool', maxPinDays: 30 });

// The range of i915-sriov-dkms 2025.07.22 (src/knowledge/i915-sriov-dkms.ts): 6.8 to 6.15.
const DKMS_CONF = 'PACKAGE_NAME="i915-sriov-dkms"\nBUILD_EXCLUSIVE_KERNEL="^(6\\.([8-9]|1[0-5]))"\n';
const GOOD = '6.14.8-2-pve';
const OUTSIDE = '6.17.2-1-pve';
const LATER = '6.15.1-1-pve';

let available = true;
before(() => {
  try {
    execFileSync('unshare', ['-m', 'true']);
  } catch {
    available = false;
  }
});

/** A root with the release installed and one kernel it built for. */
async function hostWithGoodKernel(conf = config()): Promise<GuardRoot> {
  const root = await guardRoot(kernelGuardScript(SRIOV), conf);
  await root.write('/src/i915-sriov-dkms-2025.07.22/dkms.conf', DKMS_CONF);
  await root.kernel(GOOD, { headers: true, dkms: true, parms: ['enable_guc', 'max_vfs'] });
  return root;
}

const roots: GuardRoot[] = [];
after(() => Promise.all(roots.map((r) => r.dispose())));
async function fresh(conf?: string): Promise<GuardRoot> {
  const root = await hostWithGoodKernel(conf);
  roots.push(root);
  return root;
}
/** What doctor judges from the root's guard record, with GOOD pinned and these kernels installed. */
const doctorContext = async (root: GuardRoot, installed: string[]) => ({
  guard: {
    ...NO_GUARD_FACTS,
    hook: 'x',
    conf: config(),
    state: await root.read('/var/lib/igpu-split/kernel-guard.state'),
    readAt: new Date().toISOString(),
  },
  installed,
  pinned: GOOD,
  nextBootPin: undefined,
  wanted: true,
});
const record = async (root: GuardRoot) =>
  parseGuardRecord((await root.read('/var/lib/igpu-split/kernel-guard.state')) ?? '');

test('a kernel outside the release range: installed, the last good kernel pinned, loudly; a later good kernel releases the pin', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.kernel(OUTSIDE, { headers: true, parms: ['enable_guc'] });
  const run = await root.run([OUTSIDE, `/boot/vmlinuz-${OUTSIDE}`]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, '', 'nothing on stdout: the hook may run under debconf');
  assert.match(
    run.stderr,
    /\*\*\* igpu-split: kernel 6\.17\.2-1-pve would boot WITHOUT the GPU split: i915-sriov-dkms 2025\.07\.22 builds only for kernels/,
  );
  assert.match(run.stderr, /fix: use a release whose range holds 6\.17\.2-1-pve/);
  assert.match(run.stderr, /keeps booting kernel 6\.14\.8-2-pve \(pinned by the igpu-split kernel guard\)/);
  assert.deepEqual(await root.calls(), [`proxmox-boot-tool kernel pin ${GOOD}`]);
  assert.equal(await root.read('/etc/kernel/proxmox-boot-pin'), `${GOOD}\n`);
  const pinned = await record(root);
  assert.equal(pinned?.action, 'pinned');
  assert.equal(pinned?.verdict, 'breaks');
  assert.equal(pinned?.boots, GOOD);
  assert.equal(pinned?.pin?.kernel, GOOD);
  assert.deepEqual(pinned?.kernels, { [GOOD]: 'keeps', [OUTSIDE]: 'breaks' });

  // Doctor reads the record: a pin holding back one newer kernel is a warning...
  const context = await doctorContext(root, [GOOD, OUTSIDE]);
  const checks = guardChecks(context);
  assert.equal(checks.find((c) => c.id === 'guard.pin')?.status, 'warn');
  assert.match(
    checks.find((c) => c.id === 'guard.pin')?.evidence ?? '',
    /pinned to 6\.14\.8-2-pve by the igpu-split kernel guard, since .* \(0 days\); 1 newer kernel held back \(6\.17\.2-1-pve\)/,
  );
  assert.equal(checks.find((c) => c.id === 'guard.last-check')?.status, 'warn');
  assert.equal(checks.find((c) => c.id === 'guard.pending')?.status, 'warn');
  // ...and a failure once older than max_pin_days.
  const later = new Date(Date.now() + 31 * 24 * 3600 * 1000).toISOString();
  const old = guardChecks({ ...context, guard: { ...context.guard, readAt: later } });
  assert.equal(old.find((c) => c.id === 'guard.pin')?.status, 'fail');
  assert.match(old.find((c) => c.id === 'guard.pin')?.evidence ?? '', /longer than 30 days/);

  // A newer kernel the release builds for: the guard lets it boot and releases its own pin.
  await root.kernel('6.17.9-1-pve', { headers: true, dkms: true, parms: ['max_vfs'] });
  await root.write(
    '/src/i915-sriov-dkms-2026.05.06/dkms.conf',
    'BUILD_EXCLUSIVE_KERNEL="^(6\\.1[7-9]|7\\.0)"\n',
  );
  const good = await root.run(['6.17.9-1-pve']);
  assert.equal(good.code, 0, good.stderr);
  assert.match(good.stderr, /kernel 6\.17\.9-1-pve keeps the GPU split: released the guard's pin/);
  assert.equal(await root.read('/etc/kernel/proxmox-boot-pin'), undefined);
  const released = await record(root);
  assert.equal(released?.action, 'unpinned');
  assert.equal(released?.pin, undefined);
});

test('before dkms (the ahead hook): a new kernel not built for yet is held back by a pin, released by the check after the build', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.write(KERNEL_GUARD_HOOK, kernelGuardScript(SRIOV), 0o755);
  await root.write(KERNEL_GUARD_AHEAD, kernelGuardAheadScript(), 0o755);
  // The kernel is unpacked, dkms has not run: headers, no module yet.
  await root.kernel(LATER, { headers: true });
  const env = { DPKG_MAINTSCRIPT_PACKAGE: `proxmox-kernel-${LATER}-signed` };
  const ahead = await root.runScript(KERNEL_GUARD_AHEAD, [LATER, `/boot/vmlinuz-${LATER}`], env);
  assert.deepEqual([ahead.code, ahead.stderr], [0, ''], 'quiet: nothing is decided yet');
  assert.equal(await root.read('/etc/kernel/proxmox-boot-pin'), `${GOOD}\n`);
  const held = await record(root);
  assert.deepEqual([held?.verdict, held?.action, held?.pin?.kernel], ['pending', 'pinned-ahead', GOOD]);
  // If the kernel's hooks stop here (dkms failed), doctor says so and what boots.
  const checks = guardChecks(await doctorContext(root, [GOOD, LATER]));
  assert.match(
    checks.find((c) => c.id === 'guard.last-check')?.evidence ?? '',
    /hooks stopped before the check after its module build; the guard had pinned 6\.14\.8-2-pve ahead/,
  );
  assert.equal(
    checks.find((c) => c.id === 'guard.pending'),
    undefined,
    'no verdict on a kernel not checked',
  );
  // dkms built it: the check after the build releases the pin, in one line.
  await root.kernel(LATER, { headers: true, dkms: true, parms: ['max_vfs'] });
  const check = await root.runScript(KERNEL_GUARD_HOOK, [LATER, `/boot/vmlinuz-${LATER}`], env);
  assert.equal(check.code, 0);
  assert.equal(
    check.stderr,
    `igpu-split kernel guard: kernel ${LATER} keeps the GPU split: released the guard's pin\n`,
  );
  assert.equal(await root.read('/etc/kernel/proxmox-boot-pin'), undefined);
  assert.deepEqual((await root.calls()).slice(-2), [
    `proxmox-boot-tool kernel pin ${GOOD}`,
    'proxmox-boot-tool kernel unpin',
  ]);
  // A kernel the split needs nothing built for (GVT-g's modules come with it) is not held back.
  const again = await root.runScript(KERNEL_GUARD_AHEAD, [LATER], env);
  assert.deepEqual([again.code, again.stderr], [0, '']);
  assert.equal(await root.read('/etc/kernel/proxmox-boot-pin'), undefined);
  // The main hook gone (rollback half-way): the ahead hook does nothing and never fails.
  await root.remove(KERNEL_GUARD_HOOK);
  assert.deepEqual((await root.runScript(KERNEL_GUARD_AHEAD, [LATER], env)).code, 0);
});

test('run by hand on a host that boots from ESPs, a pin change is refreshed at once; under dpkg the later hooks do it', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.write('/etc/kernel/proxmox-boot-uuids', 'ABCD-1234 uefi\n');
  await root.kernel(OUTSIDE, { headers: true });
  await root.run([OUTSIDE], { DPKG_MAINTSCRIPT_PACKAGE: `proxmox-kernel-${OUTSIDE}-signed` });
  assert.deepEqual(await root.calls(), [`proxmox-boot-tool kernel pin ${GOOD}`]);
  await root.remove('/etc/kernel/proxmox-boot-pin');
  await root.run([OUTSIDE]);
  assert.deepEqual((await root.calls()).slice(1), [
    `proxmox-boot-tool kernel pin ${GOOD}`,
    'proxmox-boot-tool refresh',
  ]);
});

test('headers missing, or no i915 built: the reason names the file-level cause', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.kernel(LATER, { parms: [] });
  const noHeaders = await root.run([LATER]);
  assert.match(
    noHeaders.stderr,
    /the headers of kernel 6\.15\.1-1-pve are not installed.*\n.*fix: apt-get install proxmox-headers-6\.15\.1-1-pve/,
  );
  await root.kernel(LATER, { headers: true });
  const notBuilt = await root.run([LATER]);
  assert.match(notBuilt.stderr, /dkms has not installed i915 for kernel 6\.15\.1-1-pve/);
  // Built but the i915 that kernel loads has no max_vfs (depmod points at the stock one).
  await root.kernel(LATER, { headers: true, dkms: true, parms: ['enable_guc'] });
  const stock = await root.run([LATER]);
  assert.match(stock.stderr, /modinfo -k 6\.15\.1-1-pve -F parm i915 lists no max_vfs/);
  // Each time the good kernel stays pinned (set once, then kept).
  assert.equal(await root.read('/etc/kernel/proxmox-boot-pin'), `${GOOD}\n`);
});

test('strict mode fails the configure step with how to recover; nothing is pinned', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh(config(true));
  await root.kernel(OUTSIDE, { headers: true });
  const run = await root.run([OUTSIDE, `/boot/vmlinuz-${OUTSIDE}`]);
  assert.equal(run.code, 1);
  assert.match(
    run.stderr,
    /strict mode: this stops the configure step of proxmox-kernel-6\.17\.2-1-pve-signed/,
  );
  assert.match(
    run.stderr,
    /dpkg --configure -a, or remove that kernel \(apt remove proxmox-kernel-6\.17\.2-1-pve-signed\)/,
  );
  assert.deepEqual(await root.calls(), []);
  assert.equal((await record(root))?.action, 'refused');
});

test('someone else’s pin is never changed: only the next boot goes to the good kernel', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.kernel(OUTSIDE, { headers: true });
  await root.write('/etc/kernel/proxmox-boot-pin', `${OUTSIDE}\n`);
  const run = await root.run([OUTSIDE]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(await root.read('/etc/kernel/proxmox-boot-pin'), `${OUTSIDE}\n`, 'the user’s pin stays');
  assert.equal(await root.read('/etc/kernel/next-boot-pin'), `${GOOD}\n`);
  assert.match(run.stderr, /Your pin is left as it is; the NEXT boot only goes to 6\.14\.8-2-pve/);
  assert.equal((await record(root))?.action, 'next-boot-pinned');

  // A pin of the user's that holds a good kernel: the breaking newer kernel does not boot, nothing to do.
  const other = await fresh();
  await other.kernel(OUTSIDE, { headers: true });
  await other.write('/etc/kernel/proxmox-boot-pin', `${GOOD}\n`);
  const held = await other.run([OUTSIDE]);
  assert.equal(held.code, 0);
  assert.match(
    held.stderr,
    /It is not what this machine boots next \(6\.14\.8-2-pve, which keeps the split\), so nothing was pinned/,
  );
  assert.deepEqual(await other.calls(), []);
});

test('the pin cannot be set (/boot full): the configure step stops, so the bad kernel is not made the default', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.kernel(OUTSIDE, { headers: true });
  await root.write('/test/boot-full', '');
  const run = await root.run([OUTSIDE]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /No space left on device/);
  assert.match(run.stderr, /could not pin kernel 6\.14\.8-2-pve .*is \/boot full\? df -h \/boot/);
  assert.equal((await record(root))?.action, 'pin-failed');
});

test('no release installed (removed or renamed package), and no kernel that keeps the split', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.remove('/src/i915-sriov-dkms-2025.07.22');
  const run = await root.run([GOOD]);
  assert.equal(run.code, 0);
  assert.match(
    run.stderr,
    /no i915-sriov-dkms sources are installed \(\/usr\/src\/i915-sriov-dkms-\*\/dkms\.conf\)/,
  );
  assert.match(run.stderr, /Nothing was pinned: a pin cannot help\. The machine still boots\./);
  assert.deepEqual(await root.calls(), []);
  assert.equal((await record(root))?.action, 'no-good-kernel');
});

test('dkms removed: every kernel falls short, and the line says to install it', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  await root.remove('/shims/dkms');
  const run = await root.run([GOOD]);
  assert.equal(run.code, 0);
  assert.match(run.stderr, /why: dkms is not installed, so nothing builds i915 for kernel 6\.14\.8-2-pve/);
  assert.match(run.stderr, /fix: apt-get install dkms, then dkms autoinstall -k 6\.14\.8-2-pve/);
  assert.equal((await record(root))?.action, 'no-good-kernel');
});

test('bad input: one line on stderr naming the kernel and what to do', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const root = await fresh();
  const cases: [string[], RegExp][] = [
    [[], /^igpu-split kernel guard: usage: \/guard KERNEL-VERSION/],
    [['a', 'b', 'c'], /^igpu-split kernel guard: usage:/],
    [
      ['--help'],
      /^igpu-split kernel guard: '--help' is not a kernel version: give the version of an installed kernel/,
    ],
    [['../../etc'], /is not a kernel version/],
    [
      ['6.99.0-1-pve'],
      /^igpu-split kernel guard: kernel 6\.99\.0-1-pve is not installed \(no \/boot\/vmlinuz-6\.99\.0-1-pve\)/,
    ],
  ];
  for (const [args, message] of cases) {
    const run = await root.run(args);
    assert.equal(run.code, 2, args.join(' '));
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${run.stderr}`);
  }
  // Settings gone: the kernel installs, and the line says so.
  await root.remove('/etc/igpu-split/kernel-guard.conf');
  const noConf = await root.run([GOOD]);
  assert.equal(noConf.code, 0);
  assert.match(
    noConf.stderr,
    /^igpu-split kernel guard: kernel 6\.14\.8-2-pve not checked: \/etc\/igpu-split\/kernel-guard\.conf is missing/,
  );
  // Not a configure (a postinst called for abort-*): nothing to do.
  const abort = await root.run([GOOD], { DEB_MAINT_PARAMS: "'abort-configure'" });
  assert.deepEqual([abort.code, abort.stderr], [0, '']);
  assert.deepEqual(await root.calls(), []);
});

test('GVT-g and passthrough: the modules the split needs', async (t) => {
  if (!available) return t.skip('no mount namespaces here (unshare -m)');
  const gvt: GuardSpec = { mode: 'gvt-g' };
  const root = await guardRoot(kernelGuardScript(gvt), config(false, gvt));
  roots.push(root);
  await root.kernel('6.8.12-4-pve', { parms: ['enable_gvt'], modules: ['kvmgt'] });
  await root.kernel('6.14.8-2-pve', { parms: ['enable_guc'] });
  const run = await root.run(['6.14.8-2-pve']);
  assert.match(run.stderr, /kernel 6\.14\.8-2-pve has no kvmgt module/);
  assert.deepEqual(await root.calls(), ['proxmox-boot-tool kernel pin 6.8.12-4-pve']);

  const vfio: GuardSpec = { mode: 'passthrough' };
  const pass = await guardRoot(kernelGuardScript(vfio), config(false, vfio));
  roots.push(pass);
  await pass.kernel('6.14.8-2-pve', { modules: ['vfio', 'vfio_iommu_type1', 'vfio_pci'] });
  const ok = await pass.run(['6.14.8-2-pve']);
  assert.equal(ok.code, 0);
  assert.equal(ok.stderr, '');
  assert.equal((await record(pass))?.verdict, 'keeps');
});

test('doctor and verify on a host read the guard’s record, its pin and a kernel package dpkg left half-configured', async () => {
  const tree = await withKernelGuard('i5-8500t-gvt', { mode: 'gvt-g' });
  try {
    const kernels = ['6.8.12-4-pve', '6.14.8-2-pve'];
    for (const k of kernels) {
      await mkdir(join(tree.root, 'lib/modules', k), { recursive: true });
      await writeFile(join(tree.root, 'lib/modules', k, 'modules.dep'), '');
    }
    await writeFile(join(tree.root, 'etc/kernel/proxmox-boot-pin'), '6.8.12-4-pve\n');
    await mkdir(join(tree.root, 'var/lib/igpu-split'), { recursive: true });
    await writeFile(
      join(tree.root, 'var/lib/igpu-split/kernel-guard.state'),
      [
        'format=1',
        'checked_kernel=6.14.8-2-pve',
        'checked_at=2026-11-01T10:00:00Z',
        'verdict=breaks',
        'why=kernel 6.14.8-2-pve has no kvmgt module (modinfo -k 6.14.8-2-pve kvmgt finds none)',
        'fix=boot a kernel that has kvmgt (proxmox-boot-tool kernel pin), or install the package that ships it for 6.14.8-2-pve',
        'action=pinned',
        'boots=6.8.12-4-pve',
        'strict=no',
        'pin_kernel=6.8.12-4-pve',
        'pin_kind=persistent',
        'pinned_at=2026-10-01T10:00:00Z',
        'kernel.6.8.12-4-pve=keeps',
        'kernel.6.14.8-2-pve=breaks',
        '',
      ].join('\n'),
    );
    const status = join(tree.root, 'var/lib/dpkg/status');
    await mkdir(dirname(status), { recursive: true });
    await writeFile(
      status,
      'Package: proxmox-kernel-6.17.2-1-pve-signed\nStatus: install ok half-configured\nVersion: 6.17.2-1\n',
    );
    const facts = await gatherHostFacts(await new CapturedRoot(tree.root).open());
    const checks = Object.fromEntries(verifyHost(facts, undefined).map((c) => [c.id, c]));
    assert.equal(checks['guard.installed']?.status, 'pass');
    assert.equal(checks['guard.last-check']?.status, 'warn');
    assert.match(
      checks['guard.last-check']?.evidence ?? '',
      /kernel 6\.14\.8-2-pve \(checked 2026-11-01T10:00:00Z\) breaks the GPU split: kernel 6\.14\.8-2-pve has no kvmgt module \(modinfo .*\); the guard pinned 6\.8\.12-4-pve/,
    );
    assert.equal(checks['guard.pending']?.status, 'fail');
    assert.match(
      checks['guard.pending']?.evidence ?? '',
      /proxmox-kernel-6\.17\.2-1-pve-signed is half-configured/,
    );
    // Pinned since 2026-10-01 with a newer kernel held back: older than 30 days by any clock that runs this.
    assert.equal(checks['guard.pin']?.status, 'fail');
    assert.match(
      checks['guard.pin']?.evidence ?? '',
      /pinned to 6\.8\.12-4-pve by the igpu-split kernel guard, since 2026-10-01T10:00:00Z \(\d+ days\), longer than 30 days; 1 newer kernel held back \(6\.14\.8-2-pve\)/,
    );
  } finally {
    await tree.remove();
  }
});

test('apply writes the guard as ours; rollback releases its pin (keeping someone else’s next-boot pin) and removes it all', async () => {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-guard-rollback-'));
  try {
    await cp(fixturePath('i5-8500t-gvt'), tree, { recursive: true, verbatimSymlinks: true });
    const commands: string[] = [];
    // proxmox-boot-tool as proxmox-kernel-helper's unpin_kernel and pin_kernel write the files (src/bin/proxmox-boot-tool @ 7007b33c).
    const host = await new DirectoryHost(tree, async (command) => {
      commands.push(command);
      if (command === 'proxmox-boot-tool kernel unpin')
        for (const pin of ['etc/kernel/proxmox-boot-pin', 'etc/kernel/next-boot-pin'])
          await rm(join(tree, pin), { force: true });
      const next = /^proxmox-boot-tool kernel pin (\S+) --next-boot$/.exec(command);
      if (next) await writeFile(join(tree, 'etc/kernel/next-boot-pin'), `${next[1]}\n`);
      return { code: 0, stdout: '', stderr: '' };
    }).open();
    const plan = planHost(await gatherHostFacts(host));
    await applyHostPlan(host, plan);
    for (const path of [KERNEL_GUARD_CONF, KERNEL_GUARD_HOOK, KERNEL_GUARD_AHEAD])
      assert.ok(existsSync(join(tree, path)), path);
    assert.equal((await stat(join(tree, KERNEL_GUARD_HOOK))).mode & 0o777, 0o755);
    // Later the guard pinned a kernel; someone else set a next-boot pin.
    await writeFile(join(tree, 'etc/kernel/proxmox-boot-pin'), '6.8.12-4-pve\n');
    await writeFile(join(tree, 'etc/kernel/next-boot-pin'), '6.5.13-6-pve\n');
    await mkdir(join(tree, 'var/lib/igpu-split'), { recursive: true });
    await writeFile(
      join(tree, KERNEL_GUARD_STATE),
      'format=1\nchecked_kernel=6.14.8-2-pve\nverdict=breaks\naction=pinned\nboots=6.8.12-4-pve\npin_kernel=6.8.12-4-pve\npin_kind=persistent\npinned_at=2026-11-01T00:00:00Z\n',
    );
    commands.length = 0;
    const result = await rollbackHost(host);
    assert.deepEqual(commands.slice(0, 2), [
      'proxmox-boot-tool kernel unpin',
      'proxmox-boot-tool kernel pin 6.5.13-6-pve --next-boot',
    ]);
    assert.deepEqual(result.refreshed.slice(0, 2), commands.slice(0, 2));
    for (const path of [
      KERNEL_GUARD_CONF,
      KERNEL_GUARD_HOOK,
      KERNEL_GUARD_AHEAD,
      KERNEL_GUARD_STATE,
      'etc/kernel/proxmox-boot-pin',
    ])
      assert.ok(!existsSync(join(tree, path)), `${path} is gone`);
    assert.equal(await readFile(join(tree, 'etc/kernel/next-boot-pin'), 'utf8'), '6.5.13-6-pve\n');
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
});

test('plan re-writes the guard when the mode or the lab’s kernelGuard settings change, and only then', async () => {
  const tree = await withKernelGuard('i5-8500t-gvt', { mode: 'gvt-g' });
  try {
    const facts = await gatherHostFacts(await new CapturedRoot(tree.root).open());
    const guardIds = (plan: ReturnType<typeof planHost>) =>
      plan.steps.map((s) => s.id.split('/').at(-1)).filter((id) => id?.startsWith('kernel-guard'));
    assert.deepEqual(guardIds(planHost(facts)), [], 'as apply wrote it');
    const passthrough = planHost(facts, { wishes: { mode: 'passthrough', vfs: 'auto', vmsOnHost: 1 } });
    assert.deepEqual(guardIds(passthrough), ['kernel-guard-settings', 'kernel-guard']);
    const settings = passthrough.steps.find((s) => s.id.endsWith('/kernel-guard-settings'));
    assert.match(settings?.diff ?? '', /^-mode=gvt-g$/m);
    assert.match(settings?.diff ?? '', /^\+mode=passthrough$/m);
    const hook = passthrough.steps.find((s) => s.id.endsWith('/kernel-guard'));
    assert.match(hook?.diff ?? '', /^- {2}if ! has_module "\$k" kvmgt; then$/m);
    assert.match(hook?.diff ?? '', /^\+ {2}if ! has_module "\$k" vfio_pci; then$/m);
    const strict = planHost(facts, {
      wishes: { mode: 'auto', vfs: 'auto', vmsOnHost: 1, guard: { strict: true, maxPinDays: 14 } },
    });
    assert.deepEqual(guardIds(strict), ['kernel-guard-settings']);
    assert.match(strict.steps[0]?.diff ?? '', /^\+strict=yes$/m);
    assert.match(strict.steps[0]?.diff ?? '', /^\+max_pin_days=14$/m);
  } finally {
    await tree.remove();
  }
});
