// The test tiers: every test file is in exactly one (test/tiers.test.ts checks, and
// scripts/test.ts refuses to run otherwise). `npm run test:fast` runs the fast tier,
// `npm test` all of them. A file is fast when it starts no sshd, no network namespace, no
// debootstrap root and no child it kills mid-work — read from what the file and the
// support code it uses start, not from its folder. A new file goes here, or the suite fails.

import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// `npm test` starts the files in this order: the slow tiers first, the longest first, so
// that the rest run beside them.
export const TIERS = {
  // Each kill point runs an apply in a child and kills it there (test/support/apply-child.ts).
  'kill-points': ['test/faults/kill-points.test.ts'],
  // Real sshd hosts in network namespaces (test/support/sshd.ts); the corpus also sends signals.
  sshd: [
    'test/bad-input/cli-corpus.test.ts',
    'test/integration/doctor-ssh.test.ts',
    'test/integration/guest-apply.test.ts',
    'test/integration/host-apply.test.ts',
    'test/integration/ssh.test.ts',
  ],
  // The README's commands in interactive bash against `demo --serve` (the built CLI, a child it
  // stops with SIGTERM when done).
  playground: ['test/readme/readme.test.ts', 'test/playground/manual-step.test.ts'],
  // A Debian root made with debootstrap, where the real boot tools run (test/support/bootchain.ts).
  bootchain: [
    'test/bootchain/bootchain.test.ts',
    'test/bootchain/kernel-guard.test.ts',
    'test/bootchain/kernel-pin.test.ts',
    'test/bootchain/kernel-upgrade.test.ts',
    'test/bootchain/sriov.test.ts',
  ],
  // In process or with short-lived helpers: simulators, kubectl, cloud-init, python3, sh.
  // lock.test.ts ends a sleeping child when done: the lock's owner, not a kill point.
  // guard-grub.test.ts runs sh in a mount namespace of its own (unshare -m), under a second.
  fast: [
    // The longest first (each 10–30 s on this 2-core machine), the rest beside them.
    'test/security/secrets.test.ts',
    'test/cluster/kubectl.test.ts',
    'test/engine/demo-lab.test.ts',
    'test/engine/partial.test.ts',
    'test/engine/manual-step.test.ts',
    'test/engine/disturbances.test.ts',
    'test/engine/drain-preflight.test.ts',
    'test/cli/drain-restarts.test.ts',
    'test/engine/reboot-wait.test.ts',
    'test/engine/rollout-plan.test.ts',
    'test/engine/rollout.test.ts',
    'test/engine/ha.test.ts',
    'test/faults/network.test.ts',
    // The others by name.
    'test/access/captured-root.test.ts',
    'test/access/known-hosts.test.ts',
    'test/access/target.test.ts',
    'test/cli/capture.test.ts',
    'test/cli/cli.test.ts',
    'test/cli/cluster-commands.test.ts',
    'test/cli/demo.test.ts',
    'test/cli/grammar.test.ts',
    'test/cli/progress.test.ts',
    'test/cli/proxmox-commands.test.ts',
    'test/cluster/cluster.test.ts',
    'test/cluster/dra-cluster.test.ts',
    'test/cluster/quorum.test.ts',
    'test/cluster/drain-preflight.test.ts',
    'test/cluster/dra.test.ts',
    'test/cluster/kubeconfig.test.ts',
    'test/cluster/objects.test.ts',
    'test/cluster/plugin-release.test.ts',
    'test/cluster/progress.test.ts',
    'test/cluster/smoke.test.ts',
    'test/config/lab-schema.test.ts',
    'test/config/lab.test.ts',
    'test/config/load-shape.test.ts',
    'test/core/guards.test.ts',
    'test/corpus/parsers.test.ts',
    'test/engine/lock.test.ts',
    'test/engine/stages.test.ts',
    'test/engine/status.test.ts',
    'test/formats/host.test.ts',
    'test/formats/journal.test.ts',
    'test/formats/lab.test.ts',
    'test/formats/vm.test.ts',
    'test/guest/cloud-init.test.ts',
    'test/guest/guard-grub.test.ts',
    'test/guest/talos-version.test.ts',
    'test/guest/talos.test.ts',
    'test/guest/talos-sriov.test.ts',
    'test/guest/ubuntu-guard.test.ts',
    'test/guest/ubuntu-plan.test.ts',
    'test/guest/ubuntu-sriov.test.ts',
    'test/host/gather.test.ts',
    'test/host/grub-defaults.test.ts',
    'test/host/kernel-guard.test.ts',
    'test/host/kernel-params.test.ts',
    'test/host/parse.test.ts',
    'test/host/plan.test.ts',
    'test/host/sriov.test.ts',
    'test/host/schemas.test.ts',
    'test/host/sriov-doctor.test.ts',
    'test/host/verdict.test.ts',
    'test/knowledge/cpu-models.test.ts',
    'test/knowledge/gvt.test.ts',
    'test/knowledge/i915-sriov-dkms.test.ts',
    'test/knowledge/igpu.test.ts',
    'test/knowledge/kernel-pins.test.ts',
    'test/knowledge/kernel-upgrade.test.ts',
    'test/knowledge/dra.test.ts',
    'test/knowledge/pins.test.ts',
    'test/knowledge/snapshots.test.ts',
    'test/mapping/mapping.test.ts',
    'test/mapping/vf-pool.test.ts',
    'test/proxmox/api-spec.test.ts',
    'test/proxmox/client.test.ts',
    'test/proxmox/property-string.test.ts',
    'test/proxmox/proxmoxer.test.ts',
    'test/proxmox/simulator-params.test.ts',
    'test/proxmox/simulator-server.test.ts',
    'test/proxmox/simulator-sriov.test.ts',
    'test/proxmox/simulator-state.test.ts',
    'test/sim/dra.test.ts',
    'test/sim/ssh-server.test.ts',
    'test/source/catches.test.ts',
    'test/source/imports.test.ts',
    'test/source/plurals.test.ts',
    'test/source/startup.test.ts',
    'test/tiers.test.ts',
    'test/vm/apply.test.ts',
    'test/vm/golden.test.ts',
    'test/vm/vf.test.ts',
    'test/vm/mdev-type.test.ts',
  ],
} as const satisfies Record<string, readonly string[]>;

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every test file under test/, as a path from the repository's root. */
export function testFiles(): string[] {
  return readdirSync(`${ROOT}test`, { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.test.ts'))
    .map((path) => `test/${path}`)
    .sort();
}

/** What is wrong with the tiers: a file in none or in two, an entry naming no test file. */
export function tierProblems(
  files: string[] = testFiles(),
  tiers: Record<string, readonly string[]> = TIERS,
): string[] {
  const tiersOf = new Map<string, string[]>(files.map((file) => [file, []]));
  const problems: string[] = [];
  for (const [tier, entries] of Object.entries(tiers)) {
    for (const entry of entries) {
      const found = tiersOf.get(entry);
      if (found === undefined) problems.push(`${entry} (tier ${tier}) is no test file`);
      else found.push(tier);
    }
  }
  for (const [file, found] of tiersOf) {
    if (found.length === 0) problems.push(`${file} is in no tier — add it to one in test/tiers.ts`);
    if (found.length > 1) problems.push(`${file} is in ${found.length} tiers: ${found.join(', ')}`);
  }
  return problems;
}
