// Wraps a HostAccess and remembers what was read, so `capture` packs exactly the
// files a gather looked at and nothing else.

import {
  type CommandResult,
  type DirEntry,
  type EntryType,
  type HostAccess,
  HostError,
  type HostErrorCode,
  isMissing,
} from './host.ts';

export interface Recorded {
  files: Map<string, Buffer>;
  links: Map<string, string>;
  dirs: Map<string, DirEntry[]>;
  entries: Map<string, EntryType>;
  /** Paths that are there but could not be read, and why: a capture keeps that, not an empty file. */
  failed: Map<string, { code: HostErrorCode; message: string }>;
  /** Paths a read found missing (a link among them leads nowhere). */
  missing: Set<string>;
  /** Commands run and what they printed (a capture turns the kernel log's into a file). */
  runs: Map<string, CommandResult>;
}

export class RecordingHost implements HostAccess {
  readonly target: string;
  readonly recorded: Recorded = {
    files: new Map(),
    links: new Map(),
    dirs: new Map(),
    entries: new Map(),
    failed: new Map(),
    missing: new Set(),
    runs: new Map(),
  };
  private readonly inner: HostAccess;

  constructor(inner: HostAccess) {
    this.inner = inner;
    this.target = inner.target;
  }

  async readFile(path: string): Promise<Buffer> {
    const data = await this.noting(path, this.inner.readFile(path));
    this.recorded.files.set(path, data);
    return data;
  }

  async list(path: string): Promise<DirEntry[]> {
    const entries = await this.noting(path, this.inner.list(path));
    this.recorded.dirs.set(path, entries);
    return entries;
  }

  async readLink(path: string): Promise<string> {
    const target = await this.noting(path, this.inner.readLink(path));
    this.recorded.links.set(path, target);
    return target;
  }

  /** Remembers a read that failed for a reason other than absence. */
  private async noting<T>(path: string, work: Promise<T>): Promise<T> {
    try {
      return await work;
    } catch (error) {
      // expected: any read failure — recorded (absence, or the error) and rethrown
      if (isMissing(error)) this.recorded.missing.add(path);
      else
        this.recorded.failed.set(path, {
          code: error instanceof HostError ? error.code : 'EIO',
          message: error instanceof Error ? error.message : String(error),
        });
      throw error;
    }
  }

  async entryType(path: string): Promise<EntryType | undefined> {
    const type = await this.inner.entryType(path);
    if (type) this.recorded.entries.set(path, type);
    return type;
  }

  async run(command: string, options?: { stdin?: string; timeoutMs?: number }): Promise<CommandResult> {
    const result = await this.inner.run(command, options);
    this.recorded.runs.set(command, result);
    return result;
  }

  writeFileAtomic(): Promise<void> {
    throw new Error('a recording host is read-only');
  }

  createExclusive(): Promise<void> {
    throw new Error('a recording host is read-only');
  }

  makeDir(): Promise<void> {
    throw new Error('a recording host is read-only');
  }

  remove(): Promise<void> {
    throw new Error('a recording host is read-only');
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
