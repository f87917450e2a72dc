// Writes snapshots/kernel-facts.json: the module names, i915 module parameters and boot
// parameters igpu-split relies on, parsed out of upstream files saved beforehand.
//
//   node scripts/extract-kernel-facts.ts \
//     --source torvalds/linux drivers/gpu/drm/i915/Makefile <commit> <saved file> ...
//
// Each file named in UPSTREAM must be given once; a missing or malformed file, or a fact
// the file does not hold, stops the script with one line and exit 1.

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type GitSource, type Input, need, parseArgs, refuse } from './snapshot-sources.ts';

const LINUX = 'torvalds/linux';
const DKMS = 'strongtz/i915-sriov-dkms';
const PVE_KERNEL = 'proxmox/pve-kernel';
const ACS_PATCH = 'patches/kernel/0004-pci-Enable-overrides-for-missing-ACS-capabilities-4..patch';

type Extract = 'modules' | 'modules+parts' | 'i915-params' | 'iommu' | 'intel_iommu' | 'acs';

/** The upstream files this snapshot is made of, and what each one is read for. */
const UPSTREAM: { repository: string; path: string; extract: Extract }[] = [
  { repository: LINUX, path: 'drivers/gpu/drm/i915/Makefile', extract: 'modules' },
  { repository: LINUX, path: 'drivers/gpu/drm/xe/Makefile', extract: 'modules' },
  { repository: LINUX, path: 'drivers/vfio/Makefile', extract: 'modules+parts' },
  { repository: LINUX, path: 'drivers/vfio/pci/Makefile', extract: 'modules' },
  { repository: LINUX, path: 'drivers/vfio/mdev/Makefile', extract: 'modules+parts' },
  { repository: LINUX, path: 'arch/x86/kvm/Makefile', extract: 'modules' },
  { repository: LINUX, path: 'drivers/gpu/drm/i915/i915_params.c', extract: 'i915-params' },
  { repository: DKMS, path: 'drivers/gpu/drm/i915/i915_params.c', extract: 'i915-params' },
  { repository: LINUX, path: 'arch/x86/kernel/pci-dma.c', extract: 'iommu' },
  { repository: LINUX, path: 'drivers/iommu/intel/Kconfig', extract: 'intel_iommu' },
  { repository: PVE_KERNEL, path: ACS_PATCH, extract: 'acs' },
];

interface Module {
  /** As the kernel names it (/proc/modules, /sys/module): kbuild turns '-' into '_'. */
  name: string;
  /** The object the Makefile builds (`<object>.ko`). */
  object: string;
  config: string;
  source: string;
}

interface ModuleParameter {
  module: string;
  name: string;
  type: string;
  source: string;
}

interface BootParameter {
  name: string;
  options: string[];
  source: string;
}

const where = (input: Input<GitSource>) => `${input.source.repository}:${input.source.path}`;

/** Makefile lines with their backslash continuations joined. */
function logicalLines(text: string): string[] {
  return text.replace(/\\\n/g, ' ').split('\n');
}

function modulesOf(input: Input<GitSource>): Module[] {
  const modules: Module[] = [];
  for (const line of logicalLines(input.text)) {
    const m = /^obj-\$\((CONFIG_\w+)\)\s*\+=\s*([\w-]+)\.o\s*$/.exec(line.trim());
    if (m?.[1] && m[2])
      modules.push({ name: m[2].replaceAll('-', '_'), object: m[2], config: m[1], source: where(input) });
  }
  if (modules.length === 0) refuse(`${where(input)}: no "obj-$(CONFIG_…) += <module>.o" line`);
  return modules;
}

/** The objects linked into each module (`<module>-y += a.o b.o`, `<module>-$(CONFIG_X) += c.o`). */
function partsOf(input: Input<GitSource>, modules: Module[]): { module: string; parts: string[] }[] {
  const lists = modules.map((module) => {
    const parts: string[] = [];
    for (const line of logicalLines(input.text)) {
      const m = /^([\w-]+)-(?:y|\$\(CONFIG_\w+\))\s*[:+]?=\s*(.*)$/.exec(line.trim());
      if (m?.[1] !== module.object || m[2] === undefined) continue;
      parts.push(...(m[2].match(/[\w-]+(?=\.o\b)/g) ?? []));
    }
    return { module: module.name, parts };
  });
  // A module built from one source file has no list; a file read for lists must hold one.
  const withParts = lists.filter((l) => l.parts.length > 0);
  if (withParts.length === 0) refuse(`${where(input)}: no "<module>-y += …" object list`);
  return withParts;
}

