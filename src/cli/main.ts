// The igpu-split command line: a thin layer over the library. Each command lives
// in its own file; heavy modules (ssh2, tar) load only when a command needs them,
// so `--help` stays fast.

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { IgpuSplitError } from '../core/errors.ts';
import { registerApply } from './apply.ts';
import { registerCapture } from './capture.ts';
import { registerCluster } from './cluster.ts';
import { registerDemo } from './demo.ts';
import { registerDoctor } from './doctor.ts';
import { registerGuest } from './guest.ts';
import { registerHost } from './host.ts';
import { registerInit } from './init.ts';
import { registerMapping } from './mapping.ts';
import { registerPlan } from './plan.ts';
import { registerRollback } from './rollback.ts';
import { registerStatus } from './status.ts';
import { registerVerify } from './verify.ts';
import { registerVm } from './vm.ts';

export const EXIT = { ok: 0, checkFailed: 1, usage: 2 } as const;

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export function buildProgram(): Command {
  const program = new Command('igpu-split')
    .description(
      'Share an Intel iGPU from Proxmox VE hosts into Kubernetes pods: detect, plan, apply, verify.',
    )
    .version(version)
    .option('--debug', 'print stack traces of errors')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerDemo(program);
  registerInit(program);
  registerPlan(program);
  registerApply(program);
  registerVerify(program);
  registerStatus(program);
  registerRollback(program);
  registerDoctor(program, version);
  registerCapture(program, version);
  registerHost(program);
  registerMapping(program);
  registerVm(program);
  registerGuest(program);
  registerCluster(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; every usage error exits 2 (commander already printed it).
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const debug = program.opts<{ debug?: boolean }>().debug === true;
    process.stderr.write(`igpu-split: ${describeError(error)}\n`);
    if (debug && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
    return EXIT.usage;
  }
}

function describeError(error: unknown): string {
  if (error instanceof IgpuSplitError) return error.oneLine();
  if (error instanceof Error)
    return `${error.message} (rerun with --debug for details)`.replace(/\s*\n\s*/g, ' ');
  return String(error);
}

process.exitCode = await main(process.argv);
