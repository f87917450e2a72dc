// igpu-split init: writes a commented lab file from what the Proxmox API shows. With a
// terminal it asks which VMs are Kubernetes nodes and what they run; without one, --vm
// VMID:OS says so.

import type { Command } from 'commander';
import { errnoText, UsageError } from '../core/errors.ts';
import { shownValue } from '../core/secrets.ts';
import { counted } from '../core/text.ts';
import type { ChosenVm, DiscoveredNode } from '../engine/init.ts';
import {
  addConnectTimeout,
  addRequestTimeout,
  FORCE_HELP,
  type TimeoutOptions,
  timeoutsOf,
} from './option-checks.ts';

interface InitOptions extends TimeoutOptions {
  url: string;
  token: string;
  tokenSecretFile?: string;
  tokenSecretEnv?: string;
  fingerprint?: string;
  caFile?: string;
  vm?: string[];
  out: string;
  force?: boolean;
}

export function registerInit(program: Command): void {
  const command = program
    .command('init')
    .description('write a commented lab file from what the Proxmox API shows (asks which VMs are node VMs)')
    .requiredOption('--url <url>', 'the Proxmox API, e.g. https://pve1.lan:8006')
    .requiredOption('--token <id>', 'API token id USER@REALM!NAME')
    .option('--token-secret-file <file>', 'file holding the token secret')
    .option('--token-secret-env <name>', 'environment variable holding the token secret')
    .option('--fingerprint <sha256>', "the node certificate's SHA-256 fingerprint")
    .option('--ca-file <file>', 'CA certificate (/etc/pve/pve-root-ca.pem)')
    .option('--vm <vmid:os...>', 'node VMs without prompting, e.g. 101:ubuntu 102:talos')
    .option('--out <file>', 'where to write', 'igpu-split.yaml')
    .option('--force', FORCE_HELP);
  addRequestTimeout(addConnectTimeout(command)).action(runInit);
}

type Secret = { file: string } | { env: string };
type Trust = { fingerprint: string } | { caFile: string } | { system: true };
type Candidate = DiscoveredNode['vms'][number] & { node: string };

async function runInit(options: InitOptions): Promise<void> {
  await checkInitOptions(options);
  const secret: Secret = options.tokenSecretFile
    ? { file: options.tokenSecretFile }
    : { env: options.tokenSecretEnv as string };
  const trust: Trust = options.fingerprint
    ? { fingerprint: options.fingerprint }
    : options.caFile
      ? { caFile: options.caFile }
      : { system: true as const };
  const [{ loadTokenSecret, ProxmoxClient }, { ProxmoxApi }, { discover }, { resolveLabPath }] =
    await Promise.all([
      import('../proxmox/client.ts'),
      import('../proxmox/api.ts'),
      import('../engine/init.ts'),
      import('../config/paths.ts'),
    ]);
  const client = new ProxmoxClient({
    baseUrl: options.url,
    tokenId: options.token,
    // Read by the rule the lab file's paths follow (~/ is home), relative to here.
    secret: await loadTokenSecret(
      'file' in secret ? { file: resolveLabPath(secret.file, process.cwd()) } : secret,
    ),
    tls: 'caFile' in trust ? { caFile: resolveLabPath(trust.caFile, process.cwd()) } : trust,
    ...timeoutsOf(options),
  });
  try {
    const nodes = await discover(new ProxmoxApi(client, options.token));
    const chosen = await chooseVms(options.vm, nodes);
    const text = await labText(options, secret, trust, nodes, chosen);
    await writeLabFile(options.out, text);
    process.stdout.write(
      `wrote ${options.out}: ${counted(nodes.filter((n) => n.gpu).length, 'host')} with an iGPU, ${counted(chosen.length, 'node VM')}. Next: igpu-split plan\n`,
    );
  } finally {
    await client.close();
  }
}

/** Everything that can be checked here is, before the secret is read or anything is sent. */
async function checkInitOptions(options: InitOptions): Promise<void> {
  const [{ existsSync, statSync }, { checkProxmoxUrl }, { TOKEN_ID }] = await Promise.all([
    import('node:fs'),
    import('../proxmox/client.ts'),
    import('../config/lab.ts'),
  ]);
  checkProxmoxUrl(options.url);
  if (!TOKEN_ID.test(options.token))
    throw new UsageError(`--token ${shownValue(options.token)} is not an API token id`, {
      fix: "give it as USER@REALM!TOKENID, e.g. 'igpu-split@pve!lab' (quote it: ! is special in bash)",
    });
  if (existsSync(options.out) && !options.force)
    throw new UsageError(`${options.out} exists`, {
      fix: 'pass --force to overwrite it, or --out another file',
    });
  // Only a regular file is overwritten: a pipe or a device would take the text, or block.
  if (existsSync(options.out) && !statSync(options.out).isFile())
    throw new UsageError(`${options.out} is not a regular file`, { fix: 'name a file with --out' });
  if (Boolean(options.tokenSecretFile) === Boolean(options.tokenSecretEnv))
    throw new UsageError('give one of --token-secret-file or --token-secret-env', {
      fix: 'the secret never goes on the command line',
    });
  if (options.fingerprint && options.caFile)
    throw new UsageError('give --fingerprint or --ca-file, not both', { fix: 'pass one' });
}

