// Reading Linux files without failing the whole gather: a missing path is absence,
// anything else that is wrong with it (a folder where a file should be, a link loop,
// binary data, a control character) is recorded as unreadable and read as undefined,
// so the checks built on it say their evidence is incomplete instead of guessing.

import { type EntryType, type HostAccess, HostError, isMissing } from '../access/host.ts';
import { codePointName, controlAt, isText } from '../core/text.ts';
import type { UnreadableFile } from './facts.ts';

export type Read = (path: string) => Promise<string | undefined>;

/**
 * Reads text files: a missing file is undefined; one that cannot be read, or holds what
 * no text file does (NUL bytes, broken UTF-8), is recorded as unreadable and undefined.
 */
export function textReader(host: HostAccess, unreadable: UnreadableFile[]): Read {
  return async (path) => {
    const data = await readOptional(host, path, unreadable);
    if (data === undefined) return undefined;
    if (!isText(data)) {
      unreadable.push({ path, error: 'not a text file (binary data)' });
      return undefined;
    }
    // A terminal escape or a carriage return is no part of a kernel command line or a
    // config file, and would reach the user's terminal through plans and reports.
    const text = data.toString('utf8');
    const control = controlAt(text);
    if (control >= 0) {
      unreadable.push({ path, error: controlProblem(text, control) });
      return undefined;
    }
    return text;
  };
}

function controlProblem(text: string, control: number): string {
  const line = text.slice(0, control).split('\n').length;
  return text.slice(control, control + 2) === '\r\n'
    ? `has Windows line endings (CR LF) from line ${line}: save it with Unix line endings (LF)`
    : `holds a control character (${codePointName(text, control)}) at character ${control + 1}`;
}

/**
 * Runs one read; a path that is not there gives undefined, any other failure is recorded
 * and gives undefined. SFTP says "no such file" for a link loop and for a file where a
 * folder should be (errno_to_portable in OpenSSH's sftp-server.c maps ELOOP and ENOTDIR to it;
 * the SSH damaged-host cases of test/bad-input show it with Debian's sshd), so a "missing"
 * path is looked at once more: if something is there, it is damage, not absence.
 */
async function optional<T>(
  host: HostAccess,
  path: string,
  kind: 'read' | 'list' | 'link',
  unreadable: UnreadableFile[],
  read: () => Promise<T>,
) {
  try {
    return await read();
  } catch (error) {
    // expected: any read failure — absence is undefined; anything else is recorded in `unreadable`, which the checks report as incomplete evidence
    if (!isMissing(error)) {
      unreadable.push({ path, error: describe(error) });
      return undefined;
    }
    const damage = damageWhereMissing(await host.entryType(path), kind);
    if (damage) unreadable.push({ path, error: damage });
    return undefined;
  }
}

/** What is wrong with a path SFTP called missing, from what is really there. */
function damageWhereMissing(
  there: EntryType | undefined,
  kind: 'read' | 'list' | 'link',
): string | undefined {
  if (there === 'link' && kind !== 'link')
    return 'a symbolic link that leads nowhere (a loop, or its target is gone)';
  if (there === 'file' && kind === 'list') return 'a file, not a folder';
  if (there === 'dir' && kind === 'read') return 'a directory, not a file';
  return undefined;
}

/** A file's bytes; a folder where a file should be is named as such (SFTP only says "Failure"). */
export const readOptional = (host: HostAccess, path: string, unreadable: UnreadableFile[]) =>
  optional(host, path, 'read', unreadable, async () => {
    try {
      return await host.readFile(path);
    } catch (error) {
      // expected: a folder read as a file — renamed EISDIR; every failure is rethrown
      if (!isMissing(error) && (await host.entryType(path)) === 'dir')
        throw new HostError('EISDIR', path, `${path}: a directory, not a file`, error);
      throw error;
    }
  });

/** A folder's entries; a plain file where a folder should be is recorded, not taken for absent. */
export const listOptional = (host: HostAccess, path: string, unreadable: UnreadableFile[]) =>
  optional(host, path, 'list', unreadable, () => host.list(path));

/**
 * The last part of a sysfs link's target, when the target has the shape the kernel gives
 * it (`…/<parent>/<name>`, e.g. `../../../bus/pci/drivers/i915`); anything else is recorded.
 */
export async function linkName(
  host: HostAccess,
  path: string,
  parent: string,
  unreadable: UnreadableFile[],
): Promise<string | undefined> {
  const target = await optional(host, path, 'link', unreadable, () => host.readLink(path));
  if (target === undefined) return undefined;
  const parts = target.split('/').filter(Boolean);
  if (parts.length < 2 || parts[parts.length - 2] !== parent) {
    unreadable.push({ path, error: `not a link into ${parent}/ (a link loop or a damaged tree)` });
    return undefined;
  }
  return parts[parts.length - 1];
}

/** Why a read failed, in words, without repeating the path. */
function describe(error: unknown): string {
  if (!(error instanceof HostError)) return String(error);
  const cause = (error.cause as NodeJS.ErrnoException | undefined)?.code;
  if (error.code === 'EACCES') return 'permission denied';
  if (error.code === 'EISDIR' || cause === 'EISDIR') return 'a directory, not a file';
  if (cause === 'ELOOP' || /too many symbolic links/.test(error.message)) return 'a loop of symbolic links';
  const prefix = `${error.path}: `;
  return error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
}
