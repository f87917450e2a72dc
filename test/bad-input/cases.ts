// The cases of the bad-input corpus: what a user (or an attacker) might feed igpu-split,
// each with the exit code and the line it must answer with. Grouped by what issue 12
// asks of them: secrets, paths, damaged hosts, servers that do not answer, size and shape,
// options, the lab lock — plus one case per command and exit class (README, "Exit codes").

import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lockLine } from '../../src/engine/lock-holder.ts';
import type { KubeSimulatorOptions } from '../../src/sim/kube/server.ts';
import { KINDS } from '../../src/sim/kube/store.ts';
import { fixturePath } from '../support/fixtures.ts';
import { uhd630Entry } from '../support/simulator.ts';
import type { TestSshd } from '../support/sshd.ts';
import {
  type CaseLab,
  ECHO_FORMS,
  type EchoForm,
  ENV_TOKEN_ID,
  hostCopy,
  type Misbehaving,
  SECRET_ENV,
  type Secrets,
  TOKEN_ID,
} from './world.ts';

export type Topic =
  | 'secrets'
  | 'paths'
  | 'damaged-host'
  | 'servers'
  | 'size-and-shape'
  | 'options'
  | 'lock'
  | 'exit-codes'
  | 'stranger';

export interface CaseContext {
  dir: string;
  home: string;
  lab?: CaseLab;
  /** A fake host over real sshd, when the case asks for one. */
  sshd?: TestSshd;
  bad: Misbehaving;
  secrets: Secrets;
  /** Writes a file of the case's own (never searched for leaks), returning its path. */
  write(name: string, content: string | Buffer): Promise<string>;
}

export interface Step {
  args: string[];
  env?: Record<string, string | undefined>;
  /** A signal sent this long after the start (the process must still say what it leaves). */
  signal?: { name: NodeJS.Signals; afterMs: number };
  /** Run on a terminal (util-linux script), typing this at the [y/N] question. */
  answer?: string;
  /** Done while the question is open, before the answer is typed. */
  whileAsking?: (context: CaseContext) => Promise<void>;
  /** Standard output goes to this file (e.g. /dev/full) instead of being read. */
  stdoutTo?: string;
  code: 0 | 1 | 2 | 3;
  /** Matched against stdout and stderr together. */
  line: RegExp;
  /** More to check after the step; returns what is wrong, if anything. */
  check?: (context: CaseContext) => Promise<string | undefined>;
}

export interface CliCase {
  name: string;
  topic: Topic;
  /** Each step's command (as typed after `igpu-split`, e.g. `host plan`) and the exit code it expects. */
  covers: { command: string; code: number }[];
  lab?: { i440fx?: boolean; talos?: boolean; kube?: Pick<KubeSimulatorOptions, 'version' | 'features'> };
  /** A captured tree (under test/fixtures) to serve over a real sshd (needs root; skipped, saying so, without). */
  sshd?: { tree: string; standIns?: Record<string, string> };
  /** The recording talosctl stand-in on PATH (test/support/talosctl.ts). */
  talosctl?: boolean;
  setup?: (context: CaseContext) => Promise<void>;
  steps: (context: CaseContext) => Step[];
}

/** Every command and the exit classes it can end in; each pair has a case below. */
export const EXIT_CLASSES: Record<string, number[]> = {
  demo: [0, 2],
  init: [0, 2],
  plan: [0, 1, 2],
  apply: [0, 1, 2, 3],
  verify: [0, 1, 2, 3],
  status: [0, 2],
  rollback: [0, 1, 2],
  doctor: [0, 1, 2],
  capture: [0, 2],
  'host plan': [0, 1, 2],
  'host apply': [0, 1, 2, 3],
  'host verify': [0, 1, 2],
  'host rollback': [0, 1, 2],
  'mapping plan': [0, 1, 2],
  'mapping apply': [0, 1, 2],
  'mapping rollback': [0, 1, 2],
  'vm plan': [0, 1, 2],
  'vm apply': [0, 1, 2],
  'vm verify': [0, 1, 2],
  'vm rollback': [0, 1, 2],
  'guest plan': [0, 1, 2],
  'guest apply': [0, 1, 2, 3],
  'guest verify': [0, 1, 2],
  'guest render': [0, 2],
  'cluster plan': [0, 1, 2],
  'cluster apply': [0, 1, 2],
  'cluster verify': [0, 1, 2],
  'cluster rollback': [0, 1, 2],
  'cluster render': [0, 2],
  'cluster drain': [0, 1, 2],
  'cluster uncordon': [0, 1, 2],
};

// A context with stand-in values, to read each case's exit codes without running it.
const PLACEHOLDER: CaseContext = {
  dir: '/case',
  home: '/case/home',
  bad: {
    silentPort: 1,
    htmlUrl: 'https://127.0.0.1:2',
    htmlCa: '',
    httpUrl: 'http://127.0.0.1:3',
    closedPort: 4,
    endlessUrl: 'https://127.0.0.1:8',
    trickleUrl: 'https://127.0.0.1:9',
    muteUrl: 'https://127.0.0.1:10',
    oddUrl: 'https://127.0.0.1:11',
    echoUrls: Object.fromEntries(
      Object.keys(ECHO_FORMS).map((form) => [form, 'https://127.0.0.1:12']),
    ) as Record<EchoForm, string>,
    otherJsonUrl: 'https://127.0.0.1:13',
    close: async () => {},
  },
  secrets: {
    tokenFile: 'a',
    tokenEnv: 'b',
    kubeToken: 'c',
    clientKeyData: 'd',
    clientCertData: 'e',
    password: 'f',
    execToken: 'g',
  },
  lab: {
    dir: '/case/lab',
    labFile: '/case/lab/igpu-split.yaml',
    tokenFile: '/case/lab/token',
    kubeconfigFile: '/case/lab/kubeconfig',
    pve: { url: 'https://127.0.0.1:5', fingerprint: 'AB' },
    kube: { url: 'https://127.0.0.1:6', kubeconfig: '' },
    factory: { url: 'http://127.0.0.1:7' },
    labText: () => '',
  } as unknown as CaseLab,
  sshd: {
    host: '10.254.0.2',
    treePort: 2201,
    shellPort: 2202,
    identityFile: '/case/id',
    knownHostsFile: '/case/known_hosts',
  } as unknown as TestSshd,
  write: async (name) => `/case/${name}`,
};

const GROUPS = new Set(['host', 'mapping', 'vm', 'guest', 'cluster']);

/** The command a step runs: the first word, or two for a command group (global flags skipped). */
export function commandOf(args: readonly string[]): string {
  const words = args.filter((a) => a !== '--debug');
  const [first, second] = words;
  return GROUPS.has(first ?? '') ? `${first} ${second}` : (first ?? '');
}

function kase(item: Omit<CliCase, 'covers'>): CliCase {
  return {
    ...item,
    covers: item.steps(PLACEHOLDER).map((s) => ({ command: commandOf(s.args), code: s.code })),
  };
}

const labOf = (c: CaseContext) => c.lab as CaseLab;
/** The key and known hosts of the case's fake host. */
const keys = (c: CaseContext) => {
  const sshd = c.sshd as TestSshd;
  return ['--identity', sshd.identityFile, '--known-hosts', sshd.knownHostsFile];
};
/** The options that reach the case's fake host. */
const ssh = (c: CaseContext) => {
  const sshd = c.sshd as TestSshd;
  return ['--host', `ssh://root@${sshd.host}:${sshd.treePort}`, ...keys(c)];
};
const L = (c: CaseContext) => ['--lab', labOf(c).labFile];
/** A variant of the case's lab file, beside it (so its relative paths still resolve). */
const variant = (c: CaseContext, name: string, edit: (text: string) => string) =>
  c.write(`lab/${name}`, labOf(c).labText(edit));
const fixture = (name: string) => fixturePath(name);

/** The case's kubeconfig text, pointed at another server (trusting `ca` when given). */
async function kubeconfigAt(c: CaseContext, server: string, ca?: string) {
  const text = (await readFile(labOf(c).kubeconfigFile, 'utf8')).replace(
    /server: https:\/\/[^\n]+/,
    `server: ${server}`,
  );
  return ca
    ? text.replace(
        /certificate-authority-data: [^\n]+/,
        `certificate-authority-data: ${Buffer.from(ca).toString('base64')}`,
      )
    : text;
}

/**
 * The kubeconfig with its user's token replaced by an exec credential plugin. The shape:
 * client-go tools/clientcmd/api/v1/types.go ExecConfig at v0.34.10; interactiveMode is
 * required for client.authentication.k8s.io/v1 (tools/clientcmd/validation.go). The
 * plugin's answer, an ExecCredential: pkg/apis/clientauthentication/v1 at the same tag.
 */
const withExecPlugin = (kubeconfig: string, command: string) =>
  kubeconfig.replace(
    /^( {4})token: .*$/m,
    `$1exec:\n$1  apiVersion: client.authentication.k8s.io/v1\n$1  command: ${command}\n$1  interactiveMode: Never`,
  );

/** Points the case's own kubeconfig at another server. */
const repointKubeconfig = async (c: CaseContext, server: string, ca?: string) =>
  writeFile(labOf(c).kubeconfigFile, await kubeconfigAt(c, server, ca));

/** The path of a lab file variant written in setup. */
const at = (c: CaseContext, name: string) => join(c.dir, 'lab', name);
/** A variant of the lab file whose Proxmox is another server, trusted through a CA file in the lab folder. */
const proxmoxAt = (c: CaseContext, name: string, url: string, caFile?: string) =>
  variant(c, name, (t) => {
    const moved = t.replace(/url: https:\/\/[^\n]+/, `url: ${url}`);
    return caFile ? moved.replace(/fingerprint: [^\n]+/, `caFile: ${caFile}`) : moved;
  });

/** No lock and no journal left next to the lab file. */
const nothingLeft = () => async (c: CaseContext) => {
  const dir = join(c.dir, 'lab', '.igpu-split');
  const left = ['lock', 'journal.json'].filter((name) => existsSync(join(dir, name)));
  return left.length > 0 ? `left behind in .igpu-split/: ${left.join(', ')}` : undefined;
};

const ONE_OF_RANGE = /must be a (whole )?(number|number of seconds|whole number of seconds) from \d+ to \d+/;

// ─── secrets ────────────────────────────────────────────────────────────────────────

function secretCases(): CliCase[] {
  const tokenFileCase = (
    name: string,
    content: (s: Secrets) => string | Buffer,
    line: RegExp,
    code: 0 | 2 = 2,
  ) =>
    kase({
      name: `token file ${name}`,
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await writeFile(labOf(c).tokenFile, content(c.secrets));
      },
      steps: (c) => [{ args: ['plan', ...L(c)], code, line }],
    });
  return [
    tokenFileCase(
      'with a note on a second line',
      (s) => `${s.tokenFile}\nfor the lab, made 2026-11\n`,
      /API token secret file token \(resolved to .*\/token\) has 2 lines/,
    ),
    tokenFileCase(
      'with the pveum table pasted',
      (s) =>
        `┌──────────────┬──────────────────────────────────────┐\n│ key          │ value                                │\n│ value        │ ${s.tokenFile} │\n└──────────────┴──────────────────────────────────────┘\n`,
      /has 4 lines; it must hold only the secret/,
    ),
    tokenFileCase(
      'with a NUL byte',
      (s) => Buffer.from(`${s.tokenFile}\0\n`),
      /has a character that cannot be in a token secret at position 37/,
    ),
    tokenFileCase('with CRLF and spaces', (s) => `  ${s.tokenFile}  \r\n`, /mapping iGPU/, 0),
    tokenFileCase('empty', () => '', /API token secret file .* is empty/),
    tokenFileCase(
      'of 10 KB',
      (s) => `${s.tokenFile}\n`.repeat(300),
      /is 11100 bytes; a token secret is one short line/,
    ),
    tokenFileCase(
      'in Latin-1',
      (s) => Buffer.concat([Buffer.from(s.tokenFile), Buffer.from([0xe9, 0x0a])]),
      /has a character that cannot be in a token secret/,
    ),
    kase({
      name: 'token file is a directory',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await rm(labOf(c).tokenFile);
        await mkdir(labOf(c).tokenFile);
      },
      steps: (c) => [
        { args: ['plan', ...L(c)], code: 2, line: /API token secret file token .* is a directory/ },
      ],
    }),
    kase({
      name: 'the secret itself pasted as tokenSecretFile',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await variant(c, 'pasted.yaml', (t) =>
          t.replace('tokenSecretFile: token', `tokenSecretFile: ${c.secrets.tokenFile}`),
        );
      },
      steps: (c) => [
        {
          args: ['vm', 'plan', '--lab', at(c, 'pasted.yaml')],
          code: 2,
          line: /the token secret file is named by what looks like the token secret itself, not a file name/,
        },
      ],
    }),
    kase({
      name: 'the token header pasted as the token id',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await variant(c, 'header.yaml', (t) =>
          t.replace(`token: ${TOKEN_ID}`, `token: "PVEAPIToken=${TOKEN_ID}=${c.secrets.tokenFile}"`),
        );
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'header.yaml')],
          code: 2,
          line: /proxmox\.token: must be an API token id USER@REALM!TOKENID/,
        },
      ],
    }),
    kase({
      name: 'token variable with a second line',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await variant(c, 'env.yaml', (t) =>
          t
            .replace('tokenSecretFile: token', `tokenSecretEnv: ${SECRET_ENV}`)
            .replace(`token: ${TOKEN_ID}`, `token: ${ENV_TOKEN_ID}`),
        );
      },
      steps: (c) => [
        {
          args: ['vm', 'plan', '--lab', at(c, 'env.yaml')],
          env: { [SECRET_ENV]: `${c.secrets.tokenEnv}\nsecond line` },
          code: 2,
          line: new RegExp(`environment variable ${SECRET_ENV} \\(the API token secret\\) has 2 lines`),
        },
        {
          args: ['mapping', 'plan', '--lab', at(c, 'env.yaml')],
          code: 0,
          line: /create cluster PCI mapping iGPU/,
        },
        {
          args: ['vm', 'plan', '--lab', at(c, 'env.yaml')],
          env: { [SECRET_ENV]: undefined },
          code: 2,
          line: new RegExp(`environment variable ${SECRET_ENV} \\(the API token secret\\) is not set`),
        },
      ],
    }),
    kase({
      name: 'a wrong secret, with --debug',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await writeFile(labOf(c).tokenFile, `${c.secrets.tokenEnv}\n`);
      },
      steps: (c) => [
        {
          args: ['vm', 'plan', ...L(c)],
          code: 2,
          line: /authentication failed for token igpu-split@pve!lab/,
        },
        {
          args: ['--debug', 'vm', 'plan', ...L(c)],
          code: 2,
          line: /authentication failed[^\n]*\n[\s\S]*at /,
        },
      ],
    }),
    kase({
      name: 'init refuses http:// before sending anything',
      topic: 'secrets',
      steps: (c) => [
        {
          args: [
            'init',
            '--url',
            c.bad.httpUrl,
            '--token',
            TOKEN_ID,
            '--token-secret-env',
            SECRET_ENV,
            '--out',
            join(c.dir, 'init.yaml'),
            '--vm',
            '101:ubuntu',
          ],
          code: 2,
          line: /the Proxmox URL http:\/\/127\.0\.0\.1:\d+ is not https:\/\/: the token secret would be sent in clear/,
          check: async (c) => (existsSync(join(c.dir, 'init.yaml')) ? 'init wrote a lab file' : undefined),
        },
      ],
    }),
    kase({
      name: 'a lab file with an http:// Proxmox URL',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await variant(c, 'http.yaml', (t) => t.replace(/url: https:\/\/[^\n]+/, `url: ${c.bad.httpUrl}`));
      },
      steps: (c) => [
        {
          args: ['status', '--lab', at(c, 'http.yaml')],
          code: 2,
          line: /proxmox\.url: must be an https:\/\/ URL/,
        },
      ],
    }),
    kase({
      name: 'an SR-IOV driver URL with a user and password in it',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await variant(
          c,
          'driver-url.yaml',
          (t) =>
            `${t}\nsriov:\n  hostDriver: { url: "https://user:hunter2-secret@example.invalid/i915-sriov-dkms_2026.05.06_amd64.deb" }\n`,
        );
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'driver-url.yaml')],
          code: 2,
          line: /sriov\.hostDriver\.url: holds a user or password/,
        },
      ],
    }),
    kase({
      name: 'SR-IOV lab keys: sr-iov spelled the old way, vfs out of range, a driver given twice',
      topic: 'size-and-shape',
      lab: {},
      setup: async (c) => {
        await variant(c, 'old-mode.yaml', (t) =>
          t.replace('  - node: pve1\n', '  - node: pve1\n    mode: sr-iov\n'),
        );
        await variant(c, 'vfs.yaml', (t) => t.replace('  - node: pve1\n', '  - node: pve1\n    vfs: 9\n'));
        await variant(
          c,
          'twice.yaml',
          (t) => `${t}\nsriov:\n  hostDriver: { file: a.deb, url: "https://example.invalid/a.deb" }\n`,
        );
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'vfs.yaml')],
          code: 2,
          line: /hosts\[0\]\.vfs: must be auto or a number of VFs from 1 to 7 \(an Intel iGPU offers at most 7\)/,
        },
        { args: ['plan', '--lab', at(c, 'twice.yaml')], code: 2, line: /give exactly one of file or url/ },
        {
          args: ['status', '--lab', at(c, 'old-mode.yaml')],
          code: 0,
          line: /mode sr-iov is now spelled sriov \(read as sriov\)/,
        },
      ],
    }),
    kase({
      name: 'NODE_TLS_REJECT_UNAUTHORIZED=0 with Proxmox trusted by nothing',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await variant(c, 'untrusted.yaml', (t) => t.replace(/ {2}fingerprint: [^\n]+\n/, ''));
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'untrusted.yaml')],
          env: { NODE_TLS_REJECT_UNAUTHORIZED: '0' },
          code: 2,
          line: /ignoring NODE_TLS_REJECT_UNAUTHORIZED=0[\s\S]*the server certificate is not trusted/,
        },
      ],
    }),
    kase({
      name: 'NODE_TLS_REJECT_UNAUTHORIZED=0 with a kubeconfig that does not trust the server',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        const text = await readFile(labOf(c).kubeconfigFile, 'utf8');
        await c.write('lab/kubeconfig-no-ca', text.replace(/ {4}certificate-authority-data: [^\n]+\n/, ''));
        await variant(c, 'no-ca.yaml', (t) =>
          t.replace('kubeconfig: kubeconfig', 'kubeconfig: kubeconfig-no-ca'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'no-ca.yaml')],
          env: { NODE_TLS_REJECT_UNAUTHORIZED: '0' },
          code: 2,
          line: /ignoring NODE_TLS_REJECT_UNAUTHORIZED=0[\s\S]*(self-signed|not trusted|unable to verify)/i,
        },
      ],
    }),
    kase({
      name: 'NODE_TLS_REJECT_UNAUTHORIZED=0 with an Image Factory nobody trusts',
      topic: 'secrets',
      lab: { talos: true },
      setup: async (c) => {
        await variant(c, 'factory.yaml', (t) =>
          t.replace(/imageFactory: [^\n]+/, `imageFactory: ${c.bad.htmlUrl}`),
        );
      },
      steps: (c) => [
        {
          args: ['guest', 'plan', '--vm', '102', '--lab', at(c, 'factory.yaml')],
          env: { NODE_TLS_REJECT_UNAUTHORIZED: '0' },
          code: 2,
          line: /ignoring NODE_TLS_REJECT_UNAUTHORIZED=0[\s\S]*GET \/versions: the server certificate is not trusted/,
        },
      ],
    }),
    kase({
      name: 'a kubeconfig that is not YAML, the token on the broken line',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        const text = await readFile(labOf(c).kubeconfigFile, 'utf8');
        await writeFile(
          labOf(c).kubeconfigFile,
          text.replace(`token: ${c.secrets.kubeToken}`, `token: ${c.secrets.kubeToken}: [`),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', ...L(c)],
          code: 2,
          line: /kubeconfig kubeconfig \(resolved to .*\):\d+:\d+: not valid YAML/,
        },
      ],
    }),
    kase({
      name: 'a kubeconfig broken inside client-key-data',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        const text = await readFile(labOf(c).kubeconfigFile, 'utf8');
        await writeFile(
          labOf(c).kubeconfigFile,
          text.replace(
            `client-key-data: ${c.secrets.clientKeyData}`,
            `client-key-data: "${c.secrets.clientKeyData}`,
          ),
        );
      },
      steps: (c) => [
        { args: ['cluster', 'verify', ...L(c)], code: 2, line: /kubeconfig .*:\d+:\d+: not valid YAML/ },
      ],
    }),
    kase({
      name: 'a kubeconfig whose users are not a list',
      topic: 'secrets',
      lab: {},
      setup: async (c) => {
        await writeFile(labOf(c).kubeconfigFile, `users: { token: ${c.secrets.kubeToken} }\n`);
      },
      steps: (c) => [
        { args: ['cluster', 'plan', ...L(c)], code: 2, line: /kubeconfig .*:1:8: users is not a list/ },
      ],
    }),
    kase({
      name: 'every command that reads secrets, with --json, prints none',
      topic: 'secrets',
      lab: {},
      steps: (c) => [
        { args: ['plan', '--json', ...L(c)], code: 0, line: /"mapping"/ },
        { args: ['apply', '--yes', '--json', '--no-verify', ...L(c)], code: 0, line: /"done"|"plan"/ },
        { args: ['status', '--json', ...L(c)], code: 0, line: /"node": "pve1"/ },
        { args: ['verify', '--json', '--no-smoke', ...L(c)], code: 0, line: /"links"/ },
        { args: ['cluster', 'render', '--out', join(c.dir, 'render'), ...L(c)], code: 0, line: /wrote / },
        { args: ['rollback', '--yes', '--json', ...L(c)], code: 0, line: /deleted mapping iGPU/ },
      ],
    }),
  ];
}

