// Writes snapshots/kernel-upgrade.json: what the kernel guard (src/host/guard/) and its tests
// rely on about how a Proxmox kernel is installed and pinned, read from the packaging sources:
// the kernel package's postinst (its run-parts call), the headers package's name, and
// proxmox-boot-tool's pin files, GRUB drop-in and the GRUB_DEFAULT entry it writes.
//
//   node scripts/extract-kernel-upgrade-facts.ts --source <owner/name> <path> <commit> <saved file> ...
//
// A missing or malformed file, or a fact it does not hold, stops the script with one line.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GitSource, type Input, need, parseArgs, refuse } from './snapshot-sources.ts';

const PVE_KERNEL = 'proxmox/pve-kernel';
const KERNEL_HELPER = 'jiangcuo/proxmox-kernel-helper';

const UPSTREAM = [
  { repository: PVE_KERNEL, path: 'debian/proxmox-kernel.postinst.in' },
  { repository: PVE_KERNEL, path: 'debian/control.in' },
  { repository: KERNEL_HELPER, path: 'src/proxmox-boot/functions' },
  { repository: KERNEL_HELPER, path: 'src/bin/proxmox-boot-tool' },
];

const where = (input: Input<GitSource>) => `${input.source.repository}:${input.source.path}`;

/** The value of a `NAME="value"` assignment in a shell file. */
function assigned(input: Input<GitSource>, name: string): string {
  const value = new RegExp(`^${name}="([^"]+)"$`, 'm').exec(input.text)?.[1];
  if (!value) refuse(`${where(input)}: no ${name}="…"`);
  return value;
}

function main(): void {
  const { git } = parseArgs(process.argv.slice(2));
  const known = new Set(UPSTREAM.map((u) => `${u.repository}:${u.path}`));
  const extra = git.find((g) => !known.has(where(g)));
  if (extra) refuse(`${where(extra)} is not a file this snapshot is made of`);
  const file = (repository: string, path: string) => need(git, repository, path);

  // The kernel's postinst: `run-parts … --arg=$version --arg=$imagedir/vmlinuz-$version /etc/kernel/postinst.d`.
  const postinst = file(PVE_KERNEL, 'debian/proxmox-kernel.postinst.in');
  const runParts = /"(run-parts [^"]+)"/.exec(postinst.text)?.[1];
  if (!runParts) refuse(`${where(postinst)}: no run-parts call`);
  const hookDir = /\s(\/etc\/kernel\/postinst\.d)$/.exec(runParts)?.[1];
  if (!hookDir) refuse(`${where(postinst)}: run-parts does not run /etc/kernel/postinst.d`);
  const depmod = /system\("(depmod \$version)"\)/.test(postinst.text);
  if (!depmod) refuse(`${where(postinst)}: no depmod before the hooks`);

  const control = file(PVE_KERNEL, 'debian/control.in');
  const packages = [...control.text.matchAll(/^Package:\s*(\S+)\s*$/gm)].map((m) => m[1] as string);
  const headers = packages.find((p) => p.startsWith('proxmox-headers-') && p.endsWith('@KVNAME@'));
  const kernel = packages.find((p) => p === 'proxmox-kernel-@KVNAME@');
  if (!headers || !kernel) refuse(`${where(control)}: no proxmox-headers-@KVNAME@ / proxmox-kernel-@KVNAME@`);

  const functions = file(KERNEL_HELPER, 'src/proxmox-boot/functions');
  const grubEntry =
    /^\s*entry="(gnulinux-advanced-\$\{root_devid\}>gnulinux-\$\{kver\}-advanced-\$\{root_devid\})"$/m.exec(
      functions.text,
    )?.[1];
  if (!grubEntry) refuse(`${where(functions)}: no GRUB_DEFAULT entry in set_grub_default`);

  const tool = file(KERNEL_HELPER, 'src/bin/proxmox-boot-tool');
  const kernelCase = tool.text.slice(tool.text.search(/^\t'kernel'\|'kernels'\)$/m));
  const kernelSubcommands = [...kernelCase.matchAll(/^\t\t\t'([\w-]+)'\)$/gm)].map((m) => m[1] as string);
  const nextBoot = /\[ "\$3" = '--next-boot' \]/.test(kernelCase);
  if (kernelSubcommands.length === 0 || !nextBoot)
    refuse(`${where(tool)}: no kernel pin/unpin with --next-boot`);

  const snapshot = {
    sources: UPSTREAM.map((u) => file(u.repository, u.path).source),
    producedBy: 'scripts/extract-kernel-upgrade-facts.ts',
    kernelPostinst: { runParts, hookDir, depmodFirst: depmod, source: where(postinst) },
    kernelPackages: { kernel, headers, source: where(control) },
    pins: {
      pin: assigned(functions, 'PINNED_KERNEL_CONF'),
      nextBootPin: assigned(functions, 'NEXT_BOOT_PIN'),
      grubSnippet: assigned(functions, 'GRUB_PIN_SNIPPET'),
      grubEntry,
      source: where(functions),
    },
    proxmoxBootToolKernel: { subcommands: kernelSubcommands, nextBoot, source: where(tool) },
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'snapshots', 'kernel-upgrade.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(snapshot, null, 2)}\n`);
  process.stdout.write(`wrote ${out}\n`);
}

main();
