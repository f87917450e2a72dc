// Work over many targets at once, but never more than `limit` at a time: reads of a
// fleet stay parallel without opening thousands of connections together.

/** Runs `work` over `items`, at most `limit` at a time, keeping the order of results. */
export async function bounded<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const runners = Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  });
  await Promise.all(runners);
  return results;
}

/** How many API or SSH reads run at once when gathering. */
export const READ_CONCURRENCY = 16;
