// One test per captured host: the whole verdict, checked against what a careful
// person reading the same files would conclude.

import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import type { CheckStatus } from '../../src/core/model.ts';
import { type DoctorReport, runDoctor } from '../../src/host/doctor.ts';
import { doctorReportSchema } from '../../src/host/doctor-schema.ts';
import { fixtureNames, fixturePath } from '../support/fixtures.ts';

async function doctor(tree: string): Promise<DoctorReport> {
  const report = await runDoctor(await new CapturedRoot(tree).open());
  doctorReportSchema.parse(report); // the JSON we publish must match its schema
  return report;
}

const status = (report: DoctorReport, id: string): CheckStatus | undefined =>
  report.checks.find((c) => c.id === id)?.status;
const evidence = (report: DoctorReport, id: string): string =>
  report.checks.find((c) => c.id === id)?.evidence ?? '';
const fix = (report: DoctorReport, id: string): string => report.checks.find((c) => c.id === id)?.fix ?? '';

interface Expectation {
  mode: DoctorReport['mode'];
  result: DoctorReport['result'];
  checks?: Record<string, CheckStatus>;
  predicted?: Record<string, number>;
  live?: Record<string, number>;
  cpu?: Partial<NonNullable<DoctorReport['cpu']>>;
  gpu?: Partial<NonNullable<DoctorReport['gpu']>> | null;
  host?: Partial<DoctorReport['host']>;
  more?: (report: DoctorReport) => void;
}

const V5 = (n8: number, n4: number, more: Record<string, number> = {}) => ({
  'i915-GVTg_V5_8': n8,
  'i915-GVTg_V5_4': n4,
  ...more,
});

