// Host layer, igpu-split vs Ansible: gather + plan + apply (no reboot) on 8 fake Proxmox
// hosts (real sshd, chrooted into a captured host with the machine's /usr read-only),
// side by side in one run. Each tool gets its own fresh set of hosts; both must leave
// the same files behind. Needs root, openssh-server and ansible-core (Debian).

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fixturePath } from '../test/support/fixtures.ts';
import { startSshd, type TestSshd } from '../test/support/sshd.ts';

const HOSTS = 8;
const DROPIN = 'etc/default/grub.d/igpu-split.cfg';

export interface HostLayerResult {
  igpuSplitMs: number;
  ansibleMs: number;
}

export function hostLayerSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root for the fake hosts';
  if (!existsSync('/usr/sbin/sshd')) return 'needs openssh-server';
  if (spawnSync('ansible-playbook', ['--version']).status !== 0)
    return 'needs ansible-core (apt-get install ansible-core)';
  return undefined;
}

async function fleet(): Promise<TestSshd[]> {
  return Promise.all(
    Array.from({ length: HOSTS }, () => startSshd(fixturePath('i5-8500t-before'), { system: true })),
  );
}

function timed(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(command, args, { env, encoding: 'utf8' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0)
    throw new Error(`${command} failed: ${(result.stderr || result.stdout).slice(-2000)}`);
  return ms;
}

async function assertConverged(hosts: TestSshd[], who: string): Promise<void> {
  for (const host of hosts) {
    const content = await readFile(join(host.root, DROPIN), 'utf8').catch(() => '');
    if (!content.includes('intel_iommu=on iommu=pt i915.enable_gvt=1'))
      throw new Error(`${who} left a host unconfigured`);
  }
}

export async function benchHostLayer(): Promise<HostLayerResult> {
  const ours = await fleet();
  const peer = await fleet();
  const all = [...ours, ...peer];
  const work = await mkdtemp(join(tmpdir(), 'igpu-bench-'));
  try {
    // One client key for all 16 hosts, one known_hosts naming them all.
    const identity = all[0]?.identityFile as string;
    const publicKey = await readFile(`${identity}.pub`, 'utf8');
    for (const host of all) await appendFile(join(dirname(host.identityFile), 'authorized_keys'), publicKey);
    const knownHosts = join(work, 'known_hosts');
    await writeFile(
      knownHosts,
      (await Promise.all(all.map((h) => readFile(h.knownHostsFile, 'utf8')))).join(''),
    );

    const igpuSplitMs = timed(process.execPath, [
      'bench/apply-fleet.ts',
      identity,
      knownHosts,
      ...ours.map((h) => `${h.host}:${h.treePort}`),
    ]);
    await assertConverged(ours, 'igpu-split');

    const inventory = join(work, 'inventory.ini');
    await writeFile(
      inventory,
      [
        '[pve]',
        ...peer.map((h, i) => `pve${i} ansible_host=${h.host} ansible_port=${h.treePort}`),
        '[pve:vars]',
        'ansible_user=root',
        `ansible_ssh_private_key_file=${identity}`,
        `ansible_ssh_common_args='-o UserKnownHostsFile=${knownHosts} -o StrictHostKeyChecking=yes'`,
        'ansible_python_interpreter=/usr/bin/python3',
        '',
      ].join('\n'),
    );
    const ansibleMs = timed(
      'ansible-playbook',
      ['-i', inventory, '--forks', String(HOSTS), 'bench/peer/host-layer.yml'],
      {
        ...process.env,
        ANSIBLE_PIPELINING: 'True',
        ANSIBLE_NOCOLOR: '1',
        ANSIBLE_LOCAL_TEMP: join(work, 'ansible-local'),
        ANSIBLE_REMOTE_TEMP: '/tmp/.ansible',
      },
    );
    await assertConverged(peer, 'Ansible');
    return { igpuSplitMs, ansibleMs };
  } finally {
    await Promise.all(all.map((h) => h.stop()));
    await rm(work, { recursive: true, force: true });
  }
}