// ─── paths ──────────────────────────────────────────────────────────────────────────

function pathCases(): CliCase[] {
  return [
    kase({
      name: 'the README lab file: ~/ paths',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await c.write('home/.config/igpu-split/token', `${c.secrets.tokenFile}\n`);
        await c.write('home/.kube/config', await readFile(labOf(c).kubeconfigFile));
        await variant(c, 'tilde.yaml', (t) =>
          t
            .replace('tokenSecretFile: token', 'tokenSecretFile: ~/.config/igpu-split/token')
            .replace('kubeconfig: kubeconfig', 'kubeconfig: ~/.kube/config'),
        );
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'tilde.yaml')],
          code: 0,
          line: /1\. create cluster PCI mapping iGPU/,
        },
      ],
    }),
    kase({
      name: 'a ~ path that does not exist is named as written and as resolved',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await variant(c, 'tilde-missing.yaml', (t) =>
          t.replace('tokenSecretFile: token', 'tokenSecretFile: ~/nope/token'),
        );
      },
      steps: (c) => [
        {
          args: ['vm', 'plan', '--lab', at(c, 'tilde-missing.yaml')],
          code: 2,
          line: /cannot read the API token secret file ~\/nope\/token \(resolved to \/.*\/home\/nope\/token\): no such file/,
        },
      ],
    }),
    kase({
      name: "another user's ~name is refused",
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await variant(c, 'tilde-user.yaml', (t) =>
          t.replace('kubeconfig: kubeconfig', 'kubeconfig: ~root/.kube/config'),
        );
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'tilde-user.yaml')],
          code: 2,
          line: /kubernetes\.kubeconfig: only ~ and ~\/… are expanded/,
        },
      ],
    }),
    kase({
      name: 'relative paths are the lab folder’s, from any directory',
      topic: 'paths',
      lab: {},
      steps: (c) => [{ args: ['status', ...L(c)], code: 0, line: /pve1/ }],
    }),
    kase({
      name: 'a relative kubeconfig that is missing',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await variant(c, 'kube-missing.yaml', (t) =>
          t.replace('kubeconfig: kubeconfig', 'kubeconfig: cluster/admin.conf'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'kube-missing.yaml')],
          code: 2,
          line: /cannot read kubeconfig cluster\/admin\.conf \(resolved to \/.*\/lab\/cluster\/admin\.conf\): no such file/,
        },
      ],
    }),
    kase({
      name: 'a relative CA file that is missing',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await variant(c, 'ca-missing.yaml', (t) =>
          t.replace(/fingerprint: [^\n]+/, 'caFile: pve-root-ca.pem'),
        );
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', '--lab', at(c, 'ca-missing.yaml')],
          code: 2,
          line: /cannot read the CA file pve-root-ca\.pem \(resolved to .*\/lab\/pve-root-ca\.pem\): no such file/,
        },
      ],
    }),
    kase({
      name: 'a CA file that holds no certificate',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await c.write('lab/ca.pem', 'not a certificate\n');
        await variant(c, 'ca-bad.yaml', (t) => t.replace(/fingerprint: [^\n]+/, 'caFile: ca.pem'));
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', '--lab', at(c, 'ca-bad.yaml')],
          code: 2,
          line: /the CA file ca\.pem \(resolved to .*\) holds no PEM certificate/,
        },
      ],
    }),
    kase({
      name: 'KUBECONFIG lists a missing file, then a good one',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await variant(c, 'no-kube.yaml', (t) =>
          t.replace('  kubeconfig: kubeconfig\n', '  namespace: igpu-split\n'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'no-kube.yaml')],
          env: { KUBECONFIG: `${join(c.dir, 'nope.conf')}:${labOf(c).kubeconfigFile}` },
          code: 0,
          line: /igpu-split cluster plan/,
        },
      ],
    }),
    kase({
      name: 'KUBECONFIG merged as kubectl does: the first file’s current-context, the second’s context',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        const text = await readFile(labOf(c).kubeconfigFile, 'utf8');
        // The first file only points at a context; the second defines it (and another current-context).
        await c.write('first.conf', 'apiVersion: v1\nkind: Config\ncurrent-context: igpu-sim\n');
        await c.write('second.conf', text.replace('current-context: igpu-sim', 'current-context: elsewhere'));
        await variant(c, 'no-kube.yaml', (t) =>
          t.replace('  kubeconfig: kubeconfig\n', '  namespace: igpu-split\n'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'no-kube.yaml')],
          env: { KUBECONFIG: `${join(c.dir, 'first.conf')}::${join(c.dir, 'second.conf')}` },
          code: 0,
          line: /igpu-split cluster plan/,
        },
      ],
    }),
    kase({
      name: 'KUBECONFIG whose files are all missing',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await variant(c, 'no-kube.yaml', (t) =>
          t.replace('  kubeconfig: kubeconfig\n', '  namespace: igpu-split\n'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'uncordon', '--yes', '--node', 'k3s-1', '--lab', at(c, 'no-kube.yaml')],
          env: { KUBECONFIG: `${join(c.dir, 'a.conf')}:${join(c.dir, 'b.conf')}` },
          code: 2,
          line: /none of the kubeconfig files in KUBECONFIG \(.*a\.conf:.*b\.conf\) exists/,
        },
      ],
    }),
    kase({
      name: 'KUBECONFIG naming a directory',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await mkdir(join(c.dir, 'kube.d'));
        await variant(c, 'no-kube.yaml', (t) =>
          t.replace('  kubeconfig: kubeconfig\n', '  namespace: igpu-split\n'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'no-kube.yaml')],
          env: { KUBECONFIG: `${join(c.dir, 'kube.d')}:${labOf(c).kubeconfigFile}` },
          code: 2,
          line: /kubeconfig .*kube\.d is a directory/,
        },
      ],
    }),
    kase({
      name: 'a kubeconfig without current-context',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        const text = await readFile(labOf(c).kubeconfigFile, 'utf8');
        await writeFile(labOf(c).kubeconfigFile, text.replace('current-context: igpu-sim', ''));
      },
      steps: (c) => [
        {
          args: ['cluster', 'drain', '--yes', '--node', 'k3s-1', ...L(c)],
          code: 2,
          line: /kubeconfig kubeconfig \(resolved to .*\) has no current-context — set kubernetes\.context in the lab file to one of: igpu-sim/,
        },
      ],
    }),
    kase({
      name: 'a kubeconfig server over plain http',
      topic: 'paths',
      lab: {},
      setup: async (c) => {
        await repointKubeconfig(c, c.bad.httpUrl);
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', ...L(c)],
          code: 2,
          line: /cluster igpu-sim is reached over http, not https/,
        },
      ],
    }),
    kase({
      name: 'init writes paths that resolve to the same files from the lab folder',
      topic: 'paths',
      lab: {},
      steps: (c) => [
        {
          args: [
            'init',
            '--url',
            labOf(c).pve.url,
            '--token',
            TOKEN_ID,
            '--token-secret-file',
            // Relative to where init runs (the case folder), not to the new lab file.
            join('lab', 'token'),
            '--fingerprint',
            labOf(c).pve.fingerprint,
            '--out',
            join(c.dir, 'new', 'igpu-split.yaml'),
            '--vm',
            '101:ubuntu',
          ],
          code: 0,
          line: /wrote .*new\/igpu-split\.yaml: 1 host with an iGPU, 1 node VM/,
        },
        {
          args: ['mapping', 'plan', '--lab', join(c.dir, 'new', 'igpu-split.yaml')],
          code: 0,
          line: /create cluster PCI mapping iGPU/,
        },
      ],
    }),
  ];
}

// ─── damaged hosts ─────────────────────────────────────────────────────────────────

