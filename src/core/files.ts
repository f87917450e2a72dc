// Reading the small files a user names (a CA file, an SSH key, known_hosts): only a
// regular file is read — a FIFO or a device given by mistake would block or never end.

import { readFileSync, type Stats, statSync } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';

/** Errors carry an errno-style code, so errnoText can say what went wrong. */
function fileError(code: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${path}`), { code, path });
}

function checkSmallFile(info: Stats, path: string, maxBytes: number): void {
  if (info.isDirectory()) throw fileError('EISDIR', path);
  if (!info.isFile()) throw fileError('ENOTREG', path);
  if (info.size > maxBytes) throw fileError('EFBIG', path);
}

/** A regular file of at most `maxBytes`, whole. */
export async function readSmallFile(path: string, maxBytes = 4 * 1024 * 1024): Promise<Buffer> {
  checkSmallFile(await stat(path), path, maxBytes);
  return readFile(path);
}

/** The same, for code that reads synchronously (the kubeconfig loader). */
export function readSmallFileSync(path: string, maxBytes = 4 * 1024 * 1024): Buffer {
  checkSmallFile(statSync(path), path, maxBytes);
  return readFileSync(path);
}

/** Whether something is at `path`; only ENOENT means no (any other failure is thrown). */
export async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch (error) {
    // expected: ENOENT — nothing there; anything else is rethrown
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    return false;
  }
}