const expectations: Record<string, Expectation> = {
  'i5-8500t-before': {
    mode: 'gvt-g',
    result: 'fail',
    cpu: { codename: 'Coffee Lake', coreGeneration: 8, vmx: true },
    gpu: { deviceId: '3e92', platform: 'coffeelake', apertureMiB: 256, driver: 'i915' },
    checks: { 'gvt.enabled': 'fail', 'gvt.kvmgt': 'fail', 'gvt.aperture': 'warn', 'iommu.kernel': 'pass' },
    predicted: V5(2, 1),
    live: {},
    host: { bootloader: 'grub', uefi: true, secureBoot: false },
    more: (r) => {
      assert.equal(
        evidence(r, 'gvt.aperture'),
        '256 MB aperture → 1 × V5_4 or 2 × V5_8; 512 MB aperture would give 3 × V5_4',
      );
      assert.match(r.checks.find((c) => c.id === 'gvt.aperture')?.fix ?? '', /not DVMT/);
      assert.equal(status(r, 'gvt.mdev-types'), undefined, 'no mdev verdict before GVT-g is on');
    },
  },
  'i5-8500t-gvt': {
    mode: 'gvt-g',
    result: 'warn',
    checks: {
      'gvt.enabled': 'pass',
      'gvt.kvmgt': 'pass',
      'gvt.guc-submission': 'pass',
      'gvt.mdev-types': 'pass',
      'gvt.instances': 'pass',
      'gvt.aperture': 'warn',
    },
    predicted: V5(2, 1),
    live: V5(2, 1),
  },
  'i7-6700k-sdboot': {
    mode: 'gvt-g',
    result: 'pass',
    cpu: { codename: 'Skylake', coreGeneration: 6 },
    gpu: { deviceId: '1912', platform: 'skylake', apertureMiB: 512 },
    predicted: V5(6, 3, { 'i915-GVTg_V5_2': 1 }),
    live: V5(6, 3, { 'i915-GVTg_V5_2': 1 }),
    host: { bootloader: 'systemd-boot' },
    checks: { 'gvt.aperture': 'pass', 'gvt.instances': 'pass', 'host.bootloader': 'pass' },
  },
  'i9-9900k-guc': {
    mode: 'gvt-g',
    result: 'fail',
    cpu: { coreGeneration: 9 },
    gpu: { deviceId: '3e98', platform: 'coffeelake' },
    checks: { 'gvt.guc-submission': 'fail', 'gvt.enabled': 'fail' },
    more: (r) => {
      assert.match(
        evidence(r, 'gvt.guc-submission'),
        /enable_guc=3 \(GuC submission on\), set by i915\.enable_guc=3/,
      );
      assert.match(evidence(r, 'gvt.enabled'), /although the kernel command line has i915\.enable_gvt=1/);
      assert.match(r.checks.find((c) => c.id === 'gvt.enabled')?.fix ?? '', /turned GVT-g off/);
    },
  },
  'i5-10500-cometlake': {
    mode: 'gvt-g',
    result: 'pass',
    cpu: { coreGeneration: 10 },
    gpu: { deviceId: '9bc8', platform: 'cometlake', apertureMiB: 1024 },
    predicted: V5(7, 5, { 'i915-GVTg_V5_2': 2, 'i915-GVTg_V5_1': 1 }),
    live: V5(7, 5, { 'i915-GVTg_V5_2': 2, 'i915-GVTg_V5_1': 1 }),
    host: { bootloader: 'grub' },
  },
  'i7-5775c-broadwell': {
    mode: 'gvt-g',
    result: 'warn',
    cpu: { coreGeneration: 5 },
    gpu: { deviceId: '1622', platform: 'broadwell', graphicsVer: 8 },
    predicted: { 'i915-GVTg_V4_8': 2, 'i915-GVTg_V4_4': 1 },
    live: { 'i915-GVTg_V4_8': 2, 'i915-GVTg_V4_4': 1 },
    host: { uefi: false, secureBoot: null },
  },
  'j3455-apollolake': {
    mode: 'gvt-g',
    result: 'fail',
    gpu: { deviceId: '5a85', platform: 'broxton' },
    checks: { 'gvt.enabled': 'fail' },
    predicted: V5(2, 1),
  },
  'i5-1135g7-tigerlake': {
    mode: 'passthrough',
    result: 'pass',
    cpu: { coreGeneration: 11 },
    gpu: { deviceId: '9a49', platform: 'tigerlake' },
    checks: { 'passthrough.group': 'pass', 'iommu.kernel': 'pass' },
    predicted: { passthrough: 1 },
    host: { bootloader: 'systemd-boot' },
    // Both SR-IOV routes for Tiger Lake are experimental, so auto keeps passthrough and says why.
    more: (r) =>
      assert.match(
        r.modeReason,
        /^Tiger Lake iGPU: SR-IOV possible through i915-sriov-dkms \(experimental\) or upstream xe \(experimental, needs xe\.force_probe\); planned as whole-device passthrough/,
      ),
  },
  'n100-sriov': {
    mode: 'sriov',
    result: 'pass',
    gpu: { deviceId: '46d1', platform: 'alderlake-n' },
    checks: {
      'sriov.route': 'pass',
      'sriov.kernel': 'pass',
      'sriov.next-boot': 'pass',
      'sriov.module-built': 'pass',
      'sriov.module-loaded': 'pass',
      'sriov.max-vfs': 'pass',
      'sriov.driver': 'pass',
      'sriov.vfs': 'pass',
      'sriov.guc': 'pass',
      'sriov.vf-drivers': 'pass',
    },
    predicted: { 'sriov-vf': 7 },
    live: { 'sriov-vf': 7 },
    more: (r) => {
      assert.match(
        evidence(r, 'sriov.kernel'),
        /i915-sriov-dkms 2025\.07\.22 builds for 6\.8\.12-4-pve \(6\.8–6\.16\)/,
      );
      assert.match(evidence(r, 'sriov.guc'), /^GuC 70\.29\.2: VF interface 1\.13$/);
      assert.equal(status(r, 'sriov.secure-boot'), undefined, 'Secure Boot is off');
    },
  },
  'n100-sriov-upgraded': {
    mode: 'sriov',
    result: 'fail',
    checks: { 'sriov.kernel': 'pass', 'sriov.module-built': 'pass', 'sriov.next-boot': 'fail' },
    live: { 'sriov-vf': 7 },
    more: (r) => {
      assert.match(
        evidence(r, 'sriov.next-boot'),
        /^next boot \(newest installed\) 6\.17\.13-2-pve: i915-sriov-dkms 2025\.07\.22 builds only for kernels 6\.8–6\.16, not 6\.17\.13-2-pve/,
      );
      assert.match(fix(r, 'sriov.next-boot'), /proxmox-boot-tool kernel pin/);
    },
  },
  'n100-before': {
    mode: 'sriov',
    result: 'fail',
    gpu: { deviceId: '46d1', platform: 'alderlake-n', driver: 'i915' },
    host: { proxmoxVersion: '9.1.1', kernelRelease: '6.17.13-2-pve' },
    checks: {
      'sriov.route': 'pass',
      'sriov.kernel': 'fail',
      'sriov.next-boot': 'fail',
      'sriov.module-built': 'fail',
      'sriov.module-loaded': 'fail',
      'sriov.max-vfs': 'fail',
      'sriov.driver': 'fail',
      'sriov.guc': 'pass',
    },
    predicted: { 'sriov-vf': 7 },
    live: {},
    more: (r) => {
      assert.match(
        evidence(r, 'sriov.module-loaded'),
        /stock i915: \/sys\/module\/i915\/parameters has no max_vfs/,
      );
      assert.match(fix(r, 'sriov.max-vfs'), /add i915\.max_vfs=7 to the kernel command line/);
      assert.match(
        fix(r, 'sriov.driver'),
        /intel_iommu=on i915\.enable_guc=3 i915\.max_vfs=7 module_blacklist=xe/,
      );
      assert.equal(status(r, 'sriov.vf-drivers'), undefined, 'no VFs, no VF check');
    },
  },
  'i5-13500-raptorlake': {
    mode: 'sriov',
    result: 'fail',
    cpu: { coreGeneration: 13 },
    gpu: { deviceId: 'a780', platform: 'raptorlake-s' },
    checks: { 'sriov.driver': 'fail', 'sriov.module-built': 'fail', 'sriov.guc': 'warn' },
    predicted: { 'sriov-vf': 7 },
  },
  'ryzen-5600g-amd': {
    mode: 'none',
    result: 'fail',
    gpu: null,
    cpu: { vendor: 'AuthenticAMD', codename: null },
    checks: { 'gpu.intel-igpu': 'fail', 'cpu.virtualization': 'pass' },
    predicted: {},
    more: (r) => assert.match(r.modeReason, /no Intel integrated GPU.*1002:1638/),
  },
  'xeon-e5-2680v4-nogfx': {
    mode: 'none',
    result: 'fail',
    gpu: null,
    checks: { 'gpu.intel-igpu': 'fail' },
    more: (r) => assert.match(evidence(r, 'gpu.intel-igpu'), /1a03:2000/),
  },
  'i5-8500t-vtd-off': {
    mode: 'gvt-g',
    result: 'warn',
    checks: { 'iommu.firmware': 'warn', 'gvt.enabled': 'pass', 'gvt.instances': 'pass' },
    more: (r) => {
      assert.match(r.checks.find((c) => c.id === 'iommu.firmware')?.fix ?? '', /enable VT-d/);
      assert.equal(status(r, 'iommu.kernel'), undefined, 'one root cause, one check');
    },
  },
  'i5-8500t-mismatch': {
    mode: 'gvt-g',
    result: 'warn',
    live: V5(0, 0),
    predicted: V5(2, 1),
    checks: { 'gvt.instances': 'pass' },
    more: (r) => assert.match(evidence(r, 'gvt.instances'), /with 1 × i915-GVTg_V5_4 in use/),
  },
};

