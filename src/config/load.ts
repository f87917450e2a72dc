// Reading the lab file: YAML parsed keeping positions, validated by LabSchema; every
// problem becomes `file:line:column: path: message`, all of them at once.

import { readFile } from 'node:fs/promises';
import { isMap, LineCounter, type Node, parseDocument } from 'yaml';
import type { z } from 'zod';
import { UsageError } from '../core/errors.ts';
import { type Lab, LabSchema } from './lab.ts';

export const DEFAULT_LAB_FILE = 'igpu-split.yaml';

export class ConfigError extends UsageError {
  readonly problems: string[];
  constructor(file: string, problems: string[]) {
    super(
      problems.length === 1 ? (problems[0] as string) : `${problems.length} problems: ${problems.join('; ')}`,
      {
        fix: `edit ${file} (its JSON Schema is docs/schemas/lab.schema.json)`,
      },
    );
    this.problems = problems;
  }
}

export async function loadLab(file: string): Promise<Lab> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read lab file ${file}: ${error.code}`, {
      fix: `create it (igpu-split init), or name another with --lab`,
    });
  });
  return parseLab(text, file);
}

export function parseLab(text: string, file: string): Lab {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const at = (offset: number) => {
    const pos = lines.linePos(offset);
    return `${file}:${pos.line}:${pos.col}`;
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => `${at(e.pos[0])}: not valid YAML: ${e.message.split('\n')[0]}`),
    );
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (error) {
    throw new ConfigError(file, [`${file}: not valid YAML: ${(error as Error).message.split('\n')[0]}`]);
  }
  const result = LabSchema.safeParse(value ?? {});
  if (result.success) return result.data;
  throw new ConfigError(
    file,
    result.error.issues.map((issue) => `${at(offsetOf(doc.contents, issue))}: ${describe(issue)}`),
  );
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
  if (issue.code === 'invalid_type' && /received undefined/.test(issue.message))
    message = `required (${issue.expected})`;
  return path ? `${path}: ${message}` : message;
}
