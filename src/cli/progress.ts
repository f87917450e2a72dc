// The console side of an apply's progress (talosctl keeps its Reporter's console side
// apart the same way): the engine reports events, this draws them with listr2 — a task per
// host group, a line per stage — or plain lines when the terminal cannot be drawn on.

import { describeWait } from '../core/waits.ts';
import type { ApplyEvent, Reporter } from '../engine/apply-lab.ts';
import type { Stage } from '../engine/scheduler.ts';
import { startDrawing } from './output.ts';

type Outcome = 'done' | 'skipped' | 'failed' | 'not started';

interface Pending {
  outcome: Promise<Outcome>;
  settle(outcome: Outcome): void;
  output?: (line: string) => void;
}

/** A stage's outcome to come, made when the stages are announced: every one can be settled. */
function pendingStage(): Pending {
  let settle: (outcome: Outcome) => void = () => {};
  const outcome = new Promise<Outcome>((resolve) => {
    settle = resolve;
  });
  return { outcome, settle: (result) => settle(result) };
}

/** How many displays draw waits in their task lines now; main's own wait lines (stderr) pause meanwhile. */
let drawingWaits = 0;

/** Whether a terminal display shows the waits (in its tasks' output lines) instead of plain lines. */
export function waitsDrawn(): boolean {
  return drawingWaits > 0;
}

export interface ProgressReporter extends Reporter {
  /** Waits for the display to draw its last state; stages that never ran show as not started. */
  finish(): Promise<void>;
}

/**
 * `onPlan`: what the command shows of the plan (apply prints it before the question; the
 * demo showed it already). `quiet`: no progress at all (--json).
 */
export async function progressReporter(options: {
  quiet: boolean;
  onPlan?: (event: Extract<ApplyEvent, { kind: 'plan' }>) => void;
}): Promise<ProgressReporter> {
  const { Listr } = await import('listr2');
  const pending = new Map<string, Pending>();
  let running: Promise<unknown> | undefined;
  let stopDrawing = () => {};
  let journalKept: string | undefined;
  // A terminal listr2 can draw on shows a stage's waits as its output line; without one
  // (a log, CI, --json) main prints each as a line on stderr.
  const terminal = !options.quiet && process.stdout.isTTY === true && Boolean(process.stdout.columns);

  const stageTask = (stage: Stage) => {
    const entry = pending.get(stage.id) ?? pendingStage();
    return {
      title: stage.title,
      task: async (_ctx: unknown, task: { output: string; skip(message: string): void }) => {
        entry.output = (line) => {
          task.output = line;
        };
        const result = await entry.outcome;
        if (result === 'skipped') task.skip('done by an earlier run');
        if (result === 'not started') task.skip('not started');
        if (result === 'failed') throw new Error(`${stage.title}: failed`);
      },
    };
  };

  type Parent = { newListr: (tasks: unknown[], options?: unknown) => unknown };
  const groupTask = (group: { group: string; stages: Stage[] }) => ({
    title:
      group.group === 'lab'
        ? 'lab: mapping'
        : group.group === 'lab-end'
          ? 'cluster'
          : `host ${group.group.slice('host:'.length)}`,
    task: (_: unknown, parent: Parent) =>
      parent.newListr(group.stages.map(stageTask), { concurrent: false, exitOnError: true }),
  });

  const draw = (event: Extract<ApplyEvent, { kind: 'stages' }>) => {
    // Every stage is pending from now on, also those of groups the display has not reached.
    for (const stage of event.groups.flatMap((g) => g.stages)) pending.set(stage.id, pendingStage());
    const hosts = event.groups.filter((g) => g.group.startsWith('host:'));
    const list = new Listr(
      [
        ...event.groups.filter((g) => g.group === 'lab').map(groupTask),
        {
          title: event.parallel > 1 ? `hosts, ${event.parallel} at a time` : 'hosts, one at a time',
          enabled: hosts.length > 0,
          task: (_: unknown, parent: Parent) =>
            parent.newListr(hosts.map(groupTask), { concurrent: event.parallel, exitOnError: true }),
        },
        ...event.groups.filter((g) => g.group === 'lab-end').map(groupTask),
      ] as never,
      {
        // A terminal that reports no width (a pty nobody sized) wraps every character: plain lines then.
        renderer: options.quiet ? 'silent' : terminal || !process.stdout.isTTY ? 'default' : 'simple',
        fallbackRenderer: 'simple',
        rendererOptions: { collapseSubtasks: false },
        exitOnError: true,
        // Interrupts are the CLI's (main.ts): listr2's own handler exits with 127.
        registerSignalListeners: false,
      } as never,
    );
    const stopOutput = startDrawing();
    if (terminal) drawingWaits++;
    let stopped = false;
    stopDrawing = () => {
      stopOutput();
      if (terminal && !stopped) drawingWaits--;
      stopped = true;
    };
    // expected: anything — a failed stage fails its task; the engine reports the failure itself.
    running = list.run().catch(() => undefined);
  };

  return {
    report(event) {
      if (event.kind === 'plan') options.onPlan?.(event);
      else if (event.kind === 'stages') draw(event);
      else if (event.kind === 'stage-line') pending.get(event.stage.id)?.output?.(event.line);
      else if (event.kind === 'waiting' && terminal && event.stage)
        pending.get(event.stage.id)?.output?.(describeWait(event.wait));
      else if (event.kind === 'stage-end') pending.get(event.stage.id)?.settle(event.result);
      else if (event.kind === 'journal-kept') journalKept = event.dir;
    },
    async finish() {
      for (const entry of pending.values()) entry.settle('not started');
      await running;
      stopDrawing();
      if (journalKept)
        process.stderr.write(
          `igpu-split: the finished stages are journalled in ${journalKept}; fix the cause below, then: igpu-split apply --resume\n`,
        );
    },
  };
}
