// Host state and backups d5cfd90's apply left on directory-backed hosts (format 1:
// `"version": 1`, no `format`): today's code reads them, and today's host rollback puts
// back exactly the files the host had before d5cfd90 applied. What today's apply writes
// carries its format and reads back; a newer format is refused naming the file and the key.

import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import { TargetError } from '../../src/core/errors.ts';
import { proxmoxHost } from '../../src/demo/machines.ts';
import { applyHostPlan, HOST_STATE_FORMAT, readState, STATE_FILE } from '../../src/host/apply.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { planHost } from '../../src/host/plan.ts';
import { rollbackHost } from '../../src/host/rollback.ts';
import { fixturePath } from '../support/fixtures.ts';
import { copyOf, D5CFD90 } from './fixtures.ts';

/** Every file under a folder, by its path in it, with its content. */
async function tree(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files[relative(dir, path)] = await readFile(path, 'utf8');
  }
  return files;
}

const open = (root: string) => new DirectoryHost(root, proxmoxHost(undefined), 'ssh://root@formats').open();

const APPLIED = {
  'demo-pve1': {
    files: { '/etc/modules-load.d/igpu-split.conf': true, '/etc/default/grub.d/igpu-split.cfg': true },
    params: ['intel_iommu=on', 'iommu=pt', 'i915.enable_gvt=1'],
    refreshed: ['update-grub'],
  },
  sdboot: {
    files: { '/etc/kernel/cmdline': false },
    params: ['iommu=pt', 'i915.enable_gvt=1'],
    refreshed: ['proxmox-boot-tool refresh'],
  },
};

for (const [name, applied] of Object.entries(APPLIED)) {
  test(`${name}: today's code reads the state d5cfd90 wrote`, async () => {
    const host = await open(join(D5CFD90, 'hosts', name, 'after'));
    const state = await readState(host);
    assert.equal(state.format, HOST_STATE_FORMAT);
    assert.deepEqual(
      Object.fromEntries(Object.entries(state.files).map(([path, record]) => [path, record.created])),
      applied.files,
    );
    assert.deepEqual(state.params, applied.params);
    for (const record of Object.values(state.files))
      if (!record.created)
        assert.ok((await host.readFile(record.backup as string)).length > 0, 'its backup is there');
  });

  test(`${name}: today's host rollback puts back the files the host had before d5cfd90 applied`, async () => {
    const root = await copyOf(join(D5CFD90, 'hosts', name, 'after'));
    const result = await rollbackHost(await open(root));
    assert.deepEqual(result.changed.sort(), Object.keys(applied.files).sort());
    assert.deepEqual(result.refreshed, applied.refreshed);
    assert.deepEqual(
      await tree(join(root, 'etc')),
      await tree(join(D5CFD90, 'hosts', name, 'before', 'etc')),
    );
    await assert.rejects(readFile(join(root, STATE_FILE)), { code: 'ENOENT' });
  });
}

test('what today’s apply writes has the format, reads back, and rolls back', async () => {
  const root = await copyOf(fixturePath('i5-8500t-before'));
  const host = await open(root);
  await applyHostPlan(host, planHost(await gatherHostFacts(host)), { runId: 'formats' });
  const saved = JSON.parse(await readFile(join(root, STATE_FILE), 'utf8'));
  assert.equal(Object.keys(saved)[0], 'format');
  assert.equal(saved.format, HOST_STATE_FORMAT);
  assert.equal(saved.version, undefined);
  const { format, ...record } = saved;
  assert.deepEqual(await readState(host), { format, ...record });
  await rollbackHost(host);
  assert.deepEqual(await tree(join(root, 'etc')), await tree(join(fixturePath('i5-8500t-before'), 'etc')));
});

test('a state of a newer format is refused naming the file and the key; nothing is rolled back', async () => {
  const root = await copyOf(join(D5CFD90, 'hosts', 'demo-pve1', 'after'));
  const newer = {
    ...JSON.parse(await readFile(join(root, STATE_FILE), 'utf8')),
    format: HOST_STATE_FORMAT + 1,
  };
  await writeFile(join(root, STATE_FILE), JSON.stringify(newer));
  const before = await tree(join(root, 'etc'));
  const host = await open(root);
  for (const read of [() => readState(host), () => rollbackHost(host)])
    await assert.rejects(read(), (error: unknown) => {
      assert.ok(error instanceof TargetError);
      assert.equal(
        error.oneLine(),
        `ssh://root@formats: ${STATE_FILE} was written by a newer igpu-split ("format": ${HOST_STATE_FORMAT + 1}; this one reads up to ${HOST_STATE_FORMAT}) — apply or roll back this host with the igpu-split that wrote it (or a newer one)`,
      );
      return true;
    });
  assert.deepEqual(await tree(join(root, 'etc')), before);
});

test('a damaged state keeps its message; one of the wrong shape says where', async () => {
  const root = await copyOf(join(D5CFD90, 'hosts', 'demo-pve1', 'after'));
  const host = await open(root);
  await writeFile(join(root, STATE_FILE), '{"files": {');
  await assert.rejects(readState(host), (error: unknown) => {
    assert.ok(error instanceof TargetError);
    assert.equal(error.message, `cannot read ${STATE_FILE}`);
    return true;
  });
  await writeFile(
    join(root, STATE_FILE),
    JSON.stringify({
      version: 1,
      files: { '/etc/x': { created: 'yes' } },
      params: [],
      modules: [],
      updatedAt: '',
    }),
  );
  await assert.rejects(readState(host), /cannot read .*state\.json: damaged \(files\.\/etc\/x\.created: /);
});
