// Reading the lab file: YAML parsed keeping positions, validated by LabSchema; every
// problem becomes `file:line:column: path: message`, all of them at once. What is not a
// lab file at all — too big, not UTF-8, nested without end — is one line saying so. The
// paths it holds are resolved against its folder (paths.ts).

import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import {
  isCollection,
  isMap,
  isPair,
  isScalar,
  LineCounter,
  type Node,
  parseAllDocuments,
  parseDocument,
} from 'yaml';
import type { z } from 'zod';
import { errnoText, UsageError } from '../core/errors.ts';
import { codePointName, controlAt, firstInvalidUtf8, isText } from '../core/text.ts';
import { type Lab, LabSchema } from './lab.ts';
import { resolveLabPath, shownPath } from './paths.ts';

export const DEFAULT_LAB_FILE = 'igpu-split.yaml';

/** A lab file is a few kilobytes; one for ten thousand VMs is under half of this. */
export const MAX_LAB_BYTES = 1024 * 1024;

/** Far deeper than any lab file (the deepest value, vms → VM → talos → extensions, is 5 down). */
const MAX_DEPTH = 32;

const SCHEMA_HINT = 'its JSON Schema is docs/schemas/lab.schema.json';

export class ConfigError extends UsageError {
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    const shown = problems.slice(0, 10).join('; ');
    const more = problems.length > 10 ? `; and ${problems.length - 10} more` : '';
    super(problems.length === 1 ? (problems[0] as string) : `${problems.length} problems: ${shown}${more}`, {
      fix: `edit ${file} (${SCHEMA_HINT})`,
    });
    this.problems = problems;
  }
}

export async function loadLab(file: string): Promise<Lab> {
  if (file.trim() === '')
    throw new UsageError('--lab names no file', { fix: 'give the lab file, e.g. --lab igpu-split.yaml' });
  // expected: anything — rethrown as one line naming the file (no such file, permission denied)
  const info = await stat(file).catch((error: unknown) => {
    throw new UsageError(`cannot read lab file ${shownLabFile(file)}: ${errnoText(error)}`, {
      fix: 'create it (igpu-split init), or name another with --lab',
      cause: error,
    });
  });
  if (info.isDirectory())
    throw new UsageError(`lab file ${shownLabFile(file)} is a directory`, {
      fix: 'name the YAML file with --lab',
    });
  if (!info.isFile())
    throw new UsageError(`lab file ${shownLabFile(file)} is not a regular file`, {
      fix: 'save the lab file to disk and name it with --lab',
    });
  if (info.size > MAX_LAB_BYTES) throw tooBig(file, info.size);
  // expected: anything — rethrown as one line naming the file
  const bytes = await readFile(file).catch((error: unknown) => {
    throw new UsageError(`cannot read lab file ${shownLabFile(file)}: ${errnoText(error)}`, {
      fix: 'check its permissions',
      cause: error,
    });
  });
  // It may have grown between the two looks.
  if (bytes.length > MAX_LAB_BYTES) throw tooBig(file, bytes.length);
  return parseLab(decodeText(bytes, file), file);
}

function shownLabFile(file: string): string {
  return shownPath(resolve(file), file);
}

function tooBig(file: string, size: number): UsageError {
  return new UsageError(
    `lab file ${file} is ${size.toLocaleString('en')} bytes; lab files over 1 MB (${MAX_LAB_BYTES.toLocaleString('en')} bytes) are refused`,
    { fix: 'a lab file is a few kilobytes: check that --lab names the right file' },
  );
}

