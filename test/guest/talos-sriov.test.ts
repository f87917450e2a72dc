// Talos on an SR-IOV VF: the official xe extension with xe.force_probe, experimental and
// only on an explicit `mode: sriov` host, Talos v1.12+ (Linux 6.18); every other case is
// refused with what would work. The pins behind it are held to snapshots/sriov-guest-facts.json.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { VfAttachment } from '../../src/guest/provider.ts';
import { ImageFactory } from '../../src/guest/talos/factory.ts';
import { planTalos, planTalosFrom } from '../../src/guest/talos/plan.ts';
import type { TalosNodeSpec } from '../../src/guest/talos/schematic.ts';
import { talosVfGpu } from '../../src/guest/talos/sriov.ts';
import {
  GPU_RESOURCE_OF,
  TALOS_EXTENSIONS,
  TALOS_KERNEL_SERIES,
  TALOS_XE_EXTENSION_SINCE,
} from '../../src/knowledge/pins.ts';
import { type FakeFactory, startImageFactory } from '../../src/sim/talos-factory.ts';

const NODE: TalosNodeSpec = {
  node: '10.0.0.6',
  version: 'v1.12.11',
  extensions: [],
  kernelArgs: [],
  qemuGuestAgent: false,
  secureBoot: false,
};
const VF: VfAttachment = {
  kind: 'vf',
  host: 'pve1',
  pfDeviceId: '46d1',
  route: 'i915-sriov-dkms',
  forceProbe: false,
  explicit: true,
};
let fake: FakeFactory;
let factory: ImageFactory;
before(async () => {
  fake = await startImageFactory();
  factory = new ImageFactory(fake.url);
});
after(async () => {
  await factory.close();
  await fake.close();
});

test('an explicit sriov host, an N100 VF, Talos v1.12: the xe extension with xe.force_probe, marked experimental', async () => {
  const plan = await planTalos(
    NODE,
    { node: NODE.node, extensions: undefined, dri: undefined },
    factory,
    VF,
    'VM 102',
  );
  assert.equal(plan.refused, undefined);
  assert.equal(plan.experimental, true);
  assert.deepEqual(plan.schematic.customization, {
    extraKernelArgs: ['xe.force_probe=46d1'],
    systemExtensions: { officialExtensions: ['siderolabs/intel-ucode', 'siderolabs/xe'] },
  });
  const upgrade = plan.steps.find((s) => s.id.endsWith('/upgrade'));
  assert.equal(upgrade?.experimental, true);
  assert.match(
    upgrade?.description ?? '',
    /siderolabs\/xe and kernel args xe\.force_probe=46d1 .*\[experimental\]/,
  );
  // The i915 extension kept by the lab file: i915 is blacklisted so xe gets the VF.
  const kept = await planTalos(
    { ...NODE, extensions: ['siderolabs/i915'] },
    { node: NODE.node, extensions: undefined, dri: undefined },
    factory,
    VF,
  );
  assert.deepEqual(kept.schematic.customization.extraKernelArgs, [
    'xe.force_probe=46d1',
    'module_blacklist=i915',
  ]);
});

test('refused, one line naming the VM and what would work: auto host, MTL/ARL VF, Talos before 1.12, unknown PF', async () => {
  const refused = async (attachment: VfAttachment, spec: TalosNodeSpec = NODE) => {
    const plan = await planTalos(
      spec,
      { node: spec.node, extensions: undefined, dri: undefined },
      factory,
      attachment,
      'VM 102',
    );
    assert.deepEqual(plan.steps, []);
    assert.doesNotMatch(plan.refused ?? '', /\n/);
    return plan.refused ?? '';
  };
  assert.match(
    await refused({ ...VF, explicit: false }),
    /^VM 102: Talos on a VF .* is experimental .*; fix: set mode: sriov on host pve1 to opt in, or an Ubuntu 24\.04 guest with i915-sriov-dkms/,
  );
  // Meteor Lake (7d55) has no xe route at all.
  assert.match(
    await refused({ ...VF, pfDeviceId: '7d55' }),
    /^VM 102: Talos cannot drive a Meteor Lake VF: .*; fix: an Ubuntu 24\.04 guest with i915-sriov-dkms drives it/,
  );
  assert.match(
    await refused(VF, { ...NODE, version: 'v1.11.6' }),
    /^VM 102: Talos v1\.11\.6 runs Linux 6\.12, and its xe drives Alder Lake-N VFs only from Linux 6\.18 .*; fix: set talos\.version to a v1\.12 or later release/,
  );
  assert.match(
    await refused({ ...VF, pfDeviceId: undefined }),
    /host pve1 was not read; fix: give the host ssh:/,
  );
  // A GVT-g mdev plans the i915 extension as before.
  const mdev = await planTalos(NODE, { node: NODE.node, extensions: undefined, dri: undefined }, factory, {
    kind: 'mdev',
  });
  assert.deepEqual(mdev.schematic.customization.systemExtensions.officialExtensions, [
    'siderolabs/i915',
    'siderolabs/intel-ucode',
  ]);
  assert.equal(mdev.experimental, undefined);
});

test('the pins agree with what was read upstream (snapshots/sriov-guest-facts.json)', () => {
  const snapshot = JSON.parse(
    readFileSync(new URL('../../snapshots/sriov-guest-facts.json', import.meta.url), 'utf8'),
  ) as {
    gpuPlugin: { resources: { i915: string; xe: string } };
    talos: {
      xeExtension: string;
      xeExtensionFirstTag: string;
      lowestLinuxSeriesByMinor: Record<string, string>;
    };
  };
  assert.deepEqual(GPU_RESOURCE_OF, snapshot.gpuPlugin.resources);
  assert.equal(TALOS_EXTENSIONS.xe, `siderolabs/${snapshot.talos.xeExtension}`);
  assert.equal(`v${TALOS_XE_EXTENSION_SINCE.join('.')}.0`, snapshot.talos.xeExtensionFirstTag);
  // 1.14 from its pre-release (snapshots/talos-versions.json), the others from their releases.
  const versions = JSON.parse(
    readFileSync(new URL('../../snapshots/talos-versions.json', import.meta.url), 'utf8'),
  ) as { linux: Record<string, string> };
  const rc = versions.linux['v1.14.0-rc.1']?.split('.').slice(0, 2).join('.');
  assert.deepEqual(TALOS_KERNEL_SERIES, { ...snapshot.talos.lowestLinuxSeriesByMinor, '1.14': rc });
});

test('Talos 1.14 on an explicit sriov host gets the xe extension too (Linux 6.18), and its KubeNodeConfig patch', () => {
  const vf = talosVfGpu(VF, 'v1.14.0', [], 'VM 102');
  assert.ok(!('refused' in vf), JSON.stringify(vf));
  assert.equal(vf.extension, 'siderolabs/xe');
  assert.deepEqual(vf.kernelArgs, ['xe.force_probe=46d1']);
  const plan = planTalosFrom(
    { ...NODE, version: 'v1.14.0' },
    { node: NODE.node, extensions: undefined, dri: undefined },
    {
      version: { version: 'v1.14.0', kind: 'unknown', text: 'Talos v1.14.0' },
      schematicId: 'ab',
      installer: 'i',
      vf,
    },
  );
  assert.deepEqual(plan.schematic.customization, {
    extraKernelArgs: ['xe.force_probe=46d1'],
    systemExtensions: { officialExtensions: ['siderolabs/intel-ucode', 'siderolabs/xe'] },
  });
  assert.equal(plan.patch[0]?.kind, 'KubeNodeConfig');
});
