// The yes/no question apply commands ask before changing anything; without a terminal
// there is no one to answer, so the change is refused and --yes named.

import { createInterface } from 'node:readline/promises';
import { UsageError } from '../core/errors.ts';

export async function confirm(question: string, planCommand = 'the matching plan command'): Promise<boolean> {
  if (!process.stdin.isTTY) {
    throw new UsageError('refusing to change anything without confirmation: no terminal to ask', {
      fix: `review ${planCommand}, then rerun with --yes`,
    });
  }
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await prompt.question(`${question} [y/N] `)).trim());
  } finally {
    prompt.close();
  }
}
