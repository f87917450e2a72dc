// A host that is a writable directory on this machine: reads and writes under its
// root (atomic writes keeping mode and owner, as on a real host), and commands answered
// by a handler the caller gives — the demo lab's machines emulate update-grub, apt-get
// or a reboot in it; the boot-chain tests run real tools with chroot instead.

import { randomBytes } from 'node:crypto';
import { chown, lstat, mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { hasErrno } from '../core/errors.ts';
import { CapturedRoot } from './captured-root.ts';
import { type CommandResult, HostError, type WriteOptions } from './host.ts';

export type CommandHandler = (command: string, host: DirectoryHost, stdin?: string) => Promise<CommandResult>;

export class DirectoryHost extends CapturedRoot {
  private readonly commands: CommandHandler | undefined;

  constructor(root: string, commands?: CommandHandler, target?: string) {
    super(root);
    // Written to (a reboot may replace links): never remember what a path resolved to.
    this.links = undefined;
    this.commands = commands;
    if (target) (this as { target: string }).target = target;
  }

  /** The path on this machine for a path on the host. */
  under(path: string): string {
    return join(this.root, path);
  }

  /** The path on this machine for a host path, links followed inside the root (the last one only when `followLast`). */
  realPath(path: string, followLast: boolean): Promise<string> {
    return this.resolve(path, followLast);
  }

  override async run(
    command: string,
    options: { stdin?: string; timeoutMs?: number } = {},
  ): Promise<CommandResult> {
    if (!this.commands) return super.run(command);
    return this.commands(command, this, options.stdin);
  }

  override async writeFileAtomic(
    path: string,
    data: string | Buffer,
    options: WriteOptions = {},
  ): Promise<void> {
    const target = this.under(path);
    const existing = await stat(target).catch((error: unknown) => {
      // expected: ENOENT — a new file; anything else is rethrown
      if (hasErrno(error, 'ENOENT')) return undefined;
      throw error;
    });
    const temp = join(dirname(target), `.${randomBytes(4).toString('hex')}.tmp`);
    const file = await open(temp, 'wx', existing ? existing.mode & 0o7777 : (options.mode ?? 0o644)).catch(
      (error: NodeJS.ErrnoException) => {
        // expected: any failure — rethrown as a HostError (ENOENT when the folder is missing)
        throw new HostError(error.code === 'ENOENT' ? 'ENOENT' : 'EIO', path, String(error), error);
      },
    );
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    if (existing) await chown(temp, existing.uid, existing.gid);
    await rename(temp, target);
  }

  override async createExclusive(path: string, data: string, mode: number): Promise<void> {
    try {
      await writeFile(this.under(path), data, { flag: 'wx', mode });
    } catch (error) {
      // expected: EEXIST — the lock is held; every failure is rethrown as a HostError
      throw new HostError(
        (error as NodeJS.ErrnoException).code === 'EEXIST' ? 'EEXIST' : 'EIO',
        path,
        String(error),
        error,
      );
    }
  }

  override async makeDir(path: string, mode: number): Promise<void> {
    await mkdir(this.under(path), { recursive: true, mode });
  }

  override async remove(path: string): Promise<void> {
    const there = await lstat(this.under(path)).catch((error: unknown) => {
      // expected: ENOENT — already gone; anything else is rethrown
      if (hasErrno(error, 'ENOENT')) return undefined;
      throw error;
    });
    if (there) await rm(this.under(path));
  }
}
