// The whole chain against the demo lab, in this process: plan → apply → a second plan
// with nothing to do → verify with every link passing (warnings allowed) → status →
// rollback → verify showing the links rollback took away. Then an apply interrupted
// between stages and resumed from its journal, and the lab lock.

import assert from 'node:assert/strict';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { IgpuSplitError } from '../../src/core/errors.ts';
import type { DemoLab } from '../../src/demo/lab.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';
import { Journal } from '../../src/engine/journal.ts';
import { lockLine } from '../../src/engine/lock-holder.ts';
import { planIsEmpty, planLab, planRefusal, planSections } from '../../src/engine/plan.ts';
import { rollbackLab } from '../../src/engine/rollback.ts';
import { labStatus, renderMermaid, renderStatus } from '../../src/engine/status.ts';
import { verifyLab, worstOfChains } from '../../src/engine/verify.ts';
import { SRIOV_GRUB_DROPIN } from '../../src/guest/ubuntu/gather.ts';
import {
  GUEST_PIN_DROPIN,
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
  KERNEL_GUARD_STATE,
} from '../../src/linux/kernel-guard/script.ts';
import { withDemo } from '../support/demo.ts';

const fast = { pollMs: 10, rebootTimeoutMs: 10_000 };

async function applyAll(
  demo: DemoLab,
  journal = new Journal(demo.labFile),
  afterStage?: (id: string) => Promise<void>,
) {
  return applyLab(demo.lab, demo.connections, { labFile: demo.labFile, journal, afterStage, ...fast });
}

