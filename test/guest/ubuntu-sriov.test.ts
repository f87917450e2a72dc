// An Ubuntu 24.04 guest on an SR-IOV virtual function (the N100's VF 8086:46d1 at 01:00.0,
// as q35 with pcie=1 shows it): captured before and after i915-sriov-dkms. What the plan
// does, what it refuses (one line naming the VM and the fix), and that our GRUB drop-in is
// read after the cloud image's by the shell that grub-mkconfig uses.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import type { VfAttachment } from '../../src/guest/provider.ts';
import {
  gatherUbuntuFacts,
  SRIOV_GRUB_DROPIN,
  type UbuntuGuestFacts,
} from '../../src/guest/ubuntu/gather.ts';
import { guardFiles } from '../../src/guest/ubuntu/guard.ts';
import { planUbuntu, ubuntuChecks } from '../../src/guest/ubuntu/plan.ts';
import { grubDropin } from '../../src/guest/ubuntu/sriov.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/guests/', import.meta.url));
const guest = (name: string) => new CapturedRoot(`${FIXTURES}${name}`).open();
const statuses = (checks: { id: string; status: string }[]) =>
  Object.fromEntries(checks.map((c) => [c.id, c.status]));

const URL_2507 =
  'https://github.com/strongtz/i915-sriov-dkms/releases/download/2025.07.22/i915-sriov-dkms_2025.07.22_amd64.deb';
const SHA = 'a'.repeat(64);
const vf = (extra: Partial<VfAttachment> = {}): VfAttachment => ({
  kind: 'vf',
  host: 'pve1',
  pfDeviceId: '46d1',
  route: 'i915-sriov-dkms',
  forceProbe: false,
  explicit: false,
  guestPackage: { url: URL_2507, sha256: SHA },
  ...extra,
});

/** The after capture predates the kernel guard (test/guest/ubuntu-guard.test.ts): with it as apply writes it. */
function guarded(facts: UbuntuGuestFacts): UbuntuGuestFacts {
  const [conf, hook, ahead] = guardFiles(vf()).map((f) => f.content);
  return { ...facts, guard: { ...facts.guard, files: { ...facts.guard.files, conf, hook, ahead } } };
}

