// Lab files igpu-split d5cfd90 wrote (its demo's, and one its init wrote) load with
// today's loader, giving the same hosts and VMs.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseLab } from '../../src/config/load.ts';
import { D5CFD90 } from './fixtures.ts';

for (const [name, guest] of [
  ['demo', 'ssh://root@k3s-1.demo'],
  ['init', 'ssh://ubuntu@k3s-1'],
] as const) {
  test(`the lab file d5cfd90's ${name} wrote loads`, async () => {
    const file = join(D5CFD90, 'lab', `${name}.yaml`);
    const lab = parseLab(await readFile(file, 'utf8'), file);
    assert.deepEqual(
      lab.hosts.map((h) => h.node),
      ['pve1', 'pve2', 'pve3'],
    );
    assert.deepEqual(
      lab.vms.map((vm) => [vm.vmid, vm.host, vm.os, vm.kubernetesNode]),
      [
        [101, 'pve1', 'ubuntu', 'k3s-1'],
        [102, 'pve2', 'talos', 'talos-1'],
      ],
    );
    const ubuntu = lab.vms[0] as { guest?: string };
    assert.equal(ubuntu.guest, guest);
    assert.equal(lab.mapping, 'iGPU');
  });
}
