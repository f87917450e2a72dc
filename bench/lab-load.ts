// Loading lab files of 1,000 and 10,000 VMs (both under the 1 MB cap): parse, validate,
// resolve paths. Growth must stay near linear — the ratio of the two times is the figure
// (issue 12: ≤ 15); each is the median of several loads in this process after a warm-up.

import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLab, MAX_LAB_BYTES } from '../src/config/load.ts';

/** A lab file with `vms` node VMs spread over 100 hosts, as a user would write it. */
export function labWithVms(vms: number): string {
  const hosts = Array.from({ length: 100 }, (_, h) => `  - { node: pve${h}, ssh: "ssh://root@pve${h}.lan" }`);
  const lines = Array.from(
    { length: vms },
    (_, i) => `  - { vmid: ${1000 + i}, host: pve${i % 100}, os: ubuntu, kubernetesNode: k${i} }`,
  );
  return [
    'proxmox:',
    '  url: https://pve0.lan:8006',
    '  token: igpu-split@pve!lab',
    '  tokenSecretFile: ~/.config/igpu-split/token',
    '  fingerprint: "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89"',
    'hosts:',
    ...hosts,
    'vms:',
    ...lines,
    '',
  ].join('\n');
}

export interface LabLoadResult {
  vms: number;
  bytes: number;
  /** In this process, after a warm-up. */
  medianMs: number;
  /** A fresh process each time (what a command pays), loading the built dist/. */
  coldMedianMs: number;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** One cold load: a new node process that loads the lab file once and prints how long it took. */
function coldLoad(file: string): number {
  const script = `const { loadLab } = await import(${JSON.stringify(new URL('../dist/config/load.js', import.meta.url).href)});
const t = process.hrtime.bigint(); await loadLab(${JSON.stringify(file)});
console.log(Number(process.hrtime.bigint() - t) / 1e6);`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`cold load failed: ${result.stderr}`);
  return Number(result.stdout.trim());
}

export async function benchLabLoad(sizes = [1_000, 10_000], runs = 7): Promise<LabLoadResult[]> {
  const dir = await mkdtemp(join(tmpdir(), 'igpu-lab-load-'));
  try {
    const results: LabLoadResult[] = [];
    for (const vms of sizes) {
      const file = join(dir, `lab-${vms}.yaml`);
      await writeFile(file, labWithVms(vms));
      const bytes = (await stat(file)).size;
      if (bytes > MAX_LAB_BYTES) throw new Error(`the ${vms}-VM lab is ${bytes} bytes, over the cap`);
      await loadLab(file); // warm-up
      const times: number[] = [];
      for (let i = 0; i < runs; i++) {
        const start = process.hrtime.bigint();
        const lab = await loadLab(file);
        times.push(Number(process.hrtime.bigint() - start) / 1e6);
        if (lab.vms.length !== vms) throw new Error('the lab lost VMs');
      }
      const cold = Array.from({ length: 5 }, () => coldLoad(file));
      results.push({ vms, bytes, medianMs: median(times), coldMedianMs: median(cold) });
    }
    return results;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