test('before: the cloud image on a VF gets packages, the release from its url (checked), the drop-in, a reboot', async () => {
  const facts = await gatherUbuntuFacts(await guest('ubuntu-2404-sriov-before'));
  assert.equal(facts.kernel.release, '6.8.0-85-generic');
  const plan = planUbuntu(facts, { attachment: vf(), vm: 'VM 101' });
  assert.equal(plan.refused, undefined);
  assert.deepEqual(
    plan.steps.map((s) => s.id.split('/').pop()),
    [
      'sriov-packages',
      'sriov-driver',
      'sriov-built',
      'guard-conf',
      'guard-hook',
      'guard-ahead',
      'sriov-cmdline',
      'reboot',
    ],
  );
  const [packages, driver, , , , , cmdline, reboot] = plan.steps;
  assert.match(packages?.command ?? '', /apt-get install -y build-essential dkms linux-generic$/);
  assert.equal(
    driver?.command,
    `mkdir -p /var/cache/igpu-split && wget -q -O /var/cache/igpu-split/i915-sriov-dkms_2025.07.22_amd64.deb.part '${URL_2507}' && echo '${SHA}  /var/cache/igpu-split/i915-sriov-dkms_2025.07.22_amd64.deb.part' | sha256sum -c --quiet && mv -f /var/cache/igpu-split/i915-sriov-dkms_2025.07.22_amd64.deb.part /var/cache/igpu-split/i915-sriov-dkms_2025.07.22_amd64.deb && dpkg -i /var/cache/igpu-split/i915-sriov-dkms_2025.07.22_amd64.deb`,
  );
  assert.equal(cmdline?.command, 'update-grub && update-initramfs -u');
  assert.match(
    cmdline?.diff ?? '',
    /\+GRUB_CMDLINE_LINUX_DEFAULT="\$\{GRUB_CMDLINE_LINUX_DEFAULT\} i915\.enable_guc=3 module_blacklist=xe"/,
  );
  // Nothing before the reboot disturbs the node: until then it boots its previous command line.
  assert.deepEqual(
    plan.steps.map((s) => s.disturbs),
    [[], [], [], [], [], [], [], ['node-drain', 'guest-reboot']],
  );
  assert.equal(reboot?.command, 'systemctl reboot');
  assert.deepEqual(statuses(plan.checks), {
    'guest.os': 'pass',
    'guest.gpu': 'pass',
    'guest.sriov-driver': 'fail',
    'guest.cmdline': 'fail',
    'guest.driver': 'fail',
    'guest.render': 'fail',
    'guest.secure-boot': 'pass',
    'guard.installed': 'warn',
    'guest.k3s': 'pass',
  });
  assert.match(
    plan.checks.find((c) => c.id === 'guest.gpu')?.evidence ?? '',
    /virtual function 0000:01:00\.0 \(8086:46d1/,
  );
  // The same guest with a GVT-g mdev plans what it always did.
  assert.deepEqual(
    planUbuntu(facts).steps.map((s) => s.id.split('/').pop()),
    ['kernel', 'reboot'],
  );
});

test('after: i915 from updates/dkms bound to the VF, renderD128, the parameters live: nothing to do', async () => {
  const facts = guarded(await gatherUbuntuFacts(await guest('ubuntu-2404-sriov-after')));
  assert.deepEqual(facts.sriov.dkmsI915, ['6.8.0-88-generic']);
  const plan = planUbuntu(facts, { attachment: vf(), vm: 'VM 101' });
  assert.deepEqual(plan.steps, []);
  const checks = ubuntuChecks(facts, vf());
  assert.ok(
    checks.every((c) => c.status === 'pass'),
    JSON.stringify(checks),
  );
  assert.match(
    checks.find((c) => c.id === 'guest.driver')?.evidence ?? '',
    /^i915 is bound to the VF 0000:01:00\.0/,
  );
  assert.match(checks.find((c) => c.id === 'guest.render')?.evidence ?? '', /renderD128/);
  assert.match(
    checks.find((c) => c.id === 'guest.sriov-driver')?.evidence ?? '',
    /2025\.07\.22 built for 6\.8\.0-88-generic/,
  );
});

test('resume: a drop-in written before a kill point, without update-grub, is written and applied again', async () => {
  const facts = guarded(await gatherUbuntuFacts(await guest('ubuntu-2404-sriov-after')));
  const killed = {
    ...facts,
    sriov: { ...facts.sriov, cmdline: 'ro console=tty1', grubCfg: 'linux /vmlinuz ro console=tty1' },
  };
  assert.deepEqual(
    planUbuntu(killed, { attachment: vf() }).steps.map((s) => s.id.split('/').pop()),
    ['sriov-cmdline', 'reboot'],
  );
  // update-grub done, reboot not yet: only the reboot is left.
  const grubDone = {
    ...killed,
    sriov: { ...killed.sriov, grubCfg: 'linux /vmlinuz ro i915.enable_guc=3 module_blacklist=xe' },
  };
  assert.deepEqual(
    planUbuntu(grubDone, { attachment: vf() }).steps.map((s) => s.id.split('/').pop()),
    ['reboot'],
  );
});

test('refusals: one line naming the VM and the fix, nothing planned', async () => {
  const facts = await gatherUbuntuFacts(await guest('ubuntu-2404-sriov-before'));
  const refused = (attachment: VfAttachment, f = facts) => {
    const plan = planUbuntu(f, { attachment, vm: 'VM 101' });
    assert.deepEqual(plan.steps, []);
    assert.doesNotMatch(plan.refused ?? '', /\n/);
    return plan.refused ?? '';
  };
  const newest =
    'https://github.com/strongtz/i915-sriov-dkms/releases/download/2026.05.06/i915-sriov-dkms_2026.05.06_amd64.deb';
  assert.match(
    refused(vf({ guestPackage: { url: newest } })),
    /^VM 101: i915-sriov-dkms 2026\.05\.06 builds only for kernels 6\.17–7\.0, not the guest's running kernel 6\.8\.0-85-generic; fix: .*2025\.07\.22/,
  );
  assert.match(
    refused(vf({ guestPackage: undefined })),
    /^VM 101: no i915-sriov-dkms package is named for the guest; fix: .*sriov\.guestDriver/,
  );
  assert.match(
    refused(vf({ guestPackage: { file: '/tmp/driver.deb' } })),
    /^VM 101: driver\.deb is not an i915-sriov-dkms release/,
  );
  assert.match(
    refused(vf(), { ...facts, secureBoot: true }),
    /^VM 101: Secure Boot is on in the guest and the i915-sriov-dkms module is not signed .*; fix: turn Secure Boot off/,
  );
  // The kernel the guest boots next counts too: a newer kernel installed outside the range.
  const next = { ...facts, sriov: { ...facts.sriov, kernels: [...facts.sriov.kernels, '6.17.0-8-generic'] } };
  assert.match(refused(vf(), next), /not the guest's next-boot kernel 6\.17\.0-8-generic/);
  // The xe route needs a guest kernel whose xe drives the VF.
  assert.match(refused(vf({ route: 'xe', forceProbe: true })), /older than 6\.18/);
});

test('our drop-in is read after 50-cloudimg-settings.cfg and keeps its console= settings', async () => {
  const root = `${FIXTURES}ubuntu-2404-sriov-before`;
  const dropin = grubDropin(['i915.enable_guc=3', 'module_blacklist=xe']);
  // grub-mkconfig sources /etc/default/grub, then every /etc/default/grub.d/*.cfg in glob order.
  const script = `GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"; for f in "$1"/*.cfg; do . "$f"; done; echo "$GRUB_CMDLINE_LINUX_DEFAULT"`;
  const dir = execFileSync('mktemp', ['-d']).toString().trim();
  execFileSync('cp', [`${root}/etc/default/grub.d/50-cloudimg-settings.cfg`, dir]);
  execFileSync('sh', ['-c', `cat > "${dir}/${SRIOV_GRUB_DROPIN.split('/').pop()}"`], { input: dropin });
  const out = execFileSync('sh', ['-c', script, 'sh', dir]).toString().trim();
  execFileSync('rm', ['-r', dir]);
  assert.equal(out, 'console=tty1 console=ttyS0 i915.enable_guc=3 module_blacklist=xe');
});
