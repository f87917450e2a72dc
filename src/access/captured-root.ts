// A host read from a captured tree (`--root DIR`): host paths resolve under DIR,
// symbolic links resolve inside DIR as they would on the host, and nothing runs.

import { lstat, readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { errnoText, hasErrno, TargetError } from '../core/errors.ts';
import { clip } from '../core/text.ts';
import {
  type CommandResult,
  type DirEntry,
  type EntryType,
  type HostAccess,
  HostError,
  type HostErrorCode,
  type WriteOptions,
} from './host.ts';

const MAX_LINK_HOPS = 40;

/** What `capture` writes beside the tree: the files it holds and those it could not read. */
export const MANIFEST = 'igpu-split-capture.json';

/**
 * The folder `capture` packs the tree in: `igpu-split-capture-<host>`, so that captures of
 * two hosts unpack side by side (captures made before were all `igpu-split-capture`).
 */
export const CAPTURE_FOLDER = 'igpu-split-capture';

/** The capture folder for a host name: only letters, digits, `.`, `_` and `-` are kept. */
export function captureFolderOf(host: string): string {
  const name = host.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[._]+/, '');
  return name === '' ? CAPTURE_FOLDER : `${CAPTURE_FOLDER}-${name}`;
}

/** Whether a folder's name is one `capture` writes (this version's or an older one's). */
export function isCaptureFolder(name: string): boolean {
  return name === CAPTURE_FOLDER || name.startsWith(`${CAPTURE_FOLDER}-`);
}

const NOT_REGULAR = (path: string) => `${path}: not a regular file (a pipe or a device)`;