function damagedHostCases(): CliCase[] {
  const damaged = (
    name: string,
    base: string,
    damage: (root: string) => Promise<void>,
    command: 'host plan' | 'doctor' | 'host verify',
    code: 0 | 1 | 2,
    line: RegExp,
  ) =>
    kase({
      name,
      topic: 'damaged-host',
      setup: async (c) => {
        await damage(await hostCopy(base, c.dir));
      },
      steps: (c) => [{ args: [...command.split(' '), '--root', join(c.dir, base)], code, line }],
    });
  const gvt = 'i5-8500t-gvt';
  const before = 'i5-8500t-before';
  const sdboot = 'i7-6700k-sdboot';
  const dev = 'sys/bus/pci/devices/0000:00:02.0';
  return [
    damaged(
      '/etc/default/grub is a directory',
      before,
      async (r) => {
        await rm(join(r, 'etc/default/grub'));
        await mkdir(join(r, 'etc/default/grub'));
      },
      'host plan',
      1,
      /cannot plan: \/etc\/default\/grub: a directory, not a file/,
    ),
    damaged(
      'grub.d is a symbolic link loop',
      before,
      async (r) => {
        await rm(join(r, 'etc/default/grub.d'), { recursive: true, force: true });
        await symlink('grub.d', join(r, 'etc/default/grub.d'));
      },
      'host plan',
      1,
      /cannot plan: \/etc\/default\/grub\.d: a loop of symbolic links/,
    ),
    damaged(
      'a grub.d file that loops',
      before,
      async (r) => {
        await mkdir(join(r, 'etc/default/grub.d'), { recursive: true });
        await symlink('50-loop.cfg', join(r, 'etc/default/grub.d/50-loop.cfg'));
      },
      'host plan',
      1,
      /cannot plan: \/etc\/default\/grub\.d\/50-loop\.cfg: a loop of symbolic links/,
    ),
    damaged(
      '/etc/default/grub is binary',
      before,
      async (r) => {
        await writeFile(join(r, 'etc/default/grub'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3]));
      },
      'host plan',
      1,
      /cannot plan: \/etc\/default\/grub: not a text file/,
    ),
    damaged(
      'a two-line /etc/kernel/cmdline',
      sdboot,
      async (r) => {
        const line = (await readFile(join(r, 'etc/kernel/cmdline'), 'utf8')).trim();
        await writeFile(join(r, 'etc/kernel/cmdline'), `${line}\nquiet splash\n`);
      },
      'host plan',
      1,
      /cannot plan: \/etc\/kernel\/cmdline has 2 lines, and proxmox-boot-tool uses only the first/,
    ),
    damaged(
      '/etc/kernel/cmdline missing on systemd-boot',
      sdboot,
      async (r) => {
        await rm(join(r, 'etc/kernel/cmdline'));
      },
      'host plan',
      1,
      /cannot plan: \/etc\/kernel\/cmdline is missing/,
    ),
    damaged(
      '/etc/kernel/cmdline without root=',
      sdboot,
      async (r) => {
        await writeFile(join(r, 'etc/kernel/cmdline'), 'quiet\n');
      },
      'host plan',
      1,
      /has no root= parameter/,
    ),
    damaged(
      'the iGPU device id is 3 bytes',
      gvt,
      async (r) => {
        await writeFile(join(r, dev, 'device'), '0x3');
      },
      'host plan',
      1,
      /cannot plan: unknown device at 0000:00:02\.0: \/sys\/bus\/pci\/devices\/0000:00:02\.0\/device: not a PCI id .*\(its identity cannot be read\)/,
    ),
    damaged(
      'the iGPU device id is 3 bytes: doctor',
      gvt,
      async (r) => {
        await writeFile(join(r, dev, 'device'), '0x3');
      },
      'doctor',
      1,
      /FAIL\s+gpu\.intel-igpu\s+unknown device at 0000:00:02\.0: its identity cannot be read \(\/sys\/bus\/pci\/devices\/0000:00:02\.0\/device: not a PCI id/,
    ),
    damaged(
      'the iGPU vendor file is garbage',
      gvt,
      async (r) => {
        await writeFile(join(r, dev, 'vendor'), 'intel!\n');
      },
      'doctor',
      1,
      /WARN\s+host\.readable\s+\/sys\/bus\/pci\/devices\/0000:00:02\.0\/vendor: not a PCI id/,
    ),
    damaged(
      'the iGPU class is unreadable',
      gvt,
      async (r) => {
        await writeFile(join(r, dev, 'class'), Buffer.from([0, 0, 0]));
      },
      'host plan',
      1,
      /unknown device at 0000:00:02\.0/,
    ),
    damaged(
      'a device entry that is a file',
      gvt,
      async (r) => {
        await rm(join(r, 'sys/bus/pci/devices/0000:00:1f.0'), { recursive: true, force: true });
        await writeFile(join(r, 'sys/bus/pci/devices/0000:00:1f.0'), 'oops\n');
      },
      'doctor',
      0,
      /host\.readable\s+\/sys\/bus\/pci\/devices\/0000:00:1f\.0: a file, not a device folder/,
    ),
    damaged(
      'a driver link that loops',
      gvt,
      async (r) => {
        await rm(join(r, dev, 'driver'), { force: true });
        await symlink('driver', join(r, dev, 'driver'));
      },
      'doctor',
      1,
      /host\.readable\s+\/sys\/bus\/pci\/devices\/0000:00:02\.0\/driver: not a link into drivers\//,
    ),
    damaged(
      '/proc/cmdline is binary',
      before,
      async (r) => {
        await writeFile(join(r, 'proc/cmdline'), Buffer.from([0xff, 0xfe, 0, 0x41]));
      },
      'host plan',
      1,
      /cannot plan: \/proc\/cmdline: not a text file/,
    ),
    damaged(
      '/etc/modules-load.d is a file',
      before,
      async (r) => {
        await rm(join(r, 'etc/modules-load.d'), { recursive: true, force: true });
        await writeFile(join(r, 'etc/modules-load.d'), 'kvmgt\n');
      },
      'host plan',
      1,
      /cannot plan: \/etc\/modules-load\.d: a file, not a folder/,
    ),
    damaged(
      'proxmox-boot-uuids is a directory',
      sdboot,
      async (r) => {
        await rm(join(r, 'etc/kernel/proxmox-boot-uuids'), { force: true });
        await mkdir(join(r, 'etc/kernel/proxmox-boot-uuids'));
      },
      'host plan',
      1,
      /cannot plan: \/etc\/kernel\/proxmox-boot-uuids: a directory, not a file/,
    ),
    damaged(
      'no boot loader configuration at all',
      before,
      async (r) => {
        await rm(join(r, 'etc/default'), { recursive: true, force: true });
      },
      'host plan',
      1,
      /cannot plan: no boot loader configuration to change/,
    ),
    damaged(
      'cpuinfo is garbage',
      gvt,
      async (r) => {
        await writeFile(join(r, 'proc/cpuinfo'), 'processor\t: zero\n\0\0\0');
      },
      'doctor',
      1,
      /\/proc\/cpuinfo: not a text file/,
    ),
    damaged(
      'the resource file of the iGPU is garbage',
      gvt,
      async (r) => {
        await writeFile(join(r, dev, 'resource'), 'lots of text\n');
      },
      'doctor',
      0,
      /host\.readable\s+\/sys\/bus\/pci\/devices\/0000:00:02\.0\/resource: not a PCI resource table[\s\S]*gvt\.aperture\s+0000:00:02\.0: BAR 2 \(aperture\) not readable/,
    ),
    damaged(
      'the i915 enable_guc parameter is garbage',
      gvt,
      async (r) => {
        await writeFile(join(r, 'sys/module/i915/parameters/enable_guc'), 'garbage\n');
      },
      'host plan',
      1,
      /cannot plan: \/sys\/module\/i915\/parameters\/enable_guc: not a module parameter value \(Y, N or a number\)/,
    ),
    damaged(
      'the i915 enable_guc parameter is 0x3: doctor names it',
      gvt,
      async (r) => {
        await writeFile(join(r, 'sys/module/i915/parameters/enable_guc'), '0x3\n');
      },
      'doctor',
      0,
      /host\.readable\s+\/sys\/module\/i915\/parameters\/enable_guc: not a module parameter value/,
    ),
    damaged(
      'an mdev type whose counts are garbage',
      gvt,
      async (r) => {
        const type = join(r, dev, 'mdev_supported_types/i915-GVTg_V5_4');
        await writeFile(join(type, 'available_instances'), 'many\n');
        await writeFile(join(type, 'description'), 'a fine GPU\n');
      },
      'doctor',
      0,
      /i915-GVTg_V5_4\/available_instances: not a count[\s\S]*i915-GVTg_V5_4\/description: not a GVT-g type description|i915-GVTg_V5_4\/description: not a GVT-g type description[\s\S]*available_instances: not a count/,
    ),
    damaged(
      'a damaged tree: host verify',
      gvt,
      async (r) => {
        await writeFile(join(r, dev, 'device'), 'zzzz\n');
      },
      'host verify',
      1,
      /FAIL\s+gpu\.intel-igpu\s+unknown device at 0000:00:02\.0: its identity cannot be read \(\/sys\/bus\/pci\/devices\/0000:00:02\.0\/device: not a PCI id/,
    ),
    kase({
      name: 'a --root that is a symbolic link to the capture',
      topic: 'damaged-host',
      setup: async (c) => {
        await symlink(fixture(gvt), join(c.dir, 'capture-link'));
      },
      steps: (c) => [
        { args: ['doctor', '--root', join(c.dir, 'capture-link')], code: 0, line: /Mode\s+gvt-g/ },
      ],
    }),
    kase({
      name: 'over SSH: a grub.d link loop and modules-load.d a file are refused, not taken for absent',
      topic: 'damaged-host',
      sshd: { tree: 'hosts/i5-8500t-before' },
      setup: async (c) => {
        const root = (c.sshd as TestSshd).root;
        await rm(join(root, 'etc/default/grub.d'), { recursive: true, force: true });
        await symlink('grub.d', join(root, 'etc/default/grub.d'));
      },
      steps: (c) => [
        {
          args: ['host', 'plan', ...ssh(c)],
          code: 1,
          line: /cannot plan: \/etc\/default\/grub\.d: a symbolic link that leads nowhere/,
        },
      ],
    }),
    kase({
      name: 'over SSH: /etc/modules-load.d is a file',
      topic: 'damaged-host',
      sshd: { tree: 'hosts/i5-8500t-before' },
      setup: async (c) => {
        const root = (c.sshd as TestSshd).root;
        await rm(join(root, 'etc/modules-load.d'), { recursive: true, force: true });
        await writeFile(join(root, 'etc/modules-load.d'), 'kvmgt\n');
      },
      steps: (c) => [
        {
          args: ['host', 'plan', ...ssh(c)],
          code: 1,
          line: /cannot plan: \/etc\/modules-load\.d: a file, not a folder/,
        },
      ],
    }),
    kase({
      name: 'over SSH: /etc/default/grub is a directory, and the iGPU device id unreadable',
      topic: 'damaged-host',
      sshd: { tree: 'hosts/i5-8500t-gvt' },
      setup: async (c) => {
        const root = (c.sshd as TestSshd).root;
        await rm(join(root, 'etc/default/grub'));
        await mkdir(join(root, 'etc/default/grub'));
        await writeFile(join(root, 'sys/bus/pci/devices/0000:00:02.0/device'), '0x3');
      },
      steps: (c) => [
        { args: ['host', 'plan', ...ssh(c)], code: 1, line: /cannot plan: unknown device at 0000:00:02\.0/ },
        { args: ['doctor', ...ssh(c)], code: 1, line: /\/etc\/default\/grub: a directory, not a file/ },
      ],
    }),
    kase({
      name: 'over SSH: a pipe where /etc/default/grub should be neither blocks the session nor passes',
      topic: 'damaged-host',
      sshd: { tree: 'hosts/i5-8500t-gvt' },
      setup: async (c) => {
        const root = (c.sshd as TestSshd).root;
        await rm(join(root, 'etc/default/grub'));
        execFileSync('mkfifo', [join(root, 'etc/default/grub')]);
      },
      steps: (c) => [
        // sftp-server would block in open(2) on the pipe, and every later read behind it.
        {
          args: ['host', 'plan', ...ssh(c)],
          code: 1,
          line: /cannot plan: \/etc\/default\/grub: not a regular file \(a pipe or a device\)/,
        },
      ],
    }),
    kase({
      name: 'capture of a damaged host reads back the same',
      topic: 'damaged-host',
      setup: async (c) => {
        const root = await hostCopy(gvt, c.dir);
        await writeFile(join(root, dev, 'device'), '0x3');
      },
      steps: (c) => [
        {
          args: ['capture', '--root', join(c.dir, gvt), '--out', join(c.dir, 'host.tar.gz')],
          code: 0,
          line: /captured \d+ files/,
        },
      ],
    }),
  ];
}

// ─── servers that do not answer ────────────────────────────────────────────────────

function serverCases(): CliCase[] {
  return [
    kase({
      name: 'a Proxmox that accepts and never answers',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await proxmoxAt(c, 'silent.yaml', `https://127.0.0.1:${c.bad.silentPort}`);
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'silent.yaml')],
          code: 2,
          line: /still waiting for GET \/.* \(\d+ s so far, not connected yet; gives up after 10 s without a connection\)[\s\S]*no connection within 10 s — check the address/,
        },
      ],
    }),
    kase({
      name: 'a silent Proxmox with shorter timeouts',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await proxmoxAt(c, 'silent.yaml', `https://127.0.0.1:${c.bad.silentPort}`);
      },
      steps: (c) => [
        {
          args: ['vm', 'verify', '--connect-timeout', '2', '--lab', at(c, 'silent.yaml')],
          code: 2,
          line: /no connection within 2 s/,
        },
      ],
    }),
    kase({
      name: 'a Proxmox port nothing listens on: retries counted',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await proxmoxAt(c, 'closed.yaml', `https://127.0.0.1:${c.bad.closedPort}`);
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', '--lab', at(c, 'closed.yaml')],
          code: 2,
          line: /attempt 2 of 3[\s\S]*failed \(3 attempts\): connection refused/,
        },
      ],
    }),
    kase({
      name: 'a Proxmox URL that answers a login page',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await proxmoxAt(c, 'html.yaml', c.bad.htmlUrl, 'html-ca.pem');
        await c.write('lab/html-ca.pem', c.bad.htmlCa);
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', '--lab', at(c, 'html.yaml')],
          code: 2,
          line: /the answer is not JSON \(text\/html, \d+ bytes\)/,
        },
      ],
    }),
    kase({
      name: 'a VM that does not exist',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await variant(c, 'vm4242.yaml', (t) => t.replace('vmid: 101', 'vmid: 4242'));
      },
      steps: (c) => [
        {
          args: ['vm', 'plan', '--lab', at(c, 'vm4242.yaml')],
          code: 2,
          line: /no VM 4242 on node pve1 — check vmid and host in the lab file/,
        },
      ],
    }),
    kase({
      name: 'a node that is not in the cluster',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await variant(c, 'pve9.yaml', (t) => t.replaceAll('pve1', 'pve9'));
      },
      steps: (c) => [
        {
          args: ['vm', 'verify', '--lab', at(c, 'pve9.yaml')],
          code: 2,
          line: /no node pve9 in the Proxmox cluster — check the host names in the lab file/,
        },
      ],
    }),
    kase({
      name: 'a Kubernetes API that never answers, and one that never finishes the handshake',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await c.write('lab/mute.conf', await kubeconfigAt(c, c.bad.muteUrl, c.bad.htmlCa));
        await c.write('lab/silent.conf', await kubeconfigAt(c, `https://127.0.0.1:${c.bad.silentPort}`));
        await variant(c, 'mute.yaml', (t) => t.replace('kubeconfig: kubeconfig', 'kubeconfig: mute.conf'));
        await variant(c, 'silent.yaml', (t) =>
          t.replace('kubeconfig: kubeconfig', 'kubeconfig: silent.conf'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'verify', '--request-timeout', '5', '--lab', at(c, 'mute.yaml')],
          code: 2,
          line: /still waiting for list \w+ \(\d+ s so far; gives up after 5 s without an answer, 15 s in all\)[\s\S]*no answer within 5 s — check that the API server is up/,
        },
        {
          args: ['cluster', 'plan', '--connect-timeout', '5', '--lab', at(c, 'silent.yaml')],
          code: 2,
          line: /still waiting for list Node \(\d+ s so far, not connected yet; gives up after 5 s without a connection\)[\s\S]*no connection within 5 s — check that the API server is up/,
        },
      ],
    }),
    kase({
      name: 'a Kubernetes API nobody listens on',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await repointKubeconfig(c, `https://127.0.0.1:${c.bad.closedPort}`);
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', ...L(c)],
          code: 2,
          line: /attempt 2 of 4[\s\S]*\(4 attempts\): the API server is unreachable/,
        },
      ],
    }),
    kase({
      name: 'a kubeconfig server that answers HTML',
      topic: 'servers',
      lab: {},
      setup: async (c) => {
        await repointKubeconfig(c, c.bad.htmlUrl, c.bad.htmlCa);
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', ...L(c)],
          code: 2,
          line: /the server does not answer like a Kubernetes API server/,
        },
      ],
    }),
    kase({
      name: 'a drain of a node that does not exist',
      topic: 'servers',
      lab: {},
      steps: (c) => [
        {
          args: ['cluster', 'drain', '--yes', '--node', 'k3s-1', '--node', 'ghost', ...L(c)],
          code: 2,
          line: /--node ghost: no VM of the lab file has kubernetesNode ghost/,
        },
      ],
    }),
    kase({
      name: 'an Image Factory that never answers',
      topic: 'servers',
      lab: { talos: true },
      setup: async (c) => {
        await variant(c, 'factory.yaml', (t) =>
          t.replace(/imageFactory: [^\n]+/, `imageFactory: http://127.0.0.1:${c.bad.silentPort}`),
        );
      },
      steps: (c) => [
        {
          args: ['guest', 'render', '--out', join(c.dir, 'out'), '--lab', at(c, 'factory.yaml')],
          code: 2,
          line: /GET \/versions: no answer within 10 s/,
        },
      ],
    }),
    kase({
      name: 'an SSH host that accepts and never answers',
      topic: 'servers',
      setup: async (c) => {
        await c.write('id_ec', sshKey());
      },
      steps: (c) => [
        {
          args: [
            'doctor',
            '--host',
            `ssh://root@127.0.0.1:${c.bad.silentPort}`,
            '--identity',
            join(c.dir, 'id_ec'),
            '--connect-timeout',
            '4',
          ],
          code: 2,
          line: /still waiting for the SSH connection[\s\S]*no SSH answer from 127\.0\.0\.1:\d+ within 4 s/,
        },
      ],
    }),
    kase({
      name: 'an SSH port nothing listens on',
      topic: 'servers',
      setup: async (c) => {
        await c.write('id_ec', sshKey());
      },
      steps: (c) => [
        {
          args: [
            'capture',
            '--host',
            `ssh://root@127.0.0.1:${c.bad.closedPort}`,
            '--identity',
            join(c.dir, 'id_ec'),
            '--out',
            join(c.dir, 'x.tar.gz'),
          ],
          code: 2,
          line: /connection refused by 127\.0\.0\.1:\d+ — check that sshd runs/,
        },
      ],
    }),
    kase({
      name: 'an SSH host without a key to offer',
      topic: 'servers',
      steps: (c) => [
        {
          args: ['host', 'rollback', '--host', `ssh://root@127.0.0.1:${c.bad.closedPort}`],
          env: { SSH_AUTH_SOCK: undefined },
          code: 2,
          line: /no SSH key available — start ssh-agent/,
        },
      ],
    }),
  ];
}

/** A private key in the PEM form ssh2 reads. */
function sshKey(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ type: 'sec1', format: 'pem' }).toString();
}

// ─── size and shape ────────────────────────────────────────────────────────────────

function shapeCases(): CliCase[] {
  const labFile = (
    name: string,
    content: (c: CaseContext) => string | Buffer,
    command: string,
    line: RegExp,
    code: 0 | 2 = 2,
  ) =>
    kase({
      name,
      topic: 'size-and-shape',
      lab: {},
      setup: async (c) => {
        await c.write('lab/shaped.yaml', content(c));
      },
      steps: (c) => [{ args: [...command.split(' '), '--lab', at(c, 'shaped.yaml')], code, line }],
    });
  const text = (c: CaseContext) => labOf(c).labText();
  return [
    labFile(
      'a lab file of 2 MB',
      (c) => `${text(c)}# ${'x'.repeat(2 * 1024 * 1024)}\n`,
      'plan',
      /lab file .* is 2,097,\d+ bytes; lab files over 1 MB \(1,048,576 bytes\) are refused/,
    ),
    labFile(
      'UTF-16 with a byte-order mark',
      (c) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text(c), 'utf16le')]),
      'vm plan',
      /lab file .* is UTF-16, not UTF-8 — save .* as UTF-8/,
    ),
    labFile(
      'UTF-16 without a byte-order mark',
      (c) => Buffer.from(text(c), 'utf16le'),
      'mapping plan',
      /is UTF-16, not UTF-8/,
    ),
    labFile(
      'UTF-16 big-endian',
      (c) => Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(text(c), 'utf16le').swap16()]),
      'plan',
      /is UTF-16, not UTF-8/,
    ),
    labFile(
      'Latin-1 bytes',
      (c) => Buffer.concat([Buffer.from(`${text(c)}# caf`), Buffer.from([0xe9, 0x0a])]),
      'status',
      /:\d+:\d+: not valid UTF-8 \(byte 0xe9 at offset \d+\)/,
    ),
    labFile(
      'a NUL byte',
      (c) => Buffer.concat([Buffer.from(text(c)), Buffer.from([0])]),
      'plan',
      /holds a NUL byte at offset \d+: it is not a text file/,
    ),
    labFile(
      'nested ten thousand brackets deep',
      () => `${'['.repeat(10_000)}${']'.repeat(10_000)}\n`,
      'plan',
      /nested (more than 32 levels deep|too deeply)/,
    ),
    labFile(
      'nested mappings forty deep',
      () => `${Array.from({ length: 40 }, (_, i) => `${'  '.repeat(i)}k${i}:`).join('\n')} x\n`,
      'vm plan',
      /nested more than 32 levels deep; a lab file needs 5 at most/,
    ),
    labFile(
      'a list, not a mapping',
      () => '- proxmox\n- hosts\n',
      'plan',
      /the lab file must be a mapping .* not a list/,
    ),
    labFile('a lone word', () => 'hello\n', 'plan', /must be a mapping .* not a string/),
    labFile('empty', () => '', 'plan', /proxmox: required/),
    labFile(
      'an alias bomb',
      () =>
        `a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n`,
      'plan',
      /not valid YAML|alias/i,
    ),
    labFile(
      'tabs for indentation',
      (c) => text(c).replace('  - node: pve1', '\t- node: pve1'),
      'plan',
      /not valid YAML/,
    ),
    labFile(
      'a duplicate key',
      (c) => `${text(c)}hosts: []\n`,
      'plan',
      /not valid YAML: Map keys must be unique/,
    ),
    labFile(
      'a duplicate vmid',
      (c) => text(c).replace('vms:\n', 'vms:\n  - { vmid: 101, host: pve1, os: ubuntu }\n'),
      'vm plan',
      /vms\[1\]\.vmid: vmid 101 is listed twice/,
    ),
    labFile('an unknown key', (c) => `${text(c)}proxmx: {}\n`, 'plan', /:\d+:1: unknown key proxmx/),
    labFile(
      'a UTF-8 byte-order mark and CRLF lines',
      (c) => `\uFEFF${text(c).replaceAll('\n', '\r\n')}`,
      'plan',
      /mapping iGPU/,
      0,
    ),
    kase({
      name: 'the lab file is a directory',
      topic: 'size-and-shape',
      steps: (c) => [
        {
          args: ['plan', '--lab', c.dir],
          code: 2,
          line: /lab file .* is a directory — name the YAML file with --lab/,
        },
      ],
    }),
    kase({
      name: 'no lab file',
      topic: 'size-and-shape',
      steps: (c) => [
        {
          args: ['status', '--lab', join(c.dir, 'igpu-split.yaml')],
          code: 2,
          line: /cannot read lab file .*igpu-split\.yaml: no such file — create it \(igpu-split init\)/,
        },
      ],
    }),
    kase({
      name: 'ten thousand VMs (under 1 MB) load',
      topic: 'size-and-shape',
      lab: {},
      setup: async (c) => {
        const hosts = Array.from({ length: 100 }, (_, h) => `  - node: n${h}`).join('\n');
        const vms = Array.from(
          { length: 10_000 },
          (_, i) => `  - { vmid: ${1000 + i}, host: n${i % 100}, os: ubuntu, kubernetesNode: k${i} }`,
        ).join('\n');
        await variant(c, 'big.yaml', (t) =>
          t.replace(/hosts:\n[\s\S]*kubernetes:/, `hosts:\n${hosts}\nvms:\n${vms}\nkubernetes:`),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'render', '--out', join(c.dir, 'render'), '--lab', at(c, 'big.yaml')],
          code: 0,
          line: /wrote /,
        },
      ],
    }),
  ];
}

// ─── options ───────────────────────────────────────────────────────────────────────

