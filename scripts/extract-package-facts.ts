// Writes snapshots/packages.json: which package installs each boot tool igpu-split runs on a
// Proxmox host (and the arguments it accepts), and the Ubuntu packages it installs in guests.
// Tools come from the packaging sources in git; the Ubuntu packages from packages.ubuntu.com
// pages as read on a date (no git mirror of Ubuntu's linux-meta for noble could be found).
//
//   node scripts/extract-package-facts.ts \
//     --source <owner/name> <path> <commit> <saved file> ... \
//     --page <url> <YYYY-MM-DD> <saved file> ...
//
// A missing or malformed file, or a fact it does not hold, stops the script with one line.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GitSource, type Input, need, type PageSource, parseArgs, refuse } from './snapshot-sources.ts';

const KERNEL_HELPER = 'jiangcuo/proxmox-kernel-helper';
const GRUB2 = 'pexip/os-grub2';
const INITRAMFS = 'pexip/os-initramfs-tools';

const UPSTREAM = [
  { repository: KERNEL_HELPER, path: 'debian/control' },
  { repository: KERNEL_HELPER, path: 'src/bin/Makefile' },
  { repository: KERNEL_HELPER, path: 'src/bin/proxmox-boot-tool' },
  { repository: GRUB2, path: 'debian/control' },
  { repository: GRUB2, path: 'debian/grub2-common.install' },
  { repository: GRUB2, path: 'debian/update-grub' },
  { repository: INITRAMFS, path: 'debian/control' },
  { repository: INITRAMFS, path: 'debian/initramfs-tools.install' },
  { repository: INITRAMFS, path: 'update-initramfs' },
];

/** The Ubuntu package pages read, and the release each one describes. */
const PAGES: { package: string; release: string }[] = [
  { package: 'linux-generic', release: 'noble' },
  { package: 'linux-image-virtual', release: 'noble' },
  { package: 'qemu-guest-agent', release: 'questing' },
];

const where = (input: Input<GitSource>) => `${input.source.repository}:${input.source.path}`;

function binaryPackages(input: Input<GitSource>): string[] {
  const names = [...input.text.matchAll(/^Package:\s*(\S+)\s*$/gm)].map((m) => m[1] as string);
  if (names.length === 0) refuse(`${where(input)}: no "Package:" stanza`);
  return names;
}

/** A debhelper .install line `<file> <dir>` for `tool`, from a package debian/control builds. */
function installedBy(install: Input<GitSource>, control: Input<GitSource>, tool: string) {
  const line = install.text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[0]?.split('/').pop() === tool && f[1]);
  if (!line) refuse(`${where(install)}: does not install ${tool}`);
  const pkg = install.source.path.replace(/^debian\//, '').replace(/\.install$/, '');
  if (!binaryPackages(control).includes(pkg)) refuse(`${where(control)}: builds no package ${pkg}`);
  return { tool, package: pkg, directory: `/${line[1]}`, source: where(install) };
}

