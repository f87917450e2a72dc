// The mapping and vm commands as a user runs them: the CLI against the HTTPS
// simulator, trusted by its fingerprint, with the token secret in a file.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type RunningSimulator, startSimulator } from '../../src/sim/proxmox/server.ts';
import { SimulatorState } from '../../src/sim/proxmox/state.ts';
import { type CliResult, runCli, spawnCli } from '../support/cli.ts';
import { LAYER_GRANTS, UHD630 } from '../support/simulator.ts';

const SECRET = '7f3e1c2a-cli-secret-never-shown';
let state: SimulatorState;
let sim: RunningSimulator;
let dir: string;
let lab: string;

before(async () => {
  state = new SimulatorState({ taskMs: 2, secondMs: 2 });
  for (const [node, group] of [
    ['pve1', 1],
    ['pve2', 0],
  ] as const) {
    state.addNode(node, { ...UHD630, iommuGroup: group });
  }
  state.addVm({
    vmid: 101,
    node: 'pve1',
    status: 'stopped',
    config: { name: 'k3s-1', machine: 'q35', bios: 'ovmf' },
  });
  state.addVm({
    vmid: 102,
    node: 'pve2',
    status: 'stopped',
    config: { name: 'talos-1', machine: 'pc-i440fx-9.0', bios: 'ovmf' },
  });
  state.start(101);
  state.start(102);
  state.addToken('igpu-split@pve!lab', SECRET, LAYER_GRANTS);
  sim = await startSimulator(state);
  dir = await mkdtemp(join(tmpdir(), 'igpu-cli-pve-'));
  await writeFile(join(dir, 'token'), `${SECRET}\n`, { mode: 0o600 });
  lab = join(dir, 'igpu-split.yaml');
  await writeFile(
    lab,
    `proxmox:
  url: ${sim.url}
  token: igpu-split@pve!lab
  tokenSecretFile: ${join(dir, 'token')}
  fingerprint: ${sim.fingerprint}
hosts:
  - node: pve1
  - node: pve2
vms:
  - { vmid: 101, host: pve1, os: ubuntu }
  - { vmid: 102, host: pve2, os: talos }
`,
  );
});
after(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

async function cli(...args: string[]) {
  return withoutSecret(await runCli([...args, '--lab', lab]));
}

function withoutSecret(result: CliResult): CliResult {
  assert.ok(!`${result.stdout}${result.stderr}`.includes(SECRET), 'the token secret was printed');
  return result;
}

test('mapping plan → apply → plan says converged', async () => {
  const plan = await cli('mapping', 'plan');
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /create cluster PCI mapping iGPU: mdev=1 \(mediated devices\), 2 entries/);
  assert.match(
    plan.stdout,
    /\+ node=pve2,path=0000:00:02.0,id=8086:3e92,subsystem-id=17aa:3136,iommugroup=0,description=igpu-split/,
  );
  // No terminal to ask: a process of its own, whose stdin is closed.
  const refused = withoutSecret(await spawnCli(['mapping', 'apply', '--lab', lab]));
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /no terminal to ask — review igpu-split mapping plan, then rerun with --yes/);
  assert.equal(state.mappings.size, 0);
  const apply = await cli('mapping', 'apply', '--yes');
  assert.equal(apply.code, 0, apply.stderr);
  assert.match(apply.stdout, /mapping iGPU created/);
  assert.match((await cli('mapping', 'plan')).stdout, /nothing to do: converged/);
  // Nothing to do is still one envelope in JSON mode (docs/json.md).
  const again = JSON.parse((await cli('mapping', 'apply', '--yes', '--json')).stdout);
  assert.deepEqual(
    [again.format, again.command, again.result.changed],
    ['igpu-split', 'mapping apply', false],
  );
});

