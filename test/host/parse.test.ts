import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseCpuinfo } from '../../src/linux/parse/cpuinfo.ts';
import { parseMdevDescription } from '../../src/linux/parse/mdev.ts';
import { isDisplayClass, parseResource, parseSysfsId } from '../../src/linux/parse/pci.ts';
import {
  parseModuleParam,
  parseModules,
  parseOsRelease,
  parsePveCfg,
  parseSecureBootVar,
  splitCmdline,
} from '../../src/linux/parse/small-files.ts';

const block = (n: number) =>
  `processor\t: ${n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 158\nmodel name\t: Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz\nstepping\t: 10\nmicrocode\t: 0xf8\nflags\t\t: fpu vme vmx ept\n`;

test('cpuinfo: first block gives the CPU, blocks count logical CPUs', () => {
  const cpu = parseCpuinfo([0, 1, 2, 3, 4, 5].map(block).join('\n'));
  assert.deepEqual(cpu, {
    vendor: 'GenuineIntel',
    family: 6,
    model: 158,
    stepping: 10,
    modelName: 'Intel(R) Core(TM) i5-8500T CPU @ 2.10GHz',
    flags: ['fpu', 'vme', 'vmx', 'ept'],
    logicalCpus: 6,
    microcode: '0xf8',
  });
});

test('cpuinfo: garbled, truncated or foreign text gives undefined, not a throw', () => {
  assert.equal(parseCpuinfo(''), undefined);
  assert.equal(parseCpuinfo('processor\t: 0\nvendor_id\t: GenuineIntel\ncpu fam'), undefined);
  assert.equal(
    parseCpuinfo('processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: six\nmodel\t: 1\n'),
    undefined,
  );
  // ARM cpuinfo has processor blocks but no x86 family/model.
  assert.equal(parseCpuinfo('processor\t: 0\nBogoMIPS\t: 48.00\nCPU implementer\t: 0x41\n'), undefined);
});

test('PCI ids and classes exactly as the kernel writes them (0x%04x, 0x%06x), and BAR sizes', () => {
  assert.equal(parseSysfsId('0x8086\n', 4).value, 0x8086);
  assert.equal(parseSysfsId('0x030000\n', 6).value, 0x030000);
  for (const bad of ['8086', '0x3', '0x808', '0x80866', ' 0x8086', '0x8086\n\n', 'intel!', '']) {
    assert.equal(parseSysfsId(bad, 4).value, undefined, JSON.stringify(bad));
    assert.match(parseSysfsId(bad, 4).problem ?? '', /not a PCI id \(the kernel writes 0x and 4 hex digits/);
  }
  assert.ok(isDisplayClass(0x030000));
  assert.ok(isDisplayClass(0x038000));
  assert.ok(!isDisplayClass(0x060400));
  const resource = [
    '0x00000000a0000000 0x00000000a0ffffff 0x0000000000140204',
    '0x0000000000000000 0x0000000000000000 0x0000000000000000',
    '0x00000000c0000000 0x00000000cfffffff 0x000000000014220c',
    '0x0000000000000000 0x0000000000000000 0x0000000000000000',
    '0x000000000000f000 0x000000000000f03f 0x0000000000040101',
  ].join('\n');
  assert.deepEqual(parseResource(resource), [16 * 2 ** 20, 0, 256 * 2 ** 20, 0, 64]);
  assert.deepEqual(parseResource('garbage here\n'), [0]);
});

test('mdev description as the kernel prints it', () => {
  assert.deepEqual(
    parseMdevDescription(
      'low_gm_size: 128MB\nhigh_gm_size: 512MB\nfence: 4\nresolution: 1920x1200\nweight: 4\n',
    ),
    { lowGmMiB: 128, highGmMiB: 512, fences: 4, resolution: '1920x1200', weight: 4 },
  );
  assert.deepEqual(parseMdevDescription('nonsense'), {
    lowGmMiB: undefined,
    highGmMiB: undefined,
    fences: undefined,
    resolution: undefined,
    weight: undefined,
  });
});

test('small files: modules, os-release, pvecfg, SecureBoot, module params, cmdline', () => {
  assert.deepEqual(parseModules('kvmgt 28672 0 - Live 0x0\ni915 3940352 3 kvmgt, Live 0x0\n\n'), [
    'kvmgt',
    'i915',
  ]);
  assert.deepEqual(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n# c\n'), {
    PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)',
    ID: 'debian',
  });
  assert.deepEqual(
    parsePveCfg("package PVE::pvecfg;\nsub version { return '8.2.7'; }\nsub release { return '8.2'; }\n1;\n"),
    { version: '8.2.7', release: '8.2' },
  );
  assert.deepEqual(parsePveCfg('junk'), {});
  assert.equal(parseSecureBootVar(Buffer.from([6, 0, 0, 0, 1])), true);
  assert.equal(parseSecureBootVar(Buffer.from([6, 0, 0, 0, 0])), false);
  assert.equal(parseSecureBootVar(Buffer.from([6])), undefined);
  assert.equal(parseModuleParam('Y\n'), true);
  assert.equal(parseModuleParam('-1\n'), -1);
  assert.equal(parseModuleParam('maybe'), undefined);
  assert.deepEqual(splitCmdline('quiet  intel_iommu=on foo="a b" '), [
    'quiet',
    'intel_iommu=on',
    'foo="a b"',
  ]);
});
