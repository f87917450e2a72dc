// Where the captured host trees live (test/fixtures/hosts/<name>/, see its README).

import { readdirSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GuardSpec } from '../../src/linux/kernel-guard/requirements.ts';
import {
  DEFAULT_MAX_PIN_DAYS,
  KERNEL_GUARD_AHEAD,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
  kernelGuardAheadScript,
  kernelGuardConfig,
  kernelGuardScript,
} from '../../src/linux/kernel-guard/script.ts';

const HOSTS = fileURLToPath(new URL('../fixtures/hosts/', import.meta.url));

export function fixturePath(name: string): string {
  return `${HOSTS}${name}`;
}

export function fixtureNames(): string[] {
  return readdirSync(HOSTS, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

/**
 * A copy of a fixture with the kernel guard installed as apply writes it for `spec` (default
 * settings): the hand-assembled "after" fixtures predate the guard, so plan adds it to them.
 */
export async function withKernelGuard(
  name: string,
  spec: GuardSpec,
): Promise<{ root: string; remove: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), `igpu-${name}-`));
  await cp(fixturePath(name), root, { recursive: true, verbatimSymlinks: true });
  const files: [string, string][] = [
    [
      KERNEL_GUARD_CONF,
      kernelGuardConfig({
        spec,
        strict: false,
        pinWith: 'proxmox-boot-tool',
        maxPinDays: DEFAULT_MAX_PIN_DAYS,
      }),
    ],
    [KERNEL_GUARD_HOOK, kernelGuardScript(spec)],
    [KERNEL_GUARD_AHEAD, kernelGuardAheadScript()],
  ];
  for (const [path, content] of files) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), content);
  }
  return { root, remove: () => rm(root, { recursive: true, force: true }) };
}