test('every fixture has an expectation and every expectation a fixture', () => {
  assert.deepEqual(fixtureNames(), Object.keys(expectations).sort());
});

for (const [name, want] of Object.entries(expectations)) {
  test(`verdict: ${name}`, async () => {
    const report = await doctor(fixturePath(name));
    assert.equal(report.mode, want.mode, report.modeReason);
    assert.equal(
      report.result,
      want.result,
      JSON.stringify(report.checks.filter((c) => c.status !== 'pass')),
    );
    for (const [id, expected] of Object.entries(want.checks ?? {}))
      assert.equal(status(report, id), expected, id);
    if (want.predicted) assert.deepEqual(report.vgpu.predicted, want.predicted);
    if (want.live) assert.deepEqual(report.vgpu.live, want.live);
    if (want.cpu) assert.deepEqual({ ...report.cpu, ...want.cpu }, report.cpu);
    if (want.gpu === null) assert.equal(report.gpu, null);
    else if (want.gpu) assert.deepEqual({ ...report.gpu, ...want.gpu }, report.gpu);
    if (want.host) assert.deepEqual({ ...report.host, ...want.host }, report.host);
    for (const check of report.checks)
      if (check.status !== 'pass') assert.ok(check.fix, `${check.id} needs a fix`);
    want.more?.(report);
  });
}

