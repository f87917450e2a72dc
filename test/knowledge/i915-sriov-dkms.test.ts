// The i915-sriov-dkms release table and the SR-IOV kernel parameters, held to
// snapshots/i915-sriov-dkms.json (scripts/extract-dkms-releases.ts: dkms.conf at every release
// tag, the DKMS i915_params.c and xe_module.c, and the kernel's module-loading passages).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parseParams } from '../../src/host/boot/kernel-params.ts';
import { routeParams } from '../../src/host/sriov/route.ts';
import {
  buildsFor,
  DKMS_RELEASES,
  describeRange,
  knownRelease,
  releaseOfPackageFile,
} from '../../src/knowledge/i915-sriov-dkms.ts';
import {
  BOOT_PARAM,
  I915_PARAM,
  I915_PARAM_TYPE,
  MODULE,
  SRIOV_PARAM,
  unknownParameterMessage,
  XE_PARAM,
  XE_PARAM_TYPE,
} from '../../src/knowledge/kernel.ts';

interface Snapshot {
  sources: { repository: string; path: string; commit: string; blob: string; tag?: string }[];
  releases: { release: string; commit: string; buildExclusiveKernel: string }[];
  moduleParameters: { module: string; name: string; type: string }[];
  excerpts: {
    repository: string;
    path: string;
    commit: string;
    coreParameters: { name: string; type: string }[];
    messages: string[];
  }[];
}

function snapshot(): Snapshot {
  const data = JSON.parse(
    readFileSync(new URL('../../snapshots/i915-sriov-dkms.json', import.meta.url), 'utf8'),
  ) as Snapshot & { producedBy: string };
  assert.equal(Object.keys(data)[0], 'sources');
  assert.equal(data.producedBy, 'scripts/extract-dkms-releases.ts');
  for (const s of data.sources) {
    assert.match(s.commit, /^[0-9a-f]{40}$/, `${s.path}: commit`);
    assert.match(s.blob, /^[0-9a-f]{40}$/, `${s.path}: blob`);
  }
  for (const e of data.excerpts) assert.match(e.commit, /^[0-9a-f]{40}$/, `${e.path}: commit`);
  return data;
}

test('the release table is the dkms.conf of every release tag', () => {
  const facts = snapshot();
  assert.deepEqual(
    DKMS_RELEASES.map((r) => ({ ...r })),
    facts.releases,
  );
  for (const release of facts.releases)
    assert.ok(
      facts.sources.some(
        (s) => s.tag === release.release && s.path === 'dkms.conf' && s.commit.startsWith(release.commit),
      ),
      `${release.release}: no dkms.conf source at its tag`,
    );
});

test('which kernels a release builds for, and how its range and package file read', () => {
  const of = (release: string) => knownRelease(release)?.buildExclusiveKernel as string;
  assert.equal(buildsFor(of('2025.07.22'), '6.8.12-4-pve'), true);
  assert.equal(buildsFor(of('2026.05.06'), '6.8.12-4-pve'), false);
  assert.equal(buildsFor(of('2026.05.06'), '7.0.1-1-pve'), true);
  assert.equal(
    buildsFor(of('2025.07.22'), '6.17.13-2-pve'),
    false,
    '6.1 followed by 7 is not 6.1[0-6]… at the start',
  );
  assert.equal(buildsFor(of('2026.05.06'), '6.17.13-2-pve'), true);
  assert.equal(buildsFor('^6\\.(', '6.8.0'), false, 'a pattern that does not compile builds for nothing');
  assert.equal(describeRange(of('2025.07.22')), '6.8–6.16');
  assert.equal(describeRange(of('2026.05.06')), '6.17–7.0');
  assert.equal(releaseOfPackageFile('/tmp/i915-sriov-dkms_2025.07.22_amd64.deb'), '2025.07.22');
  assert.equal(releaseOfPackageFile('i915-sriov-dkms_2025.10.09-2_amd64.deb'), '2025.10.09-2');
  assert.equal(releaseOfPackageFile('i915-sriov-dkms-2025.07.22.tar.gz'), undefined);
  assert.equal(knownRelease('1999.01.01'), undefined);
});

test('the SR-IOV module parameters exist in the DKMS drivers with the types our values need', () => {
  const facts = snapshot();
  const declared = (module: string, name: string) =>
    facts.moduleParameters.find((p) => p.module === module && p.name === name)?.type;
  assert.equal(declared(MODULE.i915, I915_PARAM.maxVfs), I915_PARAM_TYPE.max_vfs);
  assert.equal(declared(MODULE.i915, I915_PARAM.enableGuc), I915_PARAM_TYPE.enable_guc);
  for (const name of Object.values(XE_PARAM)) assert.equal(declared(MODULE.xe, name), XE_PARAM_TYPE[name]);
});

test('module_blacklist and the "unknown parameter" line are the kernel’s', () => {
  const [kernel] = snapshot().excerpts;
  assert.equal(kernel?.path, 'kernel/module/main.c');
  assert.deepEqual(
    kernel?.coreParameters.find((p) => p.name === BOOT_PARAM.moduleBlacklist),
    { name: 'module_blacklist', type: 'charp' },
  );
  const format = kernel?.messages.find((m) => m.includes('unknown parameter')) ?? '';
  // The kernel's format filled in the way the module loader fills it (modname, param).
  const filled = format.replace('\\n', '').replace('%s', 'i915').replace('%s', 'max_vfs');
  assert.equal(unknownParameterMessage('i915', 'max_vfs'), filled);
});

test('every parameter a route adds is one the snapshots know, valued as declared', () => {
  const facts = snapshot();
  const choices = [
    { route: 'i915-sriov-dkms', experimental: false, forceProbe: false, driver: 'i915', note: '' },
    { route: 'xe', experimental: true, forceProbe: true, driver: 'xe', note: '' },
  ] as const;
  for (const choice of choices) {
    for (const raw of routeParams(choice, 7, '46d1')) {
      const [param] = parseParams(raw);
      assert.ok(param?.value, raw);
      const [module, name] = param.name.includes('.') ? param.name.split('.') : [undefined, param.name];
      if (!module) continue; // intel_iommu (kernel-pins.test.ts) and module_blacklist (above)
      const type = facts.moduleParameters.find((p) => p.module === module && p.name === name)?.type;
      assert.ok(type, `${raw}: ${module} declares no ${name}`);
      if (type === 'uint' || type === 'int') assert.match(param.value, /^\d+$/, raw);
    }
  }
  assert.deepEqual(routeParams(choices[0], 7, '46d1'), [
    'intel_iommu=on',
    'i915.enable_guc=3',
    'i915.max_vfs=7',
    'module_blacklist=xe',
  ]);
  assert.deepEqual(routeParams(choices[1], 7, '46d1'), [
    'intel_iommu=on',
    'xe.max_vfs=7',
    'xe.force_probe=46d1',
    'module_blacklist=i915',
  ]);
  assert.equal(SRIOV_PARAM.moduleBlacklist('xe', 'i915'), 'module_blacklist=xe,i915');
});