function optionCases(): CliCase[] {
  const bad = (command: string, option: string, value: string, range: RegExp = ONE_OF_RANGE) =>
    kase({
      name: `${command} ${option} ${JSON.stringify(value)}`,
      topic: 'options',
      steps: () => [
        {
          args: [...command.split(' '), option, value],
          code: 2,
          line: new RegExp(`${option} must be [^\\n]*${range.source.replace(/^.*?from/, 'from')}`),
        },
      ],
    });
  return [
    bad('plan', '--parallel', 'abc'),
    bad('apply', '--parallel', '0'),
    bad('plan', '--parallel', '65'),
    bad('apply', '--parallel', '1.5'),
    bad('plan', '--parallel', '-1'),
    bad('plan', '--parallel', '1e2'),
    bad('plan', '--parallel', '0x10'),
    bad('doctor', '--connect-timeout', 'NaN'),
    bad('capture', '--connect-timeout', '0'),
    bad('host plan', '--connect-timeout', '301'),
    bad('host apply', '--connect-timeout', ' '),
    bad('mapping plan', '--connect-timeout', 'soon'),
    bad('vm apply', '--request-timeout', 'Infinity'),
    bad('cluster plan', '--request-timeout', '-3'),
    bad('guest plan', '--request-timeout', '10s'),
    bad('init', '--request-timeout', '0'),
    bad('apply', '--reboot-timeout', '0'),
    bad('host apply', '--reboot-timeout', 'forever'),
    bad('guest apply', '--reboot-timeout', '1e9'),
    bad('vm apply', '--shutdown-timeout', '1.5'),
    bad('vm apply', '--shutdown-timeout', '99999'),
    bad('cluster verify', '--timeout', '-5'),
    bad('verify', '--timeout', '0'),
    bad('cluster drain', '--drain-timeout', 'later'),
    kase({
      name: 'demo --serve into a folder that is not the playground’s, a file, or under a missing one',
      topic: 'options',
      steps: () => [
        {
          args: ['demo', '--serve', '--dir', '/etc'],
          code: 2,
          line: /\/etc is not empty and is not an earlier playground's folder/,
        },
        {
          args: ['demo', '--serve', '--dir', '/etc/hostname'],
          code: 2,
          line: /--dir \/etc\/hostname: a file, not a folder/,
        },
        {
          args: ['demo', '--serve', '--dir', '/proc/nope/x'],
          code: 2,
          line: /no folder \/proc\/nope to make it in/,
        },
        { args: ['demo', '--dir', '/tmp/x'], code: 2, line: /--dir goes with --serve/ },
      ],
    }),
    kase({
      name: 'an unknown option',
      topic: 'options',
      steps: () => [{ args: ['demo', '--bogus'], code: 2, line: /unknown option '--bogus' — see --help/ }],
    }),
    kase({
      name: 'a missing required option',
      topic: 'options',
      steps: () => [
        { args: ['capture', '--root', '/'], code: 2, line: /required option '--out <file>' not specified/ },
      ],
    }),
    kase({
      name: 'cluster render of a missing lab',
      topic: 'exit-codes',
      steps: (c) => [
        {
          args: ['cluster', 'render', '--lab', join(c.dir, 'nope.yaml')],
          code: 2,
          line: /cannot read lab file .*nope\.yaml: no such file/,
        },
      ],
    }),
    kase({
      name: '--json without --yes',
      topic: 'options',
      lab: {},
      steps: (c) =>
        [
          ['apply'],
          ['rollback'],
          ['mapping', 'apply'],
          ['mapping', 'rollback'],
          ['vm', 'apply'],
          ['vm', 'rollback'],
          ['cluster', 'apply'],
          ['cluster', 'rollback'],
          ['guest', 'apply'],
          ['host', 'apply'],
          ['host', 'rollback'],
          ['cluster', 'drain', '--node', 'k3s-1'],
          ['cluster', 'uncordon', '--node', 'k3s-1'],
        ].map((command) => ({
          args: [...command, '--json', ...L(c)],
          code: 2 as const,
          line: /--json needs --yes: there is no prompt in JSON mode/,
        })),
    }),
    kase({
      name: 'an unknown --vm',
      topic: 'options',
      lab: {},
      steps: (c) => [
        {
          args: ['vm', 'plan', '--vm', '999', ...L(c)],
          code: 2,
          line: /--vm 999: no such VM in the lab file — VMs are: 101/,
        },
      ],
    }),
    kase({
      name: 'init with a token id that is not one',
      topic: 'options',
      steps: (c) => [
        {
          args: [
            'init',
            '--url',
            'https://127.0.0.1:1',
            '--token',
            'igpu-split',
            '--token-secret-env',
            SECRET_ENV,
            '--out',
            join(c.dir, 'x.yaml'),
          ],
          code: 2,
          line: /--token igpu-split is not an API token id — give it as USER@REALM!TOKENID/,
        },
      ],
    }),
    kase({
      name: '--host and --root together',
      topic: 'options',
      steps: () => [
        {
          args: ['host', 'plan', '--host', 'ssh://root@x', '--root', '/'],
          code: 2,
          line: /--host and --root exclude each other/,
        },
      ],
    }),
  ];
}

// ─── the lab lock ──────────────────────────────────────────────────────────────────

function lockCases(): CliCase[] {
  const journalDir = (c: CaseContext) => join(labOf(c).dir, '.igpu-split');
  return [
    kase({
      name: 'apply without a terminal leaves no lock',
      topic: 'lock',
      lab: {},
      steps: (c) => [
        {
          args: ['apply', ...L(c)],
          code: 2,
          line: /no terminal to ask — review igpu-split plan, then rerun with --yes/,
          check: nothingLeft(),
        },
        { args: ['apply', ...L(c)], code: 2, line: /no terminal to ask/ },
      ],
    }),
    kase({
      name: 'a refused plan leaves no lock',
      topic: 'lock',
      lab: { i440fx: true },
      steps: (c) => [
        {
          args: ['apply', '--yes', ...L(c)],
          code: 1,
          line: /the plan cannot be applied: .*i440fx/,
          check: nothingLeft(),
        },
      ],
    }),
    kase({
      name: 'an apply interrupted while it waits leaves no lock',
      topic: 'lock',
      lab: {},
      setup: async (c) => {
        await variant(c, 'silent.yaml', (t) =>
          t.replace(/url: https:\/\/[^\n]+/, `url: https://127.0.0.1:${c.bad.silentPort}`),
        );
      },
      steps: (c) => [
        {
          args: ['apply', '--yes', '--lab', at(c, 'silent.yaml')],
          signal: { name: 'SIGTERM', afterMs: 4000 },
          code: 2,
          line: /interrupted by SIGTERM — nothing was changed/,
          check: nothingLeft(),
        },
      ],
    }),
    kase({
      name: 'a stale lock of a run that changed nothing is taken over',
      topic: 'lock',
      lab: {},
      setup: async (c) => {
        await mkdir(journalDir(c), { recursive: true });
        await writeFile(join(journalDir(c), 'lock'), '999999\n');
      },
      steps: (c) => [
        {
          args: ['apply', '--yes', '--no-verify', ...L(c)],
          code: 0,
          line: /mapping iGPU created/,
          check: nothingLeft(),
        },
      ],
    }),
    kase({
      name: 'an unfinished apply is offered for --resume, saying what it did',
      topic: 'lock',
      lab: {},
      setup: async (c) => {
        await mkdir(journalDir(c), { recursive: true });
        await writeFile(join(journalDir(c), 'lock'), '999999\n');
        await writeFile(
          join(journalDir(c), 'journal.json'),
          JSON.stringify({
            startedAt: '2026-11-29T10:00:00.000Z',
            pid: 999999,
            stages: ['lab/mapping@abc'],
            begun: ['VMs 101: vGPU'],
            marks: [],
            stopped: [101],
          }),
        );
      },
      steps: (c) => [
        {
          args: ['apply', '--yes', ...L(c)],
          code: 2,
          line: /an earlier apply \(pid 999999, started 2026-11-29T10:00:00\.000Z\) stopped without finishing: it finished lab\/mapping; stopped in the middle of VMs 101: vGPU; left VM 101 stopped — continue it with igpu-split apply --resume/,
        },
        {
          args: ['apply', '--yes', '--resume', '--no-verify', ...L(c)],
          code: 0,
          line: /VM 101/,
          check: nothingLeft(),
        },
      ],
    }),
    kase({
      name: 'a lock held by a live apply',
      topic: 'lock',
      lab: {},
      setup: async (c) => {
        await mkdir(journalDir(c), { recursive: true });
        await writeFile(join(journalDir(c), 'lock'), lockLine(process.pid));
      },
      steps: (c) => [
        {
          args: ['rollback', '--yes', ...L(c)],
          code: 2,
          line: new RegExp(`another igpu-split apply \\(pid ${process.pid}\\) holds the lab lock`),
        },
      ],
    }),
    kase({
      name: 'a damaged journal',
      topic: 'lock',
      lab: {},
      setup: async (c) => {
        await mkdir(journalDir(c), { recursive: true });
        await writeFile(join(journalDir(c), 'lock'), '999999\n');
        await writeFile(join(journalDir(c), 'journal.json'), '{"stages": [');
      },
      steps: (c) => [
        { args: ['apply', '--yes', ...L(c)], code: 2, line: /the apply journal .*journal\.json is damaged/ },
      ],
    }),
    kase({
      name: 'apply --resume with nothing to resume',
      topic: 'lock',
      lab: {},
      steps: (c) => [
        {
          args: ['apply', '--yes', '--resume', '--no-verify', ...L(c)],
          code: 0,
          line: /mapping iGPU created/,
          check: nothingLeft(),
        },
      ],
    }),
    kase({
      name: 'apply answered no at the question, then Ctrl-C: nothing changed, no lock',
      topic: 'lock',
      lab: {},
      steps: (c) => [
        {
          args: ['apply', ...L(c)],
          answer: 'n\r',
          code: 1,
          line: /disturbs: 1 VM restart \(101\), 1 node drain \(k3s-1\)\r?\n[^\n]*apply this plan\? \[y\/N\][\s\S]*not confirmed: nothing was changed/,
          check: nothingLeft(),
        },
        {
          args: ['apply', ...L(c)],
          answer: '\x03',
          code: 1,
          line: /not confirmed: nothing was changed/,
          check: nothingLeft(),
        },
        { args: ['mapping', 'plan', ...L(c)], code: 0, line: /create cluster PCI mapping iGPU/ },
      ],
    }),
    kase({
      name: 'apply answered yes on a terminal',
      topic: 'lock',
      lab: {},
      steps: (c) => [
        {
          args: ['apply', '--no-verify', ...L(c)],
          answer: 'y\r',
          code: 0,
          line: /apply this plan\? \[y\/N\][\s\S]*mapping iGPU created/,
          check: nothingLeft(),
        },
      ],
    }),
    kase({
      name: 'the lab changed while apply asked: refused, nothing changed, no lock',
      topic: 'lock',
      lab: {},
      steps: (c) => [
        {
          args: ['apply', '--no-verify', ...L(c)],
          answer: 'y\r',
          // Someone stops the VM while the question is open: the plan to shut it down is stale.
          whileAsking: async (cc) => void labOf(cc).state.stop(101),
          code: 1,
          line: /the lab changed since the plan was shown: nothing was changed — run igpu-split plan again, then apply/,
          check: async (cc) => {
            if (labOf(cc).state.calls.some((call) => /mapping|config|start|shutdown/.test(call)))
              return `changed Proxmox: ${labOf(cc).state.calls.join('; ')}`;
            return nothingLeft()(cc);
          },
        },
      ],
    }),
    kase({
      name: 'rollbacks answered no',
      topic: 'lock',
      lab: {},
      steps: (c) => [
        {
          args: ['rollback', ...L(c)],
          answer: 'no\r',
          code: 1,
          line: /disturbs: no VM restart or drain; no host reboot [^\n]*\r?\n[^\n]*roll back the whole lab\? \[y\/N\][\s\S]*not confirmed: nothing was changed/,
          check: nothingLeft(),
        },
        { args: ['vm', 'rollback', ...L(c)], answer: '\r', code: 1, line: /not confirmed/ },
        { args: ['cluster', 'rollback', ...L(c)], answer: 'nope\r', code: 1, line: /not confirmed/ },
        { args: ['mapping', 'rollback', ...L(c)], answer: 'n\r', code: 1, line: /not confirmed/ },
        {
          args: ['cluster', 'drain', '--node', 'k3s-1', ...L(c)],
          answer: 'n\r',
          code: 1,
          line: /not confirmed/,
        },
        {
          args: ['cluster', 'uncordon', '--node', 'k3s-1', ...L(c)],
          answer: 'n\r',
          code: 1,
          line: /not confirmed/,
        },
        { args: ['cluster', 'apply', ...L(c)], answer: 'n\r', code: 1, line: /not confirmed/ },
        {
          args: ['vm', 'apply', ...L(c)],
          answer: 'y\r',
          code: 1,
          line: /cluster mapping iGPU does not exist/,
        },
      ],
    }),
    kase({
      name: 'rollback without a terminal leaves no lock',
      topic: 'lock',
      lab: {},
      steps: (c) => [
        { args: ['rollback', ...L(c)], code: 2, line: /no terminal to ask/, check: nothingLeft() },
      ],
    }),
  ];
}

// ─── every command, every exit class ───────────────────────────────────────────────

