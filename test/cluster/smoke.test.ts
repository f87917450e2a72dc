// The smoke script run by a real sh against a stand-in /dev/dri (a temp folder put in
// its place) and a stand-in vainfo, and its output parsed into the verdict.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseSmokeLog, SMOKE_SCRIPT, smokeCheck } from '../../src/cluster/smoke.ts';

async function runScript(nodes: string[], vainfo?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-smoke-'));
  try {
    const dri = join(dir, 'dri');
    await mkdir(dri);
    for (const node of nodes) await writeFile(join(dri, node), '');
    const bin = join(dir, 'bin');
    await mkdir(bin);
    if (vainfo !== undefined) {
      await writeFile(join(bin, 'vainfo'), `#!/bin/sh\ncat <<'EOF'\n${vainfo}\nEOF\n`);
      await chmod(join(bin, 'vainfo'), 0o755);
    }
    const script = SMOKE_SCRIPT.replaceAll('/dev/dri', dri);
    // Only the stand-in vainfo (and the basic tools) on PATH.
    const path = `${bin}:/usr/bin:/bin`;
    return execFileSync(
      'sh',
      ['-c', vainfo === undefined ? script.replace('command -v vainfo', 'false') : script],
      {
        env: { PATH: path },
      },
    ).toString();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const VAINFO_OK = [
  'vainfo: VA-API version: 1.20 (libva 2.20.0)',
  'vainfo: Driver version: Intel iHD driver for Intel(R) Gen Graphics - 24.1.0 ()',
  'vainfo: Supported profile and entrypoints',
  '      VAProfileH264Main               :\tVAEntrypointVLD',
  '      VAProfileHEVCMain               :\tVAEntrypointVLD',
].join('\n');

test('a render node and working vainfo pass, naming the driver', async () => {
  const log = await runScript(['card0', 'renderD128'], VAINFO_OK);
  assert.deepEqual(parseSmokeLog(log)?.dri, ['card0', 'renderD128']);
  const check = smokeCheck('k3s-1', log);
  assert.equal(check.status, 'pass');
  assert.match(
    check.evidence,
    /^VA-API profiles listed: .* got renderD128 and vainfo lists 2 profiles \(Intel iHD driver .*\): the vGPU renders$/,
  );
  // On an SR-IOV node the same proof says the VF renders.
  assert.match(smokeCheck('k3s-1', log, 'VF').evidence, /: the VF renders$/);
});

test('no vainfo in the image: the render node opened passes, and never says it renders', async () => {
  const log = await runScript(['card1', 'renderD129']);
  assert.deepEqual(parseSmokeLog(log)?.opened, ['renderD129']);
  for (const gpu of ['VF', 'vGPU'] as const) {
    const check = smokeCheck('k3s-1', log, gpu);
    assert.equal(check.status, 'pass');
    assert.match(
      check.evidence,
      /^render node opened: a container on k3s-1 opened renderD129 read-write; no vainfo/,
    );
    assert.doesNotMatch(check.evidence, new RegExp(`the ${gpu} renders`));
  }
});

test('a render node the container cannot open fails (the plugin gave no access)', async () => {
  // A folder in its place: sh cannot open it read-write, as with a device the cgroup denies.
  const dir = await mkdtemp(join(tmpdir(), 'igpu-smoke-'));
  try {
    await mkdir(join(dir, 'dri', 'renderD128'), { recursive: true });
    const script = SMOKE_SCRIPT.replaceAll('/dev/dri', join(dir, 'dri')).replace(
      'command -v vainfo',
      'false',
    );
    const log = execFileSync('sh', ['-c', script], { env: { PATH: '/usr/bin:/bin' } }).toString();
    assert.deepEqual(parseSmokeLog(log)?.notOpened, ['renderD128']);
    const check = smokeCheck('k3s-1', log, 'VF');
    assert.equal(check.status, 'fail');
    assert.match(check.evidence, /could not open it read-write/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('vainfo failing, no render node, or no output at all: failing checks with the fix', async () => {
  const failing = smokeCheck(
    'k3s-1',
    await runScript(
      ['renderD128'],
      'libva error: vaGetDriverNameByIndex() failed with unknown libva error, driver_name = (null)\nvaInitialize failed with error code -1 (unknown libva error),exit',
    ),
  );
  assert.equal(failing.status, 'fail');
  assert.match(failing.evidence, /vainfo failed: libva error/);
  const empty = smokeCheck('k3s-1', await runScript([]));
  assert.match(empty.evidence, /sees \/dev\/dri: nothing/);
  assert.equal(smokeCheck('k3s-1', 'exec format error').status, 'fail');
});
