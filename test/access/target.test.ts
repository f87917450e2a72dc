import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseSshTarget } from '../../src/access/target.ts';
import { UsageError } from '../../src/core/errors.ts';

test('ssh targets default to root on port 22', () => {
  assert.deepEqual(parseSshTarget('ssh://pve1'), {
    user: 'root',
    host: 'pve1',
    port: 22,
    url: 'ssh://root@pve1:22',
  });
  assert.deepEqual(parseSshTarget('admin@10.0.0.5:2222'), {
    user: 'admin',
    host: '10.0.0.5',
    port: 2222,
    url: 'ssh://admin@10.0.0.5:2222',
  });
  assert.equal(parseSshTarget('ssh://root@[::1]:2200').url, 'ssh://root@[::1]:2200');
});

test('bad targets are usage errors that say the expected form', () => {
  for (const bad of ['http://pve1', 'ssh://root:secret@pve1', 'ssh://pve1/some/path', 'ssh://', '::::']) {
    assert.throws(
      () => parseSshTarget(bad),
      (error: unknown) =>
        error instanceof UsageError &&
        /ssh:\/\/user@host/.test(error.oneLine()) &&
        !error.oneLine().includes('secret'),
      bad,
    );
  }
});