function exitCodeCases(): CliCase[] {
  const gvt = fixture('i5-8500t-gvt');
  return [
    kase({
      name: 'demo runs',
      topic: 'exit-codes',
      steps: () => [{ args: ['demo'], code: 0, line: /the chain is complete/ }],
    }),
    kase({
      name: 'plan of a fresh lab',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['plan', ...L(c)], code: 0, line: /create cluster PCI mapping iGPU/ }],
    }),
    kase({
      name: 'plan refused: an i440fx VM',
      topic: 'exit-codes',
      lab: { i440fx: true },
      steps: (c) => [{ args: ['plan', ...L(c)], code: 1, line: /not applicable|i440fx/ }],
    }),
    kase({
      name: 'apply, verify, status, rollback of a lab',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        { args: ['verify', '--no-smoke', ...L(c)], code: 1, line: /FAIL/ },
        { args: ['apply', '--yes', ...L(c)], code: 0, line: /PASS\s+chain\.101\.smoke/ },
        { args: ['verify', ...L(c)], code: 0, line: /PASS/ },
        { args: ['status', ...L(c)], code: 0, line: /VM 101 k3s-1/ },
        { args: ['rollback', '--yes', ...L(c)], code: 0, line: /deleted mapping iGPU/ },
      ],
    }),
    kase({
      name: 'apply waits for a manual step: Talos without talosctl',
      topic: 'exit-codes',
      lab: { talos: true },
      // A running Talos VM, so the manual step is the only thing left (a stopped VM fails verify).
      setup: async (c) => void c.lab?.state.start(102),
      steps: (c) => [
        {
          args: ['apply', '--yes', ...L(c)],
          code: 3,
          line: /pending: 1 manual step\n {2}talos \S+: talosctl is not installed; files written: .*machine-patch\.yaml\n {4}\$ talosctl patch machineconfig/,
        },
        // Until the node shows the change, its guest link waits (not fails).
        { args: ['verify', ...L(c)], code: 3, line: /WAIT\s+chain\.102\.guest\s+waiting for a manual step/ },
      ],
    }),
    kase({
      name: 'plan --skip-host with a host the lab file lacks',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        {
          args: ['plan', '--skip-host', 'pve9', ...L(c)],
          code: 2,
          line: /--skip-host pve9: no such host in the lab file — hosts are: /,
        },
      ],
    }),
    kase({
      name: 'verify of a missing lab',
      topic: 'exit-codes',
      steps: (c) => [
        { args: ['verify', '--lab', join(c.dir, 'none.yaml')], code: 2, line: /cannot read lab file/ },
      ],
    }),
    kase({
      name: 'rollback of a fresh lab',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        { args: ['rollback', '--yes', ...L(c)], code: 0, line: /^guests keep their kernel package/m },
      ],
    }),
    kase({
      name: 'doctor of a GVT-g host',
      topic: 'exit-codes',
      steps: () => [{ args: ['doctor', '--root', gvt], code: 0, line: /Mode\s+gvt-g/ }],
    }),
    kase({
      name: 'doctor of a host before setup',
      topic: 'exit-codes',
      steps: () => [
        { args: ['doctor', '--root', fixture('i5-8500t-before')], code: 1, line: /FAIL\s+gvt\.enabled/ },
      ],
    }),
    kase({
      name: 'doctor of a folder that is not a host',
      topic: 'exit-codes',
      steps: (c) => [
        {
          args: ['doctor', '--root', join(c.dir, 'nothing')],
          code: 2,
          line: /is not a directory — point --root at the unpacked capture/,
        },
      ],
    }),
    kase({
      name: 'capture to a zip',
      topic: 'exit-codes',
      steps: (c) => [
        {
          args: ['capture', '--root', gvt, '--out', join(c.dir, 'x.zip')],
          code: 2,
          line: /--out must name a \.tar\.gz file/,
        },
      ],
    }),
    kase({
      name: 'host plan of a GVT-g host',
      topic: 'exit-codes',
      steps: () => [
        // Set up before the kernel guard existed: the guard is all it is planned, and no reboot.
        { args: ['host', 'plan', '--root', gvt], code: 0, line: /no reboot needed/ },
      ],
    }),
    kase({
      name: 'host plan of a folder that is not there',
      topic: 'exit-codes',
      steps: (c) => [
        { args: ['host', 'plan', '--root', join(c.dir, 'nothing')], code: 2, line: /is not a directory/ },
      ],
    }),
    kase({
      name: 'host verify of a GVT-g host',
      topic: 'exit-codes',
      steps: () => [{ args: ['host', 'verify', '--root', gvt], code: 0, line: /0 failed/ }],
    }),
    kase({
      name: 'host verify without a target',
      topic: 'exit-codes',
      steps: (c) => [
        { args: ['host', 'verify', '--root', join(c.dir, 'x')], code: 2, line: /is not a directory/ },
      ],
    }),
    kase({
      name: 'host apply needs --host',
      topic: 'exit-codes',
      steps: () => [
        {
          args: ['host', 'apply', '--yes'],
          code: 2,
          line: /host apply needs a host: no lab file igpu-split\.yaml here — name one with --host ssh:\/\/user@host/,
        },
      ],
    }),
    kase({
      name: 'host apply over SSH: applied, the reboot left to the user',
      topic: 'exit-codes',
      sshd: { tree: 'hosts/i5-8500t-before' },
      steps: (c) => [
        { args: ['host', 'plan', ...ssh(c)], code: 0, line: /a reboot is needed/ },
        {
          args: ['host', 'apply', '--yes', ...ssh(c)],
          code: 3,
          line: /applied; a reboot is needed to make it live — reboot the host \(or rerun with --reboot\)/,
        },
        { args: ['host', 'verify', ...ssh(c)], code: 1, line: /FAIL/ },
        { args: ['host', 'rollback', ...ssh(c)], answer: 'n\r', code: 1, line: /not confirmed/ },
        {
          args: ['host', 'rollback', '--yes', ...ssh(c)],
          code: 0,
          line: /removed|restored|\/etc\/default\/grub\.d\/igpu-split\.cfg/,
        },
      ],
    }),
    kase({
      name: 'host apply over SSH on a host set up before the kernel guard, then on it converged',
      topic: 'exit-codes',
      sshd: { tree: 'hosts/i5-8500t-gvt' },
      steps: (c) => [
        { args: ['host', 'apply', '--yes', ...ssh(c)], code: 0, line: /applied 3 steps/ },
        {
          args: ['host', 'apply', '--yes', ...ssh(c)],
          code: 0,
          line: /nothing to do: this host is converged/,
        },
      ],
    }),
    kase({
      name: 'host apply over SSH refused: nothing to share',
      topic: 'exit-codes',
      sshd: { tree: 'hosts/ryzen-5600g-amd' },
      steps: (c) => [
        {
          args: ['host', 'apply', '--yes', ...ssh(c)],
          code: 1,
          line: /this host has nothing to share: no Intel integrated GPU/,
        },
      ],
    }),
    kase({
      name: 'host rollback over a refused connection',
      topic: 'exit-codes',
      setup: async (c) => void (await c.write('id', sshKey())),
      steps: (c) => [
        {
          args: [
            'host',
            'rollback',
            '--host',
            `ssh://root@127.0.0.1:${c.bad.closedPort}`,
            '--identity',
            join(c.dir, 'id'),
          ],
          code: 2,
          line: /connection refused/,
        },
      ],
    }),
    kase({
      name: 'mapping plan, apply, rollback',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        { args: ['mapping', 'plan', ...L(c)], code: 0, line: /create cluster PCI mapping iGPU/ },
        { args: ['mapping', 'apply', '--yes', ...L(c)], code: 0, line: /mapping iGPU created/ },
        { args: ['mapping', 'rollback', '--yes', ...L(c)], code: 0, line: /iGPU/ },
      ],
    }),
    kase({
      name: 'a mapping entry someone else made for other hardware',
      topic: 'exit-codes',
      lab: {},
      setup: async (c) => {
        labOf(c).state.createMapping('iGPU', {
          map: ['node=pve1,path=0000:00:02.0,id=8086:1234,iommugroup=1'],
          mdev: true,
        });
      },
      steps: (c) => [
        { args: ['mapping', 'plan', ...L(c)], code: 1, line: /FAIL/ },
        { args: ['mapping', 'apply', '--yes', ...L(c)], code: 1, line: /mapping iGPU cannot be applied/ },
      ],
    }),
    kase({
      name: 'mapping apply without a terminal',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['mapping', 'apply', ...L(c)], code: 2, line: /no terminal to ask/ }],
    }),
    kase({
      name: 'mapping plan of a missing lab',
      topic: 'exit-codes',
      steps: (c) => [
        { args: ['mapping', 'plan', '--lab', join(c.dir, 'x.yaml')], code: 2, line: /cannot read lab file/ },
      ],
    }),
    kase({
      name: 'mapping rollback without a terminal',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['mapping', 'rollback', ...L(c)], code: 2, line: /no terminal to ask/ }],
    }),
    kase({
      name: 'vm apply, verify, rollback; the mapping kept while a VM uses it',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        {
          args: ['vm', 'plan', ...L(c)],
          code: 1,
          line: /FAIL\s+vm\.mapping\s+cluster mapping iGPU does not exist/,
        },
        { args: ['vm', 'verify', ...L(c)], code: 1, line: /FAIL/ },
        { args: ['mapping', 'apply', '--yes', ...L(c)], code: 0, line: /created/ },
        { args: ['vm', 'plan', ...L(c)], code: 0, line: /hostpci0: mapping=iGPU/ },
        { args: ['vm', 'apply', '--yes', ...L(c)], code: 0, line: /VM 101: running with its vGPU/ },
        { args: ['vm', 'verify', ...L(c)], code: 0, line: /PASS/ },
        {
          args: ['mapping', 'rollback', '--yes', ...L(c)],
          code: 1,
          line: /VM 101 still attaches through mapping iGPU/,
        },
        { args: ['vm', 'rollback', '--yes', ...L(c)], code: 0, line: /VM 101/ },
      ],
    }),
    kase({
      name: 'vm plan and apply refused: i440fx',
      topic: 'exit-codes',
      lab: { i440fx: true },
      steps: (c) => [
        { args: ['mapping', 'apply', '--yes', ...L(c)], code: 0, line: /created/ },
        { args: ['vm', 'plan', ...L(c)], code: 1, line: /vm\.103\.machine/ },
        { args: ['vm', 'apply', '--yes', ...L(c)], code: 1, line: /vm\.103\.machine/ },
      ],
    }),
    kase({
      name: 'vm verify of a missing lab',
      topic: 'exit-codes',
      steps: (c) => [
        { args: ['vm', 'verify', '--lab', join(c.dir, 'x.yaml')], code: 2, line: /cannot read lab file/ },
      ],
    }),
    kase({
      name: 'vm rollback without a terminal',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['vm', 'rollback', ...L(c)], code: 2, line: /no terminal to ask/ }],
    }),
    kase({
      name: 'guest plan of a Talos node without talosctl',
      topic: 'exit-codes',
      lab: { talos: true },
      steps: (c) => [{ args: ['guest', 'plan', '--vm', '102', ...L(c)], code: 0, line: /installer/ }],
    }),
    kase({
      name: 'guest plan refused: a Talos node on the Secure Boot installer',
      topic: 'exit-codes',
      lab: { talos: true },
      setup: async (c) => {
        await variant(c, 'secureboot.yaml', (t) =>
          t.replace('version: v1.10.9, extensions', 'version: v1.10.9, secureBoot: true, extensions'),
        );
      },
      steps: (c) => [
        {
          args: ['guest', 'plan', '--vm', '102', '--lab', at(c, 'secureboot.yaml')],
          code: 1,
          line: /installer-secureboot/,
        },
      ],
    }),
    kase({
      name: 'a Talos version whose minor has no config schema: one line naming the node; nothing installed',
      topic: 'exit-codes',
      lab: { talos: true },
      talosctl: true,
      setup: async (c) => {
        await variant(c, 'talos-1.15.yaml', (t) =>
          t.replace('version: v1.10.9, extensions', 'version: v1.15.0, extensions'),
        );
        await variant(c, 'talos-running.yaml', (t) =>
          t.replace('version: v1.10.9, extensions', 'extensions'),
        );
      },
      steps: (c) => {
        const untouched = async () => {
          const calls = await readFile(join(c.dir, 'bin', 'calls'), 'utf8').catch(() => '');
          return /talosctl (patch|upgrade)/.test(calls) ? `talosctl changed the node:\n${calls}` : undefined;
        };
        return [
          {
            args: ['guest', 'plan', '--vm', '102', '--lab', at(c, 'talos-1.15.yaml')],
            code: 1,
            line: /talos 127\.0\.0\.1: Talos v1\.15\.0: igpu-split has no Talos 1\.15 config schema to check its documents against \(it knows 1\.10 to 1\.14\) — set talos\.version to a release of Talos 1\.10 to 1\.14 \(e\.g\. v1\.13\.9\)/,
          },
          {
            args: [
              'guest',
              'apply',
              '--yes',
              '--vm',
              '102',
              '--out',
              join(c.dir, 'talos'),
              '--lab',
              at(c, 'talos-1.15.yaml'),
            ],
            code: 1,
            line: /Talos v1\.15\.0: igpu-split has no Talos 1\.15 config schema/,
            check: untouched,
          },
          {
            // The node itself runs it: the version read from talosctl, the fix says what to do by hand.
            args: [
              'guest',
              'apply',
              '--yes',
              '--vm',
              '102',
              '--out',
              join(c.dir, 'talos'),
              '--lab',
              at(c, 'talos-running.yaml'),
            ],
            env: { TALOSCTL_SERVER_TAG: 'v1.15.0' },
            code: 1,
            line: /talos 127\.0\.0\.1: Talos v1\.15\.0: igpu-split has no Talos 1\.15 config schema .* — set up the siderolabs\/i915 extension and the GPU node label by hand/,
            check: untouched,
          },
        ];
      },
    }),
    kase({
      name: 'guest plan of an Ubuntu VM without guest:',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        {
          args: ['guest', 'plan', ...L(c)],
          code: 2,
          line: /VM 101 \(ubuntu\) has no guest: ssh:\/\/user@address in the lab file/,
        },
      ],
    }),
    kase({
      name: 'guest apply of a Talos node without talosctl waits for the user',
      topic: 'exit-codes',
      lab: { talos: true },
      steps: (c) => [
        {
          args: ['guest', 'apply', '--yes', '--vm', '102', '--out', join(c.dir, 'talos'), ...L(c)],
          code: 3,
          line: /talosctl is not installed: the Talos change for VM 102 is written, not applied — run the printed commands/,
        },
      ],
    }),
    kase({
      name: 'guest apply of an Ubuntu VM without guest:',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['guest', 'apply', '--yes', ...L(c)], code: 2, line: /has no guest:/ }],
    }),
    kase({
      name: 'guest verify, apply, verify of a Talos node with talosctl',
      topic: 'exit-codes',
      lab: { talos: true },
      talosctl: true,
      steps: (c) => [
        { args: ['guest', 'verify', '--vm', '102', ...L(c)], code: 1, line: /FAIL/ },
        {
          args: ['guest', 'apply', '--yes', '--vm', '102', '--out', join(c.dir, 'talos'), ...L(c)],
          code: 0,
          line: /PASS/,
        },
        { args: ['guest', 'verify', '--vm', '102', ...L(c)], code: 0, line: /0 failed/ },
      ],
    }),
    kase({
      name: 'guest apply whose Ubuntu guest still has no i915 after its reboot',
      topic: 'exit-codes',
      lab: {},
      sshd: {
        tree: 'guests/ubuntu-2404-cloud-before',
        standIns: {
          // apt-get "succeeds" without installing anything; the reboot only changes the boot id.
          'apt-get': '#!/bin/sh\nexit 0\n',
          systemctl:
            '#!/bin/sh\n[ "$1" = reboot ] || exit 0\necho "booted-$$" > /proc/sys/kernel/random/boot_id\nexit 0\n',
        },
      },
      setup: async (c) => {
        const sshd = c.sshd as TestSshd;
        await variant(c, 'guest.yaml', (t) =>
          t.replace(
            '  - { vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1 }',
            `  - { vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1, guest: "ssh://root@${sshd.host}:${sshd.treePort}" }`,
          ),
        );
      },
      steps: (c) => [
        { args: ['guest', 'plan', '--lab', at(c, 'guest.yaml'), ...keys(c)], code: 0, line: /linux-generic/ },
        {
          args: [
            'guest',
            'apply',
            '--yes',
            '--reboot-timeout',
            '20',
            '--lab',
            at(c, 'guest.yaml'),
            ...keys(c),
          ],
          code: 1,
          line: /FAIL/,
        },
      ],
    }),
    kase({
      name: 'guest verify of an unknown VM',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        {
          args: ['guest', 'verify', '--vm', '777', ...L(c)],
          code: 2,
          line: /--vm 777: no such VM in the lab file/,
        },
      ],
    }),
    kase({
      name: 'guest render of a Talos lab',
      topic: 'exit-codes',
      lab: { talos: true },
      steps: (c) => [
        { args: ['guest', 'render', '--out', join(c.dir, 'gitops'), ...L(c)], code: 0, line: /wrote / },
      ],
    }),
    kase({
      name: 'guest render of a missing lab',
      topic: 'exit-codes',
      steps: (c) => [
        {
          args: ['guest', 'render', '--out', join(c.dir, 'g'), '--lab', join(c.dir, 'x.yaml')],
          code: 2,
          line: /cannot read lab file/,
        },
      ],
    }),
    kase({
      name: 'cluster plan, apply, verify, drain, uncordon, rollback',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        { args: ['cluster', 'verify', '--no-smoke', ...L(c)], code: 1, line: /FAIL/ },
        { args: ['cluster', 'plan', ...L(c)], code: 0, line: /igpu-split cluster plan/ },
        { args: ['cluster', 'apply', '--yes', ...L(c)], code: 0, line: /DaemonSet/ },
        { args: ['cluster', 'verify', '--timeout', '20', ...L(c)], code: 0, line: /PASS/ },
        { args: ['cluster', 'drain', '--yes', '--node', 'k3s-1', ...L(c)], code: 0, line: /drained k3s-1/ },
        {
          args: ['cluster', 'uncordon', '--yes', '--node', 'k3s-1', ...L(c)],
          code: 0,
          line: /uncordoned k3s-1/,
        },
        { args: ['cluster', 'rollback', '--yes', ...L(c)], code: 0, line: /DaemonSet|deleted/ },
      ],
    }),
    kase({
      name: 'cluster plan refused: operator mode without the operator',
      topic: 'exit-codes',
      lab: {},
      setup: async (c) => {
        await variant(c, 'operator.yaml', (t) =>
          t.replace('  kubeconfig: kubeconfig\n', '  kubeconfig: kubeconfig\n  plugin: { mode: operator }\n'),
        );
      },
      steps: (c) => [
        { args: ['cluster', 'plan', '--lab', at(c, 'operator.yaml')], code: 1, line: /operator/ },
        { args: ['cluster', 'apply', '--yes', '--lab', at(c, 'operator.yaml')], code: 1, line: /operator/ },
      ],
    }),
    kase({
      name: 'cluster apply without a terminal',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['cluster', 'apply', ...L(c)], code: 2, line: /no terminal to ask/ }],
    }),
    kase({
      name: 'cluster verify of a missing lab',
      topic: 'exit-codes',
      steps: (c) => [
        {
          args: ['cluster', 'verify', '--lab', join(c.dir, 'x.yaml')],
          code: 2,
          line: /cannot read lab file/,
        },
      ],
    }),
    kase({
      name: 'cluster rollback without a terminal',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['cluster', 'rollback', ...L(c)], code: 2, line: /no terminal to ask/ }],
    }),
    kase({
      name: 'cluster rollback of a fresh cluster',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        { args: ['cluster', 'rollback', '--yes', ...L(c)], code: 0, line: /nothing of ours in the cluster/ },
      ],
    }),
    kase({
      name: 'cluster uncordon of a node the lab does not know',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        {
          args: ['cluster', 'uncordon', '--yes', '--node', 'ghost', ...L(c)],
          code: 2,
          line: /--node ghost: no VM of the lab file/,
        },
      ],
    }),
    kase({
      name: 'status of a fresh lab',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [{ args: ['status', ...L(c)], code: 0, line: /pve1/ }],
    }),
    kase({
      name: 'init from a Proxmox that answers',
      topic: 'exit-codes',
      lab: {},
      steps: (c) => [
        {
          args: [
            'init',
            '--url',
            labOf(c).pve.url,
            '--token',
            ENV_TOKEN_ID,
            '--token-secret-env',
            SECRET_ENV,
            '--fingerprint',
            labOf(c).pve.fingerprint,
            '--out',
            join(c.dir, 'init.yaml'),
            '--vm',
            '101:ubuntu',
          ],
          code: 0,
          line: /wrote .*init\.yaml/,
        },
        {
          args: [
            'init',
            '--url',
            labOf(c).pve.url,
            '--token',
            ENV_TOKEN_ID,
            '--token-secret-env',
            SECRET_ENV,
            '--out',
            join(c.dir, 'init.yaml'),
          ],
          code: 2,
          line: /init\.yaml exists — pass --force/,
        },
      ],
    }),
  ];
}

// ─── what a stranger found (second round): pipes, devices, endless answers, pasted secrets ──

