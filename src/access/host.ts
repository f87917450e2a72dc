// "A host we can read and later change". Everything that touches a Proxmox host
// goes through this interface, so the same gather/plan/apply code runs against a
// captured tree, a live host over SSH, or a test host.

export type EntryType = 'file' | 'dir' | 'link' | 'other';

export interface DirEntry {
  name: string;
  type: EntryType;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface WriteOptions {
  /** Mode for a new file; an existing file keeps its mode and owner. */
  mode?: number;
}

/** Why a host operation failed, in the errno vocabulary both fs and SFTP map onto. */
export const HOST_ERROR_CODES = [
  'ENOENT',
  'EACCES',
  'ENOTDIR',
  'EISDIR',
  'EEXIST',
  'EUNSUPPORTED',
  'EIO',
] as const;
export type HostErrorCode = (typeof HOST_ERROR_CODES)[number];

export class HostError extends Error {
  readonly code: HostErrorCode;
  readonly path: string;
  constructor(code: HostErrorCode, path: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'HostError';
    this.code = code;
    this.path = path;
  }
}

export interface HostAccess {
  /** How messages name this host, e.g. `ssh://root@pve1:22` or `root:/tmp/capture`. */
  readonly target: string;
  /** Reads a whole file (also /proc and /sys files whose size reads as 0 or 4096). */
  readFile(path: string): Promise<Buffer>;
  /** Entries of a directory, without `.` and `..`, sorted by name. */
  list(path: string): Promise<DirEntry[]>;
  /** Target of a symbolic link, as stored. */
  readLink(path: string): Promise<string>;
  /** What is at `path` (links are not followed), or undefined when nothing is. */
  entryType(path: string): Promise<EntryType | undefined>;
  /** Runs a shell command; rejects with EUNSUPPORTED where nothing can be executed. */
  run(command: string, options?: { stdin?: string; timeoutMs?: number }): Promise<CommandResult>;
  /** Temp file + fsync + rename next to `path`, keeping an existing file's mode and owner. */
  writeFileAtomic(path: string, data: string | Buffer, options?: WriteOptions): Promise<void>;
  /** Creates a file that must not exist yet (locks); EEXIST when it does. */
  createExclusive(path: string, data: string, mode: number): Promise<void>;
  /** Creates a directory and its parents with `mode`; fine when it exists. */
  makeDir(path: string, mode: number): Promise<void>;
  /** Removes a file; fine when it is already gone. */
  remove(path: string): Promise<void>;
  close(): Promise<void>;
}

/** True when the error says the path is simply not there. */
export function isMissing(error: unknown): boolean {
  return error instanceof HostError && (error.code === 'ENOENT' || error.code === 'ENOTDIR');
}
