// Writes test/fixtures/formats/d5cfd90/: lab files, an interrupted apply's journal, host
// state with backups and VM configs with the notes line, all produced by the igpu-split
// of commit d5cfd90 itself (the release before the saved formats carried a version), so
// test/formats proves today's code still reads them and rolls back what it did.
//   node scripts/make-format-fixtures.ts
// It unpacks d5cfd90 (git archive) into a temporary folder, links this checkout's
// node_modules when the dependencies are the same (else `npm ci` there), builds it, and
// runs the driver below inside that tree, so every import is d5cfd90's own code.

import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const COMMIT = 'd5cfd90';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'test/fixtures/formats', COMMIT);

/**
 * Runs in the d5cfd90 tree (its relative imports are that commit's sources), with the
 * output folder as its argument. Each part says what an operator's machine would hold.
 */
const DRIVER = String.raw`
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import { startDemoLab } from '../../src/demo/lab.ts';
import { proxmoxHost } from '../../src/demo/machines.ts';
import { applyHostPlan } from '../../src/host/apply.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { planHost } from '../../src/host/plan.ts';
import { ProxmoxApi } from '../../src/proxmox/api.ts';
import { SimulatorState } from '../../src/proxmox/simulator/state.ts';
import { SimulatorTransport } from '../../src/proxmox/simulator/transport.ts';
import { applyVmPlan } from '../../src/vm/apply.ts';
import { gatherVmFacts } from '../../src/vm/gather.ts';
import { planVms } from '../../src/vm/plan.ts';
import { UHD630, uhd630Entry } from '../support/simulator.ts';

const out = process.argv[2];
const tree = process.cwd();

/** What apply and rollback read and write on a host: etc, our state and backups, the running kernel's view. */
function keepHost(root, to, parts) {
  for (const part of parts)
    if (existsSync(join(root, part))) cpSync(join(root, part), join(to, part), { recursive: true, verbatimSymlinks: true });
}
const HOST_AFTER = ['etc', 'var/lib/igpu-split', 'proc/cmdline', 'proc/modules'];

/** A child process, waited for without blocking this one (it serves the simulators). */
function child(args, env = {}) {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, args, { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (chunk) => (stdout += chunk));
    proc.stderr.on('data', (chunk) => (stderr += chunk));
    proc.on('close', (status, signal) => resolve({ status, signal, stdout, stderr }));
  });
}
const applyChild = (description, env) => child([join(tree, 'test/support/apply-child.ts'), description], env);

async function withDemo(body) {
  const demo = await startDemoLab();
  try {
    const description = join(demo.dir, 'description.json');
    writeFileSync(description, JSON.stringify(demo.description));
    return await body(demo, description);
  } finally {
    await demo.close();
  }
}

// The demo lab applied whole: pve1 (GRUB) as apply left it, both VMs' configs, and a lab
// file init wrote against the same Proxmox.
await withDemo(async (demo, description) => {
  const secret = join(demo.dir, 'token');
  writeFileSync(secret, demo.description.secret, { mode: 0o600 });
  const init = await child([
    join(tree, 'bin/igpu-split.js'), 'init',
    '--url', demo.description.proxmoxUrl,
    '--token', 'igpu-split@pve!demo',
    '--token-secret-file', secret,
    '--fingerprint', demo.description.fingerprint,
    '--out', join(out, 'lab/init.yaml'),
    '--vm', '101:ubuntu', '102:talos',
  ]);
  if (init.status !== 0) throw new Error('init failed: ' + init.stderr);
  const root = demo.description.roots.pve1;
  keepHost(root, join(out, 'hosts/demo-pve1/before'), ['etc']);
  const vms = {};
  for (const vm of demo.lab.vms)
    vms[vm.vmid] = { node: vm.host, before: await vmState(demo.connections.proxmox, vm.host, vm.vmid) };
  const run = await applyChild(description, {});
  if (run.status !== 0) throw new Error('the demo apply failed: ' + run.stdout + run.stderr);
  keepHost(root, join(out, 'hosts/demo-pve1/after'), HOST_AFTER);
  for (const vm of demo.lab.vms) vms[vm.vmid].after = await vmState(demo.connections.proxmox, vm.host, vm.vmid);
  writeFileSync(join(out, 'vms/demo.json'), JSON.stringify(vms, null, 2) + '\n');
});

async function vmState(api, node, vmid) {
  const [config, status] = await Promise.all([api.vmConfig(node, vmid), api.vmStatus(node, vmid)]);
  return { status: status.status, config: config.values };
}

// An apply killed right after its first change sent to Proxmox (a VM stopped for its new
// config): the journal holds the stages done, the one begun and the stopped VM.
await withDemo(async (demo, description) => {
  const run = await applyChild(description, { KILL_AT_CALL: '1' });
  if (run.signal !== 'SIGKILL') throw new Error('the interrupted apply was not killed: ' + run.stdout + run.stderr);
  cpSync(join(demo.dir, '.igpu-split/journal.json'), join(out, 'journal/interrupted.json'));
});

// A systemd-boot host whose /etc/kernel/cmdline already had the user's intel_iommu=on (as
// the boot-chain tests prepare it): apply edits that file, so its original is backed up.
{
  const root = join(mkdtempSync(join(tmpdir(), 'igpu-split-fixture-')), 'host');
  execFileSync('cp', ['-a', join(tree, 'test/fixtures/hosts/i7-6700k-sdboot'), root]);
  writeFileSync(join(root, 'etc/kernel/cmdline'), 'root=ZFS=rpool/ROOT/pve-1 boot=zfs intel_iommu=on quiet\n');
  keepHost(root, join(out, 'hosts/sdboot/before'), ['etc']);
  const host = await new DirectoryHost(root, proxmoxHost(undefined), 'ssh://root@sdboot').open();
  const plan = planHost(await gatherHostFacts(host));
  await applyHostPlan(host, plan, {});
  await host.close();
  keepHost(root, join(out, 'hosts/sdboot/after'), HOST_AFTER);
}

// A running i440fx VM with pre-enrolled Secure Boot keys, applied with --change-machine and
// --reset-efi-keys: the notes line records the machine and the EFI disk to put back.
{
  const state = new SimulatorState({ taskMs: 1, secondMs: 1 });
  state.addNode('pve1', { ...UHD630 });
  state.mappings.set('iGPU', { mdev: true, map: [uhd630Entry('pve1')] });
  const config = {
    name: 'k3s-1',
    machine: 'pc-i440fx-9.0',
    bios: 'ovmf',
    efidisk0: 'local-lvm:vm-101-disk-0,efitype=4m,pre-enrolled-keys=1,size=4M',
    description: 'k3s node\nowner: ops',
  };
  state.addVm({ vmid: 101, node: 'pve1', status: 'stopped', config: { ...config } });
  state.start(101);
  state.addToken('igpu@pve!split', 's', {
    '/': ['Sys.Audit'],
    '/vms': ['VM.Audit', 'VM.Config.HWType', 'VM.Config.Disk', 'VM.Config.Options', 'VM.PowerMgmt'],
    '/mapping/pci': ['Mapping.Use', 'Mapping.Audit'],
    '/storage': ['Datastore.AllocateSpace'],
  });
  const identity = { user: 'igpu@pve', token: 'split' };
  const api = new ProxmoxApi(new SimulatorTransport(state, identity), 'igpu@pve!split', { pollMs: 1 });
  const desired = [{ vmid: 101, node: 'pve1', vgpu: 'auto' }];
  const options = { mapping: 'iGPU', identity, changeMachine: true, resetEfiKeys: true };
  const before = await vmState(api, 'pve1', 101);
  const plan = planVms(await gatherVmFacts(api, desired, 'iGPU'), desired, options);
  await applyVmPlan(api, plan, { consents: ['--change-machine', '--reset-efi-keys'], shutdownTimeoutSeconds: 5 });
  const after = await vmState(api, 'pve1', 101);
  writeFileSync(join(out, 'vms/change-machine.json'), JSON.stringify({ 101: { node: 'pve1', before, after } }, null, 2) + '\n');
}
`;

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(' ')} failed (${result.status ?? result.signal}): ${result.stderr}`,
    );
  return result.stdout;
}

const dependencies = (text: string) => {
  const json = JSON.parse(text) as { dependencies?: unknown; devDependencies?: unknown };
  return JSON.stringify([json.dependencies, json.devDependencies]);
};

const tree = mkdtempSync(join(tmpdir(), `igpu-split-${COMMIT}-`));
try {
  const archive = spawnSync('git', ['-C', ROOT, 'archive', COMMIT], { maxBuffer: 1 << 30 });
  if (archive.status !== 0) throw new Error(`git archive ${COMMIT} failed: ${archive.stderr}`);
  spawnSync('tar', ['-x', '-C', tree], { input: archive.stdout });
  const same =
    dependencies(readFileSync(join(tree, 'package.json'), 'utf8')) ===
      dependencies(readFileSync(join(ROOT, 'package.json'), 'utf8')) &&
    readFileSync(join(tree, 'package-lock.json'), 'utf8') ===
      readFileSync(join(ROOT, 'package-lock.json'), 'utf8');
  if (same) symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
  else run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], tree);
  run(join(tree, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.build.json'], tree);

  rmSync(OUT, { recursive: true, force: true });
  for (const dir of ['lab', 'journal', 'hosts', 'vms']) mkdirSync(join(OUT, dir), { recursive: true });
  const driver = join(tree, 'test/support/format-fixtures-driver.ts');
  writeFileSync(driver, DRIVER);
  run(process.execPath, [driver, OUT], tree);

  // The demo's own lab file, as `igpu-split demo --keep` leaves it.
  const demo = run(process.execPath, ['bin/igpu-split.js', 'demo', '--keep'], tree);
  const kept = /kept (\S+) \(/.exec(demo)?.[1];
  if (!kept || !existsSync(join(kept, 'igpu-split.yaml')))
    throw new Error(`demo --keep kept no lab file:\n${demo}`);
  cpSync(join(kept, 'igpu-split.yaml'), join(OUT, 'lab/demo.yaml'));
  rmSync(kept, { recursive: true, force: true });

  writeFileSync(
    join(OUT, 'README.md'),
    `# Saved formats written by igpu-split ${COMMIT}

Produced by \`node scripts/make-format-fixtures.ts\`, which runs the code of commit ${COMMIT}
(before the journal, host state and VM notes line carried a format number: format 1).
test/formats loads them with today's code. Do not edit them by hand; run the script again.

- \`lab/demo.yaml\`: \`igpu-split demo --keep\`; \`lab/init.yaml\`: \`igpu-split init\` against the demo's Proxmox.
- \`journal/interrupted.json\`: the demo lab's apply killed after its first change sent to Proxmox.
- \`hosts/<name>/before\` and \`after\`: a directory host before and after ${COMMIT}'s apply
  (\`demo-pve1\`: the demo's GRUB host applied by the whole lab; \`sdboot\`: a systemd-boot host
  whose /etc/kernel/cmdline apply edits, so its original is among the backups).
- \`vms/*.json\`: the Proxmox simulator's VM config and power before and after ${COMMIT}'s apply
  (\`demo\`: the demo lab's VMs; \`change-machine\`: an i440fx VM with Secure Boot keys, applied
  with --change-machine and --reset-efi-keys).
`,
  );
  process.stdout.write(`wrote ${OUT}\n`);
} finally {
  rmSync(tree, { recursive: true, force: true });
}
