// cloud-init user-data for new Ubuntu node VMs: the same kernel package the guest layer
// installs, at first boot, then one reboot only when the running kernel lacks i915. The
// tests check every generated file with `cloud-init schema` (Debian's cloud-init).
//
// On an SR-IOV VF the user-data does what the guest layer's VF steps do (sriov.ts): the
// packages, the release .deb from the lab file's url (checked against its sha256), the GRUB
// drop-in and update-grub, then one reboot while the running command line lacks the
// parameters. Module order (cloud-init 22.4.2's /etc/cloud/cloud.cfg, Debian package
// 22.4.2-1+deb12u4): package-update-upgrade-install, then write-files-deferred, then
// scripts-user (runcmd), all in the final stage; so the drop-in appears only after the kernel
// packages' own update-grub ran, and runcmd's dpkg -i finds the headers installed. The kernel
// guard (guard.ts) is deferred too: the kernel linux-generic installs is no upgrade to judge,
// and a guard run before the module's package is there would only record a kernel without it.

import { stringify } from 'yaml';
import { RefusedError } from '../../core/errors.ts';
import { releaseOfPackageFile } from '../../knowledge/i915-sriov-dkms.ts';
import { UBUNTU_PACKAGE } from '../../knowledge/packages.ts';
import type { GuestAttachment, VfAttachment } from '../provider.ts';
import { SRIOV_GRUB_DROPIN } from './gather.ts';
import { guardFiles, wantsGuard } from './guard.ts';
import { KERNEL_PACKAGE } from './plan.ts';
import { grubDropin, PACKAGE_DIR, vfParams } from './sriov.ts';

export interface UserDataOptions {
  hostname?: string;
  /** Public keys for the default user. */
  sshAuthorizedKeys?: string[];
  /** Also install qemu-guest-agent (Proxmox shows the IP and shuts down cleanly). */
  qemuGuestAgent?: boolean;
  /** What the VM is given (absent: a GVT-g mdev). */
  attachment?: GuestAttachment;
  /** How a refusal names the VM: `VM 101`. */
  vm?: string;
}

/** The reboot condition cloud-init runs after installing: true while i915 is missing. */
export const NEEDS_REBOOT = 'test ! -d "/lib/modules/$(uname -r)/kernel/drivers/gpu/drm/i915"';

/** On a VF: true while the running command line lacks the first of the VF's parameters. */
export const vfNeedsReboot = (params: string[]) => `! grep -qw -- '${params[0]}' /proc/cmdline`;

export function ubuntuUserData(options: UserDataOptions = {}): string {
  const config: Record<string, unknown> = {};
  if (options.hostname) config.hostname = options.hostname;
  if (options.sshAuthorizedKeys?.length) config.ssh_authorized_keys = options.sshAuthorizedKeys;
  config.package_update = true;
  const agent = options.qemuGuestAgent ? [UBUNTU_PACKAGE.qemuGuestAgent] : [];
  if (options.attachment?.kind === 'vf') return vfUserData(config, options.attachment, agent, options.vm);
  config.packages = [KERNEL_PACKAGE, ...agent];
  config.power_state = {
    mode: 'reboot',
    message: 'igpu-split: rebooting into the kernel with i915',
    condition: NEEDS_REBOOT,
  };
  return `#cloud-config\n# igpu-split: ${KERNEL_PACKAGE} brings i915 (linux-modules-extra) and the GPU firmware.\n${stringify(config)}`;
}

function vfUserData(
  config: Record<string, unknown>,
  attachment: VfAttachment,
  agent: string[],
  vm = 'this VM',
): string {
  const params = vfParams(attachment, attachment.pfDeviceId);
  if (attachment.route === 'xe' && attachment.forceProbe && !attachment.pfDeviceId)
    throw new RefusedError(
      `${vm}: xe.force_probe needs the PF's device id, which only plan reads from the host`,
      {
        fix: 'give the host ssh: in the lab file and run igpu-split plan, or write the user-data after it',
      },
    );
  const runcmd: string[] = [];
  const packages = [...agent];
  if (attachment.route === 'i915-sriov-dkms') {
    const pkg = attachment.guestPackage;
    if (!pkg?.url)
      throw new RefusedError(
        `${vm}: user-data can only fetch i915-sriov-dkms from a url (${pkg?.file ? 'sriov.guestDriver names a file, which cannot travel in user-data' : 'sriov.guestDriver and hostDriver name no package'})`,
        { fix: 'set sriov.guestDriver: { url: https://…/i915-sriov-dkms_<release>_amd64.deb, sha256: … }' },
      );
    const name = pkg.url.slice(pkg.url.lastIndexOf('/') + 1);
    if (!releaseOfPackageFile(name))
      throw new RefusedError(
        `${vm}: ${name} is not named like an i915-sriov-dkms release (i915-sriov-dkms_<release>_amd64.deb)`,
        {
          fix: 'name the release asset as the project publishes it',
        },
      );
    const deb = `${PACKAGE_DIR}/${name}`;
    packages.unshift(KERNEL_PACKAGE, 'build-essential', 'dkms', 'wget');
    runcmd.push(
      `mkdir -p ${PACKAGE_DIR} && wget -q -O ${deb}.part '${pkg.url}'${pkg.sha256 ? ` && echo '${pkg.sha256}  ${deb}.part' | sha256sum -c --quiet` : ''} && mv -f ${deb}.part ${deb} && dpkg -i ${deb}`,
    );
  }
  runcmd.push('update-grub && update-initramfs -u');
  config.packages = packages;
  config.write_files = [
    { path: SRIOV_GRUB_DROPIN, content: grubDropin(params), permissions: '0644', defer: true },
    ...(wantsGuard(attachment)
      ? guardFiles(attachment).map((file) => ({
          path: file.path,
          content: file.content,
          permissions: `0${file.mode.toString(8)}`,
          defer: true,
        }))
      : []),
  ];
  config.runcmd = runcmd;
  config.power_state = {
    mode: 'reboot',
    message: 'igpu-split: rebooting with the SR-IOV VF driver',
    condition: vfNeedsReboot(params),
  };
  const driver = attachment.route === 'i915-sriov-dkms' ? 'i915-sriov-dkms' : 'xe';
  return `#cloud-config\n# igpu-split: this VM gets an SR-IOV virtual function; ${driver} drives it (${params.join(' ')}).\n${stringify(config)}`;
}
