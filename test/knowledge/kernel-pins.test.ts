// Every kernel, package and tool name igpu-split pins (src/knowledge/kernel.ts, packages.ts)
// checked against the upstream facts in snapshots/kernel-facts.json and snapshots/packages.json.
// A pin the snapshot does not back fails; a missing or malformed snapshot fails in one line.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { kernelBool, parseParams } from '../../src/host/boot/kernel-params.ts';
import { planHost } from '../../src/host/plan.ts';
import {
  BOOT_PARAM,
  I915_PARAM,
  I915_PARAM_TYPE,
  MODULE,
  moduleParametersDir,
  PARAM,
  STALE_MODULES,
  VFIO_PCI_OBJECT,
} from '../../src/knowledge/kernel.ts';
import { HOST_COMMAND, HOST_TOOL, HOST_TOOL_PACKAGE, UBUNTU_PACKAGE } from '../../src/knowledge/packages.ts';
import { NO_GUARD_FACTS } from '../../src/linux/kernel-guard/state.ts';

interface KernelFacts {
  modules: { name: string; object: string; source: string }[];
  moduleParts: { module: string; parts: string[] }[];
  moduleParameters: { module: string; name: string; type: string; source: string }[];
  bootParameters: { name: string; options: string[]; source: string }[];
}

interface PackageFacts {
  tools: { tool: string; package: string; directory: string }[];
  toolArguments: {
    tool: string;
    subcommands?: string[];
    runs?: string;
    options?: string[];
    kernelVersionAll?: boolean;
  }[];
  ubuntuPackages: { package: string; release: string; sourcePackage: string }[];
}

/** Reads a snapshot and checks its header; anything wrong is one line naming the file. */
function snapshot<T>(name: string, keys: (keyof T & string)[]): T {
  const path = new URL(`../../snapshots/${name}`, import.meta.url);
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    assert.fail(
      `snapshots/${name} is missing or not JSON (${(error as Error).message.split('\n')[0]}): run its script`,
    );
  }
  const first = Object.keys(data)[0];
  const sources = data.sources;
  const sourcesOk =
    first === 'sources' &&
    Array.isArray(sources) &&
    sources.length > 0 &&
    sources.every(
      (s: Record<string, unknown>) =>
        (typeof s.repository === 'string' &&
          typeof s.path === 'string' &&
          /^[0-9a-f]{40}$/.test(String(s.commit)) &&
          /^[0-9a-f]{40}$/.test(String(s.blob))) ||
        (typeof s.url === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(String(s.date))),
    );
  if (!sourcesOk)
    assert.fail(
      `snapshots/${name} is malformed: it must start with "sources" naming each file's commit and blob (or page and date)`,
    );
  if (typeof data.producedBy !== 'string' || !data.producedBy.startsWith('scripts/'))
    assert.fail(`snapshots/${name} is malformed: no "producedBy" script`);
  const missing = keys.filter((k) => !Array.isArray(data[k]));
  if (missing.length > 0) assert.fail(`snapshots/${name} is malformed: no ${missing.join(', ')} list`);
  return data as T;
}

const kernel = () =>
  snapshot<KernelFacts>('kernel-facts.json', [
    'modules',
    'moduleParts',
    'moduleParameters',
    'bootParameters',
  ]);
const packages = () => snapshot<PackageFacts>('packages.json', ['tools', 'toolArguments', 'ubuntuPackages']);

test('every pinned module name is a module upstream builds', () => {
  const facts = kernel();
  for (const name of Object.values(MODULE)) {
    assert.ok(
      facts.modules.some((m) => m.name === name),
      `module ${name} is not built by any Makefile in snapshots/kernel-facts.json`,
    );
  }
  const vfioPci = facts.modules.find((m) => m.name === MODULE.vfioPci);
  assert.equal(vfioPci?.object, VFIO_PCI_OBJECT, 'vfio_pci is built as vfio-pci.o');
});

test('module names guides still list are no modules, and their code lives in the named one', () => {
  const facts = kernel();
  for (const [name, { partOf }] of Object.entries(STALE_MODULES)) {
    assert.ok(!facts.modules.some((m) => m.name === name), `${name} is a module after all`);
    const parts = facts.moduleParts.find((p) => p.module === partOf)?.parts ?? [];
    assert.ok(parts.length > 0, `no object list for ${partOf} in the snapshot`);
  }
  // virqfd.o is linked into vfio: the old vfio_virqfd module's code.
  assert.ok(facts.moduleParts.find((p) => p.module === MODULE.vfio)?.parts.includes('virqfd'));
});

test('every boot parameter and option word we write is one its parser knows', () => {
  const facts = kernel();
  for (const raw of Object.values(PARAM)) {
    const [param] = parseParams(raw);
    assert.ok(param?.value !== undefined, `${raw} has no value`);
    const dot = param.name.indexOf('.');
    if (dot > 0) continue; // module parameters: next test
    const known = facts.bootParameters.find((b) => b.name === param.name);
    assert.ok(known, `boot parameter ${param.name} is not in snapshots/kernel-facts.json`);
    for (const option of param.value.split(','))
      assert.ok(
        known.options.includes(option),
        `${param.name}= does not take "${option}" (takes ${known.options.join(', ')})`,
      );
  }
  // module_blacklist is a core parameter, held to snapshots/i915-sriov-dkms.json (test/knowledge/i915-sriov-dkms.test.ts).
  for (const name of Object.values(BOOT_PARAM).filter((n) => n !== BOOT_PARAM.moduleBlacklist))
    assert.ok(
      facts.bootParameters.some((b) => b.name === name),
      `boot parameter ${name} is not in snapshots/kernel-facts.json`,
    );
});