function i915ParamsOf(input: Input<GitSource>): ModuleParameter[] {
  const found = [...input.text.matchAll(/\bi915_param_named(?:_unsafe)?\(\s*(\w+),\s*(\w+),/g)];
  if (found.length === 0) refuse(`${where(input)}: no i915_param_named(…) declaration`);
  return found.map((m) => ({
    module: 'i915',
    name: m[1] as string,
    type: m[2] as string,
    source: where(input),
  }));
}

/** The option words a `while (*p)` setup function compares with strncmp. */
function setupOptions(input: Input<GitSource>, param: string, fn: string, text = input.text): BootParameter {
  const registered = new RegExp(`early_param\\("${param}",\\s*${fn}\\)`).exec(text);
  const start = text.search(new RegExp(`\\b${fn}\\(char \\*\\w+\\)\\s*\\n`));
  if (!registered || start < 0 || start > registered.index)
    refuse(`${where(input)}: no ${fn}() registered with early_param("${param}")`);
  const body = text.slice(start, registered.index);
  const options = [...body.matchAll(/strncmp\(\s*\w+,\s*"([^"]+)"/g)].map((m) => m[1] as string);
  if (options.length === 0) refuse(`${where(input)}: ${fn}() compares no option words`);
  return { name: param, options: [...new Set(options)], source: where(input) };
}

function intelIommuOf(input: Input<GitSource>): BootParameter {
  // The Kconfig help names the command-line spelling of each choice it documents.
  const options = [
    ...input.text.replace(/\s+/g, ' ').matchAll(/passing intel_iommu=(\w+) to the kernel/g),
  ].map((m) => m[1] as string);
  if (options.length === 0)
    refuse(`${where(input)}: no "passing intel_iommu=… to the kernel" in the help texts`);
  return { name: 'intel_iommu', options, source: where(input) };
}

/** The lines a unified diff adds, without their '+'. */
function addedLines(input: Input<GitSource>): string {
  if (!/^diff --git /m.test(input.text)) refuse(`${where(input)}: not a patch (no "diff --git" line)`);
  return input.text
    .split('\n')
    .filter((l) => l.startsWith('+') && !l.startsWith('+++'))
    .map((l) => l.slice(1))
    .join('\n');
}

function main(): void {
  const { git, pages } = parseArgs(process.argv.slice(2));
  if (pages.length > 0) refuse('kernel facts come from git sources only (--source), not --page');
  const known = new Set(UPSTREAM.map((u) => `${u.repository}:${u.path}`));
  const extra = git.find((g) => !known.has(where(g)));
  if (extra) refuse(`${where(extra)} is not a file this snapshot is made of`);

  const modules: Module[] = [];
  const moduleParts: { module: string; parts: string[] }[] = [];
  const moduleParameters: ModuleParameter[] = [];
  const bootParameters: BootParameter[] = [];
  const inputs = UPSTREAM.map((u) => ({ ...u, input: need(git, u.repository, u.path) }));
  for (const { extract, input } of inputs) {
    if (extract === 'modules' || extract === 'modules+parts') {
      const found = modulesOf(input);
      modules.push(...found);
      if (extract === 'modules+parts') moduleParts.push(...partsOf(input, found));
    } else if (extract === 'i915-params') {
      moduleParameters.push(...i915ParamsOf(input));
    } else if (extract === 'iommu') {
      bootParameters.push(setupOptions(input, 'iommu', 'iommu_setup'));
    } else if (extract === 'intel_iommu') {
      bootParameters.push(intelIommuOf(input));
    } else {
      bootParameters.push(
        setupOptions(input, 'pcie_acs_override', 'pcie_acs_override_setup', addedLines(input)),
      );
    }
  }

  const snapshot = {
    sources: inputs.map(({ input }) => input.source),
    producedBy: 'scripts/extract-kernel-facts.ts',
    modules,
    moduleParts,
    moduleParameters,
    bootParameters,
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'snapshots', 'kernel-facts.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(snapshot, null, 2)}\n`);
  process.stdout.write(
    `wrote ${out}: ${modules.length} modules, ${moduleParameters.length} module parameters, ${bootParameters.length} boot parameters\n`,
  );
}

main();
