// A Talos change without talosctl, as a user meets it in the playground: apply writes the
// files, prints the commands, finishes every other stage and exits 3 with "pending: 1
// manual step" (the node not left cordoned); once the node shows what the commands would
// have done — here set with the real kubectl, as Talos's label sync would set it — verify
// and the next apply see the step done. The built CLI in interactive-less bash, against
// `igpu-split demo --serve`, PATH without the demo's talosctl.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { collect } from '../support/collect.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'igpu-split-manual-'));
const env = { HOME: work, PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };
let playground: ChildProcess;
let exited: Promise<number | null>;

before(async () => {
  playground = spawn(join(ROOT, 'bin/igpu-split'), ['demo', '--serve', '--dir', 'pg'], { env, cwd: work });
  exited = new Promise((resolve) => playground.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    playground.stdout?.once('data', () => resolve());
    void exited.then((code) => reject(new Error(`demo --serve ended (${code})`)));
  });
});

after(async () => {
  playground.kill('SIGTERM');
  await exited;
  rmSync(work, { recursive: true, force: true });
});

/** Runs `line` after demo.env, with the demo's talosctl taken off PATH again. */
const sh = (line: string) =>
  collect(
    'bash',
    ['--norc', '--noprofile', '-c', `. pg/demo.env && PATH="\${PATH/$PWD\\/pg\\/bin:/}" && ${line}`],
    {
      env,
      cwd: work,
    },
  );

test('without talosctl: apply finishes the rest and waits for one manual step; the node shows it done later', async () => {
  assert.equal((await sh('command -v talosctl')).code, 1, 'no talosctl on PATH');
  const applied = await sh('igpu-split apply --yes');
  assert.equal(applied.code, 3, applied.stdout + applied.stderr);
  assert.match(applied.stdout, /pending: 1 manual step\b/);
  assert.match(applied.stdout, /talosctl upgrade --nodes 10\.0\.0\.6/);
  const node = await sh('kubectl get node talos-1 -o jsonpath="{.spec.unschedulable}"');
  assert.equal(node.code, 0, node.stderr);
  assert.equal(node.stdout, '', 'talos-1 is not left cordoned');
  const plugin = await sh('kubectl get daemonset -n igpu-split -o name');
  assert.match(plugin.stdout, /intel-gpu-plugin/, 'the cluster stage ran');

  const waiting = await sh('igpu-split verify');
  assert.equal(waiting.code, 3, waiting.stdout + waiting.stderr);
  assert.match(waiting.stdout, /WAIT/);

  // What Talos shows once the printed commands have run: a label per extension.
  const labelled = await sh(
    'kubectl label node talos-1 extensions.talos.dev/i915=20250812 extensions.talos.dev/intel-ucode=20250812',
  );
  assert.equal(labelled.code, 0, labelled.stderr);
  const done = await sh('igpu-split verify');
  assert.equal(done.code, 0, done.stdout + done.stderr);
  const again = await sh('igpu-split apply --yes');
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.doesNotMatch(again.stdout, /pending/);
});

test('apply --skip-host: with pve2 unreachable the rest is applied and verified, and pve2 is named skipped', async () => {
  // VM 101 loses its vGPU, so the next apply has work on pve1; pve2 then answers nowhere.
  const rolled = await sh('igpu-split vm rollback --yes --vm 101');
  assert.equal(rolled.code, 0, rolled.stdout + rolled.stderr);
  const broken = await sh(
    'sed -E \'s|(node: pve2, ssh: "ssh://root@127.0.0.1:)[0-9]+|\\11|\' "$IGPU_SPLIT_LAB" > pve2-down.yaml',
  );
  assert.equal(broken.code, 0, broken.stderr);
  const refused = await sh('IGPU_SPLIT_LAB=$PWD/pve2-down.yaml igpu-split apply --yes');
  assert.equal(refused.code, 2, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /--skip-host pve2/);
  const applied = await sh('IGPU_SPLIT_LAB=$PWD/pve2-down.yaml igpu-split apply --yes --skip-host pve2');
  assert.equal(applied.code, 0, applied.stdout + applied.stderr);
  assert.match(applied.stdout, /skipped: pve2 \(--skip-host\)/);
  // The verify after it covers the chains applied: VM 101's, not the skipped host's VM 102.
  assert.match(applied.stdout, /VM 101 → node k3s-1/);
  assert.doesNotMatch(applied.stdout, /VM 102 →/);
});
