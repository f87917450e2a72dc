// capture packs exactly what doctor reads; doctor --root on the unpacked archive
// gives the same report as on the original tree.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
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
    const again = await runCli(['doctor', '--root', join(dest, `igpu-split-capture-${name}`), '--json']);
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
    const inside = entry.path.replace(/^igpu-split-capture-i5-8500t-gvt\/?/, '');
    if (inside === '' || inside === 'igpu-split-capture.json') continue;
    const ok = allowedPrefixes.some(
      (prefix) => inside.startsWith(prefix) || prefix.startsWith(inside.replace(/\/$/, '')),
    );
    assert.ok(ok, `unexpected path in capture: ${entry.path}`);
    assert.equal(entry.uname ?? '', '', `${entry.path} carries an owner name`);
  }
  await extract({ file: archive, cwd: work, filter: (p) => p.endsWith('igpu-split-capture.json') });
  const manifest = JSON.parse(
    await readFile(join(work, 'igpu-split-capture-i5-8500t-gvt/igpu-split-capture.json'), 'utf8'),
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

test('captures of two hosts unpack side by side: the folder is named after the host', async () => {
  const dest = join(work, 'two');
  await mkdir(dest);
  for (const name of ['i5-8500t-gvt', 'i7-6700k-sdboot']) {
    const archive = join(work, `two-${name}.tar.gz`);
    const captured = await runCli(['capture', '--root', fixturePath(name), '--out', archive]);
    assert.equal(captured.code, 0, captured.stderr);
    assert.match(captured.stdout, new RegExp(`igpu-split doctor --root igpu-split-capture-${name}\\n$`));
    await extract({ file: archive, cwd: dest });
  }
  assert.deepEqual((await readdir(dest)).sort(), [
    'igpu-split-capture-i5-8500t-gvt',
    'igpu-split-capture-i7-6700k-sdboot',
  ]);
  // A capture of an unpacked capture keeps the host's name.
  const again = join(work, 'again.tar.gz');
  await runCli(['capture', '--root', join(dest, 'igpu-split-capture-i5-8500t-gvt'), '--out', again]);
  const entries: string[] = [];
  await list({ file: again, onReadEntry: (e) => entries.push(e.path) });
  assert.ok(
    entries.every((p) => p.startsWith('igpu-split-capture-i5-8500t-gvt/')),
    entries[0],
  );
});

test('the capture folder is named after the host a target names', async () => {
  const { hostNameOf } = await import('../../src/capture/capture.ts');
  const { captureFolderOf } = await import('../../src/access/captured-root.ts');
  assert.equal(captureFolderOf(hostNameOf('ssh://root@pve1:2222')), 'igpu-split-capture-pve1');
  assert.equal(captureFolderOf(hostNameOf('ssh://root@[fd00::1]')), 'igpu-split-capture-fd00_1');
  assert.equal(captureFolderOf(hostNameOf('root:/srv/caps/pve2')), 'igpu-split-capture-pve2');
  assert.equal(captureFolderOf('../..'), 'igpu-split-capture');
});
