// Shared by the scripts that turn saved upstream files into snapshots/*.json: reading the
// command line's sources, the git blob id of each file's exact bytes, and refusing in one line.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface GitSource {
  repository: string;
  path: string;
  commit: string;
  blob: string;
  tag?: string;
}

export interface PageSource {
  url: string;
  date: string;
  sha256: string;
}

export interface Input<S> {
  source: S;
  text: string;
}

/** Prints one line and exits 1: a snapshot is never written from a doubtful input. */
export function refuse(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

/** The id `git hash-object` gives these bytes. */
export function gitBlobSha(bytes: Buffer): string {
  return createHash('sha1')
    .update(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes]))
    .digest('hex');
}

function readText(file: string): { bytes: Buffer; text: string } {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    refuse(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const text = bytes.toString('utf8');
  if (bytes.length === 0 || text.includes('\0') || !Buffer.from(text, 'utf8').equals(bytes))
    refuse(`${file} is not a text file (empty, binary or not UTF-8)`);
  return { bytes, text };
}

/**
 * `--source <owner/name> <path> <commit> <file> [tag]` (a tag only as `tag=<name>`) and
 * `--page <url> <YYYY-MM-DD> <file>`, in any number.
 */
export function parseArgs(argv: string[]): { git: Input<GitSource>[]; pages: Input<PageSource>[] } {
  const git: Input<GitSource>[] = [];
  const pages: Input<PageSource>[] = [];
  for (let i = 0; i < argv.length; ) {
    const flag = argv[i];
    if (flag === '--source') {
      const [repository, path, commit, file] = argv.slice(i + 1, i + 5);
      if (!repository || !path || !commit || !file)
        refuse('--source needs <owner/name> <path> <commit> <file>');
      if (!/^[\w.-]+\/[\w.-]+$/.test(repository)) refuse(`--source: "${repository}" is not owner/name`);
      if (!/^[0-9a-f]{40}$/.test(commit)) refuse(`--source ${path}: "${commit}" is not a 40-hex commit`);
      const tagArg = argv[i + 5]?.startsWith('tag=') ? argv[i + 5] : undefined;
      const { bytes, text } = readText(file);
      const source: GitSource = { repository, path, commit, blob: gitBlobSha(bytes) };
      if (tagArg) source.tag = tagArg.slice(4);
      git.push({ source, text });
      i += tagArg ? 6 : 5;
    } else if (flag === '--page') {
      const [url, date, file] = argv.slice(i + 1, i + 4);
      if (!url || !date || !file) refuse('--page needs <url> <YYYY-MM-DD> <file>');
      if (!/^https:\/\/\S+$/.test(url)) refuse(`--page: "${url}" is not an https URL`);
      if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) refuse(`--page ${url}: "${date}" is not a date (YYYY-MM-DD)`);
      const { bytes, text } = readText(file);
      pages.push({ source: { url, date, sha256: createHash('sha256').update(bytes).digest('hex') }, text });
      i += 4;
    } else {
      refuse(`unknown argument "${flag}" (expected --source or --page)`);
    }
  }
  return { git, pages };
}

/** The one input for `repository:path`, or a refusal naming what is missing. */
export function need<S extends GitSource>(inputs: Input<S>[], repository: string, path: string): Input<S> {
  const found = inputs.filter((i) => i.source.repository === repository && i.source.path === path);
  if (found.length === 0) refuse(`missing upstream file ${repository}:${path} (pass it with --source)`);
  if (found.length > 1) refuse(`${repository}:${path} was given more than once`);
  return found[0] as Input<S>;
}
