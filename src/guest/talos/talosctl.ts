// talosctl, when it is installed: found on PATH, run with arguments (never a shell), its
// answers parsed. Without it the Talos path writes the files and prints the commands.

import { spawn } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { CommandResult } from '../../access/host.ts';
import { seconds } from '../../core/waits.ts';

/** Runs talosctl; `timeoutMs` bounds a call that should be quick (the default allows an upgrade). */
export type Talosctl = (args: string[], options?: { timeoutMs?: number }) => Promise<CommandResult>;

export async function findTalosctl(path = process.env.PATH ?? ''): Promise<string | undefined> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'talosctl');
    if (await isExecutable(candidate)) return candidate;
  }
  return undefined;
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    // expected: anything — no executable here (ENOENT, EACCES, ENOTDIR): the PATH search goes on, as a shell's does
    return false;
  }
}

/** What talosctl may print before it is cut off (an upgrade's progress is far less). */
const OUTPUT_CAP = 16 * 1024 * 1024;

export function talosctlAt(bin: string, timeoutMs = 15 * 60_000): Talosctl {
  return (args, options) =>
    new Promise((resolve) => {
      const limit = options?.timeoutMs ?? timeoutMs;
      // Its own process group, so a limit reached stops it with whatever it started (a wrapper's children).
      const child = spawn(bin, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let size = 0;
      let late = '';
      const stop = (why: string) => {
        late ||= why;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // expected: anything — best-effort kill of a group that may be gone already (ESRCH)
        }
      };
      const keep = (into: Buffer[]) => (chunk: Buffer) => {
        size += chunk.length;
        if (size > OUTPUT_CAP) stop(`talosctl printed more than ${OUTPUT_CAP / 1024 / 1024} MB`);
        else into.push(chunk);
      };
      child.stdout.on('data', keep(out));
      child.stderr.on('data', keep(err));
      const timer = setTimeout(() => stop(`talosctl did not finish within ${seconds(limit)}`), limit);
      // Its own group misses a Ctrl-C at the terminal: when igpu-split ends, so does it.
      const onExit = () => stop('igpu-split ended');
      process.once('exit', onExit);
      const done = (code: number, stderr?: string) => {
        clearTimeout(timer);
        process.off('exit', onExit);
        resolve({
          code: late ? (code === 0 ? 1 : code) : code,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: late || stderr || Buffer.concat(err).toString('utf8'),
        });
      };
      child.on('error', (error) => done(127, `talosctl could not be started: ${error.message}`));
      child.on('close', (code) => done(code ?? 1));
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
    } catch (error) {
      // expected: ReferenceError — an alias that does not resolve; the document names no extension
      if (!(error instanceof ReferenceError)) throw error;
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
