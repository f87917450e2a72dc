// Reading the small files a user names (a CA file, an SSH key, known_hosts): only a
// regular file is read — a FIFO or a device given by mistake would block or never end.

import { readFile, stat } from 'node:fs/promises';

/** Errors carry an errno-style code, so errnoText can say what went wrong. */
function fileError(code: string, path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: ${path}`), { code, path });
}

/** A regular file of at most `maxBytes`, whole. */
export async function readSmallFile(path: string, maxBytes = 4 * 1024 * 1024): Promise<Buffer> {
  const info = await stat(path);
  if (info.isDirectory()) throw fileError('EISDIR', path);
  if (!info.isFile()) throw fileError('ENOTREG', path);
  if (info.size > maxBytes) throw fileError('EFBIG', path);
  return readFile(path);
}
