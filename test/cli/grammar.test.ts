// One grammar across commands, read from commander's command tree (every command loaded):
// an option means the same, reads the same and has the same default wherever it appears;
// every command that changes something asks unless --yes, and --json without --yes is
// refused before anything is opened; --lab reaches the host commands; the same refusal
// exits the same way everywhere.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Command, Option } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { EXIT, RefusedError } from '../../src/core/errors.ts';
import { runCli } from '../support/cli.ts';

/**
 * Options whose meaning is each command's own, by design: `--out` names what the command
 * writes (a lab file, an archive, a folder of files); init's `--vm` also gives each VM's
 * OS (`101:ubuntu`), since init writes the lab file the other commands read.
 */
const OWN_MEANING: Record<string, (path: string) => boolean> = {
  '--out': () => true,
  '--vm': (path) => path === 'init',
};

/** Every command of the tree with its path (`host apply`), leaves and groups alike. */
function commands(root: Command): { path: string; command: Command }[] {
  const found: { path: string; command: Command }[] = [];
  const walk = (command: Command, path: string[]) => {
    for (const sub of command.commands) {
      const here = [...path, sub.name()];
      found.push({ path: here.join(' '), command: sub });
      walk(sub, here);
    }
  };
  walk(root, []);
  return found;
}

const tree = commands(await buildProgram());
const leaves = tree.filter(({ command }) => command.commands.length === 0);
const has = (command: Command, long: string) => command.options.some((o) => o.long === long);
/** Commands that change something, by their verb: whatever their layer. */
const CHANGING = /(^| )(apply|rollback|drain|uncordon)$/;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'igpu-grammar-'));
});
after(() => rm(dir, { recursive: true, force: true }));

test('the tree is walked: every command of --help is here', () => {
  const paths = tree.map((c) => c.path);
  for (const path of [
    'plan',
    'apply',
    'host apply',
    'host rollback',
    'cluster drain',
    'guest render',
    'doctor',
  ])
    assert.ok(paths.includes(path), path);
  assert.ok(leaves.length >= 30, String(leaves.length));
});

test('an option of the same name has the same flags, default and help in every command', () => {
  const seen = new Map<string, { path: string; option: Option }>();
  const differences: string[] = [];
  for (const { path, command } of leaves) {
    for (const option of command.options) {
      const name = option.long ?? option.flags;
      if (OWN_MEANING[name]?.(path)) continue;
      const first = seen.get(name);
      if (!first) {
        seen.set(name, { path, option });
        continue;
      }
      for (const key of ['flags', 'defaultValue', 'description'] as const) {
        if (JSON.stringify(first.option[key]) !== JSON.stringify(option[key]))
          differences.push(
            `${name} ${key}: ${first.path} ${JSON.stringify(first.option[key])} ≠ ${path} ${JSON.stringify(option[key])}`,
          );
      }
    }
  }
  assert.deepEqual(differences, []);
  // The shared ones are there at all (a rename would otherwise pass unnoticed).
  for (const name of [
    '--lab',
    '--json',
    '--yes',
    '--connect-timeout',
    '--request-timeout',
    '--reboot-timeout',
  ])
    assert.ok(seen.has(name), name);
  assert.equal(seen.get('--reboot-timeout')?.option.defaultValue, 900);
});

test('every command that changes something asks unless --yes, and only those take --yes', () => {
  const changing = leaves.filter(({ path }) => CHANGING.test(path)).map((c) => c.path);
  assert.ok(changing.includes('host rollback') && changing.includes('cluster uncordon'), changing.join(', '));
  assert.deepEqual(
    leaves.filter(({ command }) => has(command, '--yes')).map((c) => c.path),
    changing,
  );
  for (const { path, command } of leaves.filter((c) => CHANGING.test(c.path)))
    assert.match(command.description(), /asks unless --yes/, path);
});

test('--json without --yes is refused (exit 2) by every command that changes something, before anything is opened', async () => {
  for (const { path, command } of leaves.filter(({ command }) => has(command, '--yes'))) {
    // Required options get a value: the guard must answer, not commander.
    const required = command.options.filter((o) => o.mandatory).flatMap((o) => [o.long as string, 'x']);
    const result = await runCli([
      ...path.split(' '),
      ...required,
      '--json',
      '--lab',
      join(dir, 'no-such-lab.yaml'),
    ]);
    assert.equal(result.code, EXIT.usage, `${path}: ${result.stderr}`);
    assert.match(result.stderr, /--json needs --yes: there is no prompt in JSON mode/, path);
    assert.equal(result.stdout, '', path);
  }
});