function strangerCases(): CliCase[] {
  const fifo = (path: string) => execFileSync('mkfifo', [path]);
  return [
    ...[
      [
        'caFile',
        'mapping plan',
        (t: string) => t.replace(/fingerprint: [^\n]+/, 'caFile: pipe'),
        /cannot read the CA file pipe .*: not a regular file \(a pipe or a device\)/,
      ],
      [
        'kubeconfig',
        'cluster plan',
        (t: string) => t.replace('kubeconfig: kubeconfig', 'kubeconfig: pipe'),
        /kubeconfig pipe .* is not a regular file/,
      ],
    ].map(([what, command, edit, line]) =>
      kase({
        name: `a FIFO as the ${what} does not block`,
        topic: 'stranger',
        lab: {},
        setup: async (c) => {
          fifo(join(labOf(c).dir, 'pipe'));
          await variant(c, 'fifo.yaml', edit as (t: string) => string);
        },
        steps: (c) => [
          {
            args: [...(command as string).split(' '), '--lab', at(c, 'fifo.yaml')],
            code: 2,
            line: line as RegExp,
          },
        ],
      }),
    ),
    kase({
      name: 'a FIFO or /dev/zero as --identity does not block',
      topic: 'stranger',
      setup: async (c) => void fifo(join(c.dir, 'id-pipe')),
      steps: (c) => [
        {
          args: [
            'doctor',
            '--host',
            `ssh://root@127.0.0.1:${c.bad.closedPort}`,
            '--identity',
            join(c.dir, 'id-pipe'),
          ],
          code: 2,
          line: /cannot read identity file .*id-pipe: not a regular file \(a pipe or a device\)/,
        },
        {
          args: ['doctor', '--host', `ssh://root@127.0.0.1:${c.bad.closedPort}`, '--identity', '/dev/zero'],
          code: 2,
          line: /cannot read identity file \/dev\/zero: not a regular file/,
        },
      ],
    }),
    kase({
      name: '/dev/zero as the kubeconfig does not eat memory',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await variant(c, 'zero.yaml', (t) => t.replace('kubeconfig: kubeconfig', 'kubeconfig: /dev/zero'));
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'zero.yaml')],
          code: 2,
          line: /kubeconfig \/dev\/zero is not a regular file/,
        },
      ],
    }),
    kase({
      name: 'a FIFO and a device in a captured tree are named, not read',
      topic: 'stranger',
      setup: async (c) => {
        const root = await hostCopy('i5-8500t-before', c.dir);
        await rm(join(root, 'etc/default/grub'));
        fifo(join(root, 'etc/default/grub'));
        // A character device (this machine's /dev/null, by its numbers) as /proc/cmdline:
        // making one needs root, which the corpus has in CI; without it, another pipe.
        await rm(join(root, 'proc/cmdline'));
        const { rdev } = statSync('/dev/null');
        if (process.getuid?.() === 0)
          execFileSync('mknod', [join(root, 'proc/cmdline'), 'c', String(rdev >> 8), String(rdev & 0xff)]);
        else fifo(join(root, 'proc/cmdline'));
      },
      steps: (c) => [
        {
          args: ['host', 'plan', '--root', join(c.dir, 'i5-8500t-before')],
          code: 1,
          line: /cannot plan: \/etc\/default\/grub: not a regular file \(a pipe or a device\)/,
        },
        {
          args: ['doctor', '--root', join(c.dir, 'i5-8500t-before')],
          code: 1,
          line: /\/proc\/cmdline: not a regular file \(a pipe or a device\)/,
        },
      ],
    }),
    kase({
      name: 'a FIFO as the apply journal, and the journal folder a file',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await mkdir(join(labOf(c).dir, '.igpu-split'));
        fifo(join(labOf(c).dir, '.igpu-split', 'journal.json'));
      },
      steps: (c) => [
        {
          args: ['apply', '--yes', ...L(c)],
          code: 2,
          line: /cannot use .*journal\.json \(the apply journal and lock\): not a regular file/,
        },
      ],
    }),
    kase({
      name: 'the journal folder is a file',
      topic: 'stranger',
      lab: {},
      setup: async (c) => void (await c.write('lab/.igpu-split', 'not a folder\n')),
      steps: (c) => [
        {
          args: ['apply', '--yes', ...L(c)],
          code: 2,
          line: /cannot use .*\.igpu-split\/lock \(the apply journal and lock\): a part of the path is not a directory/,
        },
      ],
    }),
    kase({
      name: 'a lab file reached through a link shares the lock',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await mkdir(join(labOf(c).dir, '.igpu-split'), { recursive: true });
        await writeFile(join(labOf(c).dir, '.igpu-split', 'lock'), lockLine(process.pid));
        // Paths absolute, so only the lock decides; the link lives in another folder.
        const lab = labOf(c);
        await variant(c, 'absolute.yaml', (t) =>
          t
            .replace('tokenSecretFile: token', `tokenSecretFile: ${lab.tokenFile}`)
            .replace('kubeconfig: kubeconfig', `kubeconfig: ${lab.kubeconfigFile}`),
        );
        await mkdir(join(c.dir, 'alias'));
        await symlink(at(c, 'absolute.yaml'), join(c.dir, 'alias', 'igpu-split.yaml'));
      },
      steps: (c) => [
        {
          args: ['apply', '--yes', '--lab', join(c.dir, 'alias', 'igpu-split.yaml')],
          code: 2,
          line: new RegExp(`another igpu-split apply \\(pid ${process.pid}\\) holds the lab lock`),
        },
      ],
    }),
    kase({
      name: 'a stale lock whose pid now belongs to another process',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await mkdir(join(labOf(c).dir, '.igpu-split'), { recursive: true });
        // pid 1 is alive, but it started long before this lock says its apply did.
        await writeFile(join(labOf(c).dir, '.igpu-split', 'lock'), '1 999999999\n');
      },
      steps: (c) => [
        {
          args: ['apply', '--yes', '--no-verify', ...L(c)],
          code: 0,
          line: /mapping iGPU created/,
          check: nothingLeft(),
        },
      ],
    }),
    kase({
      name: 'a Proxmox answer that never ends is cut off',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await c.write('lab/ca.pem', c.bad.htmlCa);
        await proxmoxAt(c, 'endless.yaml', c.bad.endlessUrl, 'ca.pem');
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', '--lab', at(c, 'endless.yaml')],
          code: 2,
          line: /the answer is larger than 16 MB — check that https:\/\/127\.0\.0\.1:\d+\/? is the Proxmox API \(whose answers are \/api2\/json\), not another service on 127\.0\.0\.1:\d+/,
        },
      ],
    }),
    kase({
      name: 'a Proxmox answer that trickles ends with the whole timeout, said the same way throughout',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await c.write('lab/ca.pem', c.bad.htmlCa);
        await proxmoxAt(c, 'trickle.yaml', c.bad.trickleUrl, 'ca.pem');
      },
      steps: (c) => [
        {
          args: [
            'mapping',
            'plan',
            '--connect-timeout',
            '2',
            '--request-timeout',
            // 4 s against a byte every 2 s: the pauses stay well inside the answer limit even on a loaded machine.
            '4',
            '--lab',
            at(c, 'trickle.yaml'),
          ],
          code: 2,
          line: /gives up after 4 s without an answer, 6 s in all\)[\s\S]*no complete answer within 6 s/,
        },
      ],
    }),
    kase({
      name: 'a Kubernetes answer that never ends is cut off',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await repointKubeconfig(c, c.bad.endlessUrl, c.bad.htmlCa);
      },
      steps: (c) => [
        { args: ['cluster', 'plan', ...L(c)], code: 2, line: /the answer is larger than 16 MB/ },
      ],
    }),
    ...[
      ['as user@realm!id=secret', (s: Secrets) => `igpu-split@pve!lab=${s.tokenFile}`],
      ['with a trailing space', (s: Secrets) => `"${s.tokenFile} "`],
      ['in braces', (s: Secrets) => `"{${s.tokenFile}}"`],
      ['after a word', (s: Secrets) => `"token ${s.tokenFile}"`],
    ].map(([how, value]) =>
      kase({
        name: `the secret pasted as tokenSecretFile ${how}`,
        topic: 'stranger',
        lab: {},
        setup: async (c) => {
          await variant(c, 'pasted.yaml', (t) =>
            t.replace(
              'tokenSecretFile: token',
              `tokenSecretFile: ${(value as (s: Secrets) => string)(c.secrets)}`,
            ),
          );
        },
        steps: (c) => [
          {
            args: ['vm', 'plan', '--lab', at(c, 'pasted.yaml')],
            code: 2,
            line: /the token secret file is named by what looks like the token secret itself, not a file name/,
          },
        ],
      }),
    ),
    kase({
      name: 'init with the secret pasted as --token-secret-file',
      topic: 'stranger',
      lab: {},
      steps: (c) => [
        {
          args: [
            'init',
            '--url',
            labOf(c).pve.url,
            '--token',
            TOKEN_ID,
            '--token-secret-file',
            `igpu-split@pve!lab=${c.secrets.tokenFile}`,
            '--out',
            join(c.dir, 'x.yaml'),
          ],
          code: 2,
          line: /the token secret file is named by what looks like the token secret itself/,
        },
      ],
    }),
    kase({
      name: 'an exec credential plugin that fails, prints a bare token, floods or never answers is named, never quoted, never left running',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const plugins = {
          fails: `echo "error: refresh failed: token ${c.secrets.execToken} expired" >&2\nexit 1`,
          bare: `printf '%s' '${c.secrets.execToken}'`,
          frames: `printf '%s\\n    at ${c.secrets.execToken}\\n' 'Error' >&2\nexit 3`,
          floods: 'yes',
          // Waits, as one that waits for a login would; its child must go with it.
          waits: 'sleep 37',
        };
        const base = await readFile(labOf(c).kubeconfigFile, 'utf8');
        for (const [name, script] of Object.entries(plugins)) {
          await chmod(await c.write(`lab/${name}.sh`, `#!/bin/sh\n${script}\n`), 0o755);
          await c.write(`lab/${name}.conf`, withExecPlugin(base, `./${name}.sh`));
          await variant(c, `${name}.yaml`, (t) =>
            t.replace('kubeconfig: kubeconfig', `kubeconfig: ${name}.conf`),
          );
        }
      },
      steps: (c) => {
        const plan = (name: string, ...more: string[]) => [
          'cluster',
          'plan',
          ...more,
          '--lab',
          at(c, `${name}.yaml`),
        ];
        const line = (what: string) =>
          new RegExp(`list Node: the kubeconfig's exec plugin ${what} — run it by hand`);
        return [
          { args: plan('fails'), code: 2 as const, line: line('ended with status 1') },
          {
            args: plan('fails', '--debug'),
            code: 2 as const,
            line: /exec plugin ended with status 1[\s\S]*caused by ExecCredentialError/,
          },
          { args: plan('bare'), code: 2 as const, line: line('printed no ExecCredential') },
          {
            args: plan('frames', '--debug'),
            code: 2 as const,
            line: /exec plugin ended with status 3[\s\S]*caused by ExecCredentialError/,
          },
          { args: plan('floods'), code: 2 as const, line: line('printed more than 1 MB') },
          {
            args: plan('waits', '--connect-timeout', '1', '--request-timeout', '1'),
            code: 2 as const,
            line: line('gave no credential within 2 s'),
            check: async () => {
              try {
                execFileSync('pgrep', ['-f', 'sleep 37']);
                return 'the plugin is still running';
              } catch {
                return undefined;
              }
            },
          },
        ];
      },
    }),
    kase({
      name: 'a kubeconfig token with a line break in it',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const text = await readFile(labOf(c).kubeconfigFile, 'utf8');
        await writeFile(
          labOf(c).kubeconfigFile,
          text.replace(`token: ${c.secrets.kubeToken}`, `token: "${c.secrets.kubeToken}\\nmore"`),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', ...L(c)],
          code: 2,
          line: /the token of user igpu-sim holds a line break or another control character/,
        },
      ],
    }),
    kase({
      name: 'a binary, a BOM-less UTF-16 and a multi-document file as the lab file; a trailing --- is no second document',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const text = labOf(c).labText();
        await c.write('lab/two.yaml', `${text}---\nhosts: []\n`);
        await c.write('lab/trailing.yaml', `${text}---\n# the end\n`);
        // A comment with letters outside ASCII, as an editor saving "Unicode" would write it.
        await c.write('lab/wide.yaml', Buffer.from(`# Café-Labor\n${text}`, 'utf16le'));
      },
      steps: (c) => [
        // A small program (the 1 MB limit must not be what refuses it).
        {
          args: ['plan', '--lab', '/bin/true'],
          code: 2,
          line: /holds a NUL byte at offset \d+: it is not a text file/,
        },
        { args: ['plan', '--lab', at(c, 'wide.yaml')], code: 2, line: /wide\.yaml .*is UTF-16, not UTF-8/ },
        {
          args: ['plan', '--lab', at(c, 'two.yaml')],
          code: 2,
          line: /a second YAML document \(after ---\): a lab file is one/,
        },
        { args: ['plan', '--lab', at(c, 'trailing.yaml')], code: 0, line: /mapping iGPU/ },
        { args: ['plan', '--lab', ''], code: 2, line: /--lab names no file/ },
      ],
    }),
    kase({
      name: 'a section with all its keys commented out means its defaults',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await variant(c, 'commented.yaml', (t) =>
          t.replace('  kubeconfig: kubeconfig\n', '  # kubeconfig: kubeconfig\n'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'render', '--out', join(c.dir, 'render'), '--lab', at(c, 'commented.yaml')],
          code: 0,
          line: /wrote /,
        },
      ],
    }),
    kase({
      name: 'output that cannot be written is not success',
      topic: 'stranger',
      steps: () => [
        {
          args: ['doctor', '--root', fixture('i5-8500t-gvt')],
          stdoutTo: '/dev/full',
          code: 2,
          line: /cannot write the output: no space left on the device/,
        },
      ],
    }),
    kase({
      name: 'control characters in /etc/kernel/cmdline are named, not printed: an escape, an 8-bit CSI, a bidi override, Windows line endings',
      topic: 'stranger',
      setup: async (c) => {
        for (const [name, odd] of [
          ['esc', '\x1b]0;owned\x07'],
          ['csi', '\u009b31m'],
          ['bidi', '\u202equiet'],
          ['crlf', 'quiet\r'],
        ] as const) {
          await mkdir(join(c.dir, name));
          const root = await hostCopy('i7-6700k-sdboot', join(c.dir, name));
          await writeFile(join(root, 'etc/kernel/cmdline'), `root=ZFS=rpool/ROOT/pve-1 ${odd}\n`);
        }
      },
      steps: (c) =>
        [
          ['esc', /holds a control character \(U\+001B\) at character 27/],
          ['csi', /holds a control character \(U\+009B\) at character 27/],
          ['bidi', /holds a control character \(U\+202E\) at character 27/],
          ['crlf', /has Windows line endings \(CR LF\) from line 1: save it with Unix line endings/],
        ].map(([name, what]) => ({
          args: ['host', 'plan', '--root', join(c.dir, name as string, 'i7-6700k-sdboot')],
          code: 1 as const,
          line: new RegExp(`cannot plan: /etc/kernel/cmdline: ${(what as RegExp).source}`),
        })),
    }),
    kase({
      name: 'a public key and a garbage file as --identity',
      topic: 'stranger',
      setup: async (c) => {
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(c.dir, 'key')]);
        await c.write('garbage', 'not a key at all\n');
      },
      steps: (c) => [
        {
          args: [
            'doctor',
            '--host',
            `ssh://root@127.0.0.1:${c.bad.closedPort}`,
            '--identity',
            join(c.dir, 'key.pub'),
          ],
          code: 2,
          line: /identity file .*key\.pub holds a public key — pass --identity the private key/,
        },
        {
          args: [
            'doctor',
            '--host',
            `ssh://root@127.0.0.1:${c.bad.closedPort}`,
            '--identity',
            join(c.dir, 'garbage'),
          ],
          code: 2,
          line: /not a private key ssh can read — pass --identity with your private key file/,
        },
      ],
    }),
    kase({
      name: 'a --vm that is not a VM id, and SSH port 0',
      topic: 'stranger',
      steps: () => [
        {
          args: ['vm', 'plan', '--vm', '42'],
          code: 2,
          line: /--vm must be a whole number from 100 to 999999999/,
        },
        {
          args: ['doctor', '--host', 'ssh://root@127.0.0.1:0'],
          code: 2,
          line: /port 0 .* is not a TCP port/,
        },
      ],
    }),
  ];
}

// ─── a second stranger's round ─────────────────────────────────────────────────────

