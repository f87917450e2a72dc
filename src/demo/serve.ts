// The playground (`igpu-split demo --serve`): the demo lab kept running so that every
// command can be tried from another shell. The simulators already listen on loopback;
// here the demo machines get an SSH server each (src/sim/ssh-server.ts), the Talos node a
// talosctl stand-in on the PATH it hands out, and the folder gets the lab file and a
// `demo.env` with everything a shell needs. Nothing listens beyond 127.0.0.1.

import { chmod, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errnoText, UsageError } from '../core/errors.ts';
import { newKeyPair, type RunningSshServer, serveOverSsh } from '../sim/ssh-server.ts';
import {
  DEMO_MACHINES,
  DEMO_SECRET_ENV,
  DEMO_TOKEN_ID,
  type DemoLab,
  demoLabText,
  demoMachine,
  startDemoLab,
} from './lab.ts';
import { DEMO_TALOS_NODE, DEMO_TALOS_VERSION } from './machines.ts';

/** The file that marks a folder as a playground's, so a later `--serve` may reuse it. */
const MARK = '.igpu-split-playground';

export interface Playground {
  dir: string;
  /** `DIR/demo.env`: the lines a shell sources. */
  envFile: string;
  /** What to type to source it (quoted where the path needs it). */
  sourceLine: string;
  labFile: string;
  demo: DemoLab;
  /** Stops every server it started; the folder goes too unless `keepFiles`. */
  close(options?: { keepFiles?: boolean }): Promise<void>;
}

/** Single quotes for sh: nothing inside is expanded. */
const quoted = (text: string) => `'${text.replaceAll("'", `'\\''`)}'`;

/** An empty folder to serve from: made when missing, reused when an earlier playground left it. */
async function prepare(dir: string): Promise<void> {
  const entries = await readdir(dir).catch((error: NodeJS.ErrnoException) => {
    // expected: ENOENT — the folder is made below; ENOTDIR and the rest are said in one line
    if (error.code === 'ENOENT') return undefined;
    throw new UsageError(
      `--dir ${dir}: ${error.code === 'ENOTDIR' ? 'a file, not a folder' : errnoText(error)}`,
      {
        fix: 'name a new or empty folder with --dir',
      },
    );
  });
  if (entries && entries.length > 0) {
    if (!entries.includes(MARK))
      throw new UsageError(`${dir} is not empty and is not an earlier playground's folder`, {
        fix: 'name a new or empty folder with --dir',
      });
    // An earlier playground's folder is reused only once that playground has stopped.
    const mark = await readFile(join(dir, MARK), 'utf8').catch(
      // expected: anything — an unreadable mark names no running playground
      () => '',
    );
    const pid = Number(mark.match(/^pid (\d+)/m)?.[1]);
    if (pid > 0 && pid !== process.pid && isAlive(pid))
      throw new UsageError(`${dir} is the folder of a playground that still runs (pid ${pid})`, {
        fix: `use that one (. ${join(dir, 'demo.env')}), stop it first, or name another folder with --dir`,
      });
    await rm(dir, { recursive: true, force: true });
  }
  // Only the folder itself is made: its parent must exist (a typo is said, not built).
  await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
    // expected: any failure (ENOENT: no parent; EACCES; EROFS) — said in one line
    throw new UsageError(
      `cannot make ${dir}: ${error.code === 'ENOENT' ? `no folder ${dirname(dir)} to make it in` : errnoText(error)}`,
      { fix: 'name a folder whose parent exists and is writable, with --dir' },
    );
  });
  await writeFile(
    join(dir, MARK),
    `made by igpu-split demo --serve; removed when it stops\npid ${process.pid}\n`,
  );
}

