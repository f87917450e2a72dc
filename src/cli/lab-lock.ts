// The lab lock around a layer command's changes (engine/lab-run.ts), with what it has to
// say about an interrupted apply's journal on stderr.

export async function withLabLock<T>(labFile: string, work: () => Promise<T>): Promise<T> {
  const { withLabLock: locked } = await import('../engine/lab-run.ts');
  return locked(labFile, work, (line) => process.stderr.write(`igpu-split: ${line}\n`));
}
