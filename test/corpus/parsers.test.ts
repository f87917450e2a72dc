// Bad input for every parser: a corpus of broken files kept in the repo
// (test/corpus/<parser>/…) and property-based inputs from fast-check. Each parser must
// either return or fail with one IgpuSplitError line that says what to do — never
// crash with anything else. The count tried is reported.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { parseKnownHosts } from '../../src/access/known-hosts.ts';
import { parseSmokeLog, smokeCheck } from '../../src/cluster/smoke.ts';
import { parseLab } from '../../src/config/load.ts';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { parseExtensions, parseListing } from '../../src/guest/talos/talosctl.ts';
import { parseDpkgStatus } from '../../src/linux/parse/dpkg.ts';
import { effectiveGrubCmdline, evaluateGrubDefaults } from '../../src/host/boot/grub-defaults.ts';
import { parseParams, planParams } from '../../src/host/boot/kernel-params.ts';
import { parseCpuinfo } from '../../src/linux/parse/cpuinfo.ts';
import { parseMdevDescription } from '../../src/linux/parse/mdev.ts';
import { parseResource, parseSysfsId } from '../../src/linux/parse/pci.ts';
import {
  parseModuleParam,
  parseModules,
  parseOsRelease,
  parsePveCfg,
  splitCmdline,
} from '../../src/linux/parse/small-files.ts';
import { EFIDISK, HOSTPCI, MACHINE, PCI_MAP_ENTRY } from '../../src/proxmox/api-spec.ts';
import { parsePropertyString } from '../../src/proxmox/property-string.ts';

const CORPUS = fileURLToPath(new URL('./', import.meta.url));

/** Every parser, by the corpus folder name its broken inputs live in. */
const PARSERS: Record<string, (text: string) => unknown> = {
  cpuinfo: parseCpuinfo,
  mdev: parseMdevDescription,
  'pci-id': (t) => [parseSysfsId(t, 4), parseSysfsId(t, 6)],
  'pci-resource': parseResource,
  modules: parseModules,
  'os-release': parseOsRelease,
  pvecfg: parsePveCfg,
  'module-param': parseModuleParam,
  cmdline: (t) => [
    splitCmdline(t),
    parseParams(t),
    planParams(t, ['intel_iommu=on', 'iommu=pt', 'i915.enable_gvt=1']),
  ],
  grub: (t) => effectiveGrubCmdline(evaluateGrubDefaults([{ path: '/etc/default/grub', content: t }])),
  'known-hosts': parseKnownHosts,
  hostpci: (t) => parsePropertyString(t, HOSTPCI),
  'pci-map': (t) => parsePropertyString(t, PCI_MAP_ENTRY),
  machine: (t) => parsePropertyString(t, MACHINE),
  efidisk: (t) => parsePropertyString(t, EFIDISK),
  'dpkg-status': parseDpkgStatus,
  'talos-extensions': parseExtensions,
  'talos-listing': parseListing,
  'smoke-log': (t) => [parseSmokeLog(t), smokeCheck('node', t)],
  lab: (t) => parseLab(t, 'lab.yaml'),
};

/** Returns normally, or fails with one IgpuSplitError line carrying a fix; anything else is a crash. */
function survives(name: string, parse: (text: string) => unknown, input: string): void {
  try {
    parse(input);
  } catch (error) {
    assert.ok(
      error instanceof IgpuSplitError,
      `${name} crashed on ${JSON.stringify(input.slice(0, 200))}: ${String(error)}`,
    );
    const line = error.oneLine();
    assert.ok(!line.includes('\n'), `${name}: the error is not one line: ${line}`);
    assert.ok(error.fix, `${name}: the error has no fix: ${line}`);
  }
}

let tried = 0;

test('the corpus of broken inputs: no parser crashes', (t) => {
  const folders = readdirSync(CORPUS, { withFileTypes: true }).filter((e) => e.isDirectory());
  assert.ok(folders.length >= 8, 'the corpus has folders');
  for (const folder of folders) {
    const parse = PARSERS[folder.name];
    assert.ok(parse, `test/corpus/${folder.name} names no parser`);
    for (const file of readdirSync(`${CORPUS}${folder.name}`)) {
      survives(folder.name, parse, readFileSync(`${CORPUS}${folder.name}/${file}`, 'latin1'));
      tried++;
    }
  }
  t.diagnostic(`corpus inputs tried: ${tried}`);
});

/** Text shaped like the files: lines of key/value-ish tokens with the characters parsers split on. */
const lineish = fc
  .array(
    fc.oneof(
      fc.string(),
      fc.stringMatching(/^[A-Za-z_]{1,12}(=|: |:|\t: )[^\n]{0,30}$/),
      fc.constantFrom(
        '',
        '#',
        '"',
        "'",
        '\\',
        '$(',
        '`',
        '${',
        '0x',
        ',',
        ';',
        '=',
        '\t',
        '[',
        ']',
        '{',
        '}',
        '---',
        '- ',
      ),
    ),
    { maxLength: 20 },
  )
  .map((parts) => parts.join('\n'));

test('property: arbitrary and file-shaped text never crashes a parser', (t) => {
  const runs = 300;
  for (const [name, parse] of Object.entries(PARSERS)) {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'grapheme' }), lineish), (input) => {
        survives(name, parse, input);
      }),
      { numRuns: runs },
    );
    tried += runs;
  }
  t.diagnostic(`inputs tried in all (corpus and generated): ${tried}`);
});
