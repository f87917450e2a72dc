// talosctl, when it is installed: found on PATH, run with arguments (never a shell), its
// answers parsed. Without it the Talos path writes the files and prints the commands.

import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { CommandResult } from '../../access/host.ts';

/** Runs talosctl; `timeoutMs` bounds a call that should be quick (the default allows an upgrade). */
export type Talosctl = (args: string[], options?: { timeoutMs?: number }) => Promise<CommandResult>;

export async function findTalosctl(path = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'talosctl');
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return candidate;
  }
  return undefined;
}

export function talosctlAt(bin: string, timeoutMs = 15 * 60_000): Talosctl {
  return (args, options) =>
    new Promise((resolve) => {
      const limit = options?.timeoutMs ?? timeoutMs;
      execFile(bin, args, { timeout: limit, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        // Killed at the limit: say so rather than show whatever it printed before.
        const late =
          error?.killed === true ? `talosctl did not finish within ${Math.round(limit / 1000)} s` : '';
        resolve({ code, stdout: String(stdout), stderr: late || String(stderr) });
      });
    });
}

/** `talosctl get extensions -o yaml`: one document per extension, its name in spec.metadata.name. */
export function parseExtensions(yamlText: string): string[] {
  const names: string[] = [];
  for (const doc of parseAllDocuments(yamlText)) {
    // A document that does not even resolve (a dangling alias) names no extension.
    let value: unknown;
    try {
      value = doc.toJS();
    } catch {
      continue;
    }
    const name = (value as { spec?: { metadata?: { name?: unknown } } } | null)?.spec?.metadata?.name;
    if (typeof name === 'string') names.push(name);
  }
  return names;
}

/** `talosctl ls <dir>`: a header line, then NODE and NAME columns. */
export function parseListing(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/)[1])
    .filter((name): name is string => name !== undefined && name !== '.' && name !== '');
}
