// The kernel guard in an Ubuntu guest on the i915-sriov-dkms route (issue 17): the plan writes
// its settings and hook with their diffs and not again once they hold what they should,
// rewrites them when the lab's settings or the guard change, removes them when the route is
// no longer the DKMS one; gather reads its record, pin drop-in and half-configured kernels;
// the checks say what it decided; rollback removes exactly its files.

import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import { ubuntuGuest } from '../../src/demo/machines.ts';
import type { VfAttachment } from '../../src/guest/provider.ts';
import { applyUbuntuPlan } from '../../src/guest/ubuntu/apply.ts';
import {
  gatherUbuntuFacts,
  SRIOV_GRUB_DROPIN,
  type UbuntuGuestFacts,
} from '../../src/guest/ubuntu/gather.ts';
import { GUEST_GUARD_SPEC, pinnedKernelOf, rollbackGuestGuard } from '../../src/guest/ubuntu/guard.ts';
import { planUbuntu, ubuntuChecks } from '../../src/guest/ubuntu/plan.ts';
import {
  GUEST_PIN_DROPIN,
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
  KERNEL_GUARD_STATE,
  kernelGuardAheadScript,
  kernelGuardConfig,
  kernelGuardScript,
} from '../../src/linux/kernel-guard/script.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/guests/', import.meta.url));
const captured = async (name: string) =>
  gatherUbuntuFacts(await new CapturedRoot(`${FIXTURES}${name}`).open());
const URL_2507 =
  'https://github.com/strongtz/i915-sriov-dkms/releases/download/2025.07.22/i915-sriov-dkms_2025.07.22_amd64.deb';
const vf = (extra: Partial<VfAttachment> = {}): VfAttachment => ({
  kind: 'vf',
  host: 'pve1',
  pfDeviceId: '46d1',
  route: 'i915-sriov-dkms',
  forceProbe: false,
  explicit: false,
  guestPackage: { url: URL_2507, sha256: 'a'.repeat(64) },
  ...extra,
});
const names = (steps: { id: string }[]) => steps.map((s) => s.id.split('/').pop());
const statuses = (checks: { id: string; status: string }[]) =>
  Object.fromEntries(checks.filter((c) => c.id.startsWith('guard.')).map((c) => [c.id, c.status]));

/** What the guest's guard files hold when apply wrote them with these lab settings. */
const written = (strict = false, maxPinDays = 30) => ({
  conf: kernelGuardConfig({ spec: GUEST_GUARD_SPEC, strict, pinWith: 'grub-default', maxPinDays }),
  hook: kernelGuardScript(GUEST_GUARD_SPEC, 'ubuntu'),
  ahead: kernelGuardAheadScript(),
});

function withGuard(facts: UbuntuGuestFacts, files: Partial<UbuntuGuestFacts['guard']['files']>, more = {}) {
  return { ...facts, guard: { ...facts.guard, files: { ...facts.guard.files, ...files }, ...more } };
}

/** A record in the format the guard's record() writes (src/linux/kernel-guard/script.ts). */
function record(fields: Record<string, string>, kernels: Record<string, string>): string {
  const base = {
    format: '1',
    checked_kernel: '',
    checked_at: '2026-11-20T03:12:09Z',
    verdict: 'breaks',
    why: '',
    fix: '',
    action: 'none',
    boots: '',
    strict: 'no',
    pin_kernel: '',
    pin_kind: '',
    pinned_at: '',
  };
  return `${Object.entries({ ...base, ...fields })
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n${Object.entries(kernels)
    .map(([k, v]) => `kernel.${k}=${v}\n`)
    .join('')}`;
}

