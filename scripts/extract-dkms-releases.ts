// Writes snapshots/i915-sriov-dkms.json: BUILD_EXCLUSIVE_KERNEL of dkms.conf at every release
// tag of strongtz/i915-sriov-dkms, the SR-IOV module parameters its i915 and xe declare, and
// the kernel's module-loading facts doctor and the host plan rely on.
//
//   node scripts/extract-dkms-releases.ts <git dir of strongtz/i915-sriov-dkms> <commit> \
//     --excerpt torvalds/linux kernel/module/main.c <commit> <saved excerpt>
//
// The DKMS files are read with git from the mirror (each named by commit and blob). The
// kernel file could not be brought here whole (torvalds/linux is too big to fetch): its two
// passages were read through the code library and saved; the snapshot names them as an
// excerpt with the excerpt's sha256, not as a blob. Anything missing stops the script in one line.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { refuse } from './snapshot-sources.ts';

const DKMS = 'strongtz/i915-sriov-dkms';

function git(dir: string, ...args: string[]): string {
  try {
    return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    // expected: git fails on a missing ref or file — one line, no snapshot
    refuse(`git ${args.join(' ')} in ${dir} failed: ${(error as Error).message.split('\n')[0]}`);
  }
}

function source(dir: string, commit: string, path: string, tag?: string) {
  const full = git(dir, 'rev-parse', `${commit}^{commit}`).trim();
  const blob = git(dir, 'rev-parse', `${full}:${path}`).trim();
  return { repository: DKMS, path, commit: full, blob, ...(tag ? { tag } : {}) };
}

/** module_param_named(name, var, type, perm) and i915_param_named(name, type, perm, …). */
function moduleParams(module: string, text: string, path: string) {
  const found =
    module === 'i915'
      ? [...text.matchAll(/\bi915_param_named(?:_unsafe)?\(\s*(\w+),\s*(\w+),/g)].map((m) => [m[1], m[2]])
      : [...text.matchAll(/\bmodule_param_named(?:_unsafe)?\(\s*(\w+),\s*[\w.]+,\s*(\w+),/g)].map((m) => [
          m[1],
          m[2],
        ]);
  if (found.length === 0) refuse(`${DKMS}:${path}: no module parameter declarations`);
  return found.map(([name, type]) => ({ module, name, type, source: `${DKMS}:${path}` }));
}

function main(): void {
  const [dir, head, flag, repository, path, commit, file] = process.argv.slice(2);
  if (!dir || !head)
    refuse(
      'usage: extract-dkms-releases.ts <git dir> <commit> --excerpt <owner/name> <path> <commit> <file>',
    );
  if (flag !== '--excerpt' || !repository || !path || !commit || !file)
    refuse('--excerpt <owner/name> <path> <commit> <file> is required (the kernel passages)');
  if (!/^[0-9a-f]{40}$/.test(commit)) refuse(`--excerpt ${path}: "${commit}" is not a 40-hex commit`);

  const tags = git(dir, 'tag', '--list')
    .split('\n')
    .filter((t) => /^\d{4}\.\d{2}\.\d{2}/.test(t))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  if (tags.length === 0) refuse(`${dir}: no release tags`);
  const sources = [];
  const releases = [];
  for (const tag of tags) {
    const conf = git(dir, 'show', `${tag}:dkms.conf`);
    const pattern = /^BUILD_EXCLUSIVE_KERNEL="?([^"\n]*)"?\s*$/m.exec(conf)?.[1];
    if (!pattern) refuse(`${DKMS} ${tag}: dkms.conf has no BUILD_EXCLUSIVE_KERNEL`);
    const src = source(dir, tag, 'dkms.conf', tag);
    sources.push(src);
    releases.push({ release: tag, commit: src.commit.slice(0, 12), buildExclusiveKernel: pattern });
  }
  const paramFiles = [
    { module: 'i915', path: 'drivers/gpu/drm/i915/i915_params.c' },
    { module: 'xe', path: 'drivers/gpu/drm/xe/xe_module.c' },
  ];
  const moduleParameters = paramFiles.flatMap(({ module, path: p }) => {
    sources.push(source(dir, head, p));
    return moduleParams(module, git(dir, 'show', `${head}:${p}`), p);
  });

  const text = readFileSync(file, 'utf8');
  const coreParameters = [...text.matchAll(/\bcore_param\(\s*(\w+),\s*\w+,\s*(\w+),/g)].map((m) => ({
    name: m[1],
    type: m[2],
  }));
  const messages = [...text.matchAll(/pr_(?:warn|err)\("([^"]*)"/g)].map((m) => m[1]);
  if (coreParameters.length === 0 || messages.length === 0)
    refuse(`${file}: no core_param(…) or no pr_warn/pr_err message in the excerpt`);
  const excerpts = [
    {
      repository,
      path,
      commit,
      sha256: createHash('sha256').update(text).digest('hex'),
      coreParameters,
      messages,
    },
  ];

  const snapshot = {
    sources,
    producedBy: 'scripts/extract-dkms-releases.ts',
    releases,
    moduleParameters,
    excerpts,
  };
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'snapshots', 'i915-sriov-dkms.json');
  writeFileSync(out, `${JSON.stringify(snapshot, null, 2)}\n`);
  process.stdout.write(
    `wrote ${out}: ${releases.length} releases, ${moduleParameters.length} module parameters, ${coreParameters.length} core parameters\n`,
  );
}

main();
