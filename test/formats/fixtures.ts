// Where the saved formats of earlier releases are kept (scripts/make-format-fixtures.ts
// writes them by running that release's own code), and a writable copy of one of them.

import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const D5CFD90 = fileURLToPath(new URL('../fixtures/formats/d5cfd90/', import.meta.url));

/** A copy of a fixture folder in a fresh temp folder (tests change what they are given). */
export async function copyOf(path: string): Promise<string> {
  const to = join(await mkdtemp(join(tmpdir(), 'igpu-formats-')), 'copy');
  await cp(path, to, { recursive: true, verbatimSymlinks: true });
  return to;
}