/** The text of a lab file, which must be UTF-8 (a UTF-8 byte-order mark is fine). */
export function decodeText(bytes: Uint8Array, file: string): string {
  const fix = `save ${file} as UTF-8 (most editors: "Save with encoding")`;
  const starts = (...prefix: number[]) => prefix.every((byte, i) => bytes[i] === byte);
  if (starts(0xff, 0xfe, 0, 0) || starts(0, 0, 0xfe, 0xff) || looksWide(bytes, 4))
    throw new UsageError(`lab file ${file} is UTF-32, not UTF-8`, { fix });
  if (starts(0xff, 0xfe) || starts(0xfe, 0xff) || looksWide(bytes, 2))
    throw new UsageError(`lab file ${file} is UTF-16, not UTF-8`, { fix });
  const nul = bytes.indexOf(0);
  if (nul >= 0)
    throw new UsageError(`lab file ${file} holds a NUL byte at offset ${nul}: it is not a text file`, {
      fix: 'name the YAML lab file with --lab',
    });
  const bad = isText(bytes) ? -1 : firstInvalidUtf8(bytes);
  if (bad >= 0) {
    const before = Buffer.from(bytes.subarray(0, bad)).toString('utf8');
    const line = before.split('\n').length;
    const column = before.length - before.lastIndexOf('\n');
    throw new UsageError(
      `lab file ${file}:${line}:${column}: not valid UTF-8 (byte 0x${(bytes[bad] as number).toString(16).padStart(2, '0')} at offset ${bad})`,
      { fix },
    );
  }
  const text = Buffer.from(bytes).toString('utf8');
  return text.startsWith('\uFEFF') ? text.slice(1) : text;
}

/**
 * Text of `width`-byte units without a byte-order mark: in the first bytes, nearly every
 * unit is one non-zero byte and zeros (a letter outside ASCII fills more than one byte of
 * its unit, so one in ten may); a binary file has zeros too, but not in that order.
 */
function looksWide(bytes: Uint8Array, width: 2 | 4): boolean {
  const units = Math.floor(Math.min(bytes.length, 64) / width);
  if (units < 2) return false;
  const textLike = (offset: number) => {
    let fits = 0;
    for (let u = 0; u < units; u++) {
      const unit = bytes.subarray(u * width, (u + 1) * width);
      if (unit.every((byte, k) => (k === offset ? byte !== 0 : byte === 0))) fits++;
    }
    return fits >= Math.ceil(units * 0.9);
  };
  return textLike(0) || textLike(width - 1);
}

/** Parses and validates lab text; paths in it are resolved against `file`'s folder. */
export function parseLab(text: string, file: string): Lab {
  if (text.length > MAX_LAB_BYTES) throw tooBig(file, Buffer.byteLength(text));
  const lines = new LineCounter();
  const at = (offset: number) => {
    const pos = lines.linePos(offset);
    return `${file}:${pos.line}:${pos.col}`;
  };
  // Old Mac line endings (CR alone) read as one long line: say so instead of what YAML makes of it.
  const bareCr = text.search(/\r(?!\n)/);
  if (bareCr >= 0)
    throw new ConfigError(file, [
      `${file}:${text.slice(0, bareCr).split('\n').length}: a carriage return (CR) without a line feed: save the file with Unix line endings (LF)`,
    ]);
  let value: unknown;
  let doc: ReturnType<typeof parseDocument>;
  try {
    doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    // The parser reports running out of stack as an error of the document.
    if (doc.errors.some((e) => /call stack|stack overflow/i.test(e.message)))
      throw new ConfigError(file, [`${file}: nested too deeply to read: not a lab file`]);
    // A `---` with nothing after it (an editor's or a generator's habit) starts no second document.
    const errors = doc.errors.filter((e) => e.code !== 'MULTIPLE_DOCS' || !onlyEmptyAfterFirst(text));
    if (errors.length > 0) {
      throw new ConfigError(
        file,
        errors.map((e) =>
          e.code === 'MULTIPLE_DOCS'
            ? `${at(e.pos[0])}: a second YAML document (after ---): a lab file is one`
            : `${at(e.pos[0])}: not valid YAML: ${e.message.split('\n')[0]}`,
        ),
      );
    }
    // An unknown tag (`!!js/function`, `!custom`) would be dropped silently, leaving its bare value.
    const tag = doc.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED');
    if (tag) {
      const written = /^!\S{0,40}/.exec(text.slice(tag.pos[0]))?.[0] ?? 'a tag';
      throw new ConfigError(file, [
        `${at(tag.pos[0])}: an unknown YAML tag (${written}): lab file values are plain YAML — remove the tag`,
      ]);
    }
    const deep = deepestNode(doc.contents);
    if (deep.depth > MAX_DEPTH)
      throw new ConfigError(file, [
        `${at(deep.offset)}: nested more than ${MAX_DEPTH} levels deep; a lab file needs 5 at most: not a lab file`,
      ]);
    const odd = controlInScalar(doc.contents);
    if (odd)
      throw new ConfigError(file, [
        `${at(odd.offset)}: holds a control character (${odd.name}): lab file values are plain text`,
      ]);
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // expected: anything — rethrown as a ConfigError: ours as it is, too deep (RangeError), or the YAML library's first line
    if (error instanceof ConfigError) throw error;
    if (error instanceof RangeError)
      throw new ConfigError(file, [`${file}: nested too deeply to read: not a lab file`]);
    throw new ConfigError(file, [`${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`]);
  }
  if (value !== null && value !== undefined && (typeof value !== 'object' || Array.isArray(value)))
    throw new ConfigError(file, [
      `${at(0)}: the lab file must be a mapping (proxmox:, hosts:, vms: …), not ${Array.isArray(value) ? 'a list' : `a ${typeof value}`}`,
    ]);
  // A top-level key left with nothing under it (its lines commented out) means its defaults.
  const sections = { ...((value as Record<string, unknown> | null) ?? {}) };
  for (const [key, section] of Object.entries(sections)) if (section === null) delete sections[key];
  const result = LabSchema.safeParse(sections);
  if (!result.success)
    throw new ConfigError(
      file,
      result.error.issues.map((issue) => `${at(offsetOf(doc.contents, issue))}: ${describe(issue)}`),
    );
  const url = urlProblem(result.data.proxmox.url);
  if (url) {
    const node = doc.getIn(['proxmox', 'url'], true) as Node | undefined;
    throw new UsageError(`${at(node?.range?.[0] ?? 0)}: proxmox.url ${url} (not shown)`, {
      fix: `write only https://<node>:8006 as proxmox.url in ${file}; the token id goes in proxmox.token, its secret in the file tokenSecretFile names`,
    });
  }
  return resolvePaths(result.data, file, spellingNotes(sections, doc, at));
}