/** Whether a process runs (signal 0 tests without sending; EPERM: it runs, as another user). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // expected: ESRCH — no such process; EPERM — it exists
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function startPlayground(dirOption: string, made?: (dir: string) => void): Promise<Playground> {
  const dir = resolve(dirOption);
  await prepare(dir);
  made?.(dir);
  const demo = await startDemoLab(undefined, dir).catch(async (error: unknown) => {
    // expected: anything — the folder made above goes, and the error is rethrown
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  const servers: RunningSshServer[] = [];
  try {
    // One client key for every machine (the identity demo.env names), one host key each.
    const sshDir = join(dir, 'ssh');
    await mkdir(sshDir, { mode: 0o700 });
    const client = newKeyPair('igpu-split-playground');
    const identity = join(sshDir, 'id_ed25519');
    await writeFile(identity, client.private, { mode: 0o600 });
    const urls: Record<string, string> = {};
    for (const name of DEMO_MACHINES) {
      const server = await serveOverSsh(
        await demoMachine(demo.description, name).open(),
        newKeyPair(name),
        client,
      );
      servers.push(server);
      urls[name] = `ssh://root@127.0.0.1:${server.port}`;
    }
    const knownHosts = join(sshDir, 'known_hosts');
    await writeFile(knownHosts, `${servers.map((s) => s.knownHostsLine).join('\n')}\n`);
    const guests = Object.fromEntries(Object.entries(urls).filter(([name]) => name.startsWith('k3s-')));
    const hosts = Object.fromEntries(Object.entries(urls).filter(([name]) => !name.startsWith('k3s-')));
    await writeFile(demo.labFile, demoLabText(demo.description, { hosts, guests }));

    const bin = join(dir, 'bin');
    await mkdir(bin);
    await writeTalosctl(bin, join(dir, 'talos-node-state'));
    const envFile = join(dir, 'demo.env');
    const env: Record<string, string> = {
      [DEMO_SECRET_ENV]: demo.description.secret,
      IGPU_SPLIT_LAB: demo.labFile,
      IGPU_SPLIT_IDENTITY: identity,
      IGPU_SPLIT_KNOWN_HOSTS: knownHosts,
      KUBECONFIG: demo.description.kubeconfig,
      IGPU_SPLIT_DEMO_URL: demo.description.proxmoxUrl,
      IGPU_SPLIT_DEMO_FINGERPRINT: demo.description.fingerprint,
    };
    await writeFile(
      envFile,
      [
        `# igpu-split playground (igpu-split demo --serve --dir ${dir}); in a shell: . ${quoted(envFile)}`,
        `# The token variable is the demo's (${DEMO_TOKEN_ID}), the SSH key and known_hosts are the`,
        '# playground’s own, and PATH gets igpu-split and the demo’s talosctl stand-in.',
        ...Object.entries(env).map(([name, value]) => `export ${name}=${quoted(value)}`),
        `export PATH=${quoted(`${launcherDir()}:${bin}`)}:"$PATH"`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    return {
      dir,
      envFile,
      sourceLine: `. ${/^[\w./-]+$/.test(envFile) ? envFile : quoted(envFile)}`,
      labFile: demo.labFile,
      demo,
      close: async (options = {}) => {
        await Promise.all(servers.map((server) => server.close()));
        await demo.close(options);
      },
    };
  } catch (error) {
    // expected: anything — what was started is stopped, the folder removed, and the error rethrown
    await Promise.all(servers.map((server) => server.close()));
    await demo.close();
    throw error;
  }
}

/** The repository's bin/, where the `igpu-split` launcher lives (it picks the Node set-up installed). */
function launcherDir(): string {
  return fileURLToPath(new URL('../../bin', import.meta.url));
}

/** `bin/talosctl`: runs the stand-in (src/sim/talosctl-main) with this Node for the demo's node. */
async function writeTalosctl(bin: string, stateFile: string): Promise<void> {
  // From dist/ the compiled file runs; from the sources (tests), the .ts file.
  const main = fileURLToPath(
    new URL(`../sim/talosctl-main${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url),
  );
  const file = join(bin, 'talosctl');
  await writeFile(
    file,
    [
      '#!/bin/sh',
      '# igpu-split demo stand-in for talosctl (src/sim/talosctl.ts): answers only what igpu-split runs.',
      `IGPU_SPLIT_DEMO_TALOS_NODE=${quoted(DEMO_TALOS_NODE)} IGPU_SPLIT_DEMO_TALOS_VERSION=${quoted(DEMO_TALOS_VERSION)} \\`,
      `IGPU_SPLIT_DEMO_TALOS_STATE=${quoted(stateFile)} exec ${quoted(process.execPath)} ${quoted(main)} "$@"`,
      '',
    ].join('\n'),
  );
  await chmod(file, 0o755);
}
