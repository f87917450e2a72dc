// The stand-in for i915-sriov-dkms's i915 in the boot-chain roots: a module that loads and
// does nothing, named i915 so dkms installs i915.ko where the real package's goes, installed
// the way the real .deb does it (its sources in /usr/src/i915-sriov-dkms-<release>/ with the
// release's dkms.conf, then `dkms add`). Debian's real dkms builds it against the root's real
// headers.

import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DKMS_PACKAGE, type DkmsRelease } from '../../src/knowledge/i915-sriov-dkms.ts';
import type { ChrootHost } from './chroot-host.ts';

export type StandInRelease = Pick<DkmsRelease, 'release' | 'buildExclusiveKernel'>;

// It carries a module version the way the real one does (strongtz/i915-sriov-dkms @ 26b73a3264c7:
// Makefile DKMS_MODULE_VERSION := "<release>-sriov" passed as -DDKMS_MODULE_VERSION, and
// i915_module.c MODULE_VERSION(DKMS_MODULE_VERSION)): Debian 12's dkms 3.0.10 refuses to
// install a module whose version equals the kernel's own i915's (both none), and says so
// with exit 0 (check_version_sanity, "exactly matches what is already found in kernel").
// And the parameter the SR-IOV split sets, max_vfs, which the kernel's own i915 does not have
// (its modinfo lists no max_vfs), so `modinfo -k <kernel> -F parm i915` tells which i915 a
// kernel would load. STAND_IN_BROKEN (see makefile) turns it into a source that does not compile.
export const MODULE_C = `// SPDX-License-Identifier: GPL-2.0
#include <linux/init.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#ifdef STAND_IN_BROKEN
this is not C;
#endif
static unsigned int max_vfs;
module_param(max_vfs, uint, 0400);
MODULE_PARM_DESC(max_vfs, "Virtual functions to enable (igpu-split test stand-in)");
static int __init stand_in_init(void) { return 0; }
static void __exit stand_in_exit(void) { }
module_init(stand_in_init);
module_exit(stand_in_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("igpu-split test stand-in for the i915 of i915-sriov-dkms");
MODULE_VERSION(DKMS_MODULE_VERSION);
`;

/**
 * The release's Makefile: its module version, and, with `brokenFor`, a compile error for every
 * kernel release matching that make pattern (the kernel dkms builds for comes in as
 * DKMS_KERNELVER, see dkmsConf): a source that builds for the running kernel and not for the new one.
 */
export const makefile = (release: StandInRelease, brokenFor?: string) =>
  `DKMS_MODULE_VERSION := "${release.release}-sriov"\nccflags-y += -DDKMS_MODULE_VERSION='$(DKMS_MODULE_VERSION)'\n${
    brokenFor
      ? `ifneq ($(filter ${brokenFor},$(DKMS_KERNELVER)),)\nccflags-y += -DSTAND_IN_BROKEN\nendif\n`
      : ''
  }obj-m := i915.o\n`;

/**
 * dkms.conf as the release ships it (strongtz/i915-sriov-dkms dkms.conf @ dc62d91c79bf,
 * release 2025.07.22: PACKAGE_NAME i915-sriov-dkms, BUILT_MODULE_NAME i915,
 * DEST_MODULE_LOCATION /updates, its MAKE and CLEAN lines, AUTOINSTALL), minus kvmgt, with the
 * release's own BUILD_EXCLUSIVE_KERNEL. MAKE also passes the kernel dkms builds for
 * (dkms sets ${kernelver} when it reads dkms.conf), which only the Makefile's `brokenFor` reads.
 */
export const dkmsConf = (release: StandInRelease) => `PACKAGE_NAME="${DKMS_PACKAGE}"
PACKAGE_VERSION="${release.release}"

BUILT_MODULE_NAME[0]="i915"
DEST_MODULE_LOCATION[0]=/updates
MAKE[0]="make -C \${kernel_source_dir} M=\${dkms_tree}/\${PACKAGE_NAME}/\${PACKAGE_VERSION}/build DKMS_KERNELVER=\${kernelver}"
CLEAN="make -C \${kernel_source_dir} M=\${dkms_tree}/\${PACKAGE_NAME}/\${PACKAGE_VERSION}/build clean"

AUTOINSTALL=yes
BUILD_EXCLUSIVE_KERNEL="${release.buildExclusiveKernel}"
`;

/**
 * The stand-in release's sources where its package puts them, added to dkms as the package's
 * postinst does; returns the `-m … -v …` that names it to dkms.
 */
export async function addRelease(
  host: ChrootHost,
  release: StandInRelease,
  options: { source?: string; brokenFor?: string } = {},
): Promise<string> {
  const src = join(host.root, 'usr/src', `${DKMS_PACKAGE}-${release.release}`);
  await mkdir(src, { recursive: true });
  await writeFile(join(src, 'dkms.conf'), dkmsConf(release));
  await writeFile(join(src, 'Makefile'), makefile(release, options.brokenFor));
  await writeFile(join(src, 'i915.c'), options.source ?? MODULE_C);
  const module = `-m ${DKMS_PACKAGE} -v ${release.release}`;
  const add = await host.run(`dkms add ${module}`);
  assert.equal(add.code, 0, add.stdout + add.stderr);
  return module;
}

/** Take a release out of dkms and /usr/src again (what removing the package does). */
export async function removeRelease(host: ChrootHost, release: StandInRelease): Promise<void> {
  const removed = await host.run(`dkms remove -m ${DKMS_PACKAGE} -v ${release.release} --all`);
  assert.equal(removed.code, 0, removed.stdout + removed.stderr);
  await rm(join(host.root, 'usr/src', `${DKMS_PACKAGE}-${release.release}`), { recursive: true });
}

/** A literal string inside a RegExp (kernel releases hold `.` and `+`). */
export const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The three stand-in releases a kernel upgrade meets. */
export type Variant = 'skips' | 'fails' | 'builds';

/**
 * A stand-in release for a host running `running` that is about to get `upgrade` (a fake
 * kernel, see fake-kernel.ts, whose release ends in -pve):
 * - skips: BUILD_EXCLUSIVE_KERNEL holds only the running kernel's release, so dkms skips the
 *   new kernel (the real release's range left behind by a kernel upgrade);
 * - fails: the range holds both (their major.minor), the source compiles for the running
 *   kernel and not for *-pve (a kernel API change the release does not follow yet);
 * - builds: the range holds both and it compiles for both.
 */
export function standInRelease(
  variant: Variant,
  running: string,
): { release: StandInRelease; brokenFor?: string } {
  const series = /^\d+\.\d+\./.exec(running)?.[0] ?? running;
  const range = variant === 'skips' ? `^${literal(running)}$` : `^${literal(series)}`;
  const release = { skips: '2026.11.1', fails: '2026.11.2', builds: '2026.11.3' }[variant];
  return {
    release: { release, buildExclusiveKernel: range },
    ...(variant === 'fails' ? { brokenFor: '%-pve' } : {}),
  };
}
