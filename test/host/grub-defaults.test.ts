// The GRUB defaults evaluator against the real consumer: /bin/sh sourcing the same
// files in grub-mkconfig's order must give the same command line.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  effectiveGrubCmdline,
  evaluateGrubDefaults,
  GRUB_CMDLINE_SCRIPT,
  type GrubFile,
  sortDropins,
} from '../../src/host/boot/grub-defaults.ts';
import { fixtureNames, fixturePath } from '../support/fixtures.ts';

async function shellCmdline(main: string | undefined, dropins: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-grub-'));
  try {
    await mkdir(join(dir, 'default/grub.d'), { recursive: true });
    if (main !== undefined) await writeFile(join(dir, 'default/grub'), main);
    for (const [name, content] of Object.entries(dropins))
      await writeFile(join(dir, 'default/grub.d', name), content);
    return execFileSync('/bin/sh', ['-c', GRUB_CMDLINE_SCRIPT, 'sh', dir])
      .toString()
      .trim()
      .replace(/\s+/g, ' ');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function ours(main: string | undefined, dropins: Record<string, string>): string | undefined {
  const files: GrubFile[] = [
    ...(main === undefined ? [] : [{ path: '/etc/default/grub', content: main }]),
    ...sortDropins(
      Object.entries(dropins).map(([name, content]) => ({ path: `/etc/default/grub.d/${name}`, content })),
    ),
  ];
  return effectiveGrubCmdline(evaluateGrubDefaults(files));
}

const cases: [string, string | undefined, Record<string, string>][] = [
  ['plain', 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n', {}],
  [
    'cloud image drop-in overrides the main file',
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet splash"\n',
    {
      '50-cloudimg-settings.cfg': 'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1 console=ttyS0"\nGRUB_TIMEOUT=0\n',
    },
  ],
  [
    'append idiom, applied in glob order',
    'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n',
    {
      'igpu-split.cfg': 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT intel_iommu=on iommu=pt"\n',
      '50-cloudimg-settings.cfg': 'GRUB_CMDLINE_LINUX_DEFAULT="console=tty1"\n',
      'zz-late.cfg': 'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX} audit=0"\n',
    },
  ],
  [
    'quoting, escapes, export, comments and continuation',
    [
      '# comment',
      'export GRUB_CMDLINE_LINUX=\'rootdelay=5 "x"\'   # trailing comment',
      'GRUB_CMDLINE_LINUX_DEFAULT=quiet\\ splash',
      'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT \\"a b\\" \\$HOME \\',
      'more"',
      'GRUB_DISTRIBUTOR=`( . /etc/os-release && echo ${NAME} )`',
      '',
    ].join('\n'),
    {},
  ],
  ['no main file, only a drop-in', undefined, { 'a.cfg': "GRUB_CMDLINE_LINUX_DEFAULT='quiet'\n" }],
];

for (const [name, main, dropins] of cases) {
  test(`effective GRUB command line matches /bin/sh: ${name}`, async () => {
    const mine = ours(main, dropins);
    assert.notEqual(mine, undefined);
    assert.equal(mine, await shellCmdline(main, dropins));
  });
}

test('every fixture’s GRUB files evaluate as /bin/sh sources them', async () => {
  let checked = 0;
  for (const fixture of fixtureNames()) {
    const dir = fixturePath(fixture);
    const main = await readFile(join(dir, 'etc/default/grub'), 'utf8').catch(() => undefined);
    if (main === undefined) continue;
    const dropins: Record<string, string> = {};
    const names = await readdir(join(dir, 'etc/default/grub.d')).catch(() => []);
    for (const n of names) dropins[n] = await readFile(join(dir, 'etc/default/grub.d', n), 'utf8');
    assert.equal(ours(main, dropins), await shellCmdline(main, dropins), fixture);
    checked++;
  }
  assert.ok(checked >= 10, `only ${checked} fixtures had GRUB files`);
});

test('what we cannot evaluate is reported, and values that depend on it are unknown', () => {
  const result = evaluateGrubDefaults([
    {
      path: '/etc/default/grub',
      content: [
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet"',
        'if [ -e /x ]; then GRUB_CMDLINE_LINUX_DEFAULT="x"; fi',
        'GRUB_CMDLINE_LINUX="$(cat /etc/extra-args)"',
        'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX:-fallback}"',
        'GRUB_X=a b',
        'GRUB_Y="unterminated',
      ].join('\n'),
    },
  ]);
  assert.deepEqual(
    result.unsupported.map((u) => u.line),
    [2, 3, 4, 5, 6],
  );
  // A reported statement could have changed anything: callers check `unsupported` first.
  assert.equal(result.values.get('GRUB_CMDLINE_LINUX_DEFAULT'), 'quiet');

  const opaque = evaluateGrubDefaults([
    {
      path: '/etc/default/grub',
      content: 'EXTRA=`cat /etc/extra`\nGRUB_CMDLINE_LINUX_DEFAULT="quiet $EXTRA"\n',
    },
  ]);
  assert.deepEqual(opaque.unsupported, []);
  assert.equal(effectiveGrubCmdline(opaque), undefined);
});
