// The yes/no question apply commands ask before changing anything. Without a terminal
// there is no one to answer, so the change is refused and --yes named. Anything but yes —
// no, an empty answer, Ctrl-C or end of input at the prompt — stops the command with
// exit 1 and nothing changed (as apt-get does when its question is declined). Before the
// question, one line says what the change disturbs (engine/disturbances.ts).

import { RefusedError, UsageError } from '../core/errors.ts';

export { NOTHING_DISTURBED } from '../core/model.ts';

export async function confirm(
  question: string,
  planCommand: string,
  /** What the change reboots, restarts and drains (engine/disturbances.ts): said before every question. */
  disturbs: string,
): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new UsageError('refusing to change anything without confirmation: no terminal to ask', {
      fix: `review ${planCommand}, then rerun with --yes`,
    });
  }
  process.stdout.write(`disturbs: ${disturbs}\n`);
  // Loaded when a question is asked: every command that may ask loads this file at start.
  const { createInterface } = await import('node:readline/promises');
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  let cut = false;
  let answered = false;
  const answer = await new Promise<string>((resolve) => {
    const stop = () => {
      if (answered) return;
      cut = true;
      resolve('');
    };
    prompt.on('SIGINT', stop);
    prompt.on('close', stop);
    prompt
      .question(`${question} [y/N] `)
      .then((text) => {
        answered = true;
        resolve(text);
      })
      // expected: anything — a question cut off (input closed, aborted) is no answer: the change is refused
      .catch(stop);
  });
  answered = true;
  prompt.close();
  if (!/^y(es)?$/i.test(answer.trim())) {
    // The error line should not start on the prompt's line.
    if (cut) process.stdout.write('\n');
    throw new RefusedError('not confirmed: nothing was changed', {
      fix: `review ${planCommand} and run the command again when it is what you want`,
    });
  }
}