function main(): void {
  const { git, pages } = parseArgs(process.argv.slice(2));
  const known = new Set(UPSTREAM.map((u) => `${u.repository}:${u.path}`));
  const extra = git.find((g) => !known.has(where(g)));
  if (extra) refuse(`${where(extra)} is not a file this snapshot is made of`);
  const file = (repository: string, path: string) => need(git, repository, path);

  // proxmox-boot-tool: installed by src/bin/Makefile into SBINDIR, subcommands are the
  // labels of the script's top-level `case "$1" in`.
  const helperControl = file(KERNEL_HELPER, 'debian/control');
  const [helperPackage, ...others] = binaryPackages(helperControl);
  if (!helperPackage || others.length > 0)
    refuse(`${where(helperControl)}: expected exactly one binary package`);
  const makefile = file(KERNEL_HELPER, 'src/bin/Makefile');
  const sbindir = /^SBINDIR=\$\{DESTDIR\}(\S+)$/m.exec(makefile.text)?.[1];
  if (!sbindir || !/^\s*install\s.*\bproxmox-boot-tool \$\{SBINDIR\}\/\s*$/m.test(makefile.text))
    refuse(`${where(makefile)}: does not install proxmox-boot-tool into SBINDIR`);
  const bootTool = file(KERNEL_HELPER, 'src/bin/proxmox-boot-tool');
  const mainCase = bootTool.text.slice(bootTool.text.search(/^case "\$1" in$/m));
  const subcommands = [...mainCase.matchAll(/^\t'([\w-]+)'\)$/gm)].map((m) => m[1] as string);
  if (!bootTool.text.match(/^case "\$1" in$/m) || subcommands.length === 0)
    refuse(`${where(bootTool)}: no top-level case "$1" with subcommands`);

  // update-grub: grub2-common installs it; it runs grub-mkconfig with its own arguments.
  const updateGrub = file(GRUB2, 'debian/update-grub');
  const grubRuns = /^exec (grub-mkconfig -o \S+) "\$@"$/m.exec(updateGrub.text)?.[1];
  if (!grubRuns) refuse(`${where(updateGrub)}: does not exec grub-mkconfig -o <file> "$@"`);

  // update-initramfs: the getopt short options, and whether -k takes the word "all".
  const updateInitramfs = file(INITRAMFS, 'update-initramfs');
  const short = /getopt -o "([^"]+)"/.exec(updateInitramfs.text)?.[1];
  if (!short) refuse(`${where(updateInitramfs)}: no getopt -o "<options>"`);
  const initramfsOptions = [...short.matchAll(/([a-z?]):?/g)].map((m) => `-${m[1]}`);
  const kAll = /"\$\{version\}" = "all"/.test(updateInitramfs.text);

  const tools = [
    { tool: 'proxmox-boot-tool', package: helperPackage, directory: sbindir, source: where(makefile) },
    installedBy(file(GRUB2, 'debian/grub2-common.install'), file(GRUB2, 'debian/control'), 'update-grub'),
    installedBy(
      file(INITRAMFS, 'debian/initramfs-tools.install'),
      file(INITRAMFS, 'debian/control'),
      'update-initramfs',
    ),
  ];
  const toolArguments = [
    { tool: 'proxmox-boot-tool', subcommands, source: where(bootTool) },
    { tool: 'update-grub', runs: grubRuns, source: where(updateGrub) },
    {
      tool: 'update-initramfs',
      options: initramfsOptions,
      kernelVersionAll: kAll,
      source: where(updateInitramfs),
    },
  ];

  // Ubuntu packages: each page names the package and the source package it is built from.
  if (pages.length !== PAGES.length) refuse(`expected ${PAGES.length} --page sources, got ${pages.length}`);
  const ubuntuPackages = PAGES.map((want, index) => {
    const page = pages[index] as Input<PageSource>;
    const text = page.text;
    const listed =
      new RegExp(`^Package: ${want.package} \\(`, 'm').test(text) ||
      new RegExp(`^${want.package}\\n(?!-)`, 'm').test(text);
    const release = new RegExp(`» ${want.release} \\(|^\\[ ${want.release} \\]`, 'm').test(text);
    const source =
      /Source: ([\w.+-]+)\s*\]/.exec(text)?.[1] ?? /Source Package: ([\w.+-]+) \(/.exec(text)?.[1];
    if (!listed) refuse(`${page.source.url}: does not list package ${want.package}`);
    if (!release || !page.source.url.includes(`/${want.release}/`))
      refuse(`${page.source.url}: is not the ${want.release} page`);
    if (!source) refuse(`${page.source.url}: names no source package`);
    return { package: want.package, release: want.release, sourcePackage: source, source: page.source.url };
  });

  const snapshot = {
    sources: [...UPSTREAM.map((u) => file(u.repository, u.path).source), ...pages.map((p) => p.source)],
    producedBy: 'scripts/extract-package-facts.ts',
    tools,
    toolArguments,
    ubuntuPackages,
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'snapshots', 'packages.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(snapshot, null, 2)}\n`);
  process.stdout.write(`wrote ${out}: ${tools.length} tools, ${ubuntuPackages.length} Ubuntu packages\n`);
}

main();
