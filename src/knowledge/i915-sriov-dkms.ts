// The i915 SR-IOV driver outside the kernel: strongtz/i915-sriov-dkms. Which kernels each
// release builds for, and how its files are named, read from the project's own files.
//
// Source: strongtz/i915-sriov-dkms, dkms.conf at every release tag (the commit each tag
// points at is the second column), read 2026-11-30 from the fetched mirror; HEAD 2421d3f.
// BUILD_EXCLUSIVE_KERNEL is a regular expression that dkms matches against the kernel
// release (`[[ $kernelver =~ $BUILD_EXCLUSIVE_KERNEL ]]`): a kernel it does not match is
// skipped, and the stock i915 then loads and ignores max_vfs (SRIOV-FACTS §2, §5).
// docs/install-pve-host.md @ 2421d3f names the release asset
// i915-sriov-dkms_<release>_amd64.deb and installs it with dpkg -i; the package installs
// its sources in /usr/src/<PACKAGE_NAME>-<PACKAGE_VERSION> (dkms.conf PACKAGE_NAME).

/** PACKAGE_NAME in dkms.conf, the Debian package's name and the /usr/src folder's prefix. */
export const DKMS_PACKAGE = 'i915-sriov-dkms';

export interface DkmsRelease {
  release: string;
  /** The commit the release tag points at. */
  commit: string;
  /** BUILD_EXCLUSIVE_KERNEL of its dkms.conf. */
  buildExclusiveKernel: string;
}

const ROWS: [release: string, commit: string, buildExclusiveKernel: string][] = [
  ['2024.12.30', 'c67d6c935945', '^6\\.([8-9]|1[0-3])'],
  ['2025.01.22', '43e3cfff7ee1', '^6\\.([8-9]|1[0-3])'],
  ['2025.02.03', '234e8cf71741', '^6\\.([8-9]|1[0-4])'],
  ['2025.03.26', 'd56ca8fb96a6', '^6\\.([8-9]|1[0-4])'],
  ['2025.03.27', '9b0172b81657', '^6\\.([8-9]|1[0-4])'],
  ['2025.05.11', '4de11bfac15c', '^6\\.([8-9]|1[0-5])'],
  ['2025.05.18', '70fc8beeb9e4', '^6\\.([8-9]|1[0-5])'],
  ['2025.07.22', 'dc62d91c79bf', '^6\\.([8-9]|1[0-6])'],
  ['2025.10.09', 'e4b91d9ecbe8', '^6\\.1[2-7]'],
  ['2025.10.09-2', '1f09ba7dfb57', '^6\\.1[2-7]'],
  ['2025.10.10', 'd603fa185ac0', '^6\\.1[2-7]'],
  ['2025.11.04-rc1', '0d3c34fdf88b', '^6\\.1[2-8]'],
  ['2025.11.09-rc2', 'b5a0d34fc0e1', '^6\\.1[2-8]'],
  ['2025.11.10', '9ae8876b1771', '^6\\.1[2-8]'],
  ['2025.12.10', '2482f8fa4b1a', '^6\\.1[2-8]'],
  ['2026.02.04', '0a17695f8eee', '^6\\.1[2-9]'],
  ['2026.02.09', '2828a1504956', '^6\\.1[2-9]'],
  ['2026.03.05', 'd6583a9f98d2', '^6\\.1[2-9]'],
  ['2026.03.05.1', '1d18bfa71d65', '^6\\.1[2-9]'],
  ['2026.03.05.2', '26b73a3264c7', '^6\\.1[2-9]'],
  ['2026.05.03', 'e56b9e7d4c47', '^(6\\.1[7-9]|7\\.0)'],
  ['2026.05.06', 'b79661ed89c9', '^(6\\.1[7-9]|7\\.0)'],
];

export const DKMS_RELEASES: readonly DkmsRelease[] = ROWS.map(([release, commit, buildExclusiveKernel]) => ({
  release,
  commit,
  buildExclusiveKernel,
}));

/** The release a package file is, from the name the project gives its assets; undefined for any other name. */
export function releaseOfPackageFile(fileName: string): string | undefined {
  const base = fileName.slice(fileName.lastIndexOf('/') + 1);
  return /^i915-sriov-dkms_([0-9][0-9A-Za-z.+~-]*)_amd64\.deb$/.exec(base)?.[1];
}

/** A release we have read the dkms.conf of. */
export function knownRelease(release: string): DkmsRelease | undefined {
  return DKMS_RELEASES.find((r) => r.release === release);
}

/**
 * Whether dkms builds a module with this BUILD_EXCLUSIVE_KERNEL for the kernel release
 * (e.g. 6.17.2-1-pve). Bash's =~ is POSIX ERE; the patterns the project uses (anchors,
 * groups, classes, alternation) mean the same in JavaScript. A pattern that does not compile
 * is taken as "builds for nothing": never a guess in the split's favour.
 */
export function buildsFor(buildExclusiveKernel: string, kernelRelease: string): boolean {
  try {
    return new RegExp(buildExclusiveKernel).test(kernelRelease);
  } catch (error) {
    // expected: SyntaxError — a dkms.conf someone edited by hand: nothing is promised for it
    if (!(error instanceof SyntaxError)) throw error;
    return false;
  }
}

/** The kernel series a pattern names, for messages: "6.17–7.0" from ^(6\.1[7-9]|7\.0). */
export function describeRange(buildExclusiveKernel: string): string {
  const series: string[] = [];
  for (let major = 5; major <= 8; major++)
    for (let minor = 0; minor <= 30; minor++)
      if (buildsFor(buildExclusiveKernel, `${major}.${minor}.0`)) series.push(`${major}.${minor}`);
  if (series.length === 0) return `kernels matching ${buildExclusiveKernel}`;
  return series.length === 1 ? (series[0] as string) : `${series[0]}–${series.at(-1)}`;
}
