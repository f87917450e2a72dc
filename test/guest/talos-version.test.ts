// The Talos version: read from talosctl (its real output layout) or the Kubernetes node's
// osImage, compared with the lab file's (same, patch, minor, downgrade, a jump of more than
// one minor with Talos's path), and the bad answers: garbage, a failing or slow talosctl,
// a node that is not Talos — each one line naming the node.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parseLab } from '../../src/config/load.ts';
import { type IgpuSplitError, RefusedError, TargetError, UsageError } from '../../src/core/errors.ts';
import { labFileText, withGuestLines } from '../../src/engine/init.ts';
import { ImageFactory } from '../../src/guest/talos/factory.ts';
import { planTalos, type TalosFacts } from '../../src/guest/talos/plan.ts';
import type { TalosNodeSpec } from '../../src/guest/talos/schematic.ts';
import { type Talosctl, talosctlAt } from '../../src/guest/talos/talosctl.ts';
import {
  parseTalosctlVersion,
  readRunningVersion,
  talosVersionFromOsImage,
  upgradePath,
  versionChange,
} from '../../src/guest/talos/version.ts';
import { type FakeFactory, startImageFactory } from '../../src/sim/talos-factory.ts';
import { talosctlVersionText } from '../../src/sim/talosctl.ts';

const answering =
  (stdout: string, code = 0, stderr = ''): Talosctl =>
  async () => ({ code, stdout, stderr });

function throwsLike(run: () => unknown, kind: new (...args: never[]) => IgpuSplitError, pattern: RegExp) {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof kind, String(error));
    assert.match(error.oneLine(), pattern);
    return true;
  });
}

async function rejectsLike(
  run: Promise<unknown>,
  kind: new (...args: never[]) => IgpuSplitError,
  pattern: RegExp,
): Promise<void> {
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof kind, String(error));
    assert.match(error.oneLine(), pattern);
    return true;
  });
}

test('talosctl version: the server’s Tag, not the client’s; garbage is no version', () => {
  const text = talosctlVersionText('10.0.0.6', 'v1.11.6').replace(
    'Client:\n\tTag:         v1.11.6',
    'Client:\n\tTag:         v1.13.9',
  );
  assert.equal(parseTalosctlVersion(text), 'v1.11.6');
  assert.equal(parseTalosctlVersion('Client:\n\tTag:         v1.13.9\n'), undefined, 'no server block');
  assert.equal(parseTalosctlVersion('Server:\n\tTag:         latest\n'), undefined, 'not a release');
  assert.equal(parseTalosctlVersion('\u0000\u0001garbage'), undefined);
});

test('osImage: Talos writes “Talos (<tag>)”; anything else is not Talos', () => {
  assert.equal(talosVersionFromOsImage('Talos (v1.10.9)'), 'v1.10.9');
  assert.equal(talosVersionFromOsImage('Ubuntu 24.04.1 LTS'), undefined);
  assert.equal(talosVersionFromOsImage('Talos (v1.10)'), undefined);
});

test('reading the running version: talosctl first, then the Kubernetes node; failures name the node', async () => {
  const osImage = (image: string | undefined) => ({ node: 'talos-1', read: async () => image });
  assert.deepEqual(
    await readRunningVersion(
      '10.0.0.6',
      answering(talosctlVersionText('10.0.0.6', 'v1.10.9')),
      osImage('Talos (v1.11.6)'),
    ),
    {
      version: 'v1.10.9',
      from: 'talosctl version',
    },
  );
  assert.deepEqual(await readRunningVersion('10.0.0.6', undefined, osImage('Talos (v1.11.6)')), {
    version: 'v1.11.6',
    from: 'node talos-1 osImage',
  });
  assert.equal(await readRunningVersion('10.0.0.6', undefined, undefined), undefined);
  assert.equal(await readRunningVersion('10.0.0.6', undefined, osImage(undefined)), undefined);
  await rejectsLike(
    readRunningVersion('10.0.0.6', answering('Server:\n\tgarbage\n'), undefined),
    TargetError,
    /^talos 10\.0\.0\.6: talosctl version printed no server Tag: line — check talosctl reaches the node/,
  );
  await rejectsLike(
    readRunningVersion('10.0.0.6', answering('Server:\n\tTag:         v1.14.0-rc.1\n'), undefined),
    TargetError,
    /^talos 10\.0\.0\.6: the node's Tag v1\.14\.0-rc\.1 is not a Talos release such as v1\.10\.9/,
  );
  await rejectsLike(
    readRunningVersion('10.0.0.6', answering('', 1, 'talosctl did not finish within 30 s'), undefined),
    TargetError,
    /^talos 10\.0\.0\.6: talosctl version failed: talosctl did not finish within 30 s/,
  );
  await rejectsLike(
    readRunningVersion('10.0.0.6', undefined, osImage('Ubuntu 24.04.1 LTS')),
    RefusedError,
    /^talos 10\.0\.0\.6: Kubernetes node talos-1 runs "Ubuntu 24\.04\.1 LTS" \(its osImage\), not Talos — set os: ubuntu/,
  );
});

