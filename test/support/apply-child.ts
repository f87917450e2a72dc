// A separate process that applies the demo lab another process serves (its simulators
// and machine folders), so the fault tests can kill it for real: KILL_AT_STAGE=<stage id>
// dies right after that stage is journalled; KILL_AT_WRITE=<n> dies in the middle of
// the n-th file write on a host (the temp file half written, never renamed); KILL_AT_CALL=<n>
// right after the n-th change sent to Proxmox; KILL_AT_COMMAND=<n> right after the n-th
// boot-loader refresh or reboot on a host (between a VM's stop, config and start) — SIGKILL,
// no cleanup. RESUME=1 continues from the journal. It prints the stages it finished and
// the count of host file writes.

import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseLab } from '../../src/config/load.ts';
import { type DemoDescription, demoConnections } from '../../src/demo/lab.ts';
import { applyLab } from '../../src/engine/apply-lab.ts';

const description = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as DemoDescription;
const lab = parseLab(readFileSync(description.labFile, 'utf8'), description.labFile);
const connections = demoConnections(description);
const killAtWrite = Number(process.env.KILL_AT_WRITE ?? 0);
const killAtCommand = Number(process.env.KILL_AT_COMMAND ?? 0);
let writes = 0;
let commands = 0;
const openHost = connections.host;
connections.host = async (node) => {
  const host = await openHost(node);
  const run = host.run.bind(host);
  host.run = async (command, options) => {
    const result = await run(command, options);
    // Boot-loader refreshes and reboots are steps of their own: die right after one.
    if (/update-grub|proxmox-boot-tool|update-initramfs|systemctl reboot/.test(command)) {
      commands++;
      if (commands === killAtCommand) process.kill(process.pid, 'SIGKILL');
    }
    return result;
  };
  const write = host.writeFileAtomic.bind(host);
  host.writeFileAtomic = async (path, data, options) => {
    writes++;
    if (writes === killAtWrite) {
      // What a kill leaves mid-write: the temp file beside the target, half written.
      const under = join((host as unknown as { root: string }).root, dirname(path), `.killed-${writes}.tmp`);
      await writeFile(under, String(data).slice(0, Math.ceil(String(data).length / 2)));
      process.kill(process.pid, 'SIGKILL');
    }
    return write(path, data, options);
  };
  return host;
};

// KILL_AT_GUEST_COMMAND=<n>: die right after the n-th command a guest ran (a package install,
// the driver package, the boot refresh, the reboot): every guest step is a kill point.
const killAtGuestCommand = Number(process.env.KILL_AT_GUEST_COMMAND ?? 0);
let guestCommands = 0;
const openGuest = connections.guest;
connections.guest = async (vm) => {
  const guest = await openGuest(vm);
  const run = guest.run.bind(guest);
  guest.run = async (command, options) => {
    const result = await run(command, options);
    // The identity probe (echo "$EUID") changes nothing: not a step.
    if (!command.startsWith('echo ')) {
      guestCommands++;
      if (guestCommands === killAtGuestCommand) process.kill(process.pid, 'SIGKILL');
    }
    return result;
  };
  return guest;
};

// KILL_AT_CALL=<n>: die right after the n-th change sent to Proxmox (a VM stop, config or start).
const killAtCall = Number(process.env.KILL_AT_CALL ?? 0);
let calls = 0;
const api = connections.proxmox;
const vmPower = api.vmPower.bind(api);
const updateVmConfig = api.updateVmConfig.bind(api);
const counted = async <T>(work: Promise<T>): Promise<T> => {
  const result = await work;
  calls++;
  if (calls === killAtCall) process.kill(process.pid, 'SIGKILL');
  return result;
};
api.vmPower = (...args) => counted(vmPower(...args));
api.updateVmConfig = (...args) => counted(updateVmConfig(...args));

// The engine call igpu-split apply --yes [--resume] makes.
const result = await applyLab(lab, connections, {
  labFile: description.labFile,
  resume: process.env.RESUME === '1',
  pollMs: 10,
  rebootTimeoutMs: 10_000,
  afterStage: async (id) => {
    if (id === process.env.KILL_AT_STAGE) process.kill(process.pid, 'SIGKILL');
  },
});
await connections.close();
console.log(JSON.stringify({ done: result.done, writes, calls, commands, guestCommands }));
