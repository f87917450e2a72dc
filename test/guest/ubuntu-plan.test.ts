// The Ubuntu guest path on captured guest trees (test/fixtures/guests): what it sees
// before and after linux-generic, and a virtual display that takes renderD128.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { gatherUbuntuFacts } from '../../src/guest/ubuntu/gather.ts';
import { planUbuntu } from '../../src/guest/ubuntu/plan.ts';
import { parseDpkgStatus } from '../../src/linux/parse/dpkg.ts';

const guest = (name: string) =>
  new CapturedRoot(fileURLToPath(new URL(`../fixtures/guests/${name}`, import.meta.url))).open();
const statuses = (checks: { id: string; status: string }[]) =>
  Object.fromEntries(checks.map((c) => [c.id, c.status]));

test('the cloud image before: no i915 in the running kernel, so install linux-generic and reboot', async () => {
  const facts = await gatherUbuntuFacts(await guest('ubuntu-2404-cloud-before'));
  assert.equal(facts.kernel.release, '6.8.0-85-generic');
  assert.equal(facts.i915Available, false);
  assert.equal(facts.k3s, true);
  assert.equal(facts.secureBoot, false);
  const plan = planUbuntu(facts);
  assert.deepEqual(statuses(plan.checks), {
    'guest.os': 'pass',
    'guest.gpu': 'pass',
    'guest.kernel': 'fail',
    'guest.driver': 'fail',
    'guest.render': 'fail',
    'guest.secure-boot': 'pass',
    'guest.k3s': 'pass',
  });
  assert.match(
    plan.checks.find((c) => c.id === 'guest.kernel')?.evidence ?? '',
    /cloud image kernel, without linux-modules-extra/,
  );
  assert.deepEqual(
    plan.steps.map((s) => [s.id.split('/').pop(), s.command, s.disturbs]),
    [
      ['kernel', 'apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y linux-generic', []],
      ['reboot', 'systemctl reboot', ['node-drain', 'guest-reboot']],
    ],
  );
});

test('after linux-generic and the reboot: i915 bound, renderD128 is the Intel GPU, nothing to do', async () => {
  const plan = planUbuntu(await gatherUbuntuFacts(await guest('ubuntu-2404-cloud-after')));
  assert.deepEqual(plan.steps, []);
  assert.ok(
    plan.checks.every((c) => c.status === 'pass'),
    JSON.stringify(plan.checks),
  );
  assert.match(
    plan.checks.find((c) => c.id === 'guest.render')?.evidence ?? '',
    /renderD128 \(\/dev\/dri\/by-path\/pci-0000:01:00.0-render\)/,
  );
});

test('a virtio-gpu display takes card0 and renderD128: the Intel node is named, as a warning', async () => {
  const plan = planUbuntu(await gatherUbuntuFacts(await guest('ubuntu-2404-virtio-display')));
  const render = plan.checks.find((c) => c.id === 'guest.render');
  assert.equal(render?.status, 'warn');
  assert.match(
    render?.evidence ?? '',
    /the Intel GPU is \/dev\/dri\/renderD129 \(card1\); renderD128 is 0000:00:01.0/,
  );
  assert.match(render?.fix ?? '', /\/dev\/dri\/by-path\/pci-0000:01:00.0-render/);
});

test('installed but not booted: only the reboot is planned', async () => {
  const facts = await gatherUbuntuFacts(await guest('ubuntu-2404-cloud-after'));
  const plan = planUbuntu({
    ...facts,
    kernel: { release: '6.8.0-85-generic', flavour: 'generic' },
    i915Available: false,
  });
  assert.deepEqual(
    plan.steps.map((s) => s.id.split('/').pop()),
    ['reboot'],
  );
  assert.match(plan.steps[0]?.description ?? '', /6.8.0-88-generic is installed, 6.8.0-85-generic runs/);
});

test('dpkg status: only fully installed packages count', () => {
  const status = [
    'Package: linux-generic\nStatus: install ok installed\nVersion: 6.8.0-88.89',
    'Package: linux-modules-extra-6.8.0-88-generic\nStatus: deinstall ok config-files\nVersion: 6.8.0-88.89',
    'Package: half\nStatus: install reinstreq half-installed\nVersion: 1',
  ].join('\n\n');
  assert.deepEqual([...parseDpkgStatus(status)], [['linux-generic', '6.8.0-88.89']]);
});

test('not Ubuntu: nothing planned, and said so', async () => {
  const facts = await gatherUbuntuFacts(await guest('ubuntu-2404-cloud-before'));
  const plan = planUbuntu({
    ...facts,
    os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
  });
  assert.deepEqual(plan.steps, []);
  assert.match(plan.refused ?? '', /Debian GNU\/Linux 12 \(bookworm\) is not Ubuntu/);
});
