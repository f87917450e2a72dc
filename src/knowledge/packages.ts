// Package and tool names of Debian, Ubuntu and Proxmox that igpu-split installs or runs.
// test/knowledge/kernel-pins.test.ts checks each one against snapshots/packages.json
// (made by scripts/extract-package-facts.ts, which names every file, commit and page it read).

/**
 * Ubuntu 24.04 guests. linux-generic is built from linux-meta ("Complete Generic Linux kernel
 * and headers", https://packages.ubuntu.com/source/noble/amd64/linux-meta, read 2026-11-30);
 * linux-image-virtual, the cloud images' kernel, from the same source
 * (https://packages.ubuntu.com/noble/arm64/kernel/linux-image-virtual, read 2026-11-30).
 */
export const UBUNTU_PACKAGE = {
  kernel: 'linux-generic',
  cloudImageKernel: 'linux-image-virtual',
  /** Source: qemu (https://packages.ubuntu.com/questing/misc/qemu-guest-agent, read 2026-11-30; no noble page was found) */
  qemuGuestAgent: 'qemu-guest-agent',
} as const;

/** Boot tools on a Proxmox VE host, and the package that installs each into /usr/sbin. */
export const HOST_TOOL = {
  /** proxmox-kernel-helper, src/bin/Makefile (jiangcuo/proxmox-kernel-helper @ 7007b33c, Proxmox's "bump version to 8.1.0") */
  proxmoxBootTool: 'proxmox-boot-tool',
  /** grub2-common, debian/grub2-common.install (pexip/os-grub2 @ c9752f1a, Debian grub2 2.06-13+deb12u1) */
  updateGrub: 'update-grub',
  /** initramfs-tools, debian/initramfs-tools.install (pexip/os-initramfs-tools @ 6a8f96bb, Debian 0.142) */
  updateInitramfs: 'update-initramfs',
} as const;

/** The package each tool comes from, as the snapshot records it. */
export const HOST_TOOL_PACKAGE: Readonly<Record<(typeof HOST_TOOL)[keyof typeof HOST_TOOL], string>> = {
  'proxmox-boot-tool': 'proxmox-kernel-helper',
  'update-grub': 'grub2-common',
  'update-initramfs': 'initramfs-tools',
};

/** The commands, whole. */
export const HOST_COMMAND = {
  /** Subcommand `refresh` of proxmox-boot-tool's top-level case (src/bin/proxmox-boot-tool @ 7007b33c). */
  proxmoxBootToolRefresh: `${HOST_TOOL.proxmoxBootTool} refresh`,
  /** update-grub takes no arguments of its own: it runs grub-mkconfig -o /boot/grub/grub.cfg (debian/update-grub @ c9752f1a). */
  updateGrub: HOST_TOOL.updateGrub,
  /** getopt "k:cudvtb:h?" and -k all (update-initramfs @ 6a8f96bb): update (-u) every installed kernel's initramfs. */
  updateInitramfsAll: `${HOST_TOOL.updateInitramfs} -u -k all`,
} as const;
