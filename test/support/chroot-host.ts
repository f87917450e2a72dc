// A host that is a directory on this machine: files are read and written under its
// root, and commands run with chroot(8) inside it. The boot-chain tests use it on a
// Debian root made by debootstrap, so the real grub-mkconfig and update-initramfs
// consume what the tool writes.

import { spawn } from 'node:child_process';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import type { CommandResult } from '../../src/access/host.ts';

export class ChrootHost extends DirectoryHost {
  private readonly proc: boolean;

  /**
   * `proc`: commands see a /proc, mounted in a mount namespace of their own (unshare -m), as
   * on a booted host: dkms and systemd-tmpfiles refuse or misbehave without it (dkms reads
   * /dev/fd, a link into /proc). Off by default: the captured /proc files of a fixture stay
   * what the tool's own reads see either way, since those go through the root on this machine.
   */
  constructor(root: string, options: { proc?: boolean } = {}) {
    super(root);
    this.proc = options.proc === true;
  }

  override async run(
    command: string,
    options: { stdin?: string; timeoutMs?: number } = {},
  ): Promise<CommandResult> {
    // The command goes in as "$1": no quoting of it into a second shell line.
    const [file, args] = this.proc
      ? [
          'unshare',
          [
            '-m',
            'sh',
            '-c',
            'mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -c "$1"',
            this.root,
            command,
          ],
        ]
      : ['chroot', [this.root, '/bin/sh', '-c', command]];
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, {
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
