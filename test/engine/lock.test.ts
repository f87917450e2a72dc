// The lab lock read as another run would read it: a live apply's lock is honoured, one
// from another machine is never taken over, one from before a reboot or of a dead process
// is; a lock is never seen empty, and a link where it belongs is named.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Journal } from '../../src/engine/journal.ts';

async function labDir() {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-lock-'));
  await mkdir(join(dir, '.igpu-split'));
  return {
    dir,
    lock: join(dir, '.igpu-split', 'lock'),
    journal: () => new Journal(join(dir, 'igpu-split.yaml')),
  };
}

const started = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] as string;
};
const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

test('a lock this version wrote for a live process is honoured; after its process, or its boot, it is stale', async () => {
  const lab = await labDir();
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)']);
  try {
    const pid = child.pid as number;
    await writeFile(lab.lock, `${pid} ${started(pid)} ${hostname()} ${boot}\n`);
    await assert.rejects(
      lab.journal().lock(false),
      new RegExp(`another igpu-split apply \\(pid ${pid}\\) holds`),
    );
    // The same process, as a lock written before this machine last booted: stale.
    await writeFile(lab.lock, `${pid} ${started(pid)} ${hostname()} 00000000-0000-4000-8000-000000000000\n`);
    await lab.journal().lock(false);
    assert.match(
      await readFile(lab.lock, 'utf8'),
      new RegExp(`^${process.pid} \\d+ ${hostname()} ${boot}\\n$`),
    );
  } finally {
    child.kill();
    await rm(lab.dir, { recursive: true, force: true });
  }
});

test('a lock from another machine is never taken over; an empty one is', async () => {
  const lab = await labDir();
  try {
    await writeFile(lab.lock, `1 1 nfs-peer ${boot}\n`);
    await assert.rejects(
      lab.journal().lock(false),
      /another igpu-split apply on nfs-peer \(pid 1\) holds the lab lock/,
    );
    await writeFile(lab.lock, '');
    await lab.journal().lock(false);
    assert.match(await readFile(lab.lock, 'utf8'), new RegExp(`^${process.pid} `));
  } finally {
    await rm(lab.dir, { recursive: true, force: true });
  }
});

test('a link where the lock belongs is named, not followed or taken for another apply', async () => {
  const lab = await labDir();
  try {
    await symlink('/nonexistent/lock', lab.lock);
    await assert.rejects(
      lab.journal().lock(false),
      /the lab lock .* is a symbolic link: igpu-split never makes one/,
    );
  } finally {
    await rm(lab.dir, { recursive: true, force: true });
  }
});
