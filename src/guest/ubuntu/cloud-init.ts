// cloud-init user-data for new Ubuntu node VMs: the same kernel package the guest layer
// installs, at first boot, then one reboot only when the running kernel lacks i915. The
// tests check every generated file with `cloud-init schema` (Debian's cloud-init).

import { stringify } from 'yaml';
import { UBUNTU_PACKAGE } from '../../knowledge/packages.ts';
import { KERNEL_PACKAGE } from './plan.ts';

export interface UserDataOptions {
  hostname?: string;
  /** Public keys for the default user. */
  sshAuthorizedKeys?: string[];
  /** Also install qemu-guest-agent (Proxmox shows the IP and shuts down cleanly). */
  qemuGuestAgent?: boolean;
}

/** The reboot condition cloud-init runs after installing: true while i915 is missing. */
export const NEEDS_REBOOT = 'test ! -d "/lib/modules/$(uname -r)/kernel/drivers/gpu/drm/i915"';

export function ubuntuUserData(options: UserDataOptions = {}): string {
  const config: Record<string, unknown> = {};
  if (options.hostname) config.hostname = options.hostname;
  if (options.sshAuthorizedKeys?.length) config.ssh_authorized_keys = options.sshAuthorizedKeys;
  config.package_update = true;
  config.packages = [KERNEL_PACKAGE, ...(options.qemuGuestAgent ? [UBUNTU_PACKAGE.qemuGuestAgent] : [])];
  config.power_state = {
    mode: 'reboot',
    message: 'igpu-split: rebooting into the kernel with i915',
    condition: NEEDS_REBOOT,
  };
  return `#cloud-config\n# igpu-split: ${KERNEL_PACKAGE} brings i915 (linux-modules-extra) and the GPU firmware.\n${stringify(config)}`;
}