function secondStrangerCases(): CliCase[] {
  const kubeAt = async (c: CaseContext, name: string, text: string) => {
    await c.write(`lab/${name}.conf`, text);
    await variant(c, `${name}.yaml`, (t) => t.replace('kubeconfig: kubeconfig', `kubeconfig: ${name}.conf`));
    return at(c, `${name}.yaml`);
  };
  const notKubernetes = /list Node: the server does not answer like a Kubernetes API server/;
  const extract = (c: CaseContext, archive: string, into: string) =>
    execFileSync('tar', ['-xzf', join(c.dir, archive), '-C', join(c.dir, into)]);
  return [
    kase({
      name: 'a token an exec plugin hands out, echoed back by the server, is never shown',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const plugin = await c.write(
          'lab/plugin.sh',
          `#!/bin/sh\nprintf '%s' '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"${c.secrets.execToken}"}}'\n`,
        );
        await chmod(plugin, 0o755);
        const text = withExecPlugin(
          await kubeconfigAt(c, `${c.bad.oddUrl}/echo`, c.bad.htmlCa),
          './plugin.sh',
        );
        await kubeAt(c, 'exec', text);
        await kubeAt(c, 'static', await kubeconfigAt(c, `${c.bad.oddUrl}/echo`, c.bad.htmlCa));
      },
      steps: (c) =>
        ['exec', 'static'].flatMap((name) =>
          [[], ['--debug']].map((debug) => ({
            args: ['cluster', 'plan', ...debug, '--lab', at(c, `${name}.yaml`)],
            code: 2 as const,
            line: /list Node: forbidden: a reason that repeats a credential, not shown/,
          })),
        ),
    }),
    kase({
      name: 'answers that are not the Kubernetes API: JSON without a kind, a body compressed unasked, a huge header',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        for (const odd of ['no-kind', 'gzip', 'big-header'])
          await kubeAt(c, odd, await kubeconfigAt(c, `${c.bad.oddUrl}/${odd}`, c.bad.htmlCa));
      },
      steps: (c) =>
        ['no-kind', 'gzip', 'big-header'].map((odd) => ({
          args: ['cluster', 'plan', '--lab', at(c, `${odd}.yaml`)],
          code: 2 as const,
          line: notKubernetes,
        })),
    }),
    kase({
      name: 'a certificate the kubeconfig or the system does not trust is named in our words',
      topic: 'stranger',
      lab: { talos: true },
      setup: async (c) => {
        // The simulator's own certificate, checked against another CA.
        const text = (await readFile(labOf(c).kubeconfigFile, 'utf8')).replace(
          /certificate-authority-data: [^\n]+/,
          `certificate-authority-data: ${Buffer.from(c.bad.htmlCa).toString('base64')}`,
        );
        await kubeAt(c, 'wrong-ca', text);
        await variant(c, 'factory.yaml', (t) =>
          t.replace(/imageFactory: [^\n]+/, `imageFactory: ${c.bad.htmlUrl}`),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'wrong-ca.yaml')],
          code: 2,
          line: /list Node: the server certificate is not trusted \([A-Z_]+\) — check the cluster's certificate-authority-data/,
        },
        {
          args: ['guest', 'render', '--out', join(c.dir, 'out'), '--lab', at(c, 'factory.yaml')],
          code: 2,
          line: /GET \/versions: the server certificate is not trusted \([A-Z_]+\)/,
        },
      ],
    }),
    kase({
      name: "a kubeconfig user's tokenFile is read and sent; a FIFO or an empty one is named",
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await c.write('lab/tokens/kube-token', `${c.secrets.kubeToken}\n`);
        await c.write('lab/tokens/blank', '\n');
        execFileSync('mkfifo', [join(c.dir, 'lab/tokens/pipe')]);
        const base = await readFile(labOf(c).kubeconfigFile, 'utf8');
        const withFile = (file: string) =>
          base.replace(/^( {4})token: .*$/m, `$1token: stale-token-not-sent\n$1tokenFile: tokens/${file}`);
        for (const file of ['kube-token', 'blank', 'pipe']) await kubeAt(c, file, withFile(file));
      },
      steps: (c) => [
        { args: ['cluster', 'plan', '--lab', at(c, 'kube-token.yaml')], code: 0, line: /cluster/ },
        {
          args: ['cluster', 'plan', '--lab', at(c, 'blank.yaml')],
          code: 2,
          line: /the tokenFile of user igpu-sim is empty/,
        },
        {
          args: ['cluster', 'plan', '--lab', at(c, 'pipe.yaml')],
          code: 2,
          line: /cannot read the tokenFile of user igpu-sim, .*tokens\/pipe: not a regular file/,
        },
      ],
    }),
    kase({
      name: "auth providers client-node would run unbounded: gcp refused, a file provider's pipe named",
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        execFileSync('mkfifo', [join(c.dir, 'lab/provider-pipe')]);
        const base = await readFile(labOf(c).kubeconfigFile, 'utf8');
        const provider = (lines: string) => base.replace(/^( {4})token: .*$/m, lines);
        await kubeAt(
          c,
          'gcp',
          provider('    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sleep'),
        );
        await kubeAt(
          c,
          'file',
          provider('    auth-provider:\n      name: file\n      config:\n        tokenFile: provider-pipe'),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'gcp.yaml')],
          code: 2,
          line: /user igpu-sim uses the gcp auth provider, which the Kubernetes client runs without any time bound/,
        },
        {
          args: ['cluster', 'plan', '--lab', at(c, 'file.yaml')],
          code: 2,
          line: /cannot read the auth-provider tokenFile of user igpu-sim, .*provider-pipe: not a regular file/,
        },
      ],
    }),
    kase({
      name: 'a Proxmox token secret pasted as the kubeconfig path is not shown',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await variant(c, 'pasted.yaml', (t) =>
          t.replace('kubeconfig: kubeconfig', `kubeconfig: ${c.secrets.tokenFile}`),
        );
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'pasted.yaml')],
          code: 2,
          line: /cannot read kubeconfig \(a path that looks like a token secret, not shown\): no such file/,
        },
      ],
    }),
    kase({
      name: 'a privilege the token lacks is named by plan, and apply changes nothing',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        for (const grants of labOf(c).state.acl.values()) grants.get('/vms')?.delete('VM.Config.HWType');
      },
      steps: (c) => [
        {
          args: ['plan', ...L(c)],
          code: 1,
          line: /Proxmox token[\s\S]*not applicable: token igpu-split@pve!lab lacks VM\.Config\.HWType on \/vms\/101/,
        },
        {
          args: ['apply', '--yes', '--no-verify', ...L(c)],
          code: 1,
          line: /the plan cannot be applied: token igpu-split@pve!lab lacks VM\.Config\.HWType on \/vms\/101 — see the plan above/,
          check: async (cc) => {
            if (labOf(cc).state.calls.some((call) => /mapping|config|start|shutdown/.test(call)))
              return `changed Proxmox: ${labOf(cc).state.calls.join('; ')}`;
            return nothingLeft()(cc);
          },
        },
      ],
    }),
    kase({
      name: 'a capture whose manifest is damaged, gone, a pipe or crafted is refused or tamed; a pipe in the host stays a pipe',
      topic: 'stranger',
      setup: async (c) => {
        const root = await hostCopy('i5-8500t-gvt', c.dir);
        await rm(join(root, 'etc/default/grub'));
        execFileSync('mkfifo', [join(root, 'etc/default/grub')]);
        for (const dir of ['damaged', 'gone', 'fifo', 'crafted', 'piped']) await mkdir(join(c.dir, dir));
      },
      steps: (c) => [
        {
          args: ['capture', '--root', fixture('i5-8500t-gvt'), '--out', join(c.dir, 'plain.tar.gz')],
          code: 0,
          line: /captured \d+ files/,
          check: async (cc) => {
            for (const dir of ['damaged', 'gone', 'fifo', 'crafted']) extract(cc, 'plain.tar.gz', dir);
            const manifest = (dir: string) =>
              join(cc.dir, dir, 'igpu-split-capture-i5-8500t-gvt/igpu-split-capture.json');
            await writeFile(manifest('damaged'), '{"unreadable": 5');
            await rm(manifest('gone'));
            await rm(manifest('fifo'));
            execFileSync('mkfifo', [manifest('fifo')]);
            // An archive from anyone: a message with a terminal escape in it.
            const crafted = JSON.parse(await readFile(manifest('crafted'), 'utf8'));
            crafted.unreadable = [
              { path: '/etc/default/grub', code: 'EIO', message: '\u001b[31mEVIL\u001b]0;owned\u0007' },
            ];
            await writeFile(manifest('crafted'), JSON.stringify(crafted));
            return undefined;
          },
        },
        {
          args: ['host', 'plan', '--root', join(c.dir, 'damaged/igpu-split-capture-i5-8500t-gvt')],
          code: 2,
          line: /igpu-split-capture\.json: damaged \(not JSON\) — unpack the capture archive again/,
        },
        {
          args: ['host', 'plan', '--root', join(c.dir, 'gone/igpu-split-capture-i5-8500t-gvt')],
          code: 2,
          line: /igpu-split-capture\.json: missing: without it a file the host could not read would look absent/,
        },
        {
          args: ['doctor', '--root', join(c.dir, 'fifo/igpu-split-capture-i5-8500t-gvt')],
          code: 2,
          line: /igpu-split-capture\.json: not a regular file — unpack the capture archive again/,
        },
        {
          args: ['doctor', '--root', join(c.dir, 'crafted/igpu-split-capture-i5-8500t-gvt')],
          code: 0,
          line: /\?\[31mEVIL\?\]0;owned\?/,
        },
        {
          args: ['host', 'plan', '--root', join(c.dir, 'i5-8500t-gvt')],
          code: 1,
          line: /\/etc\/default\/grub: not a regular file \(a pipe or a device\)/,
        },
        {
          args: ['capture', '--root', join(c.dir, 'i5-8500t-gvt'), '--out', join(c.dir, 'piped.tar.gz')],
          code: 0,
          line: /captured \d+ files/,
          check: async (cc) => void extract(cc, 'piped.tar.gz', 'piped'),
        },
        {
          args: ['host', 'plan', '--root', join(c.dir, 'piped/igpu-split-capture-i5-8500t-gvt')],
          code: 1,
          line: /\/etc\/default\/grub: not a regular file \(a pipe or a device\)/,
        },
      ],
    }),
    kase({
      name: 'lab file values with an 8-bit CSI or a bidi override are refused, not printed',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await variant(c, 'csi.yaml', (t) =>
          t.replace('kubernetesNode: k3s-1', 'kubernetesNode: "k3s-1\\u009b31m"'),
        );
        await variant(c, 'bidi.yaml', (t) => t.replace('  - node: pve1', '  - node: "pve1\\u202e"'));
      },
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'csi.yaml')],
          code: 2,
          line: /csi\.yaml:\d+:\d+: holds a control character \(U\+009B\): lab file values are plain text/,
        },
        {
          args: ['plan', '--lab', at(c, 'bidi.yaml')],
          code: 2,
          line: /bidi\.yaml:\d+:\d+: holds a control character \(U\+202E\)/,
        },
      ],
    }),
    kase({
      name: 'a link to nowhere as the lab lock is named, not taken for another apply',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await mkdir(join(c.dir, 'lab/.igpu-split'));
        await symlink('/nonexistent/lock', join(c.dir, 'lab/.igpu-split/lock'));
      },
      steps: (c) => [
        {
          args: ['apply', '--yes', '--no-verify', ...L(c)],
          code: 2,
          line: /the lab lock .*\.igpu-split\/lock is a symbolic link: igpu-split never makes one — remove it/,
        },
      ],
    }),
    kase({
      name: 'a demo cut short leaves no folder behind',
      topic: 'stranger',
      steps: (c) => {
        const noDemoLeft = async () => {
          const left = (await readdir(join(c.dir, 'tmp')).catch(() => [])).filter((n) =>
            n.startsWith('igpu-split-demo'),
          );
          return left.length > 0 ? `left behind: ${left.join(', ')}` : undefined;
        };
        return [
          {
            args: ['demo'],
            stdoutTo: '/dev/full',
            code: 2 as const,
            line: /cannot write the output/,
            check: noDemoLeft,
          },
          {
            args: ['demo'],
            signal: { name: 'SIGINT' as const, afterMs: 1500 },
            code: 2 as const,
            line: /interrupted by SIGINT/,
            check: noDemoLeft,
          },
        ];
      },
    }),
  ];
}

// ─── a third stranger's round ──────────────────────────────────────────────────────

function thirdStrangerCases(): CliCase[] {
  const extract = (c: CaseContext, archive: string, into: string) =>
    execFileSync('tar', ['-xzf', join(c.dir, archive), '-C', join(c.dir, into)]);
  return [
    kase({
      name: 'a notes line edited to attach a whole iGPU is not rolled back',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const vm = labOf(c).state.vms.get(101);
        if (vm) vm.config.description = 'igpu-split: {"key":"hostpci3","was":"mapping=iGPU,x-vga=1"}';
      },
      steps: (c) => [
        {
          args: ['vm', 'rollback', '--vm', '101', '--yes', ...L(c)],
          code: 1,
          line: /VM 101: the igpu-split line in its notes would put back on hostpci3 what is no vGPU: nothing was rolled back/,
          check: async (cc) =>
            labOf(cc).state.calls.some((call) => /config|shutdown/.test(call))
              ? `changed Proxmox: ${labOf(cc).state.calls.join('; ')}`
              : undefined,
        },
      ],
    }),
    kase({
      name: 'a token secret given as --token, $KUBECONFIG, --identity or a URL query is never shown',
      topic: 'stranger',
      lab: {},
      steps: (c) => {
        const init = (...more: string[]) => ['init', ...more, '--out', join(c.dir, 'x.yaml')];
        return [
          {
            args: init('--url', labOf(c).pve.url, '--token', `${TOKEN_ID}=${c.secrets.tokenFile}`),
            code: 2 as const,
            line: /--token \[a value that looks like a token secret, not shown\] is not an API token id/,
          },
          {
            args: init('--url', `${labOf(c).pve.url}/?t=${c.secrets.tokenFile}`, '--token', TOKEN_ID),
            code: 2 as const,
            line: /the Proxmox URL holds a query \(\?…\) or a fragment \(#…\), which is not shown/,
          },
          {
            args: ['cluster', 'plan', '--lab', at(c, 'no-kube.yaml')],
            env: { KUBECONFIG: c.secrets.tokenFile },
            code: 2 as const,
            line: /none of the kubeconfig files in KUBECONFIG \(\[a value that looks like a token secret, not shown\]\) exists/,
          },
          {
            args: [
              'doctor',
              '--host',
              `ssh://root@127.0.0.1:${c.bad.closedPort}`,
              '--identity',
              c.secrets.tokenFile,
            ],
            code: 2 as const,
            line: /cannot read identity file \(a path that looks like a token secret, not shown\)/,
          },
        ];
      },
      setup: async (c) => {
        await variant(c, 'no-kube.yaml', (t) =>
          t.replace('  kubeconfig: kubeconfig\n', '  namespace: igpu-split\n'),
        );
      },
    }),
    kase({
      name: 'terminal codes a server puts in a VM name are shown as ?',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const vm = labOf(c).state.vms.get(101);
        if (vm) vm.config.name = 'k3s-1\u001b[2J\u001b]0;owned\u0007\u202e';
      },
      steps: (c) => [{ args: ['status', ...L(c)], code: 0, line: /k3s-1\?\[2J\?\]0;owned\?\?/ }],
    }),
    kase({
      name: 'captures: a link to nowhere stays one; through a link or with a listed file gone, no manifest is no capture',
      topic: 'stranger',
      setup: async (c) => {
        const root = await hostCopy('i5-8500t-gvt', c.dir);
        await rm(join(root, 'etc/default/grub'));
        await symlink('grub.gone', join(root, 'etc/default/grub'));
        for (const dir of ['nowhere', 'linked', 'short']) await mkdir(join(c.dir, dir));
      },
      steps: (c) => [
        {
          args: ['host', 'plan', '--root', join(c.dir, 'i5-8500t-gvt')],
          code: 1,
          line: /\/etc\/default\/grub: a symbolic link that leads nowhere/,
        },
        {
          args: ['capture', '--root', join(c.dir, 'i5-8500t-gvt'), '--out', join(c.dir, 'n.tar.gz')],
          code: 0,
          line: /captured \d+ files/,
          check: async (cc) => {
            for (const dir of ['nowhere', 'linked', 'short']) extract(cc, 'n.tar.gz', dir);
            await rm(join(cc.dir, 'linked/igpu-split-capture-i5-8500t-gvt/igpu-split-capture.json'));
            await symlink(
              join(cc.dir, 'linked/igpu-split-capture-i5-8500t-gvt'),
              join(cc.dir, 'linked/host'),
            );
            await rm(join(cc.dir, 'short/igpu-split-capture-i5-8500t-gvt/proc/cmdline'));
            return undefined;
          },
        },
        {
          args: ['host', 'plan', '--root', join(c.dir, 'nowhere/igpu-split-capture-i5-8500t-gvt')],
          code: 1,
          line: /\/etc\/default\/grub: a symbolic link that leads nowhere/,
        },
        {
          args: ['host', 'plan', '--root', join(c.dir, 'linked/host')],
          code: 2,
          line: /igpu-split-capture\.json: missing/,
        },
        {
          args: ['host', 'plan', '--root', join(c.dir, 'short/igpu-split-capture-i5-8500t-gvt')],
          code: 2,
          line: /igpu-split-capture\.json: lists \/proc\/cmdline, which the tree does not hold/,
        },
      ],
    }),
    kase({
      name: 'vm plan and mapping plan name a privilege the token lacks',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        for (const grants of labOf(c).state.acl.values()) {
          grants.get('/vms')?.delete('VM.Config.HWType');
          grants.get('/mapping/pci')?.delete('Mapping.Modify');
        }
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', ...L(c)],
          code: 1,
          line: /FAIL\s+proxmox\.privileges\s+token igpu-split@pve!lab lacks Mapping\.Modify on \/mapping\/pci/,
          // The VM plan needs the mapping there.
          check: async (cc) => {
            labOf(cc).state.mappings.set('iGPU', { mdev: true, map: [uhd630Entry('pve1')] });
            return undefined;
          },
        },
        {
          args: ['vm', 'plan', ...L(c)],
          code: 1,
          line: /FAIL\s+proxmox\.privileges\s+token igpu-split@pve!lab lacks VM\.Config\.HWType/,
        },
      ],
    }),
    kase({
      name: 'redirects are named, never followed: Kubernetes, Proxmox',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await c.write('lab/odd-ca.pem', c.bad.htmlCa);
        await c.write('lab/redirect.conf', await kubeconfigAt(c, `${c.bad.oddUrl}/redirect`, c.bad.htmlCa));
        await variant(c, 'kube-redirect.yaml', (t) =>
          t.replace('kubeconfig: kubeconfig', 'kubeconfig: redirect.conf'),
        );
        await proxmoxAt(c, 'pve-redirect.yaml', c.bad.oddUrl, 'odd-ca.pem');
      },
      steps: (c) => [
        {
          args: ['cluster', 'plan', '--lab', at(c, 'kube-redirect.yaml')],
          code: 2,
          line: /list Node: the server sends us elsewhere \(HTTP 302 to https:\/\/login\.example\/sso\)/,
        },
        {
          args: ['vm', 'plan', '--lab', at(c, 'pve-redirect.yaml')],
          code: 2,
          line: /: the server sends us elsewhere \(HTTP 302 to https:\/\/login\.example\/sso\) — give the Proxmox API itself/,
        },
      ],
    }),
    kase({
      name: 'a lab file with old Mac line endings is named as such',
      topic: 'stranger',
      lab: {},
      setup: async (c) => void (await c.write('lab/cr.yaml', labOf(c).labText().replaceAll('\n', '\r'))),
      steps: (c) => [
        {
          args: ['plan', '--lab', at(c, 'cr.yaml')],
          code: 2,
          line: /cr\.yaml:1: a carriage return \(CR\) without a line feed: save the file with Unix line endings/,
        },
      ],
    }),
  ];
}

// ─── a fourth stranger's round ─────────────────────────────────────────────────────

