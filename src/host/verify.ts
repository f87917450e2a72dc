// Host layer `verify`, after a reboot: the running kernel has our parameters and the
// hardware checks doctor knows all hold (IOMMU, GVT-g on, kvmgt, mdev types, instances
// as predicted; for passthrough the device's group).

import type { Check } from '../core/model.ts';
import type { HostState } from './apply.ts';
import { planParams } from './boot/kernel-params.ts';
import type { HostFacts } from './facts.ts';
import { hostVerdict } from './verdict.ts';

export function verifyHost(facts: HostFacts, state: HostState | undefined): Check[] {
  const verdict = hostVerdict(facts);
  const checks = verdict.checks;
  if (verdict.mode === 'passthrough' && verdict.gpu) {
    const driver = verdict.gpu.driver;
    checks.push(
      driver === 'vfio-pci'
        ? { id: 'passthrough.driver', status: 'pass', evidence: `${verdict.gpu.bdf} is bound to vfio-pci` }
        : {
            id: 'passthrough.driver',
            status: 'fail',
            evidence: `${verdict.gpu.bdf} is bound to ${driver ?? 'no driver'}`,
            fix: 'check that /etc/modprobe.d/igpu-split.conf is in the initramfs (update-initramfs -u -k all) and reboot',
          },
    );
  }
  const ours = state?.params ?? [];
  if (ours.length > 0) {
    const running = planParams(facts.cmdline ?? '', ours);
    const missing = [...running.add, ...running.conflicts.map((c) => c.want)];
    checks.unshift(
      missing.length === 0
        ? { id: 'host.cmdline', status: 'pass', evidence: `/proc/cmdline has ${ours.join(' ')}` }
        : {
            id: 'host.cmdline',
            status: 'fail',
            evidence: `/proc/cmdline lacks ${missing.join(' ')}`,
            fix: 'reboot the host (with igpu-split host apply --reboot), or check that the boot loader entry used is the one update-grub / proxmox-boot-tool wrote',
          },
    );
  }
  return checks;
}
