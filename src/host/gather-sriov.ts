// The SR-IOV part of a host's facts: installed kernels and their headers, the
// i915-sriov-dkms sources and what dkms built for each kernel, the packages that matter,
// proxmox-boot-tool's pins and our SR-IOV files. Files only, read concurrently.

import type { HostAccess } from '../access/host.ts';
import { bounded, READ_CONCURRENCY } from '../core/bounded.ts';
import { DKMS_PACKAGE } from '../knowledge/i915-sriov-dkms.ts';
import type { UnreadableFile } from '../linux/facts.ts';
import { parseDpkgStatus } from '../linux/parse/dpkg.ts';
import { PATHS } from '../linux/paths.ts';
import { listOptional, type Read } from '../linux/read.ts';
import type { HostFacts, KernelFacts, SriovDriverFacts } from './facts.ts';
import { SRIOV_FILES } from './sriov/files.ts';

/** Packages whose presence the SR-IOV plan and doctor read (dpkg status). */
export const PACKAGES_OF_INTEREST: readonly string[] = [
  DKMS_PACKAGE,
  'dkms',
  'proxmox-default-headers',
  'build-essential',
  'mokutil',
];

export async function gatherSriovFacts(
  host: HostAccess,
  read: Read,
  unreadable: UnreadableFile[],
  igpuBdf: string | undefined,
): Promise<Pick<HostFacts, 'kernels' | 'packages' | 'sriovDriver' | 'sriovFiles'>> {
  const [kernels, status, sources, sriovFiles, autoprobe] = await Promise.all([
    gatherKernels(host, read, unreadable),
    read(PATHS.dpkgStatus),
    gatherDkmsSources(host, read, unreadable),
    Promise.all(SRIOV_FILES.map(async (path) => ({ path, content: await read(path) }))).then((files) =>
      files.filter((f): f is { path: string; content: string } => f.content !== undefined),
    ),
    igpuBdf ? read(`${PATHS.pciDevices}/${igpuBdf}/sriov_drivers_autoprobe`) : undefined,
  ]);
  const all = parseDpkgStatus(status ?? '');
  const packages = Object.fromEntries(
    PACKAGES_OF_INTEREST.filter((name) => all.has(name)).map((name) => [name, all.get(name) as string]),
  );
  const dkmsModules = Object.fromEntries(
    await bounded(kernels.installed, READ_CONCURRENCY, async (kernel) => [
      kernel,
      ((await listOptional(host, `${PATHS.libModules}/${kernel}/updates/dkms`, unreadable)) ?? [])
        .map((e) => e.name)
        .sort(),
    ]),
  );
  const sriovDriver: SriovDriverFacts = {
    dkmsSources: sources,
    dkmsModules,
    kernelLog: undefined,
    gucVersion: undefined,
    mokEnrolled: undefined,
    driversAutoprobe: autoprobe === undefined ? undefined : autoprobe.trim() === '1',
  };
  return { kernels, packages, sriovDriver, sriovFiles };
}

/** Kernels under /lib/modules with a modules.dep (a folder left by a removed kernel has none). */
async function gatherKernels(
  host: HostAccess,
  read: Read,
  unreadable: UnreadableFile[],
): Promise<KernelFacts> {
  const entries = ((await listOptional(host, PATHS.libModules, unreadable)) ?? []).map((e) => e.name);
  const found = await bounded(entries, READ_CONCURRENCY, async (release) => {
    const [dep, build] = await Promise.all([
      host.entryType(`${PATHS.libModules}/${release}/modules.dep`),
      // Through the build link: a link left dangling by removed headers is no headers.
      host.entryType(`${PATHS.libModules}/${release}/build/Makefile`),
    ]);
    return { release, installed: dep === 'file', headers: build === 'file' };
  });
  const installed = found.filter((k) => k.installed).map((k) => k.release);
  const [pinned, nextBootPin] = await Promise.all([read(PATHS.kernelPin), read(PATHS.kernelNextBootPin)]);
  return {
    installed: sortKernels(installed),
    withHeaders: sortKernels(found.filter((k) => k.installed && k.headers).map((k) => k.release)),
    // proxmox-boot-tool reads only the first line of each (get_first_line, proxmox-boot/functions @ 7007b33).
    pinned: pinned?.split('\n')[0]?.trim() || undefined,
    nextBootPin: nextBootPin?.split('\n')[0]?.trim() || undefined,
  };
}

async function gatherDkmsSources(
  host: HostAccess,
  read: Read,
  unreadable: UnreadableFile[],
): Promise<SriovDriverFacts['dkmsSources']> {
  const prefix = `${DKMS_PACKAGE}-`;
  const entries = ((await listOptional(host, PATHS.usrSrc, unreadable)) ?? [])
    .map((e) => e.name)
    .filter((name) => name.startsWith(prefix));
  return Promise.all(
    entries.sort().map(async (entry) => {
      const conf = await read(`${PATHS.usrSrc}/${entry}/dkms.conf`);
      const exclusive = conf && /^BUILD_EXCLUSIVE_KERNEL="?([^"\n]*)"?\s*$/m.exec(conf)?.[1];
      return { release: entry.slice(prefix.length), buildExclusiveKernel: exclusive || undefined };
    }),
  );
}

/** Kernel releases oldest first, by their numbers (6.8.12-4-pve < 6.17.2-1-pve). */
export function sortKernels(releases: string[]): string[] {
  return [...releases].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}
