// The baseline the benchmarks are compared with (issue 14: each median within 10% of
// d5cfd90's): that commit's tree from `git archive`, with node_modules and its own build,
// kept in the git-ignored .bench/ folder and made once. A clone without the commit (a
// shallow one) gets a reason instead, and the benchmarks run without the comparison.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BASELINE = 'd5cfd90';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TREE = join(ROOT, '.bench', `baseline-${BASELINE}`);
const READY = '.bench-ready.json';

export type Baseline = { tree: string; note: string } | { skip: string };

/** How the baseline got its node_modules, remembered beside it. */
interface ReadyMark {
  commit: string;
  nodeModules: 'shared' | 'own';
}

function run(command: string, args: string[], cwd: string): void {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.status !== 0)
    throw new Error(
      `${command} ${args.join(' ')} failed in ${cwd}: ${(result.stderr || result.stdout).slice(-2000)}`,
    );
}

function git(args: string[]): string {
  const result = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.status !== 0) throw new Error(`git ${args.join(' ')} failed: ${result.stderr.slice(-2000)}`);
  return result.stdout;
}

/**
 * What node_modules is made from: package.json's dependency lists and the lock file's
 * resolved packages (the lock's root entry only repeats the project's name and lists).
 */
function dependencies(packageJson: string, packageLock: string): string {
  const pkg = JSON.parse(packageJson);
  const { '': _project, ...packages } = JSON.parse(packageLock).packages ?? {};
  return JSON.stringify([pkg.dependencies, pkg.devDependencies, packages]);
}

/** Whether today's node_modules (made from the working tree's files) fits the commit. */
async function sameDependencies(commit: string): Promise<boolean> {
  const today = dependencies(
    await readFile(join(ROOT, 'package.json'), 'utf8'),
    await readFile(join(ROOT, 'package-lock.json'), 'utf8'),
  );
  return (
    today ===
    dependencies(git(['show', `${commit}:package.json`]), git(['show', `${commit}:package-lock.json`]))
  );
}

async function readMark(): Promise<ReadyMark | undefined> {
  try {
    return JSON.parse(await readFile(join(TREE, READY), 'utf8')) as ReadyMark;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Extracts the commit, links or installs node_modules, builds dist/; renamed into place only when whole. */
async function build(commit: string, shared: boolean): Promise<void> {
  const partial = `${TREE}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  const archive = join(partial, '.archive.tar');
  git(['archive', '--format=tar', `--output=${archive}`, commit]);
  run('tar', ['-xf', archive, '-C', partial], ROOT);
  await rm(archive);
  if (shared) await symlink(join(ROOT, 'node_modules'), join(partial, 'node_modules'), 'dir');
  else run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], partial);
  run(
    process.execPath,
    [join(partial, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
    partial,
  );
  const mark: ReadyMark = { commit, nodeModules: shared ? 'shared' : 'own' };
  await writeFile(join(partial, READY), `${JSON.stringify(mark)}\n`);
  await rm(TREE, { recursive: true, force: true });
  await rename(partial, TREE);
}

/** The baseline tree, made (or remade when the current dependencies moved away from it) as needed. */
export async function prepareBaseline(): Promise<Baseline> {
  const found = spawnSync('git', ['rev-parse', '--verify', '--quiet', `${BASELINE}^{commit}`], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  // Not a git checkout at all (an unpacked tarball) reads the same as a missing commit.
  if (found.status !== 0)
    return {
      skip: `commit ${BASELINE} is not in this clone (shallow or not a git checkout); \`git fetch --unshallow\` brings it`,
    };
  const commit = found.stdout.trim();
  const mark = await readMark();
  const how = (m: ReadyMark) =>
    m.nodeModules === 'shared' ? 'node_modules shared: dependencies equal' : 'own node_modules (npm ci)';
  const shared = await sameDependencies(commit);
  // A shared node_modules is only right while the dependencies stay equal.
  const cached = mark?.commit === commit && existsSync(join(TREE, 'dist'));
  if (cached && (mark.nodeModules === 'own' || shared))
    return { tree: TREE, note: `cached in .bench/, ${how(mark)}` };
  await build(commit, shared);
  return {
    tree: TREE,
    note: `made in .bench/ from git archive, ${how({ commit, nodeModules: shared ? 'shared' : 'own' })}`,
  };
}