test('the lab file’s version against the running one: same, patch, minor, downgrade, too far', () => {
  const running = { version: 'v1.10.9', from: 'talosctl version' };
  assert.equal(versionChange('n', undefined, running, false).version, 'v1.10.9');
  assert.equal(versionChange('n', 'v1.10.9', running, false).kind, 'same');
  assert.equal(
    versionChange('n', 'v1.11.3', running, false).text,
    'Talos v1.10.9 → v1.11.3: a minor upgrade',
  );
  assert.equal(versionChange('n', 'v1.10.9', { ...running, version: 'v1.10.3' }, false).kind, 'patch');
  assert.equal(versionChange('n', 'v1.11.3', undefined, false).kind, 'unknown');
  throwsLike(
    () => versionChange('n', 'v1.10.3', running, false),
    RefusedError,
    /would be a downgrade — .*allowDowngrade: true/,
  );
  assert.equal(versionChange('n', 'v1.10.3', running, true).kind, 'downgrade');
  throwsLike(
    () => versionChange('n', 'v1.13.2', running, false),
    RefusedError,
    /more than one minor release ahead.* — upgrade in steps, .*: v1\.10\.9 → v1\.11\.6 → v1\.12\.11 → v1\.13\.2$/,
  );
  throwsLike(
    () => versionChange('n', undefined, undefined, false),
    UsageError,
    /talos\.version is not set for node n/,
  );
  assert.deepEqual(upgradePath('v1.10.3', 'v1.12.0'), ['v1.10.3', 'v1.10.9', 'v1.11.6', 'v1.12.0']);
});

let factory: FakeFactory;
before(async () => {
  factory = await startImageFactory();
});
after(() => factory.close());

const SPEC: TalosNodeSpec = {
  node: '10.0.0.6',
  extensions: [],
  kernelArgs: [],
  qemuGuestAgent: false,
  secureBoot: false,
};

test('plan names the change, and a node already converged on another version still upgrades', async () => {
  const client = new ImageFactory(factory.url);
  const facts: TalosFacts = {
    node: '10.0.0.6',
    extensions: ['i915', 'intel-ucode'],
    dri: ['renderD128'],
    running: { version: 'v1.10.9', from: 'talosctl version' },
  };
  const same = await planTalos(SPEC, facts, client);
  assert.equal(same.steps.length, 0, 'converged: extensions there, version as it runs');
  assert.match(same.installer, /:v1\.10\.9$/);
  const minor = await planTalos({ ...SPEC, version: 'v1.11.3' }, facts, client);
  assert.match(
    minor.steps.at(-1)?.description ?? '',
    /^Talos v1\.10\.9 → v1\.11\.3: a minor upgrade; upgrade to the installer/,
  );
  assert.match(minor.installer, /:v1\.11\.3$/);
  await client.close();
});

test('init writes the version talosctl reads from the node, and none when it cannot', async () => {
  const vm = { vmid: 102, node: 'pve2', os: 'talos' as const, name: 'talos-1' };
  const read = await withGuestLines([vm], answering(talosctlVersionText('talos-1', 'v1.11.6')));
  assert.match(read[0]?.guestLines?.join('\n') ?? '', /version: v1\.11\.6/);
  const unread = await withGuestLines([vm], answering('', 1, 'connection refused'));
  assert.doesNotMatch(unread[0]?.guestLines?.join('\n') ?? '', /version:/);
  const answers = {
    url: 'https://pve.example:8006',
    token: 'root@pam!t',
    secret: { env: 'PVE_SECRET' },
    trust: { system: true as const },
  };
  const node = { node: 'pve2', gpu: '8086:3e92 at 0000:00:02.0', vms: [] };
  assert.match(labFileText(answers, [node], read), /talos: \{ node: talos-1, version: v1\.11\.6 \}/);
  const without = labFileText(answers, [node], unread);
  assert.match(
    without,
    /talos: \{ node: talos-1 \} .*\(init could not: talosctl version failed: connection refused\)/,
  );
  assert.doesNotMatch(without, /v1\.10\.9/);
  // Both load: the version is optional.
  for (const text of [labFileText(answers, [node], read), without]) parseLab(text, 'lab.yaml');
});

test('a talosctl that does not answer is stopped at its limit and named', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-talosctl-'));
  try {
    const bin = join(dir, 'talosctl');
    await writeFile(bin, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const started = Date.now();
    const result = await talosctlAt(bin)(['version', '--nodes', '10.0.0.6'], { timeoutMs: 300 });
    assert.notEqual(result.code, 0);
    assert.equal(result.stderr, 'talosctl did not finish within 0.3 s');
    assert.ok(Date.now() - started < 10_000, 'stopped at its limit, not after the sleep');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