test('live available_instances that disagree with the formula are explained', async () => {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-mismatch-'));
  try {
    await cp(fixturePath('i5-8500t-gvt'), tree, { recursive: true, verbatimSymlinks: true });
    const type = 'sys/bus/pci/devices/0000:00:02.0/mdev_supported_types/i915-GVTg_V5_8';
    await writeFile(join(tree, type, 'available_instances'), '1\n');
    const report = await doctor(tree);
    assert.equal(status(report, 'gvt.instances'), 'warn');
    assert.match(evidence(report, 'gvt.instances'), /i915-GVTg_V5_8 live 1, predicted 2/);
    assert.match(report.checks.find((c) => c.id === 'gvt.instances')?.fix ?? '', /GTT/);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
});

test('VT-x off in the BIOS and a VM without nested virtualization get different fixes', async () => {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-vmx-'));
  try {
    await cp(fixturePath('i5-8500t-gvt'), tree, { recursive: true, verbatimSymlinks: true });
    const cpuinfo = join(tree, 'proc/cpuinfo');
    const original = await readFile(cpuinfo, 'utf8');
    await writeFile(cpuinfo, original.replaceAll(' vmx ', ' '));
    const bios = await doctor(tree);
    assert.equal(status(bios, 'cpu.virtualization'), 'fail');
    assert.match(bios.checks.find((c) => c.id === 'cpu.virtualization')?.fix ?? '', /enable Intel VT-x/);
    assert.equal(bios.mode, 'gvt-g', 'one BIOS switch does not change what the hardware can do');
    await writeFile(
      cpuinfo,
      original.replaceAll(' vmx ', ' ').replaceAll('flags\t\t: ', 'flags\t\t: hypervisor '),
    );
    const vm = await doctor(tree);
    assert.match(evidence(vm, 'cpu.virtualization'), /this is a virtual machine/);
    assert.match(
      vm.checks.find((c) => c.id === 'cpu.virtualization')?.fix ?? '',
      /on the Proxmox host itself/,
    );
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
});

test('fixtures hold no empty folder (git would drop it and a clean clone would read another host)', async () => {
  const empty: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    if (entries.length === 0) empty.push(dir);
    for (const entry of entries) if (entry.isDirectory()) await walk(join(dir, entry.name));
  };
  for (const name of fixtureNames()) await walk(fixturePath(name));
  assert.deepEqual(empty, []);
});

test('an IOMMU the kernel did not start: the fix depends on what the command line already says', async () => {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-iommu-'));
  try {
    await cp(fixturePath('i5-8500t-gvt'), tree, { recursive: true, verbatimSymlinks: true });
    await rm(join(tree, 'sys/class/iommu'), { recursive: true });
    await rm(join(tree, 'sys/kernel/iommu_groups'), { recursive: true });
    const asked = await doctor(tree);
    assert.equal(status(asked, 'iommu.kernel'), 'warn', 'GVT-g works without it, so only a warning');
    assert.match(evidence(asked, 'iommu.kernel'), /although the kernel command line has intel_iommu=on/);
    assert.match(asked.checks.find((c) => c.id === 'iommu.kernel')?.fix ?? '', /dmesg/);
    const cmdline = join(tree, 'proc/cmdline');
    await writeFile(cmdline, (await readFile(cmdline, 'utf8')).replace('intel_iommu=on', 'intel_iommu=off'));
    const off = await doctor(tree);
    assert.match(
      off.checks.find((c) => c.id === 'iommu.kernel')?.fix ?? '',
      /replace intel_iommu=off with intel_iommu=on/,
    );
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
});

test('passthrough: an iGPU sharing its IOMMU group with other devices is a warning naming them', async () => {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-group-'));
  try {
    await cp(fixturePath('i5-1135g7-tigerlake'), tree, { recursive: true, verbatimSymlinks: true });
    await symlink(
      '../../../../devices/pci0000:00/0000:00:14.0',
      join(tree, 'sys/kernel/iommu_groups/1/devices/0000:00:14.0'),
    );
    const report = await doctor(tree);
    assert.equal(status(report, 'passthrough.group'), 'warn');
    assert.match(evidence(report, 'passthrough.group'), /shares IOMMU group 1 with 0000:00:14\.0/);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
});

test('SR-IOV counts that cannot be read are said so, never taken for 0 or for a driver without SR-IOV', async () => {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-sriov-'));
  try {
    await cp(fixturePath('n100-sriov'), tree, { recursive: true, verbatimSymlinks: true });
    const dev = join(tree, 'sys/bus/pci/devices/0000:00:02.0');
    await writeFile(join(dev, 'sriov_numvfs'), 'lots\n');
    let report = await doctor(tree);
    assert.equal(status(report, 'sriov.vfs'), 'warn');
    assert.match(evidence(report, 'sriov.vfs'), /sriov_numvfs: not a count/);
    assert.doesNotMatch(evidence(report, 'sriov.vfs'), /no virtual functions yet/);
    await writeFile(join(dev, 'sriov_totalvfs'), '\u0000\u0001');
    report = await doctor(tree);
    assert.equal(status(report, 'sriov.driver'), 'fail');
    assert.match(evidence(report, 'sriov.driver'), /sriov_totalvfs: /);
    assert.doesNotMatch(evidence(report, 'sriov.driver'), /does not offer SR-IOV/);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
});
