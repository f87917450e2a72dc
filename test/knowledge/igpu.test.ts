import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { allIgpuIds, ID_LISTS, lookupIgpu, SOURCE_ID_COUNT } from '../../src/knowledge/igpu-ids.ts';
import {
  I915_SRIOV_DKMS_KERNELS,
  IGPU_PLATFORMS,
  type IgpuPlatform,
} from '../../src/knowledge/igpu-platforms.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Binding {
  list: string;
  desc: string;
  ids: string[];
}
interface Desc {
  platform: string;
  hasSriov: boolean;
  requireForceProbe: boolean;
}
interface Facts {
  sources: { repository: string; path: string; commit: string; blob: string }[];
  producedBy: string;
  pciIds: {
    integrated: Record<string, string[]>;
    subLists: Record<string, string[]>;
    discrete: Record<string, string[]>;
    absent: string[];
  };
  gvt: { supported: string[] };
  i915SriovDkms: { buildExclusiveKernel: string; infos: Record<string, Desc>; bindings: Binding[] };
  xe: { descs: Record<string, Desc>; bindings: Binding[] };
}

const facts = JSON.parse(await readFile(join(root, 'snapshots', 'igpu-facts.json'), 'utf8')) as Facts;
const hex = (id: number) => `0x${id.toString(16).padStart(4, '0')}`;

/** Which descriptor each id binds to in a driver's pciidlist (first match wins, as in the PCI core). */
function bound(bindings: Binding[], descs: Record<string, Desc>): Map<string, Desc> {
  const out = new Map<string, Desc>();
  for (const b of bindings) for (const id of b.ids) if (!out.has(id)) out.set(id, descs[b.desc] as Desc);
  return out;
}
const i915 = bound(facts.i915SriovDkms.bindings, facts.i915SriovDkms.infos);
const xe = bound(facts.xe.bindings, facts.xe.descs);
const idsOf = (platform: IgpuPlatform) =>
  allIgpuIds()
    .filter((i) => i.platform === platform)
    .map((i) => hex(i.deviceId));

test('hand-checked device ids map to their platforms', () => {
  const cases: [number, string][] = [
    [0x3e92, 'coffeelake'], // UHD 630, i5-8500T
    [0x3e98, 'coffeelake'], // UHD 630, i9-9900K
    [0x1912, 'skylake'], // HD 530, i7-6700K
    [0x5912, 'kabylake'], // HD 630, i7-7700K
    [0x9bc8, 'cometlake'], // UHD 630, i5-10500
    [0x1622, 'broadwell'], // Iris Pro 6200, i7-5775C
    [0x5a85, 'broxton'], // HD 500, J3455
    [0x3185, 'geminilake'], // UHD 600
    [0x8a52, 'icelake'],
    [0x9a49, 'tigerlake'], // Iris Xe, i5-1135G7
    [0x4c8a, 'rocketlake'],
    [0x4680, 'alderlake-s'],
    [0x46d1, 'alderlake-n'], // N100
    [0xa780, 'raptorlake-s'], // UHD 770, i5-13500
    [0xa7a0, 'raptorlake-p'],
    [0x7d55, 'meteorlake'],
    [0x64a0, 'lunarlake'],
    [0xb08f, 'pantherlake'],
    [0xfd80, 'wildcatlake'],
    [0xd740, 'novalake-s'],
    [0x22b0, 'cherryview'],
  ];
  for (const [id, platform] of cases) assert.equal(lookupIgpu(id)?.platform, platform, id.toString(16));
  assert.equal(lookupIgpu(0x3ea0)?.variant, 'Whiskey Lake');
  assert.equal(lookupIgpu(0x87ca)?.variant, 'Amber Lake');
  assert.equal(lookupIgpu(0x1234), undefined);
  assert.equal(lookupIgpu(0x56a0), undefined, 'DG2 (Arc) is discrete, not an iGPU');
  // Upstream dropped these Panther Lake ids; they must not linger.
  for (const gone of [0xb091, 0xb092, 0xb0a1, 0xb0a2]) assert.equal(lookupIgpu(gone), undefined, hex(gone));
});

test('no id is listed twice and every id has a known platform', () => {
  assert.equal(allIgpuIds().length, SOURCE_ID_COUNT);
  for (const id of allIgpuIds()) assert.ok(IGPU_PLATFORMS[id.platform], id.platform);
});

test('the snapshot names its sources and the script that made it', () => {
  assert.equal(facts.producedBy, 'scripts/extract-igpu-facts.ts');
  for (const s of facts.sources) {
    assert.match(s.commit, /^[0-9a-f]{40}$/, s.path);
    assert.match(s.blob, /^[0-9a-f]{40}$/, s.path);
  }
});

test('the id table is exactly the union of the integrated lists of pciids.h, id for id', () => {
  const upstream = new Set(Object.values(facts.pciIds.integrated).flat());
  const ours = new Set(allIgpuIds().map((i) => hex(i.deviceId)));
  assert.deepEqual(
    [...ours].filter((id) => !upstream.has(id)),
    [],
    'ids in our table that upstream does not list',
  );
  assert.deepEqual(
    [...upstream].filter((id) => !ours.has(id)),
    [],
    'upstream ids missing from our table',
  );
  // Each group is one upstream list, whole.
  const named = { ...facts.pciIds.integrated, ...facts.pciIds.subLists };
  for (const [list, , ids] of ID_LISTS) assert.deepEqual(ids.map(hex), named[list], list);
});