test('every i915 parameter we read or set exists with the type our values need', () => {
  const facts = kernel();
  for (const name of Object.values(I915_PARAM)) {
    const declared = facts.moduleParameters.filter((p) => p.module === MODULE.i915 && p.name === name);
    assert.ok(declared.length > 0, `i915 has no parameter ${name} in snapshots/kernel-facts.json`);
    for (const d of declared)
      assert.equal(d.type, I915_PARAM_TYPE[name], `${d.source} declares ${name} as ${d.type}`);
  }
  // The values on the command line must parse as their declared types.
  for (const raw of [PARAM.gvtOn, PARAM.gucOff]) {
    const [param] = parseParams(raw);
    const name = param?.name.split('.')[1] as keyof typeof I915_PARAM_TYPE;
    if (I915_PARAM_TYPE[name] === 'bool') assert.notEqual(kernelBool(param?.value), undefined, raw);
    else assert.ok(Number.isInteger(Number(param?.value)), raw);
  }
  assert.equal(moduleParametersDir(MODULE.i915), '/sys/module/i915/parameters');
});

test('every host tool comes from the package the snapshot names, and takes the arguments we give', () => {
  const facts = packages();
  for (const tool of Object.values(HOST_TOOL)) {
    const found = facts.tools.find((t) => t.tool === tool);
    assert.ok(found, `${tool} is installed by no package in snapshots/packages.json`);
    assert.equal(found.package, HOST_TOOL_PACKAGE[tool]);
    assert.equal(found.directory, '/usr/sbin');
  }
  const args = (tool: string) => facts.toolArguments.find((a) => a.tool === tool);
  const [, subcommand] = HOST_COMMAND.proxmoxBootToolRefresh.split(' ');
  assert.ok(args(HOST_TOOL.proxmoxBootTool)?.subcommands?.includes(subcommand as string));
  assert.equal(HOST_COMMAND.updateGrub, HOST_TOOL.updateGrub);
  assert.ok(args(HOST_TOOL.updateGrub)?.runs?.startsWith('grub-mkconfig'));
  const [, ...initramfsArgs] = HOST_COMMAND.updateInitramfsAll.split(' ');
  for (const arg of initramfsArgs.filter((a) => a.startsWith('-')))
    assert.ok(args(HOST_TOOL.updateInitramfs)?.options?.includes(arg), `update-initramfs has no ${arg}`);
  assert.equal(initramfsArgs.at(-1), 'all');
  assert.equal(args(HOST_TOOL.updateInitramfs)?.kernelVersionAll, true);
});

test('every Ubuntu package we install or look for is one Ubuntu publishes', () => {
  const facts = packages();
  for (const name of Object.values(UBUNTU_PACKAGE)) {
    assert.ok(
      facts.ubuntuPackages.some((p) => p.package === name),
      `${name} is not in snapshots/packages.json`,
    );
  }
  const generic = facts.ubuntuPackages.find((p) => p.package === UBUNTU_PACKAGE.kernel);
  assert.equal(generic?.release, 'noble');
  assert.equal(generic?.sourcePackage, 'linux-meta');
});

test('the host plan writes the pinned names, not others', () => {
  // A GVT-g host with nothing set: the plan's parameters and modules are exactly the pins.
  const plan = planHost({
    target: 'pins',
    kernelRelease: '6.8.12-4-pve',
    cmdline: 'BOOT_IMAGE=/vmlinuz root=/dev/sda1',
    cpu: {
      vendor: 'GenuineIntel',
      family: 6,
      model: 158,
      stepping: 10,
      modelName: 'Intel(R) Core(TM) i5-8500',
      vmx: true,
      svm: false,
      hypervisor: false,
      logicalCpus: 6,
    },
    displayDevices: [
      {
        bdf: '0000:00:02.0',
        vendorId: 0x8086,
        deviceId: 0x3e92,
        classCode: 0x030000,
        driver: 'i915',
        iommuGroup: 0,
        iommuGroupDevices: ['0000:00:02.0'],
        apertureBytes: 256 * 1024 * 1024,
        mdevTypes: [],
        virtualFunction: false,
      },
    ],
    iommu: { firmwareTable: 'DMAR', units: ['dmar0'], groupCount: 10 },
    i915: { enableGvt: false, enableGuc: undefined, maxVfs: undefined },
    modules: ['i915'],
    moduleFiles: [],
    bootloader: {
      kind: 'grub',
      files: [{ path: '/etc/default/grub', content: 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n' }],
    },
    proxmox: { version: '8.2.4', release: '8.2' },
    os: { id: 'debian', versionId: '12', prettyName: 'Debian GNU/Linux 12 (bookworm)' },
    firmware: { uefi: true, secureBoot: false },
    kernels: { installed: ['6.8.12-4-pve'], withHeaders: [], pinned: undefined, nextBootPin: undefined },
    kernelGuard: { ...NO_GUARD_FACTS, readAt: '2026-12-01T00:00:00Z' },
    unidentified: [],
    unreadable: [],
  } as unknown as Parameters<typeof planHost>[0]);
  assert.equal(plan.unsupported, undefined, plan.unsupported);
  assert.deepEqual(plan.params.add, [PARAM.intelIommuOn, PARAM.iommuPassThrough, PARAM.gvtOn]);
  assert.match(
    plan.steps.find((s) => s.id.endsWith('/modules-load'))?.write?.content ?? '',
    new RegExp(`^${MODULE.kvmgt}$`, 'm'),
  );
  assert.equal(plan.steps.find((s) => s.id.endsWith('/update-grub'))?.command, HOST_COMMAND.updateGrub);
});
