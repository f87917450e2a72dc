// Every snapshot of upstream data the repository carries (snapshots/*.json) says where it
// came from: each upstream file by repository, path, commit and git blob (a tag list by
// repository and the commit it was read at; a web page by URL and date), and the script in
// scripts/ that wrote it. A snapshot without that header fails here.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const folder = `${root}snapshots`;
const files = readdirSync(folder).filter((name) => !name.startsWith('.'));

const SHA1 = /^[0-9a-f]{40}$/;
const REPOSITORY = /^[\w.-]+\/[\w.-]+$/;

/** What is wrong with one source entry, or undefined. */
function sourceProblem(source: unknown): string | undefined {
  if (typeof source !== 'object' || source === null) return 'not an object';
  const s = source as Record<string, unknown>;
  if (typeof s.url === 'string') {
    if (!/^https:\/\//.test(s.url)) return `url ${s.url} is not https`;
    return typeof s.date === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(s.date)
      ? undefined
      : 'a page without its date';
  }
  if (typeof s.repository !== 'string' || !REPOSITORY.test(s.repository)) return 'no repository (owner/name)';
  if (typeof s.commit !== 'string' || !SHA1.test(s.commit)) return `${s.repository}: no 40-digit commit`;
  if (s.refs === 'tags') return undefined;
  if (typeof s.path !== 'string' || s.path === '') return `${s.repository}: no path`;
  if (typeof s.blob !== 'string' || !SHA1.test(s.blob)) return `${s.repository} ${s.path}: no git blob sha`;
  return undefined;
}

test('the repository carries snapshots, and only JSON ones', () => {
  assert.ok(files.length > 0, 'snapshots/ is empty');
  for (const name of files) assert.match(name, /\.json$/, `${name} is not a JSON snapshot`);
});

for (const name of files) {
  test(`snapshots/${name} names its sources and the script that wrote it`, () => {
    const snapshot = JSON.parse(readFileSync(`${folder}/${name}`, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(snapshot).slice(0, 2), ['sources', 'producedBy'], 'header first');
    assert.ok(Array.isArray(snapshot.sources) && snapshot.sources.length > 0, 'no sources');
    for (const source of snapshot.sources as unknown[]) assert.equal(sourceProblem(source), undefined);
    assert.match(String(snapshot.producedBy), /^scripts\/[\w.-]+\.ts$/);
    assert.ok(existsSync(`${root}${snapshot.producedBy}`), `${snapshot.producedBy} is missing`);
  });
}

test('a source without its blob, commit or repository is refused', () => {
  const good = { repository: 'a/b', path: 'x', commit: 'a'.repeat(40), blob: 'b'.repeat(40) };
  assert.equal(sourceProblem(good), undefined);
  assert.match(String(sourceProblem({ ...good, blob: undefined })), /blob/);
  assert.match(String(sourceProblem({ ...good, commit: 'v1.0' })), /commit/);
  assert.match(String(sourceProblem({ ...good, repository: 'b' })), /repository/);
  assert.match(String(sourceProblem({ url: 'https://x.example/p' })), /date/);
});
