// The SR-IOV part of a host's facts: installed kernels and their headers, the
// i915-sriov-dkms sources and what dkms built for each kernel, the packages that matter,
// proxmox-boot-tool's pins and our SR-IOV files, read concurrently; the running boot's
// kernel log (one command where the access runs commands, else the file a capture wrote),
// the GuC firmware version it names, and whether dkms's signing key is enrolled in MOK.

import { type HostAccess, HostError } from '../access/host.ts';
import { bounded, READ_CONCURRENCY } from '../core/bounded.ts';
import { controlAt } from '../core/text.ts';
import { DKMS_PACKAGE } from '../knowledge/i915-sriov-dkms.ts';
import type { UnreadableFile } from '../linux/facts.ts';
import { parseDpkgStatus } from '../linux/parse/dpkg.ts';
import { PATHS } from '../linux/paths.ts';
import { listOptional, type Read, readOptional } from '../linux/read.ts';
import type { HostFacts, KernelFacts, SriovDriverFacts } from './facts.ts';
import { SRIOV_FILES } from './sriov/files.ts';

/**
 * Packages whose presence the SR-IOV plan and doctor read (dpkg status): the driver and what
 * builds it (strongtz/i915-sriov-dkms docs/install-pve-host.md @ 2421d3f), mokutil
 * (docs/secure-boot.md there).
 */
export const PACKAGES_OF_INTEREST: readonly string[] = [
  DKMS_PACKAGE,
  'dkms',
  'proxmox-default-headers',
  'build-essential',
  'mokutil',
];

/** What a host without an SR-IOV route reports: nothing read, nothing known. */
export const NO_SRIOV_FACTS: Pick<HostFacts, 'kernels' | 'packages' | 'sriovDriver' | 'sriovFiles'> = {
  kernels: { installed: [], withHeaders: [], pinned: undefined, nextBootPin: undefined },
  packages: {},
  sriovDriver: {
    dkmsSources: [],
    dkmsModules: {},
    kernelLog: undefined,
    gucVersion: undefined,
    mokEnrolled: undefined,
    driversAutoprobe: undefined,
  },
  sriovFiles: [],
};

export async function gatherSriovFacts(
  host: HostAccess,
  read: Read,
  unreadable: UnreadableFile[],
  igpuBdf: string | undefined,
): Promise<Pick<HostFacts, 'kernels' | 'packages' | 'sriovDriver' | 'sriovFiles'>> {
  const [kernels, status, sources, sriovFiles, autoprobe, kernelLog, mokEnrolled] = await Promise.all([
    gatherKernels(host, read, unreadable),
    read(PATHS.dpkgStatus),
    gatherDkmsSources(host, read, unreadable),
    Promise.all(SRIOV_FILES.map(async (path) => ({ path, content: await read(path) }))).then((files) =>
      files.filter((f): f is { path: string; content: string } => f.content !== undefined),
    ),
    igpuBdf ? read(`${PATHS.pciDevices}/${igpuBdf}/sriov_drivers_autoprobe`) : undefined,
    gatherKernelLog(host, read),
    gatherMokEnrolled(host, unreadable),
  ]);
  const all = parseDpkgStatus(status ?? '');
  const packages = Object.fromEntries(
    PACKAGES_OF_INTEREST.filter((name) => all.has(name)).map((name) => [name, all.get(name) as string]),
  );
  const dkmsModules = Object.fromEntries(
    await bounded(kernels.installed, READ_CONCURRENCY, async (kernel) => [
      kernel,
      await dkmsBuilt(host, `${PATHS.libModules}/${kernel}/updates/dkms`, unreadable),
    ]),
  );
  const sriovDriver: SriovDriverFacts = {
    dkmsSources: sources,
    dkmsModules,
    kernelLog,
    gucVersion: kernelLog && gucVersionOf(kernelLog, igpuBdf),
    mokEnrolled,
    driversAutoprobe: autoprobe === undefined ? undefined : autoprobe.trim() === '1',
  };
  return { kernels, packages, sriovDriver, sriovFiles };
}

/**
 * Module files dkms installed in one kernel's folder. The driver files are also looked at
 * one by one, so that a capture (which packs what was looked at) holds them.
 */
