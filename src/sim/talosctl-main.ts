// The playground's `talosctl` (a shell script in its bin/ folder runs this with node): the
// stand-in of ./talosctl.ts for the node its environment names.

import { answerTalosctl } from './talosctl.ts';

const env = (name: string) => {
  const value = process.env[name];
  if (!value) {
    process.stderr.write(
      `igpu-split demo stand-in for talosctl: ${name} is not set (run it from the playground's bin/)\n`,
    );
    process.exit(1);
  }
  return value;
};

const result = await answerTalosctl(
  {
    address: env('IGPU_SPLIT_DEMO_TALOS_NODE'),
    version: env('IGPU_SPLIT_DEMO_TALOS_VERSION'),
    stateFile: env('IGPU_SPLIT_DEMO_TALOS_STATE'),
  },
  process.argv.slice(2),
);
process.stdout.write(result.stdout);
process.stderr.write(result.stderr);
process.exitCode = result.code;
