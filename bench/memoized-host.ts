// A read-only host whose answers are remembered: the fleet benchmark's 500 hosts (and
// 2,000 guests) are one captured tree each, read from disk once and from memory after,
// so the benchmark measures the planner rather than the file system.

import type { CommandResult, DirEntry, EntryType, HostAccess } from '../src/access/host.ts';

export function memoized(inner: HostAccess): HostAccess {
  const cache = new Map<string, Promise<unknown>>();
  const remember = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    let hit = cache.get(key) as Promise<T> | undefined;
    if (!hit) {
      hit = read();
      cache.set(key, hit);
    }
    return hit;
  };
  const readOnly = (): never => {
    throw new Error('the benchmark fleet is read-only');
  };
  return {
    target: inner.target,
    readFile: (path) => remember(`f${path}`, () => inner.readFile(path)),
    list: (path) => remember<DirEntry[]>(`l${path}`, () => inner.list(path)),
    readLink: (path) => remember(`r${path}`, () => inner.readLink(path)),
    entryType: (path) => remember<EntryType | undefined>(`e${path}`, () => inner.entryType(path)),
    // As its captured tree answers (EUNSUPPORTED: a capture runs nothing), so gather reads
    // the kernel log as unknown the same way it does for `doctor --root`.
    run: (command, options): Promise<CommandResult> => inner.run(command, options),
    writeFileAtomic: readOnly,
    createExclusive: readOnly,
    makeDir: readOnly,
    remove: readOnly,
    close: async () => {},
  };
}