test('vm plan refuses the i440fx VM without consent; apply with it, verify, rollback', async () => {
  const plan = await cli('vm', 'plan');
  assert.equal(plan.code, 1);
  assert.match(plan.stdout, /FAIL\s+vm\.102\.machine\s+VM 102: machine pc-i440fx-9\.0 is i440fx/);
  assert.match(plan.stdout, /\[needs --change-machine\]/);
  const json = JSON.parse((await cli('vm', 'plan', '--json', '--change-machine')).stdout).result as {
    changes: unknown[];
  };
  assert.equal(json.changes.length, 2);
  const apply = await cli('vm', 'apply', '--yes', '--change-machine');
  assert.equal(apply.code, 0, apply.stderr);
  assert.match(apply.stdout, /VM 102: running with its vGPU/);
  assert.equal(state.vm(102).config.machine, 'q35');
  const verify = await cli('vm', 'verify');
  assert.equal(verify.code, 0, verify.stdout);
  assert.match(verify.stdout, /vm\.101\.vgpu\s+VM 101: hostpci0 has i915-GVTg_V5_4/);
  assert.match((await cli('vm', 'plan')).stdout, /nothing to do: converged/);
  const rollback = await cli('vm', 'rollback', '--yes', '--vm', '102');
  assert.equal(rollback.code, 0, rollback.stderr);
  assert.match(rollback.stdout, /VM 102: hostpci0 removed, machine put back/);
  assert.equal(state.vm(102).config.machine, 'pc-i440fx-9.0');
  const early = await cli('mapping', 'rollback', '--yes');
  assert.equal(early.code, 1, 'refused: exit 1');
  assert.match(
    early.stderr,
    /VM 101 still attaches through mapping iGPU \(hostpci0\) — run igpu-split vm rollback first/,
  );
  const after = await cli('vm', 'verify');
  assert.equal(after.code, 1);
  assert.match(
    after.stdout,
    /FAIL\s+vm\.102\.vgpu\s+VM 102 on pve2: no hostpci with an mdev type through mapping iGPU/,
  );
});

test('bad input: no lab file, a wrong fingerprint, an unknown --vm', async () => {
  const missing = await runCli(['vm', 'plan', '--lab', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /cannot read lab file .*nope\.yaml: no such file — create it \(igpu-split init\), or name another with --lab/,
  );
  const wrongLab = join(dir, 'wrong.yaml');
  const { readFile } = await import('node:fs/promises');
  await writeFile(wrongLab, (await readFile(lab, 'utf8')).replace(sim.fingerprint, `${'00:'.repeat(31)}00`));
  const wrong = await runCli(['vm', 'plan', '--lab', wrongLab]);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /certificate fingerprint [0-9A-F:]{95} is not the pinned 00:00/);
  const unknown = await cli('vm', 'plan', '--vm', '999');
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--vm 999: no such VM in the lab file — VMs are: 101, 102/);
});

test('init writes a commented lab file from what Proxmox shows, which the loader accepts', async () => {
  const out = join(dir, 'new.yaml');
  const args = [
    'init',
    '--url',
    sim.url,
    '--token',
    'igpu-split@pve!lab',
    '--token-secret-file',
    join(dir, 'token'),
    '--fingerprint',
    sim.fingerprint,
    '--out',
    out,
  ];
  const result = await runCli([...args, '--vm', '101:ubuntu', '102:talos']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /wrote .*new\.yaml: 2 hosts with an iGPU, 2 node VMs/);
  const { readFile } = await import('node:fs/promises');
  const { parseLab } = await import('../../src/config/load.ts');
  const text = await readFile(out, 'utf8');
  assert.ok(!text.includes(SECRET));
  assert.match(text, /- \{ node: pve1, ssh: "ssh:\/\/root@pve1" \} {3}# 8086:3e92 at 0000:00:02\.0/);
  const lab = parseLab(text, out);
  assert.deepEqual(
    lab.vms.map((vm) => [vm.vmid, vm.host, vm.os, vm.kubernetesNode]),
    [
      [101, 'pve1', 'ubuntu', 'k3s-1'],
      [102, 'pve2', 'talos', 'talos-1'],
    ],
  );
  const again = await runCli(args);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /new\.yaml exists — pass --force/);
  const bad = await runCli([...args, '--force', '--vm', '999:ubuntu']);
  assert.match(bad.stderr, /--vm 999:ubuntu: not VMID:ubuntu\|talos of a VM Proxmox shows — VMs: 101, 102/);
});