test('--parallel only where hosts are worked on at once: plan and apply', () => {
  assert.deepEqual(
    leaves.filter(({ command }) => has(command, '--parallel')).map((c) => c.path),
    ['plan', 'apply'],
  );
});

test('every command that reads a host by --host also takes --lab', () => {
  const hostCommands = leaves.filter(({ command }) => has(command, '--host'));
  assert.ok(hostCommands.length >= 6, hostCommands.map((c) => c.path).join(', '));
  for (const { path, command } of hostCommands) assert.ok(has(command, '--lab'), path);
});

test('status --mermaid --json is refused (exit 2): one output cannot hold the other', async () => {
  const result = await runCli(['status', '--mermaid', '--json', '--lab', join(dir, 'no-such-lab.yaml')]);
  assert.equal(result.code, EXIT.usage);
  assert.match(result.stderr, /--mermaid and --json exclude each other/);
  assert.equal(result.stdout, '');
});

test('host commands find a host of the lab file by its node: name, and every host without --host', async () => {
  const lab = join(dir, 'igpu-split.yaml');
  await writeFile(
    lab,
    `proxmox: { url: "https://127.0.0.1:1", token: "a@pam!b", tokenSecretEnv: NONE }
hosts:
  - { node: pve1, ssh: "ssh://root@127.0.0.1:1" }
  - { node: pve2 }
vms: [{ vmid: 101, host: pve1, os: ubuntu }]
`,
  );
  const env = { ...process.env, SSH_AUTH_SOCK: '/nonexistent/agent.sock' };
  const kh = ['--known-hosts', join(dir, 'known_hosts')];
  // By name: the lab file's ssh: URL is what is reached.
  for (const command of [['host', 'plan'], ['host', 'verify'], ['doctor'], ['host', 'apply', '--yes']]) {
    const byName = await runCli([...command, '--lab', lab, '--host', 'pve1', ...kh], env);
    assert.equal(byName.code, EXIT.usage, command.join(' '));
    assert.match(
      byName.stderr,
      /ssh:\/\/root@127\.0\.0\.1:1: connection refused by 127\.0\.0\.1:1/,
      command.join(' '),
    );
  }
  const unknown = await runCli(['host', 'plan', '--lab', lab, '--host', 'pve9']);
  assert.match(unknown.stderr, /--host pve9: no host of that node: name in .*igpu-split\.yaml/);
  const noSsh = await runCli(['host', 'verify', '--lab', lab, '--host', 'pve2']);
  assert.match(noSsh.stderr, /host pve2 has no ssh: in .*igpu-split\.yaml — add ssh:/);
  // Without --host: every host of the lab — each one's ssh: is checked before any is reached…
  const early = await runCli(['host', 'plan', '--lab', lab, ...kh], env);
  assert.match(early.stderr, /host pve2 has no ssh:/);
  assert.equal(early.stdout, '');
  // …then each in order (the first one stops it here).
  const both = join(dir, 'both.yaml');
  await writeFile(
    both,
    (await readFile(lab, 'utf8')).replace('{ node: pve2 }', '{ node: pve2, ssh: "ssh://root@127.0.0.1:2" }'),
  );
  const all = await runCli(['host', 'plan', '--lab', both, ...kh], env);
  assert.match(all.stdout, /^host pve1\n/);
  assert.match(all.stderr, /127\.0\.0\.1:1: connection refused/);
  // A command that changes hosts needs one named, when no lab file is here.
  const none = await runCli(['host', 'rollback', '--yes', '--lab', join(dir, 'none.yaml')]);
  assert.equal(none.code, EXIT.usage);
  assert.match(none.stderr, /cannot read lab file .*none\.yaml/);
});

test('a refused plan exits 1 wherever it is met: the Ubuntu guest apply refuses as guest plan does', async () => {
  const { applyUbuntuPlan } = await import('../../src/guest/ubuntu/apply.ts');
  const refused = { refused: 'Debian GNU/Linux 12 (bookworm) is not Ubuntu', checks: [], steps: [] };
  await assert.rejects(
    applyUbuntuPlan({ target: 'ssh://ubuntu@k3s-1' } as never, refused as never, {} as never),
    (error: unknown) => error instanceof RefusedError && error.exitCode === EXIT.checkFailed,
  );
});
