// capture packs exactly what doctor reads; doctor --root on the unpacked archive
// gives the same report as on the original tree.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { extract, list } from 'tar';
import { PATHS } from '../../src/linux/paths.ts';
import { runCli } from '../support/cli.ts';
import { fixtureNames, fixturePath } from '../support/fixtures.ts';

let work: string;
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'igpu-capture-'));
});
after(() => rm(work, { recursive: true, force: true }));

const allowedPrefixes = Object.values(PATHS).map((p) => p.slice(1));

test('capture → unpack → doctor --root gives the same JSON for every fixture', async () => {
  for (const name of fixtureNames()) {
    const archive = join(work, `${name}.tar.gz`);
    const captured = await runCli(['capture', '--root', fixturePath(name), '--out', archive]);
    assert.equal(captured.code, 0, captured.stderr);
    const dest = join(work, name);
    await mkdir(dest);
    await extract({ file: archive, cwd: dest });
    const original = await runCli(['doctor', '--root', fixturePath(name), '--json']);
    const again = await runCli(['doctor', '--root', join(dest, 'igpu-split-capture'), '--json']);
    assert.equal(again.code, original.code, name);
    assert.deepEqual(
      { ...JSON.parse(again.stdout).result, target: '' },
      { ...JSON.parse(original.stdout).result, target: '' },
      name,
    );
  }
});

test('the archive holds only paths doctor reads, a manifest, and no owners', async () => {
  const archive = join(work, 'only.tar.gz');
  assert.equal((await runCli(['capture', '--root', fixturePath('i5-8500t-gvt'), '--out', archive])).code, 0);
  const entries: { path: string; uid: number | undefined; uname: string | undefined }[] = [];
  await list({
    file: archive,
    onReadEntry: (e) => entries.push({ path: e.path, uid: e.uid, uname: e.uname }),
  });
  assert.ok(entries.length > 10);
  for (const entry of entries) {
    const inside = entry.path.replace(/^igpu-split-capture\/?/, '');
    if (inside === '' || inside === 'igpu-split-capture.json') continue;
    const ok = allowedPrefixes.some(
      (prefix) => inside.startsWith(prefix) || prefix.startsWith(inside.replace(/\/$/, '')),
    );
    assert.ok(ok, `unexpected path in capture: ${entry.path}`);
    assert.equal(entry.uname ?? '', '', `${entry.path} carries an owner name`);
  }
  await extract({ file: archive, cwd: work, filter: (p) => p.endsWith('igpu-split-capture.json') });
  const manifest = JSON.parse(
    await readFile(join(work, 'igpu-split-capture/igpu-split-capture.json'), 'utf8'),
  );
  assert.equal(manifest.tool, 'igpu-split');
  assert.ok(manifest.files.includes('/proc/cpuinfo'));
});

test('capture refuses an output name that is not .tar.gz', async () => {
  const result = await runCli([
    'capture',
    '--root',
    fixturePath('i5-8500t-gvt'),
    '--out',
    join(work, 'x.zip'),
  ]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /--out must name a \.tar\.gz file/);
});
