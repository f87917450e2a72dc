// A host that is a directory on this machine: files are read and written under its
// root, and commands run with chroot(8) inside it. The boot-chain tests use it on a
// Debian root made by debootstrap, so the real grub-mkconfig and update-initramfs
// consume what the tool writes.

import { spawn } from 'node:child_process';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import type { CommandResult } from '../../src/access/host.ts';

export class ChrootHost extends DirectoryHost {
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
}
