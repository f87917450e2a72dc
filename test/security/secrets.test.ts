// Every command, run as a user would with real secrets in place (the Proxmox token in a
// file and in a variable, the kubeconfig's bearer token), including the failing ones and
// --debug stack traces: no secret may appear in any output. Also the whole-lab commands
// end to end against the simulators (hosts and guests unmanaged: no ssh in this lab).

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type RunningKubeSimulator, startKubeSimulator } from '../../src/sim/kube/server.ts';
import { type RunningSimulator, startSimulator } from '../../src/sim/proxmox/server.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { spawnCli } from '../support/cli.ts';
import { addPve1WithK3sVm, LAYER_GRANTS } from '../support/simulator.ts';

const SECRET = 'b7a1c2d3-0000-4e5f-9a8b-secret-token';
let pve: RunningSimulator;
let kube: RunningKubeSimulator;
let dir: string;
let lab: string;
const outputs: string[] = [];

before(async () => {
  const state = new SimulatorState({ taskMs: 2, secondMs: 2 });
  addPve1WithK3sVm(state);
  state.addToken('igpu-split@pve!lab', SECRET, LAYER_GRANTS);
  pve = await startSimulator(state);
  kube = await startKubeSimulator({ nodes: [{ name: 'k3s-1', gpus: 1 }] });
  dir = await mkdtemp(join(tmpdir(), 'igpu-secrets-'));
  await writeFile(join(dir, 'token'), `${SECRET}\n`, { mode: 0o600 });
  await writeFile(join(dir, 'kubeconfig'), kube.kubeconfig, { mode: 0o600 });
  lab = join(dir, 'igpu-split.yaml');
  await writeFile(
    lab,
    `proxmox: { url: ${pve.url}, token: igpu-split@pve!lab, tokenSecretFile: ${join(dir, 'token')}, fingerprint: "${pve.fingerprint}" }
hosts: [{ node: pve1 }]
vms: [{ vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1 }]
kubernetes: { kubeconfig: ${join(dir, 'kubeconfig')} }
`,
  );
});
after(async () => {
  await pve.close();
  await kube.close();
  await rm(dir, { recursive: true, force: true });
});

// Each command a process of its own: it starts knowing no secret, and its output passes main.ts's guard.
async function cli(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const result = await spawnCli(args, env);
  outputs.push(`$ ${args.join(' ')}\n${result.stdout}${result.stderr}`);
  return result;
}

test('the whole-lab commands against the simulators: plan, apply, converged, verify, status, rollback', async () => {
  const plan = await cli(['plan', '--lab', lab]);
  assert.equal(plan.code, 0, plan.stdout + plan.stderr);
  assert.match(plan.stdout, /mapping iGPU\n\n {2}1\. create cluster PCI mapping iGPU/);
  const apply = await cli(['apply', '--yes', '--lab', lab]);
  assert.equal(apply.code, 0, apply.stdout + apply.stderr);
  assert.match(apply.stdout, /PASS {2}chain\.101\.smoke/);
  assert.match((await cli(['apply', '--yes', '--lab', lab])).stdout, /the lab is converged: nothing to do/);
  const status = await cli(['status', '--lab', lab]);
  assert.match(status.stdout, /└─ VM 101 k3s-1 {2}i915-GVTg_V5_4, running/);
  assert.match((await cli(['status', '--mermaid', '--lab', lab])).stdout, /^graph TD\n/);
  assert.equal((await cli(['verify', '--lab', lab])).code, 0);
  const rollback = await cli(['rollback', '--yes', '--lab', lab]);
  assert.match(rollback.stdout, /deleted mapping iGPU/);
  assert.equal((await cli(['verify', '--no-smoke', '--lab', lab])).code, 1);
});

test('no command prints a secret, whatever happens', async () => {
  const env = { ...process.env, PVE_SECRET: SECRET };
  const variableLab = join(dir, 'env.yaml');
  await writeFile(
    variableLab,
    (await readFile(lab, 'utf8')).replace(
      `tokenSecretFile: ${join(dir, 'token')}`,
      'tokenSecretEnv: PVE_SECRET',
    ),
  );
  const wrongPin = join(dir, 'pin.yaml');
  await writeFile(wrongPin, (await readFile(lab, 'utf8')).replace(pve.fingerprint, `${'AB:'.repeat(31)}AB`));
  const wrongSecret = join(dir, 'wrong-secret');
  await writeFile(wrongSecret, 'not-the-secret\n');
  const wrongLab = join(dir, 'wrong.yaml');
  await writeFile(wrongLab, (await readFile(lab, 'utf8')).replace(join(dir, 'token'), wrongSecret));
  const runs: string[][] = [
    ['--help'],
    ['plan', '--lab', variableLab],
    ['plan', '--json', '--lab', lab],
    ['mapping', 'plan', '--json', '--lab', lab],
    ['vm', 'plan', '--json', '--lab', lab],
    ['vm', 'verify', '--lab', lab],
    ['cluster', 'plan', '--json', '--lab', lab],
    ['cluster', 'verify', '--no-smoke', '--lab', lab],
    ['status', '--json', '--lab', lab],
    ['plan', '--debug', '--lab', wrongPin],
    ['vm', 'plan', '--debug', '--lab', wrongLab],
    ['plan', '--lab', join(dir, 'missing.yaml')],
    ['apply', '--lab', lab],
    [
      'init',
      '--url',
      pve.url,
      '--token',
      'igpu-split@pve!lab',
      '--token-secret-env',
      'PVE_SECRET',
      '--fingerprint',
      pve.fingerprint,
      '--out',
      join(dir, 'init.yaml'),
      '--vm',
      '101:ubuntu',
    ],
    [
      'init',
      '--debug',
      '--url',
      pve.url,
      '--token',
      'igpu-split@pve!lab',
      '--token-secret-file',
      wrongSecret,
      '--fingerprint',
      pve.fingerprint,
      '--out',
      join(dir, 'init2.yaml'),
    ],
  ];
  for (const args of runs) await cli(args, env);
  const failures = outputs.filter((o) => /igpu-split: /.test(o)).length;
  assert.ok(failures >= 4, 'the failing runs failed');
  const hits = outputs.filter((o) => o.includes(SECRET) || o.includes(kube.token));
  assert.deepEqual(hits, [], 'a secret was printed');
  assert.ok(!(await readFile(join(dir, 'init.yaml'), 'utf8')).includes(SECRET), 'init wrote the secret');
  assert.match(outputs.find((o) => o.includes('pin.yaml')) ?? '', /is not the pinned AB:AB/);
  assert.match(
    outputs.find((o) => o.includes('wrong.yaml')) ?? '',
    /authentication failed for token igpu-split@pve!lab/,
  );
});
