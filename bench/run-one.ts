// Runs one benchmark of one source tree in a process of its own, so today's tree and the
// baseline's (whose APIs differ) never share a process: scripts/bench.ts starts
// `node bench/run-one.ts <module> <function> [JSON arguments]` with that tree as the
// working folder, and reads the result from the last line, after RESULT_MARK.
//   e.g. node /work/main/bench/run-one.ts .bench/baseline-d5cfd90/bench/fleet-plan.ts benchFleetPlan

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

export const RESULT_MARK = 'bench-result ';

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [module, name, args] = process.argv.slice(2);
  const benchmarks = (await import(pathToFileURL(resolve(module as string)).href)) as Record<
    string,
    (...args: unknown[]) => Promise<unknown>
  >;
  const benchmark = benchmarks[name as string];
  if (typeof benchmark !== 'function') throw new Error(`${module} exports no function ${name}`);
  const result = await benchmark(...(args ? (JSON.parse(args) as unknown[]) : []));
  process.stdout.write(`\n${RESULT_MARK}${JSON.stringify(result)}\n`);
}