test('plan → apply → nothing left → verify passes → status → rollback → verify fails where rollback took things away', async () => {
  await withDemo(async (demo) => {
    const plan = await planLab(demo.lab, demo.connections);
    assert.equal(planRefusal(plan), undefined);
    assert.deepEqual(
      planSections(plan).map((s) => `${s.title}: ${s.steps.length}`),
      [
        'mapping iGPU: 1',
        'mapping iGPU-VF (virtual functions): 0',
        'host pve1: 7',
        'VM 101 on pve1: 3',
        'guest of VM 101 (ubuntu, k3s-1): 2',
        'host pve2: 7',
        'VM 102 on pve2: 3',
        'guest of VM 102 (talos, talos-1): 2',
        'host pve3: 3',
        'host pve4: 12',
        'VM 103 on pve4: 3',
        'guest of VM 103 (ubuntu, k3s-2): 8',
        'rollout: 0',
        'cluster: 5',
        'rollout: the drains of each host’s turn: 0',
      ],
    );
    assert.deepEqual(
      plan.drains.map((c) => `${c.id} ${c.status}`),
      ['rollout.pve1.drain pass', 'rollout.pve2.drain pass', 'rollout.pve4.drain pass'],
      'the drains apply makes below, each checked before the first change',
    );
    const { done } = await applyAll(demo);
    assert.deepEqual(done, [
      'lab/mapping',
      'pve1/drain',
      'pve1/host',
      'pve1/vms',
      'pve1/guest/101',
      'pve1/uncordon',
      'pve2/drain',
      'pve2/host',
      'pve2/vms',
      'pve2/guest/102',
      'pve2/uncordon',
      'pve3/host',
      'pve4/drain',
      'pve4/host',
      'pve4/vms',
      'pve4/guest/103',
      'pve4/uncordon',
      'lab/cluster',
    ]);
    // Converged: the second plan has nothing to do (and so reboots nothing).
    assert.ok(planIsEmpty(await planLab(demo.lab, demo.connections)));
    const chains = await verifyLab(demo.lab, demo.connections, { pollMs: 10, timeoutMs: 5_000 });
    assert.notEqual(worstOfChains(chains), 'fail');
    for (const chain of chains) {
      assert.deepEqual(
        chain.links.map((l) => l.link),
        ['host', 'mapping', 'vm', 'guest', 'cluster', 'smoke'],
      );
      assert.ok(
        chain.links.slice(1).every((l) => l.status === 'pass'),
        JSON.stringify(chain.links),
      );
    }
    // k3s-2 carries i915-sriov-dkms: apply installed its kernel guard. Then unattended-upgrades
    // installs a kernel the guard refuses (strict): verify shows it for that node, not the others.
    const k3s2 = demo.description.guestRoots['k3s-2'] as string;
    assert.equal((await stat(join(k3s2, KERNEL_GUARD_HOOK))).mode & 0o777, 0o755);
    await mkdir(join(k3s2, dirname(KERNEL_GUARD_STATE)), { recursive: true });
    await writeFile(
      join(k3s2, KERNEL_GUARD_STATE),
      'format=1\nchecked_kernel=6.8.0-90-generic\nchecked_at=2026-11-30T06:25:14Z\nverdict=breaks\n' +
        'why=dkms has not installed i915 for kernel 6.8.0-90-generic\nfix=run dkms autoinstall -k 6.8.0-90-generic\n' +
        'action=refused\nboots=6.8.0-88-generic\nstrict=yes\npin_kernel=\npin_kind=\npinned_at=\n' +
        'kernel.6.8.0-88-generic=keeps\nkernel.6.8.0-90-generic=breaks\n',
    );
    await writeFile(join(k3s2, GUEST_PIN_DROPIN), 'GRUB_DEFAULT="gnulinux-6.8.0-88-generic-advanced-x"\n');
    const guarded = await verifyLab(demo.lab, demo.connections, { smoke: false });
    const guestOf = (vmid: number) =>
      guarded.find((c) => c.vmid === vmid)?.links.find((l) => l.link === 'guest');
    assert.equal(guestOf(103)?.status, 'fail');
    assert.match(
      guestOf(103)?.evidence ?? '',
      /^kernel 6\.8\.0-90-generic \(checked 2026-11-30T06:25:14Z\) breaks the GPU split: dkms has not installed i915 .*strict mode stopped/,
    );
    assert.match(guestOf(103)?.fix ?? '', /dpkg --configure -a/);
    assert.equal(guestOf(101)?.status, 'pass');
    assert.equal(worstOfChains(guarded), 'fail');
    const status = await labStatus(demo.lab, demo.connections);
    assert.match(
      renderStatus(status),
      /pve4 {2}virtual functions 1 used \/ 0 free\n└─ VM 103 k3s-2 {2}virtual function, running\n {3}└─ node k3s-2 {2}gpu.intel.com\/i915: 0 used \/ 1 free/,
    );
    assert.match(
      renderStatus(status),
      /pve1 {2}vGPU slots: V5_4 1 used \/ 0 free\n└─ VM 101 k3s-1 {2}i915-GVTg_V5_4, running\n {3}└─ node k3s-1 {2}gpu.intel.com\/i915: 0 used \/ 1 free/,
    );
    assert.match(renderMermaid(status), /host_pve1 --> vm_101\n.*vm_101 --> node_k3s_1/s);
    const report = await rollbackLab(demo.lab, demo.connections);
    assert.ok(report.log.includes('deleted mapping iGPU'), report.log.join('\n'));
    // Per layer, as rollback --json prints it.
    assert.ok(report.undone.mapping.includes('deleted mapping iGPU'), JSON.stringify(report.undone));
    assert.ok(report.undone.vm.length > 0, JSON.stringify(report.undone));
    assert.deepEqual(
      report.undone.host.map((h) => h.node),
      ['pve1', 'pve2', 'pve3', 'pve4'],
    );
    assert.ok(report.undone.mapping.includes('deleted mapping iGPU-VF'), JSON.stringify(report.undone));
    assert.match(report.notes.join('\n'), /guests keep their kernel package/);
    // The guard goes with its record and pin (GRUB_DEFAULT back to the guest's own); the VF's drop-in stays.
    assert.deepEqual(report.undone.guest, [
      {
        vmid: 103,
        removed: [
          KERNEL_GUARD_AHEAD,
          KERNEL_GUARD_HOOK,
          KERNEL_GUARD_CONF,
          KERNEL_GUARD_STATE,
          GUEST_PIN_DROPIN,
        ],
      },
    ]);
    for (const path of report.undone.guest[0]?.removed ?? [])
      await assert.rejects(stat(join(k3s2, path)), { code: 'ENOENT' });
    assert.ok((await stat(join(k3s2, SRIOV_GRUB_DROPIN))).isFile());
    const after = await verifyLab(demo.lab, demo.connections, { smoke: false });
    for (const chain of after) {
      const status = Object.fromEntries(chain.links.map((l) => [l.link, l.status]));
      assert.deepEqual(
        status,
        chain.vmid === 103
          ? // The driver package is purged: the host's SR-IOV checks fail until it is set up again.
            // The guest still carries the module, now without its guard: a warning, apply puts it back.
            { host: 'fail', mapping: 'fail', vm: 'fail', guest: 'warn', cluster: 'fail' }
          : { host: 'warn', mapping: 'fail', vm: 'fail', guest: 'pass', cluster: 'fail' },
      );
      if (chain.vmid === 103)
        assert.match(
          chain.links.find((l) => l.link === 'guest')?.evidence ?? '',
          /^the kernel guard is not installed/,
        );
    }
  });
});

