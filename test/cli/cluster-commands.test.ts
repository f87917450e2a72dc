// The cluster commands as a user runs them: the CLI against the project's
// Kubernetes API server, from a lab file that names the kubeconfig.

import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type RunningKubeSimulator, startKubeSimulator } from '../../src/sim/kube/server.ts';
import { runCli, spawnCli } from '../support/cli.ts';

let sim: RunningKubeSimulator;
let dir: string;
let lab: string;

before(async () => {
  sim = await startKubeSimulator({ nodes: [{ name: 'k3s-1', gpus: 1 }, { name: 'cp-1' }] });
  dir = await mkdtemp(join(tmpdir(), 'igpu-cli-kube-'));
  await writeFile(join(dir, 'kubeconfig'), sim.kubeconfig);
  lab = join(dir, 'igpu-split.yaml');
  await writeFile(
    lab,
    `proxmox: { url: https://127.0.0.1:8006, token: a@pve!b, tokenSecretEnv: S }
hosts: [{ node: pve1 }]
vms: [{ vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1 }]
kubernetes: { kubeconfig: ${join(dir, 'kubeconfig')}, plugin: { sharedDevNum: 3 } }
`,
  );
});
after(async () => {
  await sim.close();
  await rm(dir, { recursive: true, force: true });
});

test('cluster plan → apply → verify → render → rollback', async () => {
  const plan = await runCli(['cluster', 'plan', '--lab', lab]);
  assert.equal(plan.code, 0, plan.stderr);
  assert.match(plan.stdout, /create DaemonSet intel-gpu-plugin \(server-side apply as igpu-split\)/);
  assert.match(plan.stdout, /label node k3s-1: intel\.feature\.node\.kubernetes\.io\/gpu=true/);
  // No terminal to ask: a process of its own, whose stdin is closed.
  const refused = await spawnCli(['cluster', 'apply', '--lab', lab]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /no terminal to ask — review igpu-split cluster plan/);
  assert.equal((await runCli(['cluster', 'apply', '--yes', '--lab', lab])).code, 0);
  const verify = await runCli(['cluster', 'verify', '--lab', lab, '--timeout', '10']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.match(
    verify.stdout,
    /cluster\.k3s-1\.allocatable\s+k3s-1 advertises gpu\.intel\.com\/i915: 3 \(1 vGPU × 3\)/,
  );
  assert.match(
    verify.stdout,
    /cluster\.k3s-1\.smoke\s+render node opened: a container on k3s-1 opened renderD128 read-write; no vainfo in the image/,
  );
  assert.match((await runCli(['cluster', 'plan', '--lab', lab])).stdout, /nothing to do: converged/);
  const out = join(dir, 'gitops', 'cluster');
  assert.equal((await runCli(['cluster', 'render', '--out', out, '--lab', lab])).code, 0);
  assert.deepEqual((await readdir(out)).sort(), [
    'daemonset-intel-gpu-plugin.yaml',
    'kustomization.yaml',
    'label-nodes.sh',
    'namespace-igpu-split.yaml',
  ]);
  // Guest files are no Kubernetes objects: never written where a GitOps sync applies.
  const guests = await runCli(['guest', 'render', '--out', out, '--lab', lab]);
  assert.equal(guests.code, 2);
  assert.match(
    guests.stderr,
    /holds kustomization\.yaml: guest files there would be applied as Kubernetes objects/,
  );
  assert.equal((await readdir(out)).length, 4);
  const rollback = await runCli(['cluster', 'rollback', '--yes', '--lab', lab]);
  assert.match(rollback.stdout, /deleted DaemonSet intel-gpu-plugin\ndeleted Namespace igpu-split/);
  const after = await runCli(['cluster', 'verify', '--lab', lab, '--no-smoke']);
  assert.equal(after.code, 1);
  assert.match(after.stdout, /FAIL\s+cluster\.k3s-1\.plugin\s+no plugin pod on k3s-1/);
});

test('drain and uncordon a node from the command line; an unknown node is refused', async () => {
  const drain = await runCli(['cluster', 'drain', '--yes', '--node', 'k3s-1', '--lab', lab]);
  assert.equal(drain.code, 0, drain.stderr);
  assert.match(drain.stdout, /drained k3s-1/);
  assert.match(
    (await runCli(['cluster', 'uncordon', '--yes', '--node', 'k3s-1', '--lab', lab])).stdout,
    /uncordoned k3s-1/,
  );
  // With --json: one envelope naming the nodes done.
  const json = await runCli(['cluster', 'uncordon', '--yes', '--node', 'k3s-1', '--json', '--lab', lab]);
  assert.deepEqual(JSON.parse(json.stdout).result, { nodes: ['k3s-1'] });
  const unknown = await runCli(['cluster', 'drain', '--yes', '--node', 'nope', '--lab', lab]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /--node nope: no VM of the lab file has kubernetesNode nope/);
});
