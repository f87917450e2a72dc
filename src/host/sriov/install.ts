// Installing the SR-IOV driver on a host: the release package put on the host (copied from
// the operator's machine, or downloaded from the URL the lab names, checksum checked),
// apt-get's --simulate first, then the install; afterwards the module must be there for
// the kernel the host boots next, or nothing else is changed.
//
// apt-get's own errors name the repository that fails ("E: Failed to fetch <url> 401
// Unauthorized" for the enterprise repository without a subscription): that line is what
// the refusal quotes, so the user sees which repository to fix.

import { readFile } from 'node:fs/promises';
import type { HostAccess } from '../../access/host.ts';
import { TargetError } from '../../core/errors.ts';
import { clip } from '../../core/text.ts';
import type { HostPlan } from '../plan.ts';
import { type DriverInstall, PACKAGE_DIR } from './plan.ts';

const APT_ENV = 'DEBIAN_FRONTEND=noninteractive';
/** apt and dkms builds take minutes on a small host. */
const INSTALL_TIMEOUT_MS = 30 * 60_000;

/** Single-quoted for sh. */
const quoted = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

export async function installDriver(
  host: HostAccess,
  install: DriverInstall,
  readLocal: (path: string) => Promise<Buffer> = (path) => readFile(path),
): Promise<void> {
  const release = install.release;
  if (release) await placePackage(host, release, readLocal);
  const names = [...install.packages, ...(release ? [release.hostPath] : [])].map(quoted).join(' ');
  const update = await host.run(`${APT_ENV} apt-get update -q`, { timeoutMs: INSTALL_TIMEOUT_MS });
  const failing = failingRepository(`${update.stdout}\n${update.stderr}`);
  if (update.code !== 0 || failing)
    throw new TargetError(`apt-get update failed: ${failing ?? lastLine(update.stderr || update.stdout)}`, {
      target: host.target,
      fix: 'disable or fix that repository (on a host without a subscription: the pve-no-subscription repository instead of the enterprise one), then apply again; nothing was changed',
    });
  const simulated = await host.run(`${APT_ENV} apt-get install --simulate --no-install-recommends ${names}`, {
    timeoutMs: INSTALL_TIMEOUT_MS,
  });
  if (simulated.code !== 0)
    throw new TargetError(
      `apt-get install --simulate refused: ${lastLine(simulated.stderr || simulated.stdout)}`,
      {
        target: host.target,
        fix: 'make the packages installable (apt-get install --simulate on the host shows why), then apply again; nothing was changed',
      },
    );
  const result = await host.run(`${APT_ENV} apt-get install -y -q --no-install-recommends ${names}`, {
    timeoutMs: INSTALL_TIMEOUT_MS,
  });
  if (result.code !== 0)
    throw new TargetError(
      `installing the SR-IOV driver failed: ${lastLine(result.stderr || result.stdout)}`,
      {
        target: host.target,
        fix: 'read the dkms build log on the host (/var/lib/dkms/i915-sriov-dkms/*/build/make.log); the boot configuration was not changed; host rollback removes the packages',
      },
    );
}

/** The release .deb on the host, from the operator's file or the URL; its checksum checked when the lab gives one. */
async function placePackage(
  host: HostAccess,
  release: NonNullable<DriverInstall['release']>,
  readLocal: (path: string) => Promise<Buffer>,
): Promise<void> {
  await host.makeDir(PACKAGE_DIR, 0o700);
  if (release.file) {
    let bytes: Buffer;
    try {
      bytes = await readLocal(release.file);
    } catch (error) {
      // expected: any read failure of the operator's file — named, with the lab key
      throw new TargetError(
        `cannot read sriov.hostDriver.file ${release.file}: ${(error as Error).message}`,
        {
          target: host.target,
          fix: 'point sriov.hostDriver.file at the release .deb on this machine',
          cause: error,
        },
      );
    }
    await host.writeFileAtomic(release.hostPath, bytes, { mode: 0o644 });
  } else if (release.url) {
    // wget, as the DKMS project's own install steps fetch the release (docs/install-pve-host.md @ 2421d3f).
    const fetched = await host.run(`wget -q -O ${quoted(release.hostPath)} ${quoted(release.url)}`, {
      timeoutMs: INSTALL_TIMEOUT_MS,
    });
    if (fetched.code !== 0)
      throw new TargetError(
        `downloading ${release.url} failed (wget exit ${fetched.code}): ${lastLine(fetched.stderr)}`,
        {
          target: host.target,
          fix: 'check the URL and that the host reaches it, or give the file instead (sriov.hostDriver.file); nothing was changed',
        },
      );
  }
  if (release.sha256) {
    const sum = await host.run(`sha256sum ${quoted(release.hostPath)}`, { timeoutMs: 60_000 });
    const got = sum.stdout.trim().split(/\s+/)[0];
    if (sum.code !== 0 || got !== release.sha256)
      throw new TargetError(
        `${release.name} has checksum ${got || 'unknown'}, not the ${release.sha256} the lab names`,
        {
          target: host.target,
          fix: 'download the release again or correct sriov.hostDriver.sha256; nothing was installed',
        },
      );
  }
}

/** The first repository apt-get update could not read, as apt names it. */
export function failingRepository(output: string): string | undefined {
  const line = output.split('\n').find((l) => /^(E: Failed to fetch|Err:\d+)\s/.test(l.trim()));
  return line === undefined ? undefined : clip(line.trim(), 300);
}

/** dkms built i915 for the kernel the host boots next, or apply stops before the boot files. */
export async function checkDriverBuilt(
  host: HostAccess,
  sriov: NonNullable<HostPlan['sriov']>,
): Promise<void> {
  if (sriov.choice.route !== 'i915-sriov-dkms' || sriov.nextKernel === undefined) return;
  const dir = `/lib/modules/${sriov.nextKernel}/updates/dkms`;
  const found = await Promise.all(
    ['i915.ko', 'i915.ko.xz', 'i915.ko.zst'].map((name) => host.entryType(`${dir}/${name}`)),
  );
  if (found.some((type) => type === 'file')) return;
  throw new TargetError(`dkms did not install i915 for kernel ${sriov.nextKernel} (${dir} has no i915.ko)`, {
    target: host.target,
    fix: `run dkms autoinstall -k ${sriov.nextKernel} on the host and read its make.log; the boot configuration was not changed`,
  });
}

function lastLine(text: string): string {
  return clip(text.trim().split('\n').at(-1) ?? '', 300);
}