test('an apply interrupted between stages resumes from its journal and converges; the lock guards it', async () => {
  await withDemo(async (demo) => {
    const journal = new Journal(demo.labFile);
    await assert.rejects(
      applyAll(demo, journal, async (id) => {
        if (id === 'pve1/guest/101') throw new Error('interrupted');
      }),
      /interrupted/,
    );
    assert.deepEqual(journal.ids(), ['lab/mapping', 'pve1/drain', 'pve1/host', 'pve1/vms', 'pve1/guest/101']);
    assert.equal((await demo.connections.kube.get('v1', 'Node', 'k3s-1'))?.spec?.unschedulable, true);
    // The process that held the lock is gone (as after a kill).
    await writeFile(join(journal.dir, 'lock'), '999999\n');
    await assert.rejects(journal.lock(false), (error: unknown) => {
      assert.ok(error instanceof IgpuSplitError);
      assert.match(
        error.oneLine(),
        // The run is named by the process that began it (the journal's), not the lock's.
        new RegExp(
          `an earlier apply \\(pid ${process.pid}, started [^)]+\\) stopped without finishing: it finished lab/mapping, pve1/drain, pve1/host, pve1/vms, pve1/guest/101; left node k3s-1 drained — continue it with igpu-split apply --resume`,
        ),
      );
      return true;
    });
    const result = await applyLab(demo.lab, demo.connections, {
      labFile: demo.labFile,
      journal,
      resume: true,
      ...fast,
    });
    // What the first run finished is not done again; pve1 has nothing left but k3s-1,
    // drained then, is uncordoned.
    assert.ok(!result.done.includes('pve1/host') && !result.done.includes('pve1/drain'));
    assert.ok(result.done.includes('pve1/uncordon'), result.done.join(' '));
    assert.equal((await demo.connections.kube.get('v1', 'Node', 'k3s-1'))?.spec?.unschedulable, undefined);
    assert.ok(planIsEmpty(await planLab(demo.lab, demo.connections)));
    // While another live process holds the lock (here: the test runner), an apply is refused.
    // (The finished run took its folder away with its lock.)
    await mkdir(journal.dir, { recursive: true });
    await writeFile(join(journal.dir, 'lock'), lockLine(process.ppid));
    await assert.rejects(
      new Journal(demo.labFile).lock(true),
      new RegExp(`another igpu-split apply \\(pid ${process.ppid}\\) holds the lab lock`),
    );
    await journal.unlock();
  });
});

test('a node the user had cordoned before the run stays cordoned, also across an interrupted run', async () => {
  await withDemo(async (demo) => {
    await demo.connections.kube.setUnschedulable('talos-1', true);
    const journal = new Journal(demo.labFile);
    await assert.rejects(
      applyAll(demo, journal, async (id) => {
        if (id === 'pve2/drain') throw new Error('interrupted');
      }),
      /interrupted/,
    );
    await applyLab(demo.lab, demo.connections, { labFile: demo.labFile, journal, resume: true, ...fast });
    assert.equal((await demo.connections.kube.get('v1', 'Node', 'talos-1'))?.spec?.unschedulable, true);
    assert.equal((await demo.connections.kube.get('v1', 'Node', 'k3s-1'))?.spec?.unschedulable, undefined);
  });
});

test('a vGPU plan that cannot fit names the BIOS aperture that would, from what the host layer read', async () => {
  await withDemo(async (demo) => {
    // pve3 (i7-6700K, 256 MB aperture) offers one V5_4; two VMs there ask for one each.
    for (const vmid of [301, 302]) {
      demo.proxmox.addVm({
        vmid,
        node: 'pve3',
        status: 'stopped',
        config: { name: `extra-${vmid}`, machine: 'q35', bios: 'ovmf' },
      });
      demo.lab.vms.push({ vmid, host: 'pve3', os: 'ubuntu', vgpu: 'i915-GVTg_V5_4' });
    }
    const plan = await planLab(demo.lab, demo.connections);
    const check = plan.vms.checks.find((c) => c.id === 'vm.pve3.vgpu');
    assert.equal(check?.status, 'fail');
    assert.match(check?.evidence ?? '', /2 VMs need a vGPU each, but free instances are: i915-GVTg_V5_4 1/);
    assert.match(check?.fix ?? '', /raise the BIOS aperture to 512 MB: 3 × V5_4/);
  });
});

test('a privilege the token lacks is named by the plan, before the mapping is created or a node drained', async () => {
  await withDemo(async (demo) => {
    const grants = [...demo.proxmox.acl.values()][0]?.get('/vms');
    assert.ok(grants?.delete('VM.Config.HWType'));
    if (!grants) return;
    const plan = await planLab(demo.lab, demo.connections);
    assert.match(
      planRefusal(plan) ?? '',
      /^token igpu-split@pve!demo lacks VM\.Config\.HWType on \/vms\/101, VM\.Config\.HWType on \/vms\/102, VM\.Config\.HWType on \/vms\/103$/,
    );
    assert.equal(planSections(plan)[0]?.title, 'Proxmox token');
    assert.match(plan.privileges[0]?.fix ?? '', /pveum acl modify \/vms\/101 --tokens 'igpu-split@pve!demo'/);
    // With the privilege back, the same lab plans without a refusal.
    grants.add('VM.Config.HWType');
    assert.equal(planRefusal(await planLab(demo.lab, demo.connections)), undefined);
  });
});
