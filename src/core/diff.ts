// Unified diffs of whole files for plans. A fleet plan shows the same file written the same
// way on hundreds of machines (the kernel guard is 300 lines): the last few distinct changes
// are kept, so each is computed once. Keyed by the strings themselves, nested rather than
// joined: V8 keeps a string's hash, and a rendered file is one string reused for every host.

import { createTwoFilesPatch } from 'diff';

const KEPT = 32;
const recent = new Map<string, Map<string, Map<string, string>>>();
let kept = 0;

/** `a<path>` → `b<path>` as a unified diff (createTwoFilesPatch), computed once per distinct change. */
export function fileDiff(path: string, before: string, after: string): string {
  const known = recent.get(path)?.get(before)?.get(after);
  if (known !== undefined) return known;
  const diff = createTwoFilesPatch(`a${path}`, `b${path}`, before, after);
  if (kept >= KEPT) {
    recent.clear();
    kept = 0;
  }
  const byBefore = recent.get(path) ?? new Map<string, Map<string, string>>();
  recent.set(path, byBefore);
  const byAfter = byBefore.get(before) ?? new Map<string, string>();
  byBefore.set(before, byAfter);
  byAfter.set(after, diff);
  kept++;
  return diff;
}
