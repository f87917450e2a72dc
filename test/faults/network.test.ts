// Network faults on the demo lab: an SSH connection that drops in the middle of the host
// step, and the Proxmox API answering 503 while VMs are changed. Each ends in one line
// naming the target; the resumed apply converges.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HostError } from '../../src/access/host.ts';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { type DemoLab, startDemoLab } from '../../src/demo/lab.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';
import { planIsEmpty, planLab } from '../../src/engine/plan.ts';

const fast = { pollMs: 10, rebootTimeoutMs: 10_000 };

async function apply(demo: DemoLab, resume: boolean) {
  await applyLab(demo.lab, demo.connections, { labFile: demo.labFile, resume, ...fast });
}

async function failsWith(promise: Promise<unknown>, pattern: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError, String(error));
    assert.match(error.oneLine(), pattern);
    assert.ok(!error.oneLine().includes('\n'));
    return true;
  });
}

test('an SSH connection that drops while the host step writes: one line naming the host; resume converges', async () => {
  const demo = await startDemoLab();
  try {
    const open = demo.connections.host;
    let dropped = false;
    demo.connections.host = async (node) => {
      const host = await open(node);
      if (node !== 'pve1' || dropped) return host;
      // This connection dies at its first write: every later call on it fails too.
      let dead = false;
      for (const name of [
        'readFile',
        'list',
        'readLink',
        'entryType',
        'run',
        'writeFileAtomic',
        'createExclusive',
        'makeDir',
        'remove',
      ] as const) {
        const real = (host[name] as (...args: unknown[]) => Promise<unknown>).bind(host);
        (host as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
          if (name === 'writeFileAtomic' && String(args[0]).startsWith('/etc/')) dead = true;
          if (dead) {
            dropped = true;
            throw new HostError('EIO', String(args[0] ?? ''), 'the SSH connection was lost');
          }
          return real(...args);
        };
      }
      return host;
    };
    await failsWith(
      apply(demo, false),
      /ssh:\/\/root@pve1\.demo: applying stopped and the files could not be restored: .*the SSH connection was lost — .*apply --resume/,
    );
    demo.connections.host = open;
    await apply(demo, true);
    assert.ok(planIsEmpty(await planLab(demo.lab, demo.connections)));
  } finally {
    await demo.close();
  }
});

test('Proxmox answering 503 while VMs change: reads are retried, a change is not; resume converges', async () => {
  const demo = await startDemoLab();
  try {
    // Reads retry through short outages.
    demo.proxmoxServer.unavailable.count = 2;
    assert.equal((await demo.connections.proxmox.vmStatus('pve1', 101)).status, 'running');
    // A config change is not repeated blindly: the stage fails with the node's answer.
    const realUpdate = demo.connections.proxmox.updateVmConfig.bind(demo.connections.proxmox);
    demo.connections.proxmox.updateVmConfig = async (...args) => {
      demo.proxmoxServer.unavailable.count = 1;
      demo.connections.proxmox.updateVmConfig = realUpdate;
      return realUpdate(...args);
    };
    await failsWith(
      apply(demo, false),
      /VM 101: POST \/nodes\/pve1\/qemu\/101\/config: HTTP 503.*it runs again/,
    );
    assert.equal(
      (await demo.connections.proxmox.vmStatus('pve1', 101)).status,
      'running',
      'the VM was started again',
    );
    await apply(demo, true);
    assert.ok(planIsEmpty(await planLab(demo.lab, demo.connections)));
  } finally {
    await demo.close();
  }
});
