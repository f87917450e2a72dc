// `igpu-split demo` (what npm start runs on a fresh machine) as a user sees it.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { runCli } from '../support/cli.ts';

test('the demo lab goes through doctor, plan, apply, verify and status, and cleans up after itself', async () => {
  const result = await runCli(['demo']);
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const sections = [...result.stdout.matchAll(/^━━ (.*?) ━/gm)].map((m) => m[1]);
  assert.deepEqual(sections, [
    '1. doctor: what each host can do',
    '2. plan: what apply will change',
    '3. apply: host by host (drain → host → reboot → VM → guest → uncordon), then the cluster',
    '4. verify: every link from host to pod',
    '5. status (with a Jellyfin pod holding one of the GPUs)',
    'what next',
  ]);
  assert.match(
    result.stdout,
    /pve3 {2}Intel\(R\) Core\(TM\) i7-6700K .*Skylake \(8086:1912, 256 MB aperture\)/,
  );
  assert.match(result.stdout, /✔ host pve1: 7 changes, reboot/);
  assert.match(result.stdout, /PASS {2}chain\.102\.smoke/);
  assert.match(result.stdout, /└─ pod default\/jellyfin \(1\)/);
  assert.match(result.stdout, /the chain is complete/);
  const dir = /Lab file: (\S+)\/igpu-split\.yaml/.exec(result.stdout)?.[1];
  assert.ok(dir && !existsSync(dir), `the demo folder ${dir} is removed`);
});
