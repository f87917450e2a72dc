// A host that is a directory on this machine: files are read and written under its
// root, and commands run with chroot(8) inside it. The boot-chain tests use it on a
// Debian root made by debootstrap, so the real grub-mkconfig and update-initramfs
// consume what the tool writes.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chown, lstat, mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { type CommandResult, HostError, type WriteOptions } from '../../src/access/host.ts';

export class ChrootHost extends CapturedRoot {
  private under(path: string): string {
    return join(this.root, path);
  }

  override async run(
    command: string,
    options: { stdin?: string; timeoutMs?: number } = {},
  ): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('chroot', [this.root, '/bin/sh', '-c', command], {
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' },
        timeout: options.timeoutMs,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.once('error', reject);
      child.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(options.stdin ?? '');
    });
  }

  override async writeFileAtomic(
    path: string,
    data: string | Buffer,
    options: WriteOptions = {},
  ): Promise<void> {
    const target = this.under(path);
    const existing = await stat(target).catch(() => undefined);
    const temp = join(dirname(target), `.${randomBytes(4).toString('hex')}.tmp`);
    const file = await open(temp, 'wx', existing ? existing.mode & 0o7777 : (options.mode ?? 0o644));
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
      throw new HostError(
        (error as NodeJS.ErrnoException).code === 'EEXIST' ? 'EEXIST' : 'EIO',
        path,
        String(error),
      );
    }
  }

  override async makeDir(path: string, mode: number): Promise<void> {
    await mkdir(this.under(path), { recursive: true, mode });
  }

  override async remove(path: string): Promise<void> {
    if (await lstat(this.under(path)).catch(() => undefined)) await rm(this.under(path));
  }
}
