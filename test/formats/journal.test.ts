// The apply journal: one d5cfd90 left when its apply was killed after the first change it
// sent to Proxmox (format 1: no `format`, nor `begun`, `startedAt` or `pid`) is named and
// resumed by today's code; what today's code writes carries its format and reads back; a
// journal of a newer format is refused in one line naming the file and the key.

import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UsageError } from '../../src/core/errors.ts';
import { JOURNAL_FORMAT, Journal } from '../../src/engine/journal.ts';
import { D5CFD90 } from './fixtures.ts';

/** A lab folder holding the d5cfd90 journal (or `text` as its journal). */
async function labWithJournal(text?: string) {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-formats-journal-'));
  const labFile = join(dir, 'igpu-split.yaml');
  await copyFile(join(D5CFD90, 'lab', 'demo.yaml'), labFile);
  await mkdir(join(dir, '.igpu-split'));
  const file = join(dir, '.igpu-split', 'journal.json');
  if (text === undefined) await copyFile(join(D5CFD90, 'journal', 'interrupted.json'), file);
  else await writeFile(file, text);
  return { labFile, file, journal: () => new Journal(labFile) };
}

const EARLIER =
  'an earlier apply (pid ?) stopped without finishing: it finished lab/mapping, pve1/drain, pve1/host; left VM 101 stopped; left node k3s-1 drained';

test('a d5cfd90 journal is named as the earlier run, and refuses a run that is not its --resume', async () => {
  const { journal } = await labWithJournal();
  assert.equal(await journal().earlierRun(), EARLIER);
  const refused = await journal().refusal(false);
  assert.ok(refused instanceof UsageError);
  assert.match(
    refused.oneLine(),
    /stopped without finishing: .* — continue it with igpu-split apply --resume/,
  );
  assert.equal(await journal().refusal(true), undefined);
});

test('a d5cfd90 journal resumes: its stages, marks and stopped VMs; the next save adds the format', async () => {
  const { file, journal } = await labWithJournal();
  const resumed = journal();
  await resumed.start(true);
  assert.equal(resumed.resumed, true);
  assert.equal(resumed.changed, true);
  assert.deepEqual(resumed.ids(), ['lab/mapping', 'pve1/drain', 'pve1/host']);
  assert.ok(resumed.has({ id: 'pve1/host', fingerprint: '3e0f1f107c26' }));
  assert.ok(!resumed.has({ id: 'pve1/host', fingerprint: 'another' }));
  assert.ok(resumed.marked('drained:k3s-1'));
  assert.deepEqual(resumed.stoppedVms(), [101]);

  await resumed.markStopped(101, false);
  const saved = JSON.parse(await readFile(file, 'utf8'));
  assert.equal(saved.format, JOURNAL_FORMAT);
  assert.deepEqual(saved.stages, ['lab/mapping@054d14d03837', 'pve1/drain@k3s-1', 'pve1/host@3e0f1f107c26']);
  assert.deepEqual(saved.stopped, []);
  const again = journal();
  await again.start(true);
  assert.deepEqual(again.ids(), resumed.ids());
  assert.ok(again.marked('drained:k3s-1'));
  assert.match(
    (await journal().earlierRun()) ?? '',
    new RegExp(`^an earlier apply \\(pid ${saved.pid}, started ${saved.startedAt}\\) .*finished lab/mapping`),
  );
});

test('a journal of a newer format is refused in one line naming the file and the key', async () => {
  const { file, journal } = await labWithJournal(
    JSON.stringify({ format: JOURNAL_FORMAT + 1, stages: ['lab/mapping@1'], somethingNew: {} }),
  );
  for (const read of [
    () => journal().earlierRun(),
    () => journal().start(true),
    () => journal().refusal(false),
  ])
    await assert.rejects(read(), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(
        error.oneLine(),
        `the apply journal ${file} was written by a newer igpu-split ("format": ${JOURNAL_FORMAT + 1}; this one reads up to ${JOURNAL_FORMAT}) — continue or roll back with the igpu-split that wrote it (or a newer one)`,
      );
      return true;
    });
});

test('a damaged journal keeps its message, whatever its format says', async () => {
  for (const text of [
    '{"stages": [',
    '{"stages": [1]}',
    '{"stopped": ["101"]}',
    '{"format": "2", "stages": []}',
    '{"format": 0}',
    'null',
    '[]',
  ]) {
    const { journal } = await labWithJournal(text);
    await assert.rejects(journal().earlierRun(), /the apply journal .*journal\.json is damaged/, text);
  }
});