async function dkmsBuilt(host: HostAccess, dir: string, unreadable: UnreadableFile[]): Promise<string[]> {
  const names = ((await listOptional(host, dir, unreadable)) ?? []).map((e) => e.name).sort();
  const drivers = names.filter((name) => /^(i915|xe)\.ko(\.(xz|zst|gz))?$/.test(name));
  await Promise.all(drivers.map((name) => host.entryType(`${dir}/${name}`)));
  return names;
}

/**
 * The running boot's kernel log: journald's kernel messages of this boot (they keep the
 * probe lines a long-running host's ring buffer has dropped) and the ring buffer, for hosts
 * without a journal. Lines are taken without their timestamps and each once.
 */
export const KERNEL_LOG_COMMAND =
  'journalctl -k -b 0 -o cat --no-pager -q 2>/dev/null; dmesg 2>/dev/null; true';

/** At most this many matching lines are kept: the probe lines come first, a flood later does not push them out. */
export const KERNEL_LOG_MAX_LINES = 400;

/** Lines about the iGPU's drivers, SR-IOV, GuC, max_vfs or VFIO. */
const KERNEL_LOG_LINE = /\b(i915|xe|vfio[-_]pci)\b|sriov|SR-IOV|\bGuC\b|max_vfs|\bIOV\b/i;

/** Matching lines of a kernel log, timestamps ("[    3.1415] ") dropped, each line once, bounded. */
export function filterKernelLog(text: string): string[] {
  const kept = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\[\s*\d+\.\d+\]\s*/, '').trimEnd();
    if (line && KERNEL_LOG_LINE.test(line)) kept.add(line);
    if (kept.size >= KERNEL_LOG_MAX_LINES) break;
  }
  return [...kept];
}

/** A captured tree's file first (it holds what the live host said), else the command. */
async function gatherKernelLog(host: HostAccess, read: Read): Promise<string[] | undefined> {
  const captured = await read(PATHS.kernelLogCapture);
  if (captured !== undefined) return filterKernelLog(captured);
  let result: { code: number; stdout: string };
  try {
    result = await host.run(KERNEL_LOG_COMMAND, { timeoutMs: 20_000 });
  } catch (error) {
    // expected: HostError (EUNSUPPORTED on a captured tree, EIO when the command cannot start) — the log is unknown, not empty
    if (error instanceof HostError) return undefined;
    throw error;
  }
  // The command ends with `true`: another exit code, or output that is no text (an account
  // that only speaks SFTP answers with protocol bytes), means no shell ran it. A booted
  // kernel has always logged something: nothing at all means nothing could be read.
  const output = result.stdout;
  if (result.code !== 0 || output.trim() === '' || controlAt(output) >= 0) return undefined;
  return filterKernelLog(output);
}

/**
 * The GuC firmware version the driver logged, the PF's line first. i915 prints
 * "GuC firmware <file> version <major>.<minor>.<patch>" (print_fw_ver, gt/uc/intel_uc.c) and xe
 * "Using GuC firmware from <file> version …" (print_uc_fw_version, xe_uc_fw.c), both
 * strongtz/i915-sriov-dkms @ 2421d3f.
 */
export function gucVersionOf(lines: readonly string[], igpuBdf: string | undefined): string | undefined {
  const found = lines
    .map((line) => ({
      line,
      version: /\bGuC firmware (?:from )?\S+ version (\d+\.\d+\.\d+)\b/.exec(line)?.[1],
    }))
    .filter((f): f is { line: string; version: string } => f.version !== undefined);
  return (found.find((f) => igpuBdf && f.line.includes(igpuBdf)) ?? found[0])?.version;
}

/**
 * Whether dkms's signing certificate (DER, /var/lib/dkms/mok.pub) is in shim's enrolled list:
 * MokListRT is a list of EFI signature lists whose X.509 entries hold each certificate's
 * DER bytes whole, so the certificate's bytes appear in it exactly when it is enrolled.
 * Undefined without a key, or when no list can be read (no shim, or not booted through it).
 */
async function gatherMokEnrolled(
  host: HostAccess,
  unreadable: UnreadableFile[],
): Promise<boolean | undefined> {
  const key = await readOptional(host, PATHS.dkmsMokPub, unreadable);
  if (!key || key.length < 64) return undefined;
  for (const path of [PATHS.mokListRt, PATHS.mokListRtVar]) {
    const list = await readOptional(host, path, unreadable);
    if (list) return list.includes(key);
  }
  return undefined;
}

/** Kernels under /lib/modules with a modules.dep (a folder left by a removed kernel has none). */
export async function gatherKernels(
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
