import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { BOOT_ID } from '../linux/reboot.ts';

/** When a process started (field 22 of /proc/<pid>/stat, in clock ticks since boot), on Linux. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    // expected: anything — unknown (the process is gone, or no /proc here): the lock says "-"
    return undefined;
  }
}

/** What a lock held by process `pid` of this machine says: `pid start host boot`, `-` for the unknown. */
export function lockLine(pid: number): string {
  return `${pid} ${processStart(pid) ?? '-'} ${hostname()} ${bootId() ?? '-'}\n`;
}

/** What a lock says: `pid start host boot`, `-` for what was unknown (older locks hold only the first two). */
export function lockHolder(text: string): { pid: number; started?: string; host?: string; boot?: string } {
  const [pid, started, host, boot] = text
    .trim()
    .split(/\s+/)
    .map((field) => (field === '-' || field === '' ? undefined : field));
  const number = Number(pid);
  return { pid: Number.isInteger(number) && number > 0 ? number : 0, started, host, boot };
}

/** The lock's process runs on this machine, in this boot, started when the lock says. */
export function stillRunning(held: ReturnType<typeof lockHolder>): boolean {
  const boot = bootId();
  if (held.pid <= 0 || (held.boot !== undefined && boot !== undefined && held.boot !== boot)) return false;
  if (!processAlive(held.pid)) return false;
  const started = processStart(held.pid);
  // A lock of an older igpu-split holds only the pid: its process must at least be one of ours.
  if (held.started === undefined) return commandLine(held.pid)?.includes('igpu-split') !== false;
  return started === undefined || started === held.started;
}

/** A process's command line (Linux /proc/<pid>/cmdline), or undefined where it cannot be read. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    // expected: anything — unknown (the process is gone, or no /proc here); stillRunning keeps the lock then
    return undefined;
  }
}

/** This machine's boot (Linux: Documentation/admin-guide/sysctl/kernel.rst, "random"). */
export function bootId(): string | undefined {
  try {
    return readFileSync(BOOT_ID, 'utf8').trim() || undefined;
  } catch {
    // expected: anything — unknown (not Linux): the lock says "-" and no boot is compared
    return undefined;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // expected: ESRCH (gone) and EPERM (alive, another user's); the rest is thrown
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return false;
    if (code === 'EPERM') return true;
    throw error;
  }
}