/** No file doctor reads is near this; a bigger one (or a device that never ends) is not read. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

export class CapturedRoot implements HostAccess {
  readonly target: string;
  readonly root: string;

  /** Links seen while resolving paths: a captured tree does not change under us. */
  protected links: Map<string, Promise<string | undefined>> | undefined = new Map();

  /** Paths the capture could not read on the host: they fail here the same way. */
  private failed = new Map<string, { code: HostErrorCode; message: string }>();

  /** Pipes and devices the host had where a file was expected: the capture holds only their names. */
  private special = new Set<string>();

  constructor(root: string) {
    this.root = posix.resolve(root);
    this.target = this.root === '/' ? 'localhost' : `root:${this.root}`;
  }

  /** Fails with a clear message when DIR is not a directory at all (a link to one is fine). */
  async open(): Promise<this> {
    const info = await stat(this.root).catch((error: unknown) => {
      // expected: ENOENT, ENOTDIR — nothing there, said below; anything else is named
      if (hasErrno(error, 'ENOENT', 'ENOTDIR')) return undefined;
      throw new TargetError(`${this.root} cannot be read: ${errnoText(error)}`, {
        target: this.target,
        fix: 'point --root at a folder you can read',
        cause: error,
      });
    });
    if (!info?.isDirectory()) {
      throw new TargetError(`${this.root} is not a directory`, {
        target: this.target,
        fix: 'point --root at the unpacked capture (the folder that holds proc/ and sys/)',
      });
    }
    await this.readManifest();
    return this;
  }

  /**
   * The capture's manifest says what could not be read on the host and which entries were
   * pipes or devices: without it a capture would answer differently (an unreadable file as
   * absent). A folder named as `capture` names it must hold one; another folder (a mounted
   * root, a tree built by hand) is read as it is.
   */
  private async readManifest(): Promise<void> {
    const file = posix.join(this.root, MANIFEST);
    const refuse = (why: string) =>
      new TargetError(`${file}: ${why}`, {
        target: this.target,
        fix: 'unpack the capture archive again, or capture the host again (igpu-split capture)',
      });
    let text: string;
    try {
      const info = await lstat(file);
      if (!info.isFile()) throw refuse('not a regular file');
      if (info.size > MAX_FILE_BYTES) throw refuse(`far too big (${info.size} bytes)`);
      text = await readFile(file, 'utf8');
    } catch (error) {
      // expected: ENOENT — no manifest (an error where the folder's name says it is a capture); anything else is rethrown as a refusal
      if (error instanceof TargetError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT')
        throw refuse(code === 'EACCES' ? 'permission denied' : `cannot be read (${code})`);
      // Named so itself, or through a link to it.
      // expected: anything — the root's own name is still checked when its real path cannot be had
      const real = await realpath(this.root).catch(() => this.root);
      if ([this.root, real].some((path) => isCaptureFolder(posix.basename(path))))
        throw refuse('missing: without it a file the host could not read would look absent');
      return;
    }
    // Loaded only when there is a manifest: doctor on a plain tree never loads zod.
    const { ManifestSchema } = await import('./capture-manifest.ts');
    let parsed: ReturnType<typeof ManifestSchema.safeParse>;
    try {
      parsed = ManifestSchema.safeParse(JSON.parse(text));
    } catch (error) {
      // expected: SyntaxError from JSON.parse — a damaged manifest, refused; anything else is rethrown
      if (!(error instanceof SyntaxError)) throw error;
      throw refuse('damaged (not JSON)');
    }
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw refuse(`damaged (${issue?.path.join('.') || 'top level'}: ${issue?.message})`);
    }
    // What it lists must be there: a tree with files missing would read them as absent.
    for (const path of parsed.data.files) {
      const there = await lstat(posix.join(this.root, path)).catch((error: unknown) => {
        // expected: ENOENT, ENOTDIR — the tree does not hold it, refused below; anything else is rethrown
        if (hasErrno(error, 'ENOENT', 'ENOTDIR')) return undefined;
        throw error;
      });
      if (!there) throw refuse(`lists ${clip(path, 120)}, which the tree does not hold`);
    }
    for (const entry of parsed.data.unreadable) this.failed.set(entry.path, entry);
    for (const path of parsed.data.special ?? []) this.special.add(path);
  }

  async readFile(path: string): Promise<Buffer> {
    this.failIfUnreadable(path);
    if (this.special.has(path)) throw new HostError('EIO', path, NOT_REGULAR(path));
    const real = await this.resolve(path, true);
    // Only regular files: a pipe or a device in the tree would block or never end.
    const info = await stat(real).catch((error: unknown) => {
      // expected: any failure — rethrown as a HostError in the errno vocabulary
      throw toHostError(error, path);
    });
    if (info.isDirectory()) throw new HostError('EISDIR', path, `${path}: a directory, not a file`);
    if (!info.isFile()) throw new HostError('EIO', path, NOT_REGULAR(path));
    if (info.size > MAX_FILE_BYTES)
      throw new HostError('EIO', path, `${path}: far too big (${info.size} bytes)`);
    return readFile(real).catch((error: unknown) => {
      // expected: any failure — rethrown as a HostError in the errno vocabulary
      throw toHostError(error, path);
    });
  }

  private failIfUnreadable(path: string): void {
    const failed = this.failed.get(path);
    if (failed) throw new HostError(failed.code, path, failed.message);
  }

  async list(path: string): Promise<DirEntry[]> {
    this.failIfUnreadable(path);
    const real = await this.resolve(path, true);
    const entries = await readdir(real, { withFileTypes: true }).catch((error: unknown) => {
      // expected: any failure — rethrown as a HostError in the errno vocabulary
      throw toHostError(error, path);
    });
    // The capture holds no file for a pipe or device: its name comes from the manifest.
    const specials = [...this.special]
      .filter((p) => posix.dirname(p) === posix.join('/', path))
      .map((p) => ({ name: posix.basename(p), type: 'other' as const }));
    return [...entries.map((entry) => ({ name: entry.name, type: entryTypeOf(entry) })), ...specials].sort(
      (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
  }

  async readLink(path: string): Promise<string> {
    this.failIfUnreadable(path);
    const real = await this.resolve(path, false);
    return readlink(real).catch((error: unknown) => {
      // expected: any failure — rethrown as a HostError in the errno vocabulary
      throw toHostError(error, path);
    });
  }

  async entryType(path: string): Promise<EntryType | undefined> {
    if (this.special.has(path)) return 'other';
    try {
      const info = await lstat(await this.resolve(path, false));
      return entryTypeOf(info);
    } catch (error) {
      // expected: ENOENT, ENOTDIR, ELOOP, or resolve's own HostError (a link loop, not a path) — nothing reachable is there; anything else is rethrown
      if (error instanceof HostError || hasErrno(error, 'ENOENT', 'ENOTDIR', 'ELOOP')) return undefined;
      throw error;
    }
  }

  async run(command: string, _options?: { stdin?: string; timeoutMs?: number }): Promise<CommandResult> {
    throw new HostError('EUNSUPPORTED', '', `a captured tree cannot run commands (asked: ${command})`);
  }

  async writeFileAtomic(path: string, _data: string | Buffer, _options?: WriteOptions): Promise<void> {
    throw new HostError('EUNSUPPORTED', path, 'a captured tree is read-only');
  }

  async createExclusive(path: string, _data: string, _mode: number): Promise<void> {
    throw new HostError('EUNSUPPORTED', path, 'a captured tree is read-only');
  }

  async makeDir(path: string, _mode: number): Promise<void> {
    throw new HostError('EUNSUPPORTED', path, 'a captured tree is read-only');
  }

  async remove(path: string): Promise<void> {
    throw new HostError('EUNSUPPORTED', path, 'a captured tree is read-only');
  }

  async close(): Promise<void> {}

  /**
   * Maps a host path to a path under the root, following links inside the root
   * (absolute link targets are taken relative to the root, never the real /).
   * The last component is followed only when `followLast` is set.
   */
  protected async resolve(hostPath: string, followLast: boolean): Promise<string> {
    if (!hostPath.startsWith('/'))
      throw new HostError('ENOENT', hostPath, `not an absolute path: ${hostPath}`);
    let pending = hostPath.split('/').filter(Boolean);
    let resolved: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const part = pending.shift() as string;
      if (part === '.') continue;
      if (part === '..') {
        resolved.pop();
        continue;
      }
      const candidate = [...resolved, part];
      const isLast = pending.length === 0;
      if (isLast && !followLast) {
        resolved = candidate;
        break;
      }
      const real = posix.join(this.root, ...candidate);
      const link = await this.linkAt(real);
      if (link !== undefined) {
        if (++hops > MAX_LINK_HOPS)
          throw new HostError('EIO', hostPath, `too many symbolic links in ${hostPath}`);
        if (link.startsWith('/')) resolved = [];
        pending = [...link.split('/').filter(Boolean), ...pending];
        continue;
      }
      resolved = candidate;
    }
    return posix.join(this.root, ...resolved);
  }

  /** Where a path component links to, or undefined; remembered while the tree is read-only. */
  private linkAt(real: string): Promise<string | undefined> {
    const cached = this.links?.get(real);
    if (cached) return cached;
    const probe = lstat(real).then(
      (info) => (info.isSymbolicLink() ? readlink(real) : undefined),
      // expected: any lstat failure — no link to follow here; the operation on the resolved path meets the same failure and reports it
      () => undefined,
    );
    this.links?.set(real, probe);
    return probe;
  }
}

function entryTypeOf(info: {
  isFile(): boolean;
  isDirectory(): boolean;
  isSymbolicLink(): boolean;
}): EntryType {
  if (info.isSymbolicLink()) return 'link';
  if (info.isDirectory()) return 'dir';
  if (info.isFile()) return 'file';
  return 'other';
}

const errnoCodes: Record<string, HostErrorCode> = {
  ENOENT: 'ENOENT',
  ENOTDIR: 'ENOTDIR',
  EACCES: 'EACCES',
  EPERM: 'EACCES',
  EISDIR: 'EISDIR',
};

function toHostError(error: unknown, path: string): HostError {
  const code = errnoCodes[(error as NodeJS.ErrnoException).code ?? ''] ?? 'EIO';
  const reason = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : String(error);
  return new HostError(code, path, `${path}: ${reason}`, error);
}
