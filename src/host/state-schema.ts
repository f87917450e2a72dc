// The host state file's schema (/var/lib/igpu-split/state.json), apart from apply.ts so
// that a host with no state file yet (a first apply, the fleet benchmark) never loads zod.

import { z } from 'zod';

export const HostStateSchema = z.object({
  format: z.int().min(1).optional(),
  /** Format 1's marker, read and not written again. */
  version: z.literal(1).optional(),
  /** Files igpu-split created (rollback deletes them) or changed (rollback restores `backup`). */
  files: z.record(z.string(), z.object({ created: z.boolean(), backup: z.string().optional() })),
  /** Kernel parameters and modules we added, as written. */
  params: z.array(z.string()),
  modules: z.array(z.string()),
  /** Packages igpu-split installed that were not there before (rollback purges them). */
  packages: z.array(z.string()).optional(),
  /** Boot-loader refreshes a run wrote files for but had not run when it stopped. */
  refreshPending: z.array(z.string()).optional(),
  updatedAt: z.string(),
});