function fourthStrangerCases(): CliCase[] {
  const forms = Object.keys(ECHO_FORMS) as EchoForm[];
  return [
    kase({
      name: 'a credential echoed back shifted in base64, upper-cased or in hex is never shown',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await c.write('lab/echo-ca.pem', c.bad.htmlCa);
        for (const form of forms) {
          await proxmoxAt(c, `pve-${form}.yaml`, c.bad.echoUrls[form], 'echo-ca.pem');
          await c.write(`lab/kube-${form}.conf`, await kubeconfigAt(c, c.bad.echoUrls[form], c.bad.htmlCa));
          await variant(c, `kube-${form}.yaml`, (t) =>
            t.replace('kubeconfig: kubeconfig', `kubeconfig: kube-${form}.conf`),
          );
        }
      },
      steps: (c) =>
        forms.flatMap((form) => [
          {
            args: ['mapping', 'plan', '--lab', at(c, `pve-${form}.yaml`)],
            code: 2 as const,
            line: /permission denied: a reason that repeats a credential, not shown/,
          },
          {
            args: ['cluster', 'plan', '--lab', at(c, `kube-${form}.yaml`)],
            code: 2 as const,
            line: /list Node: forbidden: a reason that repeats a credential, not shown/,
          },
        ]),
    }),
    kase({
      name: 'JSON of another API where the Proxmox API should answer is named as such',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await c.write('lab/other-ca.pem', c.bad.htmlCa);
        await proxmoxAt(c, 'other.yaml', c.bad.otherJsonUrl, 'other-ca.pem');
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', '--lab', at(c, 'other.yaml')],
          code: 2,
          line: /GET \/\S+: not a Proxmox API answer \(JSON without its data field\) — check that the URL points at the Proxmox API/,
        },
      ],
    }),
    kase({
      name: 'a Proxmox URL with a user and password in the lab file is named there, the password never shown',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await variant(c, 'userinfo.yaml', (t) =>
          t.replace(/url: https:\/\//, `url: https://root:${c.secrets.tokenFile}@`),
        );
      },
      steps: (c) => [
        {
          args: ['mapping', 'plan', '--lab', at(c, 'userinfo.yaml')],
          code: 2,
          line: /userinfo\.yaml:2:8: proxmox\.url holds a user or password \(not shown\) — write only https:\/\/<node>:8006 as proxmox\.url in \S+userinfo\.yaml/,
        },
      ],
    }),
    kase({
      name: 'an unknown YAML tag in the lab file is refused where it stands',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await variant(c, 'js.yaml', (t) =>
          t.replace('kubernetesNode: k3s-1', 'kubernetesNode: !!js/function "k3s-1"'),
        );
        await variant(c, 'custom.yaml', (t) => t.replace('host: pve1', 'host: !vault pve1'));
      },
      steps: (c) => [
        {
          args: ['vm', 'plan', '--lab', at(c, 'js.yaml')],
          code: 2,
          line: /js\.yaml:\d+:\d+: an unknown YAML tag \(!!js\/function\): lab file values are plain YAML/,
        },
        {
          args: ['plan', '--lab', at(c, 'custom.yaml')],
          code: 2,
          line: /custom\.yaml:\d+:\d+: an unknown YAML tag \(!vault\)/,
        },
      ],
    }),
    kase({
      name: 'a capture manifest listing a file outside the tree is damage',
      topic: 'stranger',
      steps: (c) => [
        {
          args: ['capture', '--root', fixture('i5-8500t-gvt'), '--out', join(c.dir, 'plain.tar.gz')],
          code: 0,
          line: /captured \d+ files/,
          check: async (cc) => {
            await mkdir(join(cc.dir, 'out'));
            execFileSync('tar', ['-xzf', join(cc.dir, 'plain.tar.gz'), '-C', join(cc.dir, 'out')]);
            const manifest = join(cc.dir, 'out/igpu-split-capture-i5-8500t-gvt/igpu-split-capture.json');
            const crafted = JSON.parse(await readFile(manifest, 'utf8'));
            crafted.files.push('/../../../../../../etc/passwd');
            await writeFile(manifest, JSON.stringify(crafted));
            return undefined;
          },
        },
        {
          args: ['doctor', '--root', join(c.dir, 'out/igpu-split-capture-i5-8500t-gvt')],
          code: 2,
          line: /igpu-split-capture\.json: damaged \(files\.\d+: leads out of the tree \(a \.\. in it\)\) — unpack the capture archive again/,
        },
      ],
    }),
    kase({
      name: 'a notes line naming a machine type apply never changed is refused by rollback and named by plan',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        labOf(c).state.mappings.set('iGPU', { mdev: true, map: [uhd630Entry('pve1')] });
        Object.assign(labOf(c).state.vm(101).config, {
          hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1',
          description: 'igpu-split: {"format":2,"key":"hostpci0","machine":"pc-i440fx-8.1"}',
        });
      },
      steps: (c) => [
        {
          args: ['vm', 'plan', ...L(c)],
          code: 0,
          line: /VM 101: the igpu-split line in its notes names a machine type without the change igpu-split made .*; rollback refuses this VM/,
        },
        {
          args: ['vm', 'rollback', '--yes', ...L(c)],
          code: 1,
          line: /VM 101: the igpu-split line in its notes names a machine type without the change igpu-split made .*: nothing was rolled back/,
          check: async (cc) => {
            const config = labOf(cc).state.vm(101).config;
            return config.machine !== 'q35' || !config.hostpci0
              ? `VM 101 changed: machine ${config.machine}, hostpci0 ${config.hostpci0}`
              : undefined;
          },
        },
      ],
    }),
    kase({
      name: 'a damaged notes line makes vm rollback and rollback refuse, naming the VM',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        Object.assign(labOf(c).state.vm(101).config, {
          hostpci0: 'mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1',
          description: 'igpu-split: {not json',
        });
      },
      steps: (c) =>
        [['vm', 'rollback'], ['rollback']].map((command) => ({
          args: [...command, '--yes', ...L(c)],
          code: 1 as const,
          line: /VM 101: the igpu-split line in its notes is damaged \(not JSON\): nothing was rolled back/,
          check: async (cc) =>
            labOf(cc).state.vm(101).config.hostpci0 === undefined ? 'hostpci0 was removed' : undefined,
        })),
    }),
    kase({
      name: 'an interrupt while an exec plugin runs takes the plugin and what it started down too',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const plugin = await c.write(
          'lab/hang.sh',
          `#!/bin/sh\nsleep 1000 &\necho "$$ $!" > '${join(c.dir, 'plugin.pids')}'\nsleep 1000\n`,
        );
        await chmod(plugin, 0o755);
        await c.write(
          'lab/hang.conf',
          withExecPlugin(await readFile(labOf(c).kubeconfigFile, 'utf8'), './hang.sh'),
        );
        await variant(c, 'hang.yaml', (t) => t.replace('kubeconfig: kubeconfig', 'kubeconfig: hang.conf'));
      },
      steps: (c) =>
        (['SIGINT', 'SIGTERM'] as const).map((signal) => ({
          args: ['cluster', 'plan', '--lab', at(c, 'hang.yaml')],
          // Well within the plugin's 20 s, and after it started even on a busy machine.
          signal: { name: signal, afterMs: 5000 },
          code: 2 as const,
          line: new RegExp(`interrupted by ${signal}`),
          check: async (cc: CaseContext) => {
            const written = await readFile(join(cc.dir, 'plugin.pids'), 'utf8').catch(() => '');
            const pids = written.trim().split(' ').filter(Boolean).map(Number);
            if (pids.length !== 2)
              return `the plugin did not start (plugin.pids: ${JSON.stringify(written)})`;
            await rm(join(cc.dir, 'plugin.pids'));
            // A process killed is gone, or a zombie until its new parent reaps it.
            const alive = (pid: number) => {
              try {
                return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
              } catch {
                return false;
              }
            };
            for (let i = 0; i < 20 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
            const left = pids.filter(alive);
            // The shell leads the plugin's group: what is left goes, so the corpus leaves nothing behind.
            if (left.length > 0) process.kill(-(pids[0] as number), 'SIGKILL');
            return left.length > 0
              ? `the plugin's processes ${left.join(', ')} outlived igpu-split`
              : undefined;
          },
        })),
    }),
  ];
}

/** The lab lock around the layer commands, and the ways out of an interrupted apply. */
function layerLockCases(): CliCase[] {
  const journalDir = (c: CaseContext) => join(labOf(c).dir, '.igpu-split');
  const interrupted = async (c: CaseContext) => {
    await mkdir(journalDir(c), { recursive: true });
    await writeFile(join(journalDir(c), 'lock'), '999999\n');
    await writeFile(
      join(journalDir(c), 'journal.json'),
      JSON.stringify({
        startedAt: '2026-11-29T10:00:00.000Z',
        pid: 999999,
        stages: ['lab/mapping@abc'],
        begun: ['VMs 101: vGPU'],
        marks: [],
        stopped: [],
      }),
    );
  };
  const journalKept = async (c: CaseContext) =>
    existsSync(join(journalDir(c), 'journal.json')) ? undefined : 'the interrupted apply’s journal is gone';
  const held = new RegExp(`another igpu-split apply \\(pid ${process.pid}\\) holds the lab lock`);
  const damaged = async (c: CaseContext) => {
    await mkdir(journalDir(c), { recursive: true });
    await writeFile(join(journalDir(c), 'journal.json'), '{"stages": [');
  };
  return [
    kase({
      name: 'a layer command beside a damaged journal refuses and leaves no lock behind',
      topic: 'lock',
      lab: {},
      setup: damaged,
      steps: (c) => [
        {
          args: ['vm', 'rollback', '--yes', ...L(c)],
          code: 2,
          line: /the apply journal .*journal\.json is damaged/,
          check: async (c) =>
            existsSync(join(journalDir(c), 'lock')) ? 'the lab lock was left behind' : undefined,
        },
        {
          args: ['rollback', '--yes', '--discard-journal', ...L(c)],
          code: 0,
          line: /removed the interrupted apply’s journal \(the apply journal .*is damaged\)/,
          check: async (c) =>
            existsSync(join(journalDir(c), 'journal.json'))
              ? 'the damaged journal is still there'
              : undefined,
        },
      ],
    }),
    kase({
      name: 'the layer commands that change the lab wait for no one: a live apply’s lock refuses them',
      topic: 'lock',
      lab: {},
      setup: async (c) => {
        await mkdir(journalDir(c), { recursive: true });
        await writeFile(join(journalDir(c), 'lock'), lockLine(process.pid));
      },
      steps: (c) => [
        { args: ['mapping', 'rollback', '--yes', ...L(c)], code: 2, line: held },
        { args: ['vm', 'rollback', '--yes', ...L(c)], code: 2, line: held },
        { args: ['cluster', 'rollback', '--yes', ...L(c)], code: 2, line: held },
        { args: ['cluster', 'apply', '--yes', ...L(c)], code: 2, line: held },
      ],
    }),
    kase({
      name: 'a layer command beside an interrupted apply says so and keeps its journal',
      topic: 'lock',
      lab: {},
      setup: interrupted,
      steps: (c) => [
        {
          args: ['vm', 'rollback', '--yes', ...L(c)],
          code: 0,
          line: /an earlier apply \(pid 999999, started 2026-11-29T10:00:00\.000Z\) stopped without finishing: .*this command changes only its own layer and keeps that journal/,
          check: journalKept,
        },
      ],
    }),
    kase({
      name: 'rollback beside an interrupted apply names the way out, and --discard-journal takes it',
      topic: 'lock',
      lab: {},
      setup: interrupted,
      steps: (c) => [
        {
          args: ['rollback', '--yes', ...L(c)],
          code: 2,
          line: /an earlier apply \(pid 999999.* — continue it with igpu-split apply --resume .*or undo it all with igpu-split rollback --discard-journal/,
          check: journalKept,
        },
        {
          args: ['rollback', '--yes', '--discard-journal', ...L(c)],
          code: 0,
          line: /removed the interrupted apply’s journal \(an earlier apply \(pid 999999.*\): start by hand any VM it left stopped/,
          check: async (c) =>
            existsSync(join(journalDir(c), 'journal.json')) ? 'the journal is still there' : undefined,
        },
      ],
    }),
  ];
}

/** The case lab's file, with `kubernetes.allocator: dra`. */
const draLab = async (c: CaseContext): Promise<void> => {
  await variant(c, 'dra.yaml', (t) =>
    t.replace('  kubeconfig: kubeconfig\n', '  kubeconfig: kubeconfig\n  allocator: dra\n'),
  );
};
const D = (c: CaseContext) => ['--lab', at(c, 'dra.yaml')];
/** Objects igpu-split made that are still in the case's cluster, by kind/name. */
const oursLeft = (c: CaseContext) =>
  KINDS.filter((kind) => labOf(c).kube.store.served(kind)).flatMap((kind) =>
    labOf(c)
      .kube.store.list(kind)
      .filter((o) => o.metadata.labels?.['app.kubernetes.io/managed-by'] === 'igpu-split')
      .map((o) => `${kind.kind}/${o.metadata.name}`),
  );

/** DRA mode: what a cluster that cannot take it, or already has an allocator, answers. */
/** The kind a case's setup writes straight into the simulated API server's store. */
const kindNamed = (name: string) => KINDS.find((k) => k.kind === name) as (typeof KINDS)[number];

/** A PodDisruptionBudget over one pod on k3s-1: the drain pre-flight names pve1's turn. */
function drainCases(): CliCase[] {
  const budget = (maxUnavailable: number) => ({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'web-pdb', namespace: 'default' },
    spec: { maxUnavailable, selector: { matchLabels: { app: 'web' } } },
  });
  return [
    kase({
      name: 'a PodDisruptionBudget that can never be satisfied: plan and apply refuse in one line naming the host, node, pod and budget; relaxed, plan passes',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        const { store } = labOf(c).kube;
        store.update(kindNamed('Pod'), {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name: 'web-1',
            namespace: 'default',
            labels: { app: 'web' },
            ownerReferences: [
              {
                apiVersion: 'apps/v1',
                kind: 'ReplicaSet',
                name: 'web-5d8f',
                uid: 'rs-uid',
                controller: true,
              },
            ],
          },
          spec: { nodeName: 'k3s-1', containers: [{ name: 'web', image: 'nginx:1.27' }] },
          status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] },
        });
        store.update(kindNamed('PodDisruptionBudget'), budget(0));
      },
      steps: (c) => [
        {
          args: ['plan', ...L(c)],
          code: 1,
          line: /FAIL\s+rollout\.pve1\.drain\s+host pve1 would block node k3s-1, pod default\/web-1, PodDisruptionBudget default\/web-pdb: it can never be satisfied \(maxUnavailable 0 allows no eviction\)\n\s+fix: raise the PodDisruptionBudget's maxUnavailable/,
        },
        {
          args: ['apply', '--yes', '--no-verify', ...L(c)],
          code: 1,
          line: /host pve1 would block node k3s-1, pod default\/web-1, PodDisruptionBudget default\/web-pdb/,
          // Nothing was drained (k3s-1 not cordoned, the pod still there); then the budget is relaxed.
          check: async (c) => {
            const { store } = labOf(c).kube;
            const node = store.get(kindNamed('Node'), undefined, 'k3s-1');
            if ((node?.spec as { unschedulable?: boolean } | undefined)?.unschedulable)
              return 'k3s-1 was cordoned';
            if (!store.get(kindNamed('Pod'), 'default', 'web-1')) return 'web-1 was evicted';
            store.update(kindNamed('PodDisruptionBudget'), budget(1));
            return undefined;
          },
        },
        { args: ['plan', ...L(c)], code: 0, line: /PASS\s+rollout\.pve1\.drain\s+host pve1: draining k3s-1/ },
      ],
    }),
  ];
}

function draCases(): CliCase[] {
  return [
    kase({
      name: 'allocator dra on a Kubernetes 1.33 cluster: one line with the version that would, nothing applied',
      topic: 'stranger',
      lab: { kube: { version: '1.33' } },
      setup: draLab,
      steps: (c) => [
        {
          args: ['cluster', 'plan', ...D(c)],
          code: 1,
          line: /cluster https:\/\/127\.0\.0\.1:\d+ runs Kubernetes v1\.33\.\S+; allocator dra needs 1\.34 or later \(resource\.k8s\.io\/v1\)[\s\S]*K3s v1\.34\.x\+k3s1/,
        },
        {
          args: ['cluster', 'apply', '--yes', ...D(c)],
          code: 1,
          line: /allocator dra needs 1\.34 or later/,
          check: async (c) =>
            oursLeft(c).length > 0 ? `applied anyway: ${oursLeft(c).join(', ')}` : undefined,
        },
      ],
    }),
    kase({
      name: 'both allocators: DRA refused while igpu-split’s device plugin runs; rollback, then DRA applies, verifies and rolls back to nothing',
      topic: 'stranger',
      lab: {},
      setup: draLab,
      steps: (c) => [
        { args: ['cluster', 'apply', '--yes', ...L(c)], code: 0, line: /DaemonSet intel-gpu-plugin/ },
        {
          args: ['cluster', 'plan', ...D(c)],
          code: 1,
          line: /already runs Intel's GPU device plugin \(DaemonSet igpu-split\/intel-gpu-plugin \(igpu-split’s\)\)[\s\S]*igpu-split cluster rollback/,
        },
        {
          args: ['cluster', 'rollback', '--yes', ...D(c)],
          code: 0,
          line: /deleted DaemonSet intel-gpu-plugin/,
        },
        { args: ['cluster', 'apply', '--yes', ...D(c)], code: 0, line: /DeviceClass gpu\.intel\.com/ },
        {
          args: ['cluster', 'plan', ...L(c)],
          code: 1,
          line: /already runs Intel's GPU DRA driver/,
        },
        {
          args: ['cluster', 'verify', ...D(c)],
          code: 0,
          line: /verify left every device's allocation as it was/,
        },
        {
          args: ['cluster', 'rollback', '--yes', ...D(c)],
          code: 0,
          line: /deleted DeviceClass gpu\.intel\.com/,
          check: async (c) => (oursLeft(c).length > 0 ? `left behind: ${oursLeft(c).join(', ')}` : undefined),
        },
      ],
    }),
    kase({
      name: 'a DeviceClass gpu.intel.com of another driver: refused in one line and left as it was',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await draLab(c);
        labOf(c).kube.store.update(KINDS.find((k) => k.kind === 'DeviceClass') as (typeof KINDS)[number], {
          apiVersion: 'resource.k8s.io/v1',
          kind: 'DeviceClass',
          metadata: { name: 'gpu.intel.com' },
          spec: { selectors: [{ cel: { expression: 'device.driver == "gpu.example.com"' } }] },
        });
      },
      steps: (c) => [
        {
          args: ['cluster', 'apply', '--yes', ...D(c)],
          code: 1,
          line: /DeviceClass gpu\.intel\.com in cluster https:\/\/127\.0\.0\.1:\d+ exists and selects device\.driver == "gpu\.example\.com": another driver uses the name/,
          check: async (c) => {
            const live = labOf(c).kube.store.list(
              KINDS.find((k) => k.kind === 'DeviceClass') as (typeof KINDS)[number],
            );
            const expression = JSON.stringify(live.map((o) => o.spec));
            if (!expression.includes('gpu.example.com')) return `the class was changed: ${expression}`;
            return oursLeft(c).length > 0 ? `applied anyway: ${oursLeft(c).join(', ')}` : undefined;
          },
        },
      ],
    }),
    kase({
      name: 'a ResourceSlice that never appears: verify names the node and the driver’s log',
      topic: 'stranger',
      lab: {},
      setup: async (c) => {
        await draLab(c);
        labOf(c).kube.setDraSlice('k3s-1', false);
      },
      steps: (c) => [
        { args: ['cluster', 'apply', '--yes', ...D(c)], code: 0, line: /DeviceClass gpu\.intel\.com/ },
        {
          args: ['cluster', 'verify', ...D(c)],
          code: 1,
          line: /no ResourceSlice of gpu\.intel\.com lists a device on k3s-1[\s\S]*kubectl -n intel-gpu-resource-driver logs/,
        },
      ],
    }),
    kase({
      name: 'the DRAAdminAccess gate off: verify runs no smoke pod and says why in one line',
      topic: 'stranger',
      lab: { kube: { features: { draAdminAccess: false } } },
      setup: draLab,
      steps: (c) => [
        { args: ['cluster', 'apply', '--yes', ...D(c)], code: 0, line: /DeviceClass gpu\.intel\.com/ },
        {
          args: ['cluster', 'verify', ...D(c)],
          code: 1,
          line: /dropped adminAccess from verify's claim \(the DRAAdminAccess feature gate is off\)/,
        },
      ],
    }),
  ];
}

export function cases(): CliCase[] {
  return [
    ...draCases(),
    ...drainCases(),
    ...secretCases(),
    ...pathCases(),
    ...damagedHostCases(),
    ...serverCases(),
    ...shapeCases(),
    ...optionCases(),
    ...lockCases(),
    ...exitCodeCases(),
    ...strangerCases(),
    ...secondStrangerCases(),
    ...thirdStrangerCases(),
    ...fourthStrangerCases(),
    ...layerLockCases(),
  ];
}