test('plan: after the driver is built and checked, the settings then the hook, each with its diff, before the boot changes', async () => {
  const facts = await captured('ubuntu-2404-sriov-before');
  const plan = planUbuntu(facts, { attachment: vf(), vm: 'VM 101' });
  assert.deepEqual(names(plan.steps), [
    'sriov-packages',
    'sriov-driver',
    'sriov-built',
    'guard-conf',
    'guard-hook',
    'guard-ahead',
    'sriov-cmdline',
    'reboot',
  ]);
  const conf = plan.steps.find((s) => s.id.endsWith('/guard-conf'));
  const hook = plan.steps.find((s) => s.id.endsWith('/guard-hook'));
  assert.deepEqual(conf?.action, {
    kind: 'write',
    path: KERNEL_GUARD_CONF,
    content: written().conf,
    mode: 0o644,
  });
  assert.deepEqual(hook?.action, {
    kind: 'write',
    path: KERNEL_GUARD_HOOK,
    content: written().hook,
    mode: 0o755,
  });
  // The diffs: every line added, from nothing, naming the file.
  assert.match(conf?.diff ?? '', /\+\+\+ b\/etc\/igpu-split\/kernel-guard\.conf/);
  assert.match(conf?.diff ?? '', /^\+mode=sriov i915-sriov-dkms$/m);
  assert.match(conf?.diff ?? '', /^\+pin=grub-default$/m);
  assert.match(conf?.diff ?? '', /^\+strict=no$/m);
  assert.match(conf?.diff ?? '', /^\+max_pin_days=30$/m);
  assert.match(hook?.diff ?? '', /\+\+\+ b\/etc\/kernel\/postinst\.d\/z-igpu-split-kernel-guard/);
  assert.match(hook?.diff ?? '', /^\+#!\/bin\/sh$/m);
  // The guest's headers are Ubuntu's: the hook's fix names linux-headers-<kernel>.
  assert.match(hook?.diff ?? '', /apt-get install linux-headers-\$\{k\}/);
  assert.equal(hook?.disturbs.length, 0);
  // Before apply the guard is missing: a warning, not a failure.
  assert.deepEqual(statuses(plan.checks), { 'guard.installed': 'warn' });
  // The lab's settings reach the file.
  const strict = planUbuntu(facts, { attachment: vf({ kernelGuard: { strict: true, maxPinDays: 7 } }) });
  const strictConf = strict.steps.find((s) => s.id.endsWith('/guard-conf'))?.action;
  assert.equal(strictConf?.kind === 'write' ? strictConf.content : '', written(true, 7).conf);
  // An upstream-xe guest or a GVT-g guest carries no module of ours: no guard.
  assert.ok(!names(planUbuntu(facts).steps).some((n) => n?.startsWith('guard')));
});

test('converged: the files hold what apply writes, nothing is planned and every check passes', async () => {
  const facts = withGuard(await captured('ubuntu-2404-sriov-after'), written());
  assert.deepEqual(planUbuntu(facts, { attachment: vf() }).steps, []);
  const checks = ubuntuChecks(facts, vf());
  assert.ok(
    checks.every((c) => c.status === 'pass'),
    JSON.stringify(checks),
  );
  assert.deepEqual(statuses(checks), { 'guard.installed': 'pass', 'guard.last-check': 'pass' });
  assert.match(checks.find((c) => c.id === 'guard.installed')?.evidence ?? '', /sriov i915-sriov-dkms/);
});

test('a change rewrites: the lab turns strict, the guard itself changed; the xe route removes it', async () => {
  const after = await captured('ubuntu-2404-sriov-after');
  const facts = withGuard(after, written());
  const strict = planUbuntu(facts, { attachment: vf({ kernelGuard: { strict: true, maxPinDays: 30 } }) });
  assert.deepEqual(names(strict.steps), ['guard-conf']);
  assert.match(strict.steps[0]?.diff ?? '', /^-strict=no\n\+strict=yes$/m);
  assert.match(strict.steps[0]?.description ?? '', /^rewrite /);
  // A hook written for another route (or by an older igpu-split): rewritten whole.
  const other = withGuard(after, {
    ...written(),
    hook: kernelGuardScript({ mode: 'sriov', route: 'xe', forceProbe: false }),
  });
  const rewrite = planUbuntu(other, { attachment: vf() });
  assert.deepEqual(names(rewrite.steps), ['guard-hook']);
  assert.match(rewrite.steps[0]?.diff ?? '', /^-# igpu-split kernel guard \(sriov xe\)/m);
  assert.match(rewrite.steps[0]?.diff ?? '', /^\+# igpu-split kernel guard \(sriov i915-sriov-dkms\)/m);
  // On the xe route the guest runs its own modules: the guard, its record and its pin go, then update-grub.
  const xeReady = {
    ...withGuard(
      after,
      { ...written(), state: record({}, {}) },
      { pinDropin: 'GRUB_DEFAULT="gnulinux-6.8.0-85-generic-advanced-x"\n' },
    ),
    sriov: { ...after.sriov, kernels: ['6.18.0-1-generic'], withXe: ['6.18.0-1-generic'] },
  };
  const xe = planUbuntu(xeReady, { attachment: vf({ route: 'xe' }) });
  const remove = xe.steps.find((s) => s.id.endsWith('/guard-remove'));
  assert.equal(
    remove?.command,
    `rm -f ${KERNEL_GUARD_AHEAD} ${KERNEL_GUARD_HOOK} ${KERNEL_GUARD_CONF} ${KERNEL_GUARD_STATE} ${GUEST_PIN_DROPIN} && update-grub`,
  );
  assert.match(remove?.diff ?? '', /^-pin=grub-default$/m);
  assert.equal(names(xe.steps)[0], 'guard-remove');
  // Nothing of the guard there: nothing to remove.
  const bare = { ...xeReady, guard: after.guard };
  assert.ok(!names(planUbuntu(bare, { attachment: vf({ route: 'xe' }) }).steps).includes('guard-remove'));
});

test('gather reads the record, the pin drop-in, /boot and the half-configured kernel; the checks say so', async () => {
  const root = await mkdtemp(join(tmpdir(), 'igpu-guard-'));
  try {
    await cp(`${FIXTURES}ubuntu-2404-sriov-after`, root, { recursive: true, verbatimSymlinks: true });
    const put = async (path: string, text: string) => {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), text);
    };
    const { conf, hook } = written();
    // Pinned three days ago: a warning (newer kernels wait), under the 30 days that fail it.
    const since = new Date(Date.now() - 3 * 24 * 3600_000 - 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
    await put(KERNEL_GUARD_CONF, conf);
    await put(KERNEL_GUARD_HOOK, hook);
    await put(
      KERNEL_GUARD_STATE,
      record(
        {
          checked_kernel: '6.8.0-90-generic',
          why: 'dkms has not installed i915 for kernel 6.8.0-90-generic',
          fix: 'run dkms autoinstall -k 6.8.0-90-generic',
          action: 'pinned',
          boots: '6.8.0-88-generic',
          pin_kernel: '6.8.0-88-generic',
          pin_kind: 'persistent',
          pinned_at: since,
        },
        { '6.8.0-85-generic': 'breaks', '6.8.0-88-generic': 'keeps', '6.8.0-90-generic': 'breaks' },
      ),
    );
    const uuid = '3f1c9d2e-5a7b-4c8d-9e0f-1a2b3c4d5e6f';
    await put(
      GUEST_PIN_DROPIN,
      `# Written by igpu-split kernel guard: boot 6.8.0-88-generic, the newest kernel that keeps the GPU split.\nGRUB_DEFAULT="gnulinux-advanced-${uuid}>gnulinux-6.8.0-88-generic-advanced-${uuid}"\n`,
    );
    for (const k of ['6.8.0-85-generic', '6.8.0-88-generic', '6.8.0-90-generic', '6.8.0-100-generic'])
      await put(`/boot/vmlinuz-${k}`, '');
    const status = await readFile(join(root, 'var/lib/dpkg/status'), 'utf8');
    await put(
      '/var/lib/dpkg/status',
      `${status.trimEnd()}\n\nPackage: linux-image-6.8.0-100-generic\nStatus: install ok half-configured\nVersion: 6.8.0-100.100\n\nPackage: linux-image-6.8.0-31-generic\nStatus: deinstall ok config-files\nVersion: 6.8.0-31.31\n`,
    );
    const facts = await gatherUbuntuFacts(await new CapturedRoot(root).open());
    assert.deepEqual(facts.guard.installed, [
      '6.8.0-85-generic',
      '6.8.0-88-generic',
      '6.8.0-90-generic',
      '6.8.0-100-generic',
    ]);
    assert.equal(pinnedKernelOf(facts.guard.pinDropin), '6.8.0-88-generic');
    // A removed kernel's leftover configuration is no unfinished install.
    assert.deepEqual(facts.guard.files.unconfigured, [
      { package: 'linux-image-6.8.0-100-generic', status: 'half-configured' },
    ]);
    const checks = ubuntuChecks(facts, vf());
    assert.deepEqual(statuses(checks), {
      'guard.installed': 'pass',
      'guard.last-check': 'warn',
      'guard.pending': 'fail',
      'guard.pin': 'warn',
    });
    const say = (id: string) => checks.find((c) => c.id === id)?.evidence ?? '';
    assert.match(
      say('guard.last-check'),
      /^kernel 6\.8\.0-90-generic .*breaks the GPU split: dkms has not installed i915/,
    );
    assert.match(say('guard.last-check'), /the guard pinned 6\.8\.0-88-generic/);
    assert.match(say('guard.pending'), /linux-image-6\.8\.0-100-generic is half-configured/);
    assert.ok(
      say('guard.pin').startsWith(
        `pinned to 6.8.0-88-generic by the igpu-split kernel guard, since ${since} (3 days)`,
      ),
    );
    assert.match(say('guard.pin'), /2 newer kernels held back \(6\.8\.0-90-generic, 6\.8\.0-100-generic\)/);
    // The lab's pin age limit counts over the guard's own: past 2 days the pin fails.
    const strictAge = ubuntuChecks(facts, vf({ kernelGuard: { strict: false, maxPinDays: 2 } }));
    assert.equal(strictAge.find((c) => c.id === 'guard.pin')?.status, 'fail');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the GRUB_DEFAULT of the guard, or one written by hand, names the kernel it boots', () => {
  const id = 'gnulinux-advanced-abc';
  assert.equal(
    pinnedKernelOf(`GRUB_DEFAULT="${id}>gnulinux-6.8.0-88-generic-advanced-abc"\n`),
    '6.8.0-88-generic',
  );
  assert.equal(pinnedKernelOf("GRUB_DEFAULT='gnulinux-6.17.0-8-generic-advanced-abc'\n"), '6.17.0-8-generic');
  assert.equal(pinnedKernelOf('GRUB_DEFAULT=0\n'), undefined);
  assert.equal(pinnedKernelOf(undefined), undefined);
});

test('apply writes the hook 0755 and the settings 0644; rollback removes exactly the guard, its record and its pin', async () => {
  const root = await mkdtemp(join(tmpdir(), 'igpu-guard-'));
  try {
    await cp(`${FIXTURES}ubuntu-2404-sriov-after`, root, { recursive: true, verbatimSymlinks: true });
    await mkdir(join(root, 'var/tmp'), { recursive: true });
    const commands: string[] = [];
    const handler = ubuntuGuest(`${FIXTURES}ubuntu-2404-sriov-after`);
    const host = new DirectoryHost(root, async (command, h, stdin) => {
      commands.push(command);
      return handler(command, h, stdin);
    });
    const guest = await host.open();
    const plan = planUbuntu(await gatherUbuntuFacts(guest), { attachment: vf() });
    assert.deepEqual(names(plan.steps), ['guard-conf', 'guard-hook', 'guard-ahead']);
    await applyUbuntuPlan(guest, plan, { reconnect: async () => guest });
    const mode = async (path: string) => (await stat(join(root, path))).mode & 0o777;
    assert.equal(await mode(KERNEL_GUARD_HOOK), 0o755);
    assert.equal(await mode(KERNEL_GUARD_AHEAD), 0o755);
    assert.equal(await mode(KERNEL_GUARD_CONF), 0o644);
    assert.equal(await readFile(join(root, KERNEL_GUARD_HOOK), 'utf8'), written().hook);
    assert.deepEqual(planUbuntu(await gatherUbuntuFacts(guest), { attachment: vf() }).steps, []);
    // Without a pin: the two files go, no update-grub.
    commands.length = 0;
    const asRoot = async (command: string) => command;
    assert.deepEqual(await rollbackGuestGuard(guest, asRoot), {
      removed: [KERNEL_GUARD_AHEAD, KERNEL_GUARD_HOOK, KERNEL_GUARD_CONF],
      refreshed: [],
    });
    assert.deepEqual(commands, [`rm -f ${KERNEL_GUARD_AHEAD} ${KERNEL_GUARD_HOOK} ${KERNEL_GUARD_CONF}`]);
    // With its record and pin: all four go, then update-grub; the SR-IOV drop-in and the rest stay.
    await applyUbuntuPlan(guest, plan, { reconnect: async () => guest });
    await mkdir(join(root, dirname(KERNEL_GUARD_STATE)), { recursive: true });
    await writeFile(join(root, KERNEL_GUARD_STATE), record({}, {}));
    await writeFile(join(root, GUEST_PIN_DROPIN), 'GRUB_DEFAULT="gnulinux-6.8.0-88-generic-advanced-x"\n');
    commands.length = 0;
    const result = await rollbackGuestGuard(guest, asRoot);
    assert.deepEqual(result.removed, [
      KERNEL_GUARD_AHEAD,
      KERNEL_GUARD_HOOK,
      KERNEL_GUARD_CONF,
      KERNEL_GUARD_STATE,
      GUEST_PIN_DROPIN,
    ]);
    assert.deepEqual(commands, [`${`rm -f ${result.removed.join(' ')}`} && update-grub`]);
    for (const path of result.removed) await assert.rejects(stat(join(root, path)), { code: 'ENOENT' });
    // What is not the guard's stays: the VF's drop-in, the cloud image's, the folders.
    for (const path of [SRIOV_GRUB_DROPIN, '/etc/default/grub.d/50-cloudimg-settings.cfg', '/etc/os-release'])
      assert.ok((await stat(join(root, path))).isFile(), path);
    // Nothing left: nothing run.
    commands.length = 0;
    assert.deepEqual(await rollbackGuestGuard(guest, asRoot), { removed: [], refreshed: [] });
    assert.deepEqual(commands, []);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
