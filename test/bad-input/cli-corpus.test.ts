// The bad-input corpus, run as a user would: the built CLI in a child process, each case
// with its own simulators and files (cases.ts). A case is wrong when its exit code or its
// line differs from what it records, a hang when it runs past 30 s, a crash on a stack
// trace (without --debug) or an exit code outside 0–3. Every output and every file the
// tool wrote (archives unpacked) is searched for the planted secrets in all their forms.
// BENCHMARKS.md reports the counts this prints.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { extract } from 'tar';
import { buildProgram } from '../../src/cli/program.ts';
import { bounded } from '../../src/core/bounded.ts';
import { startSshd } from '../support/sshd.ts';
import { TALOSCTL_STAND_IN } from '../support/talosctl.ts';
import { type CliCase, cases, EXIT_CLASSES, type Step } from './cases.ts';
import {
  allLeakForms,
  type CaseLab,
  type Misbehaving,
  makeSecrets,
  SECRET_ENV,
  type Secrets,
  startCaseLab,
  startMisbehaving,
} from './world.ts';

const BIN = fileURLToPath(new URL('../../bin/igpu-split.js', import.meta.url));
const HANG_MS = 30_000;

let root: string;
let secrets: Secrets;
let bad: Misbehaving;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'igpu-corpus-'));
  secrets = await makeSecrets();
  bad = await startMisbehaving();
});
after(async () => {
  await bad.close();
  await rm(root, { recursive: true, force: true });
});

interface StepResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  hung: boolean;
}

const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;

function run(
  step: Step,
  cwd: string,
  env: NodeJS.ProcessEnv,
  whileAsking: () => Promise<void>,
): Promise<StepResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    // A question needs a terminal: util-linux script gives the command one (its output then
    // comes on stdout, stderr included) and the answer is typed once the question shows.
    const argv = [process.execPath, BIN, ...step.args];
    const child =
      step.answer === undefined
        ? spawn(process.execPath, argv.slice(1), {
            cwd,
            env,
            stdio: ['ignore', step.stdoutTo ? openSync(step.stdoutTo, 'w') : 'pipe', 'pipe'],
          })
        : spawn('script', ['-qec', `stty cols 120 rows 40; exec ${argv.map(quote).join(' ')}`, '/dev/null'], {
            cwd,
            env,
            stdio: ['pipe', 'pipe', 'pipe'],
          });
    let stdout = '';
    let stderr = '';
    let hung = false;
    let answered = false;
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (step.answer !== undefined && !answered && stdout.includes('[y/N]')) {
        answered = true;
        whileAsking().then(
          () => child.stdin?.write(step.answer),
          (error: unknown) => reject(error),
        );
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const hang = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, HANG_MS);
    const signal = step.signal
      ? setTimeout(() => child.kill(step.signal?.name), step.signal.afterMs)
      : undefined;
    child.once('error', reject);
    child.once('close', (code, killed) => {
      clearTimeout(hang);
      clearTimeout(signal);
      resolve({ code, signal: killed, stdout, stderr, ms: Date.now() - started, hung });
    });
  });
}

/** Every file under `dir` except those the case wrote itself, archives unpacked. */
async function writtenFiles(dir: string, planted: Set<string>): Promise<{ path: string; text: string }[]> {
  const found: { path: string; text: string }[] = [];
  const walk = async (folder: string) => {
    for (const entry of await readdir(folder, { withFileTypes: true }).catch(() => [])) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile() && !planted.has(path)) {
        found.push({ path, text: await readFile(path, 'latin1') });
        if (/\.(tar\.gz|tgz)$/.test(entry.name)) {
          const unpacked = `${path}.unpacked`;
          await mkdir(unpacked, { recursive: true });
          await extract({ file: path, cwd: unpacked }).catch(() => undefined);
          await walk(unpacked);
        }
      }
    }
  };
  await walk(dir);
  return found;
}

/** Real sshd needs root and openssh-server (.ci/run installs it); without, those cases are skipped. */
function sshdMissing(): string | undefined {
  if (!existsSync('/usr/sbin/sshd')) return '/usr/sbin/sshd is missing (apt-get install openssh-server)';
  if (process.getuid?.() !== 0) return 'the test sshd needs root for its chroot';
  return undefined;
}

const STACK = /^\s+at .+(:\d+:\d+\)?|\(native\)|<anonymous>\)?)$/m;

/** Sentences of Node and the libraries underneath, which must be put in our words first. */
const LIBRARY_TEXT =
  /--use-system-ca|Cannot read properties|is not valid JSON|Unexpected token|UND_ERR_|Failed to fetch resource metadata|Parse Error:/;

interface Outcome {
  name: string;
  topic: string;
  problems: string[];
  kind: 'ok' | 'wrong' | 'hang' | 'crash';
  leaks: string[];
  ms: number;
}