test('no id of the table is in a discrete list', () => {
  const discrete = new Map<string, string>();
  for (const [list, ids] of Object.entries(facts.pciIds.discrete))
    for (const id of ids) discrete.set(id, list);
  assert.ok(discrete.size > 0, 'the snapshot lists discrete cards');
  for (const id of allIgpuIds()) assert.equal(discrete.get(hex(id.deviceId)), undefined, hex(id.deviceId));
});

test('every id of a platform binds to the same driver platform', () => {
  for (const platform of Object.keys(IGPU_PLATFORMS) as IgpuPlatform[]) {
    const kernel = new Set(idsOf(platform).map((id) => (i915.get(id) ?? xe.get(id))?.platform ?? 'none'));
    assert.equal(kernel.size, 1, `${platform}: ${[...kernel].join(', ')}`);
  }
});

test('GVT-g exactly where intel_gvt.c is_supported_device() accepts the platform', () => {
  assert.ok(facts.gvt.supported.length > 0);
  for (const platform of Object.values(IGPU_PLATFORMS)) {
    const supported = idsOf(platform.id).some((id) =>
      facts.gvt.supported.includes(i915.get(id)?.platform ?? ''),
    );
    assert.equal(platform.gvt, supported, platform.id);
  }
});

test('SR-IOV routes are exactly the has_sriov facts of the DKMS i915 and upstream xe', () => {
  for (const platform of Object.values(IGPU_PLATFORMS)) {
    const ids = idsOf(platform.id);
    const want: { route: string; forceProbe?: boolean }[] = [];
    if (ids.some((id) => i915.get(id)?.hasSriov)) want.push({ route: 'i915-sriov-dkms' });
    const xeDesc = ids.map((id) => xe.get(id)).find((d) => d?.hasSriov);
    if (xeDesc) want.push({ route: 'xe', forceProbe: xeDesc.requireForceProbe });
    const have = platform.sriov.map((r) =>
      r.route === 'xe' ? { route: r.route, forceProbe: r.forceProbe ?? false } : { route: r.route },
    );
    assert.deepEqual(have, want, platform.id);
    // A route behind force_probe is never presented as settled.
    for (const r of platform.sriov) if (r.forceProbe) assert.equal(r.experimental, true, platform.id);
  }
  assert.deepEqual(IGPU_PLATFORMS.rocketlake.sriov, []);
  assert.ok(IGPU_PLATFORMS.tigerlake.sriov.every((r) => r.experimental));
});

const script = join(root, 'scripts', 'extract-igpu-facts.ts');

async function runScript(pciids: string): Promise<{ status: number | null; stderr: string; stdout: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-facts-'));
  try {
    const header = join(dir, 'pciids.h');
    const empty = join(dir, 'empty.c');
    await writeFile(header, pciids);
    await writeFile(empty, '');
    const commit = 'a'.repeat(40);
    const r = spawnSync(
      process.execPath,
      [
        script,
        ...['--upstream', `owner/linux@${commit}`, '--gvt-upstream', `owner/linux@${commit}`],
        ...[
          '--pciids',
          header,
          '--xe-pci',
          empty,
          '--gvt',
          empty,
          '--dkms',
          dir,
          '--out',
          join(dir, 'out.json'),
        ],
      ],
      { encoding: 'utf8' },
    );
    return { status: r.status, stderr: r.stderr, stdout: r.stdout };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const list = (name: string, ids: string[]) =>
  `#define ${name}(MACRO__, ...) \\\n${ids.map((id) => `\tMACRO__(${id}, ## __VA_ARGS__)`).join(', \\\n')}\n`;

test('the script refuses a header with no lists, in one line', async () => {
  const r = await runScript('/* nothing here */\n');
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /^extract-igpu-facts: include\/drm\/intel\/pciids\.h: no INTEL_\*_IDS lists found\n$/,
  );
});

test('the script refuses a list it has not classified, naming it', async () => {
  const r = await runScript(list('INTEL_BDW_IDS', ['0x1606']) + list('INTEL_ZZZ_IDS', ['0x9999']));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^extract-igpu-facts: [^\n]*unknown list macro INTEL_ZZZ_IDS[^\n]*\n$/);
});

test('the script refuses a missing file, in one line', async () => {
  const r = spawnSync(
    process.execPath,
    [
      script,
      '--upstream',
      `o/l@${'a'.repeat(40)}`,
      '--gvt-upstream',
      `o/l@${'a'.repeat(40)}`,
      '--pciids',
      '/nonexistent/pciids.h',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^extract-igpu-facts: \/nonexistent\/pciids\.h: cannot be read \(ENOENT\)\n$/);
});

test('the SR-IOV DKMS kernel series are the ones its dkms.conf builds for', () => {
  const builds = new RegExp(facts.i915SriovDkms.buildExclusiveKernel);
  for (const series of I915_SRIOV_DKMS_KERNELS) assert.ok(builds.test(`${series}.0-1-pve`), series);
  // …and the neighbours are not: the list is the whole range.
  for (const series of ['6.16', '7.1']) assert.ok(!builds.test(`${series}.0-1-pve`), series);
  const [first, last] = [I915_SRIOV_DKMS_KERNELS[0], I915_SRIOV_DKMS_KERNELS.at(-1)];
  for (const platform of Object.values(IGPU_PLATFORMS))
    for (const route of platform.sriov.filter((r) => r.route === 'i915-sriov-dkms'))
      assert.match(route.note, new RegExp(`kernels ${first}–${last}`));
});
