// `capture`: the exact files `doctor` reads, packed so `doctor --root` on the
// unpacked tree gives the same answer. Nothing else goes in: no other files, no
// owners, no timestamps beyond the archive's own.

import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, join, posix } from 'node:path';
import { create } from 'tar';
import type { z } from 'zod';
import type { ManifestSchema } from '../access/capture-manifest.ts';
import { CAPTURE_FOLDER, captureFolderOf, MANIFEST } from '../access/captured-root.ts';
import type { EntryType, HostAccess } from '../access/host.ts';
import { type Recorded, RecordingHost } from '../access/recording.ts';
import { gatherHostFacts } from '../host/gather.ts';
import { filterKernelLog, KERNEL_LOG_COMMAND } from '../host/gather-sriov.ts';
import { PATHS } from '../linux/paths.ts';

export interface CaptureResult {
  /** Folder name inside the archive. */
  folder: string;
  files: number;
}

export type CaptureManifest = z.input<typeof ManifestSchema>;

/** `name`: the host's name for the folder (a lab file's node: name); else read from its target. */
export async function captureHost(
  host: HostAccess,
  outFile: string,
  toolVersion: string,
  name?: string,
): Promise<CaptureResult> {
  const recording = new RecordingHost(host);
  await gatherHostFacts(recording);
  // A captured tree runs nothing: the kernel log lines doctor read become a file it reads instead.
  const log = recording.recorded.runs.get(KERNEL_LOG_COMMAND);
  if (log && log.stdout.trim() !== '' && !recording.recorded.files.has(PATHS.kernelLogCapture))
    recording.recorded.files.set(
      PATHS.kernelLogCapture,
      Buffer.from(
        filterKernelLog(log.stdout)
          .map((line) => `${line}\n`)
          .join(''),
      ),
    );
  const folder = captureFolderOf(name ?? hostNameOf(host.target));
  const work = await mkdtemp(join(tmpdir(), 'igpu-split-capture-'));
  try {
    const root = join(work, folder);
    const { files, special } = await materialize(recording.recorded, root);
    const manifest: CaptureManifest = {
      tool: 'igpu-split',
      version: toolVersion,
      target: host.target,
      capturedAt: new Date().toISOString(),
      files,
      // What could not be read stays unreadable in the capture (doctor --root says so again).
      unreadable: [...recording.recorded.failed]
        .map(([path, why]) => ({ path, ...why }))
        .sort((a, b) => (a.path < b.path ? -1 : 1)),
      special,
    };
    await writeFile(join(root, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
    await create({ gzip: true, file: outFile, cwd: work, portable: true }, [folder]);
    return { folder, files: files.length };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * The host a target names, for the capture folder: an SSH URL's host name, a captured
 * tree's folder name (a capture of a capture keeps its host), this machine's host name.
 */
export function hostNameOf(target: string): string {
  if (target === 'localhost') return hostname();
  if (target.startsWith('root:')) {
    const base = basename(target.slice('root:'.length));
    return base.startsWith(`${CAPTURE_FOLDER}-`) ? base.slice(CAPTURE_FOLDER.length + 1) : base;
  }
  try {
    return new URL(target).hostname.replace(/^\[|\]$/g, '') || target;
  } catch {
    // expected: TypeError from URL — not a URL; its text is the name, cleaned by captureFolderOf
    return target;
  }
}

/**
 * Writes the recorded reads as a tree under `root`; returns the host paths written, and the
 * pipes and devices seen (the archive holds only their names, in the manifest).
 */
async function materialize(
  recorded: Recorded,
  root: string,
): Promise<{ files: string[]; special: string[] }> {
  const under = (path: string) => join(root, ...path.split('/').filter(Boolean));
  const dirs = new Set<string>();
  const special = new Set<string>();
  const nowhere = new Set<string>();
  const note = (path: string, type: EntryType) => {
    // A link a read found missing leads nowhere (a loop, a target gone): it stays one.
    if (type === 'link' && recorded.missing.has(path) && !recorded.links.has(path)) nowhere.add(path);
    // Sysfs links we did not read through are stored as plain folders.
    else if (type === 'dir' || type === 'link') dirs.add(path);
    else if (type === 'other') special.add(path);
  };
  // Listed entries and existence checks become empty folders (or files) unless read below.
  for (const [dir, entries] of recorded.dirs) {
    dirs.add(dir);
    for (const entry of entries) note(posix.join(dir, entry.name), entry.type);
  }
  for (const [path, type] of recorded.entries) note(path, type);
  for (const path of [...recorded.files.keys(), ...recorded.links.keys()]) dirs.delete(path);
  for (const dir of [...dirs].sort()) await mkdir(under(dir), { recursive: true });

  const written: string[] = [];
  for (const [path, data] of recorded.files) {
    await mkdir(posix.dirname(under(path)), { recursive: true });
    await writeFile(under(path), data);
    written.push(path);
  }
  for (const [path, type] of recorded.entries) {
    if (type === 'file' && !recorded.files.has(path) && !recorded.failed.has(path)) {
      // Existence is all we used (e.g. the ACPI DMAR table): an empty file says as much.
      await mkdir(posix.dirname(under(path)), { recursive: true });
      await writeFile(under(path), '');
      written.push(path);
    }
  }
  for (const [path, target] of recorded.links) {
    await mkdir(posix.dirname(under(path)), { recursive: true });
    await symlink(target, under(path));
    written.push(path);
  }
  for (const path of nowhere) {
    await mkdir(posix.dirname(under(path)), { recursive: true });
    await symlink(`${posix.basename(path)}.led-nowhere`, under(path));
    written.push(path);
  }
  return { files: written.sort(), special: [...special].sort() };
}
