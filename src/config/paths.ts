// Paths in the lab file mean the same from any shell, cron or directory: `~` and `~/…`
// are the user's home, and a relative path is relative to the lab file's own folder (as
// kubectl resolves the paths inside a kubeconfig against the kubeconfig's folder). A
// message about a path names it as written and, when different, as resolved.

import { homedir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { UsageError } from '../core/errors.ts';
import { looksLikeTokenSecret } from '../core/secrets.ts';

/** The absolute path `written` means in a lab file that lives in `labDir`. */
export function resolveLabPath(written: string, labDir: string): string {
  if (written === '~') return homedir();
  if (written.startsWith('~/')) return join(homedir(), written.slice(2));
  if (written.startsWith('~'))
    throw new UsageError(`${written}: only ~ and ~/… are expanded (another user's ~name is not)`, {
      fix: 'write the full path',
    });
  return isAbsolute(written) ? written : resolve(labDir, written);
}

/**
 * `~/x (resolved to /home/me/x)`, or just the path when both read the same; a path that
 * holds what looks like a token secret (pasted where a file's name belongs) is not shown.
 */
export function shownPath(resolved: string, written?: string): string {
  if (looksLikeTokenSecret(resolved)) return '(a path that looks like a token secret, not shown)';
  return written !== undefined && written !== resolved ? `${written} (resolved to ${resolved})` : resolved;
}

/**
 * What to write into a lab file at `labFile` so that it names the file `given` names from
 * `cwd`: `~/…` and absolute paths as they are, a relative path made relative to the lab
 * file's folder.
 */
export function pathForLabFile(given: string, labFile: string, cwd = process.cwd()): string {
  if (given === '~' || given.startsWith('~/') || isAbsolute(given)) return given;
  const target = resolve(cwd, given);
  const fromLab = relative(dirname(resolve(cwd, labFile)), target);
  return fromLab === '' ? '.' : fromLab.startsWith(`..${sep}`) || fromLab === '..' ? target : fromLab;
}
