// The manifest `capture` writes beside a captured tree, as a schema: apart from
// captured-root.ts so that reading a plain tree (doctor --root) does not load zod.

import { z } from 'zod';
import { clip, controlAt } from '../core/text.ts';
import { HOST_ERROR_CODES } from './host.ts';

/** A host path as a manifest holds it: absolute, and nothing a terminal would act on. */
const HostPath = z
  .string()
  .startsWith('/')
  .refine((path) => controlAt(path, '') < 0, 'holds a control character');

/**
 * The manifest as `capture` writes it (src/capture/capture.ts); `special` is absent in
 * older ones. An archive may come from anyone: a message is printed only clipped to one
 * line without control characters.
 */
export const ManifestSchema = z.object({
  tool: z.literal('igpu-split'),
  version: z.string(),
  target: z.string(),
  capturedAt: z.string(),
  // Each is looked for under the tree: a `..` would look outside it.
  files: z.array(
    HostPath.refine((path) => !path.split('/').includes('..'), 'leads out of the tree (a .. in it)'),
  ),
  unreadable: z.array(
    z.object({
      path: HostPath,
      code: z.enum(HOST_ERROR_CODES),
      message: z.string().transform((message) => clip(message, 300)),
    }),
  ),
  special: z.array(HostPath).optional(),
});
