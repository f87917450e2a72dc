// The igpu-split command tree: every command registered, nothing run. Each command lives
// in its own file; heavy modules (ssh2, tar) load only when a command needs them, so
// `--help` stays fast. main.ts runs it; tests read it (every command has an exit-code case).

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
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
    // A usage error is one line, like every other error.
    .configureOutput({
      outputError: (text, write) =>
        write(
          `igpu-split: ${text
            .replace(/^error: /, '')
            .trim()
            .replace(/\s*\n\s*/g, ' ')} — see --help\n`,
        ),
    })
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