/**
 * One line per old spelling the file still uses: accepted (the schema maps `mode: sr-iov`
 * to `sriov`), said once so the user can change it.
 */
function spellingNotes(
  sections: Record<string, unknown>,
  doc: ReturnType<typeof parseDocument>,
  at: (offset: number) => string,
): string[] {
  const hosts = Array.isArray(sections.hosts) ? (sections.hosts as unknown[]) : [];
  return hosts.flatMap((host, index) => {
    if ((host as { mode?: unknown } | null)?.mode !== 'sr-iov') return [];
    const node = doc.getIn(['hosts', index, 'mode'], true) as Node | undefined;
    return [`${at(node?.range?.[0] ?? 0)}: mode sr-iov is now spelled sriov (read as sriov)`];
  });
}

/** What the Proxmox URL must not hold: it would be written into every message naming it. */
function urlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    // expected: TypeError (ERR_INVALID_URL) — not a URL: the schema said so already
    if (!(error instanceof TypeError)) throw error;
    return undefined;
  }
  if (parsed.username || parsed.password) return 'holds a user or password';
  if (parsed.search || parsed.hash) return 'holds a query (?…) or a fragment (#…)';
  return undefined;
}

/** Every document after the first is empty (only `---`, comments or blank lines). */
function onlyEmptyAfterFirst(text: string): boolean {
  const docs = parseAllDocuments(text);
  // A document of nothing but comments reads as an empty scalar; `~` or `null` written out is content.
  const empty = (contents: unknown) =>
    contents === null || (isScalar(contents) && contents.value === null && contents.source === '');
  return Array.isArray(docs) && docs.slice(1).every((d) => empty(d.contents) && d.errors.length === 0);
}