/** The node VMs: from --vm, else asked at a terminal, else none. */
async function chooseVms(specs: string[] | undefined, nodes: DiscoveredNode[]): Promise<ChosenVm[]> {
  const all = nodes.flatMap((n) => n.vms.map((vm) => ({ ...vm, node: n.node })));
  // The guest OSes are the guest providers' (src/guest/providers.ts).
  const { GUEST_OSES } = await import('../guest/providers.ts');
  if (specs) return specs.map((spec) => vmFromSpec(spec, all, GUEST_OSES));
  if (!process.stdin.isTTY) return [];
  return askVms(
    all.filter((v) => nodes.find((n) => n.node === v.node)?.gpu),
    GUEST_OSES,
  );
}

function vmFromSpec(spec: string, all: Candidate[], oses: readonly ChosenVm['os'][]): ChosenVm {
  const match = /^(\d+):(\w+)$/.exec(spec);
  const os = oses.find((name) => name === match?.[2]);
  const vm = match ? all.find((v) => v.vmid === Number(match[1])) : undefined;
  if (!match || !vm || !os)
    throw new UsageError(`--vm ${spec}: not VMID:${oses.join('|')} of a VM Proxmox shows`, {
      fix: `VMs: ${all.map((v) => v.vmid).join(', ') || 'none'}`,
    });
  return { vmid: vm.vmid, node: vm.node, os, name: vm.name };
}

async function askVms(candidates: Candidate[], oses: readonly ChosenVm['os'][]): Promise<ChosenVm[]> {
  const choices = oses.map((os) => `[${os[0]}]${os.slice(1)}`).join(' / ');
  const chosen: ChosenVm[] = [];
  const { createInterface } = await import('node:readline/promises');
  const prompt = createInterface({ input: process.stdin, output: process.stdout });
  try {
    for (const vm of candidates) {
      const answer = (
        await prompt.question(
          `VM ${vm.vmid} ${vm.name ?? ''} on ${vm.node}: a Kubernetes node? ${choices} / [N]o `,
        )
      )
        .trim()
        .toLowerCase();
      // An OS by its first letter; anything else is no.
      const os = oses.find((name) => answer.startsWith(name.slice(0, 1)));
      if (os) chosen.push({ vmid: vm.vmid, node: vm.node, os, name: vm.name });
    }
  } finally {
    prompt.close();
  }
  return chosen;
}

/** The lab file's text, checked with the lab schema. */
async function labText(
  options: InitOptions,
  secret: Secret,
  trust: Trust,
  nodes: DiscoveredNode[],
  chosen: ChosenVm[],
): Promise<string> {
  const [{ labFileText, withGuestLines }, { parseLab }, { pathForLabFile }, { findTalosctl, talosctlAt }] =
    await Promise.all([
      import('../engine/init.ts'),
      import('../config/load.ts'),
      import('../config/paths.ts'),
      import('../guest/talos/talosctl.ts'),
    ]);
  // Paths in a lab file are relative to its folder: written so they name the same files.
  const written = {
    secret: 'file' in secret ? { file: pathForLabFile(secret.file, options.out) } : secret,
    trust: 'caFile' in trust ? { caFile: pathForLabFile(trust.caFile, options.out) } : trust,
  };
  // What a guest runs (a Talos version) is written as read from it, never assumed.
  const talosctl = await findTalosctl();
  const text = labFileText(
    { url: options.url, token: options.token, secret: written.secret, trust: written.trust },
    nodes,
    await withGuestLines(chosen, talosctl ? talosctlAt(talosctl) : undefined),
  );
  parseLab(text, options.out);
  return text;
}

async function writeLabFile(out: string, text: string): Promise<void> {
  const [{ mkdir, writeFile }, { dirname, resolve }] = await Promise.all([
    import('node:fs/promises'),
    import('node:path'),
  ]);
  try {
    await mkdir(dirname(resolve(out)), { recursive: true });
    await writeFile(out, text);
  } catch (error) {
    // expected: anything — rethrown as one line naming the file (no such folder, permission denied)
    throw new UsageError(`cannot write ${out}: ${errnoText(error)}`, {
      fix: 'name a file in a folder you can write with --out',
      cause: error,
    });
  }
}
