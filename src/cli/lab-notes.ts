// What a lab file says that still works but should change (an old spelling): one line each
// on stderr, so stdout (and --json) stay what they were.

import type { Lab } from '../config/lab.ts';

export function sayLabNotes(lab: Lab): Lab {
  for (const note of lab.source?.notes ?? []) process.stderr.write(`igpu-split: note: ${note}\n`);
  return lab;
}