/** The deepest collection in the document, walked without recursion. */
function deepestNode(root: unknown): { depth: number; offset: number } {
  let deepest = { depth: 0, offset: 0 };
  const stack: { node: unknown; depth: number }[] = [{ node: root, depth: 1 }];
  while (stack.length > 0) {
    const { node, depth } = stack.pop() as { node: unknown; depth: number };
    if (!isCollection(node)) continue;
    if (depth > deepest.depth) deepest = { depth, offset: node.range?.[0] ?? 0 };
    if (depth > MAX_DEPTH) break;
    for (const item of node.items as unknown[]) {
      if (isPair(item)) {
        stack.push({ node: item.key, depth: depth + 1 }, { node: item.value, depth: depth + 1 });
      } else stack.push({ node: item, depth: depth + 1 });
    }
  }
  return deepest;
}

/**
 * The first key or value holding a control character (a terminal escape, an 8-bit CSI, a
 * bidi override): it would be printed as it is in plans and messages, and no Proxmox or
 * Kubernetes name holds one.
 */
function controlInScalar(root: unknown): { offset: number; name: string } | undefined {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isScalar(node) && typeof node.value === 'string') {
      const at = controlAt(node.value, '');
      if (at >= 0) return { offset: node.range?.[0] ?? 0, name: codePointName(node.value, at) };
    } else if (isCollection(node)) {
      for (const item of node.items as unknown[]) {
        if (isPair(item)) stack.push(item.key, item.value);
        else stack.push(item);
      }
    }
  }
  return undefined;
}

/** Every path the lab file holds, resolved; the written forms kept for messages. */
function resolvePaths(lab: Lab, file: string, notes: string[]): Lab {
  const dir = dirname(resolve(file));
  const written: Record<string, string> = {};
  const fix = (path: string | undefined) => {
    if (path === undefined) return undefined;
    const absolute = resolveLabPath(path, dir);
    written[absolute] = path;
    return absolute;
  };
  return {
    ...lab,
    proxmox: {
      ...lab.proxmox,
      tokenSecretFile: fix(lab.proxmox.tokenSecretFile),
      caFile: fix(lab.proxmox.caFile),
    },
    kubernetes: { ...lab.kubernetes, kubeconfig: fix(lab.kubernetes.kubeconfig) },
    sriov: {
      ...lab.sriov,
      hostDriver: lab.sriov.hostDriver && { ...lab.sriov.hostDriver, file: fix(lab.sriov.hostDriver.file) },
      guestDriver: lab.sriov.guestDriver && {
        ...lab.sriov.guestDriver,
        file: fix(lab.sriov.guestDriver.file),
      },
    },
    source: { file: resolve(file), written, notes },
  };
}

/** Where an issue points: its node, the key for an unknown key, or the nearest parent. */
function offsetOf(root: unknown, issue: z.core.$ZodIssue): number {
  let node = root as Node | null;
  let best = (node as Node | null)?.range?.[0] ?? 0;
  for (const key of issue.path) {
    if (!node || !('get' in node)) break;
    const next = (node as unknown as { get(key: unknown, keep: true): Node | undefined }).get(key, true);
    if (!next) break;
    node = next;
    best = next.range?.[0] ?? best;
  }
  if (issue.code === 'unrecognized_keys' && isMap(node)) {
    const pair = node.items.find((item) =>
      issue.keys.includes(String((item.key as { value?: unknown })?.value)),
    );
    best = (pair?.key as Node | undefined)?.range?.[0] ?? best;
  }
  return best;
}

function describe(issue: z.core.$ZodIssue): string {
  const path = issue.path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .replace(/^\./, '');
  let message = issue.message;
  if (issue.code === 'invalid_value') message = `must be one of: ${issue.values.map(String).join(', ')}`;
  if (issue.code === 'unrecognized_keys') message = `unknown key ${issue.keys.join(', ')}`;
  // A VM's `os` picks its shape (a discriminated union): absent or unknown, it reads like an enum.
  if (issue.code === 'invalid_union' && 'options' in issue && Array.isArray(issue.options))
    message = `must be one of: ${issue.options.map(String).join(', ')}`;
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message))
    message = `required (${issue.expected})`;
  if (issue.code === 'invalid_type' && /received null/.test(issue.message))
    message = 'empty (a key with nothing under it): give it values or remove it';
  return path ? `${path}: ${message}` : message;
}