async function runCase(item: CliCase, index: number): Promise<Outcome> {
  const dir = join(
    root,
    `${String(index).padStart(3, '0')}-${item.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`,
  );
  const home = join(dir, 'home');
  await mkdir(home, { recursive: true });
  await mkdir(join(dir, 'tmp'));
  const lab: CaseLab | undefined = item.lab
    ? await startCaseLab(join(dir, 'lab'), secrets, item.lab)
    : undefined;
  const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
  const sshd = item.sshd
    ? await startSshd(join(fixtures, item.sshd.tree), { shell: true, standIns: item.sshd.standIns })
    : undefined;
  const planted = new Set<string>();
  const bin = join(dir, 'bin');
  if (item.talosctl) {
    await mkdir(bin, { recursive: true });
    await writeFile(join(bin, 'talosctl'), TALOSCTL_STAND_IN, { mode: 0o755 });
    planted.add(join(bin, 'talosctl'));
  }
  const context = {
    dir,
    home,
    lab,
    sshd,
    bad,
    secrets,
    write: async (name: string, content: string | Buffer) => {
      const path = join(dir, name);
      await mkdir(join(path, '..'), { recursive: true });
      await writeFile(path, content, { mode: 0o600 });
      planted.add(path);
      return path;
    },
  };
  const problems: string[] = [];
  let kind: Outcome['kind'] = 'ok';
  let ms = 0;
  // What the tool printed, and apart (a case may pass a secret on purpose) each command.
  const outputs: string[] = [];
  const commands: string[] = [];
  try {
    await item.setup?.(context);
    if (lab) for (const file of [lab.labFile, lab.tokenFile, lab.kubeconfigFile]) planted.add(file);
    for (const step of item.steps(context)) {
      const env: NodeJS.ProcessEnv = {
        PATH: item.talosctl ? `${bin}:${process.env.PATH}` : process.env.PATH,
        HOME: home,
        LANG: 'C.UTF-8',
        TMPDIR: join(dir, 'tmp'),
        [SECRET_ENV]: secrets.tokenEnv,
        ...step.env,
      };
      for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
      // Run from the case's own folder (not the lab file's: relative paths must follow the
      // lab file), so whatever the tool writes beside it is searched for leaks too.
      const result = await run(step, dir, env, () => step.whileAsking?.(context) ?? Promise.resolve());
      ms += result.ms;
      const text = `${result.stdout}\n${result.stderr}`;
      outputs.push(text);
      commands.push(`igpu-split ${step.args.join(' ')}`);
      const debug = step.args.includes('--debug');
      if (result.hung) {
        kind = 'hang';
        problems.push(`${step.args.join(' ')}: still running after ${HANG_MS / 1000} s`);
        break;
      }
      if (
        result.code === null ||
        result.code < 0 ||
        result.code > 3 ||
        (!debug && STACK.test(result.stderr))
      ) {
        kind = 'crash';
        problems.push(
          `${step.args.join(' ')}: exit ${result.code ?? result.signal}${STACK.test(result.stderr) ? ' with a stack trace' : ''}: ${result.stderr.slice(0, 400)}`,
        );
        break;
      }
      const library = LIBRARY_TEXT.exec(text);
      if (library) {
        kind = 'wrong';
        problems.push(
          `${step.args.join(' ')}: a library's own words reached the user (${library[0]}): ${text.trim().slice(-600)}`,
        );
        break;
      }
      if (result.code !== step.code || !step.line.test(text)) {
        kind = 'wrong';
        problems.push(
          `${step.args.join(' ')}: exit ${result.code} (want ${step.code}), ${step.line.test(text) ? 'line ok' : `no line matching ${step.line}`}: ${text.trim().slice(-600)}`,
        );
        break;
      }
      const extra = await step.check?.(context);
      if (extra) {
        kind = 'wrong';
        problems.push(`${step.args.join(' ')}: ${extra}`);
        break;
      }
    }
  } finally {
    await lab?.close();
    await sshd?.stop();
  }
  const files = await writtenFiles(dir, planted);
  const leaks: string[] = [];
  // The CLI replaces a secret it knows by [secret] as a last guard: the mark itself means
  // a message tried to carry one.
  outputs.forEach((output, i) => {
    if (output.includes('[secret]')) leaks.push(`a redacted secret in the output of ${commands[i]}`);
  });
  // The forms are lower case: a secret upper-cased is found too.
  const foldedOutputs = outputs.map((output) => output.toLowerCase());
  const foldedFiles = files.map((file) => ({ path: file.path, text: file.text.toLowerCase() }));
  for (const { secret, forms } of allLeakForms(secrets)) {
    foldedOutputs.forEach((output, i) => {
      if (forms.some((form) => output.includes(form)))
        leaks.push(`${secret} in the output of ${commands[i]}`);
    });
    for (const file of foldedFiles)
      if (forms.some((form) => file.text.includes(form)))
        leaks.push(`${secret} in ${relative(dir, file.path)}`);
  }
  return { name: item.name, topic: item.topic, problems, kind, leaks, ms };
}

