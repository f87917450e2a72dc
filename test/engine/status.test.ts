// status against the demo lab's simulators: a node's device shares are counted from what
// Kubernetes answers, and a read Kubernetes refuses (RBAC 403, a 5xx, no connection) is
// shown as unknown with its reason — never as free shares.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openKube } from '../../src/cluster/kube.ts';
import type { DemoLab } from '../../src/demo/lab.ts';
import { labStatus, renderMermaid, renderStatus } from '../../src/engine/status.ts';
import { K } from '../../src/sim/kube/controllers.ts';
import { withDemo } from '../support/demo.ts';

/** The device plugin sharing each GPU twice, and one pod on k3s-1 holding one share. */
function pluginAndPod(demo: DemoLab): void {
  demo.kube.store.update(K.DaemonSet, {
    apiVersion: 'apps/v1',
    kind: 'DaemonSet',
    metadata: { name: 'intel-gpu-plugin', namespace: 'kube-system' },
    spec: {
      template: {
        spec: {
          containers: [{ name: 'plugin', image: 'intel/intel-gpu-plugin', args: ['-shared-dev-num=2'] }],
        },
      },
    },
  });
  demo.kube.store.update(K.Pod, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'jellyfin', namespace: 'default' },
    spec: {
      nodeName: 'k3s-1',
      containers: [{ name: 'jellyfin', resources: { limits: { 'gpu.intel.com/i915': '1' } } }],
    },
    status: { phase: 'Running' },
  });
}

/** The line of node k3s-1 in the rendered tree. */
async function k3sLine(demo: DemoLab): Promise<string> {
  const text = renderStatus(await labStatus(demo.lab, demo.connections));
  const line = text.split('\n').find((l) => l.includes('node k3s-1'));
  assert.ok(line, text);
  return line;
}

test('status counts the shares Kubernetes reports', async () => {
  await withDemo(async (demo) => {
    pluginAndPod(demo);
    assert.match(await k3sLine(demo), /node k3s-1 {2}gpu\.intel\.com\/i915: 1 used \/ 1 free$/);
  });
});

test('status shows unknown, with the reason, when Kubernetes refuses to list pods', async () => {
  await withDemo(async (demo) => {
    pluginAndPod(demo);
    demo.kube.forbidden.add('list pods');
    const line = await k3sLine(demo);
    assert.doesNotMatch(line, /free/);
    assert.match(line, /gpu\.intel\.com\/i915: unknown \(.*list Pod: forbidden: cannot list pods.*\)$/);
    const status = await labStatus(demo.lab, demo.connections);
    assert.match(renderMermaid(status), /node k3s-1<br\/>unknown i915/);
  });
});

test('status shows unknown when Kubernetes refuses to read the node', async () => {
  await withDemo(async (demo) => {
    pluginAndPod(demo);
    demo.kube.forbidden.add('get nodes');
    const line = await k3sLine(demo);
    assert.doesNotMatch(line, /free/);
    assert.match(line, /unknown \(.*get Node k3s-1: forbidden: cannot get nodes.*\)$/);
  });
});

test('status shows unknown when the API server fails (5xx) or cannot be reached', async () => {
  await withDemo(async (demo) => {
    pluginAndPod(demo);
    // One attempt: the retries a 5xx earns are not what this test is about.
    demo.connections.kube = openKube({ kubeconfig: demo.description.kubeconfig, attempts: 1 });
    demo.kube.unavailable.count = 1;
    assert.match(await k3sLine(demo), /unknown \(.*list Pod: HTTP 503.*\)$/);
    await demo.kube.close();
    const line = await k3sLine(demo);
    assert.doesNotMatch(line, /free/);
    assert.match(line, /unknown \(.*list Pod: the API server is unreachable.*\)$/);
  });
});

test('a Proxmox read that fails makes status fail rather than show slots', async () => {
  await withDemo(async (demo) => {
    demo.proxmoxServer.unavailable.count = 100;
    await assert.rejects(labStatus(demo.lab, demo.connections), /503|unavailable/i);
  });
});

test('status and the Mermaid view show every host, one without node VMs too, with its vGPU slots', async () => {
  await withDemo(async (demo) => {
    const hosts = await labStatus(demo.lab, demo.connections);
    assert.deepEqual(
      hosts.map((h) => h.node),
      demo.lab.hosts.map((h) => h.node),
    );
    const pve3 = hosts.find((h) => h.node === 'pve3');
    assert.ok(pve3);
    assert.deepEqual(pve3.vms, []);
    const text = renderStatus(hosts);
    // pve3's 256 MB aperture: two V5_8 and one V5_4 instances, as the simulator lists them, none used.
    assert.match(text, /^pve3 {2}vGPU slots: none used \(V5_8 2 free, V5_4 1 free\); no node VM$/m);
    assert.match(text, /^pve1 {2}vGPU slots: /m);
    const mermaid = renderMermaid(hosts);
    for (const host of demo.lab.hosts)
      assert.match(mermaid, new RegExp(`host_${host.node}\\["${host.node}<br/>vGPU slots: [^"]+"\\]`));
    assert.match(mermaid, /host_pve3\["pve3<br\/>vGPU slots: none used \(V5_8 2 free, V5_4 1 free\)"\]/);
  });
});
