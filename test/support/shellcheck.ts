// shellcheck on the project's POSIX sh scripts. .ci/run installs it (Debian's `shellcheck`);
// elsewhere a machine without it skips those tests and says why, and CI fails instead.

import { execFileSync, spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

export function shellcheckAvailable(t: TestContext): boolean {
  try {
    execFileSync('shellcheck', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    const missing = 'shellcheck is missing (apt-get install shellcheck)';
    if (process.env.CI) throw new Error(`CI must run shellcheck: ${missing}`);
    t.skip(missing);
    return false;
  }
}

/** shellcheck's findings on a script read as POSIX sh (its gcc-style lines; none when clean). */
export function shellcheck(path: string): { code: number; findings: string } {
  const result = spawnSync('shellcheck', ['--shell=sh', '--format=gcc', path], { encoding: 'utf8' });
  return { code: result.status ?? -1, findings: result.stdout + result.stderr };
}