test('the bad-input corpus: no crash, no hang, no wrong answer, no secret anywhere', {
  timeout: 900_000,
}, async (t) => {
  const all = cases();
  const names = new Set<string>();
  for (const item of all) {
    assert.ok(!names.has(item.name), `two cases are called ${item.name}`);
    names.add(item.name);
  }
  const noSshd = sshdMissing();
  if (noSshd && process.env.CI) throw new Error(`CI must run the SSH cases: ${noSshd}`);
  // IGPU_SPLIT_CORPUS_ONLY=<regex> runs only the cases whose names match (while working on them).
  const only = process.env.IGPU_SPLIT_CORPUS_ONLY;
  const runnable = all.filter(
    (item) => !(item.sshd && noSshd) && (only === undefined || new RegExp(only).test(item.name)),
  );
  if (runnable.length < all.length)
    t.diagnostic(
      `${all.length - runnable.length} cases skipped: ${only !== undefined ? `names not matching ${only}` : noSshd}`,
    );
  const outcomes = await bounded(runnable, 6, (item) => runCase(item, all.indexOf(item)));
  const count = (kind: Outcome['kind']) => outcomes.filter((o) => o.kind === kind).length;
  const leaks = outcomes.flatMap((o) => o.leaks.map((leak) => `${o.name}: ${leak}`));
  const slowest = outcomes.reduce((a, b) => (b.ms > a.ms ? b : a));
  const topics = [...new Set(all.map((c) => c.topic))]
    .map((topic) => `${topic} ${all.filter((c) => c.topic === topic).length}`)
    .join(', ');
  const steps = all.reduce((n, c) => n + c.covers.length, 0);
  t.diagnostic(`bad-input corpus: ${all.length} cases, ${steps} commands run; by topic: ${topics}`);
  t.diagnostic(
    `crashes ${count('crash')}, hangs ${count('hang')}, wrong answers ${count('wrong')}, secrets found ${leaks.length}; slowest case ${slowest.name} ${(slowest.ms / 1000).toFixed(1)} s`,
  );
  const failures = outcomes
    .filter((o) => o.kind !== 'ok')
    .map((o) => `${o.kind}: ${o.name}: ${o.problems.join('; ')}`);
  assert.deepEqual([...failures, ...leaks], []);
});

/** The README's table of which command ends in which codes, as command → codes. */
function readmeExitTable(readme: string): Record<string, number[]> {
  const table: Record<string, number[]> = {};
  const section = readme.slice(readme.search(/^\| command +\| can end in +\|$/m));
  for (const row of section.split('\n').slice(2)) {
    if (!row.startsWith('|')) break;
    const [commands, codes] = row.split(/(?<!\\)\|/).slice(1, 3) as [string, string];
    for (const written of commands.match(/`[^`]+`/g) ?? []) {
      const [head, ...alternatives] = written.slice(1, -1).split('\\|');
      const words = (head as string).split(' ');
      const group = words.length > 1 ? `${words.slice(0, -1).join(' ')} ` : '';
      for (const name of [words[words.length - 1], ...alternatives])
        table[`${group}${name}`] = codes.trim().split(' ').map(Number);
    }
  }
  return table;
}

test('every command has a case of each exit class it can end in, as the README says', async () => {
  const readme = await readFile(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
  assert.deepEqual(readmeExitTable(readme), EXIT_CLASSES, 'README "Exit codes" and EXIT_CLASSES agree');
  const program = await buildProgram();
  const commands: string[] = [];
  const walk = (command: typeof program, prefix: string) => {
    for (const sub of command.commands) {
      const name = `${prefix}${sub.name()}`;
      if (sub.commands.length > 0) walk(sub, `${name} `);
      else commands.push(name);
    }
  };
  walk(program, '');
  assert.deepEqual(Object.keys(EXIT_CLASSES).sort(), commands.sort(), 'EXIT_CLASSES lists every command');
  const covered = cases().flatMap((c) => c.covers);
  const missing: string[] = [];
  for (const [command, codes] of Object.entries(EXIT_CLASSES)) {
    for (const code of codes)
      if (!covered.some((c) => c.command === command && c.code === code))
        missing.push(`${command} → ${code}`);
  }
  assert.deepEqual(missing, []);
  const unknown = covered.filter(
    (c) => !(c.command in EXIT_CLASSES) || !EXIT_CLASSES[c.command]?.includes(c.code),
  );
  assert.deepEqual(unknown, [], 'a case expects an exit code its command is not listed for');
});
