// The Talos path: the schematic (kept extensions and kernel args), the refusals (old or
// unknown version, Secure Boot installer), the factory client against a local factory,
// every patch against Talos's own config schema, and apply with and without talosctl.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { ImageFactory } from '../../src/guest/talos/factory.ts';
import { machinePatch, patchYaml } from '../../src/guest/talos/patch.ts';
import { applyTalosPlan, gatherTalosFacts, planTalos, verifyTalos } from '../../src/guest/talos/plan.ts';
import { desiredSchematic, parseTalosVersion, type TalosNodeSpec } from '../../src/guest/talos/schematic.ts';
import { talosctlAt } from '../../src/guest/talos/talosctl.ts';
import { TALOS_PATCH_NEWEST } from '../../src/knowledge/pins.ts';
import { type FakeFactory, startImageFactory } from '../../src/sim/talos-factory.ts';
import { TALOSCTL_STAND_IN } from '../support/talosctl.ts';

const SCHEMA = fileURLToPath(
  new URL('../../../shared/data/talos-v1.10.9-config.schema.json', import.meta.url),
);
const NODE: TalosNodeSpec = {
  node: '10.0.0.5',
  version: 'v1.10.9',
  extensions: ['siderolabs/iscsi-tools'],
  kernelArgs: ['console=ttyS0'],
  qemuGuestAgent: false,
  secureBoot: false,
};
let factory: FakeFactory;
let dir: string;

before(async () => {
  factory = await startImageFactory();
  dir = await mkdtemp(join(tmpdir(), 'igpu-talos-'));
});
after(async () => {
  await factory.close();
  await rm(dir, { recursive: true, force: true });
});

async function fails(promise: Promise<unknown> | (() => unknown), pattern: RegExp) {
  const run = typeof promise === 'function' ? Promise.resolve().then(promise) : promise;
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof IgpuSplitError, String(error));
    assert.match(error.oneLine(), pattern);
    return true;
  });
}

test('the schematic keeps what the node has and adds i915 and intel-ucode (qemu-guest-agent on request)', () => {
  assert.deepEqual(desiredSchematic(NODE), {
    customization: {
      extraKernelArgs: ['console=ttyS0'],
      systemExtensions: {
        officialExtensions: ['siderolabs/i915', 'siderolabs/intel-ucode', 'siderolabs/iscsi-tools'],
      },
    },
  });
  const agent = desiredSchematic({
    ...NODE,
    kernelArgs: [],
    qemuGuestAgent: true,
    extensions: ['siderolabs/i915'],
  });
  assert.deepEqual(agent.customization, {
    systemExtensions: {
      officialExtensions: ['siderolabs/i915', 'siderolabs/intel-ucode', 'siderolabs/qemu-guest-agent'],
    },
  });
});

test('refused: the Secure Boot installer, a version that is not one, a version before the extension', async () => {
  await fails(
    () => desiredSchematic({ ...NODE, secureBoot: true }),
    /installer-secureboot.*only runs with Secure Boot on/,
  );
  await fails(() => parseTalosVersion('latest'), /unknown Talos version "latest"/);
  await fails(() => parseTalosVersion('v1.8.3'), /Talos v1.8.3 predates the i915 system extension/);
  assert.deepEqual(parseTalosVersion('v1.10.9'), [1, 10, 9]);
});

test('the factory: the same schematic gets the same id; the installer reference', async () => {
  const client = new ImageFactory(factory.url);
  const id = await client.schematicId(desiredSchematic(NODE));
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal(await client.schematicId(desiredSchematic(NODE)), id);
  assert.equal(client.installerImage(id, 'v1.10.9'), `${new URL(factory.url).host}/installer/${id}:v1.10.9`);
  assert.equal(
    new ImageFactory('https://factory.talos.dev').installerImage(id, 'v1.10.9'),
    `factory.talos.dev/installer/${id}:v1.10.9`,
  );
});

test('the factory: an unknown version, an error, garbage, and no factory at all are one clear line each', async () => {
  const client = new ImageFactory(factory.url);
  await fails(
    client.requireVersion('v1.99.0'),
    /unknown Talos version v1.99.0: the Image Factory does not build it — .*newest are v1.11.6, v1.12.11, v1.13.9/,
  );
  factory.mode = 'error';
  await fails(
    client.schematicId(desiredSchematic(NODE)),
    /POST \/schematics: HTTP 500 \(internal error: registry unavailable\) — the factory had an error/,
  );
  factory.mode = 'garbage';
  await fails(client.versions(), /GET \/versions: the answer is not JSON \(37 bytes\)/);
  factory.mode = 'ok';
  // A port nothing listens on: bind one, then close it.
  const { createServer } = await import('node:net');
  const spare = createServer();
  await new Promise<void>((resolve) => spare.listen(0, '127.0.0.1', resolve));
  const port = (spare.address() as { port: number }).port;
  await new Promise((resolve) => spare.close(resolve));
  await fails(
    new ImageFactory(`http://127.0.0.1:${port}`).versions(),
    /GET \/versions: connection refused — check the imageFactory URL/,
  );
});

// The patch goes to whatever Talos the node runs or is upgraded to: every schema in ../shared/data.
const SCHEMAS = ['v1.10.9', 'v1.11.6', 'v1.12.11', 'v1.13.9', 'v1.14.0-rc.1'];
for (const version of SCHEMAS) {
  const file = SCHEMA.replace('v1.10.9', version);
  test(`every generated patch validates against Talos ${version} machine-config schema`, {
    skip: existsSync(file) ? false : `Talos schema not found at ${file} (see ../shared/data/README.md)`,
  }, () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = ajv.compile(JSON.parse(readFileSync(file, 'utf8')));
    const [major, minor] = version.slice(1).split('.').map(Number) as [number, number];
    if (major > TALOS_PATCH_NEWEST[0] || (major === TALOS_PATCH_NEWEST[0] && minor > TALOS_PATCH_NEWEST[1])) {
      // Past the newest minor our patch supports: the schema refuses it, and so does plan.
      assert.equal(
        validate(parse(patchYaml(machinePatch(`factory.talos.dev/installer/0123abcd:${version}`)))),
        false,
      );
      assert.throws(
        () => parseTalosVersion(version.replace(/-.*/, '')),
        /no longer takes the machine-config patch/,
      );
      return;
    }
    for (const installer of [
      `factory.talos.dev/installer/0123abcd:${version}`,
      '127.0.0.1:8080/installer/ff:v1.11.3',
    ]) {
      const patch = parse(patchYaml(machinePatch(installer)));
      assert.ok(validate(patch), JSON.stringify(validate.errors));
    }
    // …and the validation can fail: a label value must be a string.
    const bad = { machine: { nodeLabels: { 'intel.feature.node.kubernetes.io/gpu': true } } };
    assert.equal(validate(bad), false);
  });
}

test('without talosctl: apply writes the schematic and patch and gives the exact commands', async () => {
  const facts = await gatherTalosFacts(NODE.node, undefined);
  const plan = await planTalos(NODE, facts, new ImageFactory(factory.url));
  assert.deepEqual(
    plan.steps.map((s) => s.id),
    ['guest/10.0.0.5/patch', 'guest/10.0.0.5/upgrade'],
  );
  const out = join(dir, 'absent');
  const result = await applyTalosPlan(plan, undefined, out);
  assert.equal(result.applied, false);
  assert.deepEqual(result.commands, [
    `talosctl patch machineconfig --nodes 10.0.0.5 --patch @${out}/machine-patch.yaml`,
    `talosctl upgrade --nodes 10.0.0.5 --image ${plan.installer}`,
  ]);
  assert.match(await readFile(join(out, 'schematic.yaml'), 'utf8'), /- siderolabs\/i915\n/);
  assert.equal(
    parse(await readFile(join(out, 'machine-patch.yaml'), 'utf8')).machine.install.image,
    plan.installer,
  );
  assert.equal(verifyTalos(facts, NODE)[0]?.status, 'warn');
});

test('with talosctl: patch, then upgrade; verify reads the extensions and /dev/dri; a second plan is empty', async () => {
  const bin = join(dir, 'bin');
  await import('node:fs/promises').then((fs) => fs.mkdir(bin, { recursive: true }));
  await writeFile(join(bin, 'talosctl'), TALOSCTL_STAND_IN);
  await chmod(join(bin, 'talosctl'), 0o755);
  const talosctl = talosctlAt(join(bin, 'talosctl'));
  const client = new ImageFactory(factory.url);
  const plan = await planTalos(NODE, await gatherTalosFacts(NODE.node, talosctl), client);
  assert.deepEqual(
    verifyTalos(await gatherTalosFacts(NODE.node, talosctl), NODE).map((c) => c.status),
    ['fail', 'fail'],
  );
  const result = await applyTalosPlan(plan, talosctl, join(dir, 'present'));
  assert.equal(result.applied, true);
  const calls = (await readFile(join(bin, 'calls'), 'utf8'))
    .split('\n')
    .filter((l) => /patch|upgrade/.test(l));
  assert.deepEqual(calls, [
    `talosctl patch machineconfig --nodes 10.0.0.5 --patch @${join(dir, 'present', 'machine-patch.yaml')}`,
    `talosctl upgrade --nodes 10.0.0.5 --image ${plan.installer}`,
  ]);
  const facts = await gatherTalosFacts(NODE.node, talosctl);
  assert.deepEqual(
    verifyTalos(facts, NODE).map((c) => c.status),
    ['pass', 'pass'],
  );
  assert.deepEqual((await planTalos(NODE, facts, client)).steps, []);
});

test('talosctl failing is one line naming the node and the command to rerun', async () => {
  const bin = join(dir, 'bin');
  const talosctl = talosctlAt(join(bin, 'talosctl'));
  process.env.TALOSCTL_FAIL = 'upgrade';
  try {
    const plan = await planTalos(
      { ...NODE, qemuGuestAgent: true },
      await gatherTalosFacts(NODE.node, talosctl),
      new ImageFactory(factory.url),
    );
    await fails(
      applyTalosPlan(plan, talosctl, join(dir, 'failing')),
      /talos 10.0.0.5: talosctl upgrade failed: error: rpc error: code = Unavailable desc = connection refused; done before it: patching the machine config — run it by hand/,
    );
  } finally {
    delete process.env.TALOSCTL_FAIL;
  }
});

test('an extension the node runs but the lab file does not list would be dropped: refused, naming it', async () => {
  const bin = join(dir, 'bin');
  const talosctl = talosctlAt(join(bin, 'talosctl'));
  const plan = await planTalos(
    { ...NODE, extensions: [] },
    await gatherTalosFacts(NODE.node, talosctl),
    new ImageFactory(factory.url),
  );
  assert.match(
    plan.refused ?? '',
    /the node runs iscsi-tools, which the lab file's talos.extensions does not list/,
  );
  assert.match(plan.checks[0]?.fix ?? '', /add siderolabs\/iscsi-tools/);
  await fails(applyTalosPlan(plan, talosctl, join(dir, 'refused')), /would drop it/);
});

test('guest render writes what a GitOps user commits: user-data, schematic, patch', async () => {
  const { renderGuests } = await import('../../src/guest/render.ts');
  const { parseLab } = await import('../../src/config/load.ts');
  const lab = parseLab(
    `proxmox: { url: https://127.0.0.1:8006, token: a@pve!b, tokenSecretEnv: S }
imageFactory: ${factory.url}
hosts: [{ node: pve1 }]
vms:
  - { vmid: 101, host: pve1, os: ubuntu, kubernetesNode: k3s-1 }
  - { vmid: 102, host: pve1, os: talos, kubernetesNode: talos-1, talos: { node: 10.0.0.6, version: v1.10.9 } }
`,
    'lab.yaml',
  );
  const out = join(dir, 'render');
  const files = await renderGuests(lab, out);
  assert.deepEqual(
    files.map((f) => f.slice(out.length + 1)),
    ['k3s-1/user-data.yaml', 'talos-1/schematic.yaml', 'talos-1/machine-patch.yaml'],
  );
  assert.match(
    await readFile(join(out, 'k3s-1/user-data.yaml'), 'utf8'),
    /^#cloud-config\n[\s\S]*hostname: k3s-1/,
  );
  const patch = parse(await readFile(join(out, 'talos-1/machine-patch.yaml'), 'utf8'));
  assert.match(patch.machine.install.image, /\/installer\/[0-9a-f]{64}:v1\.10\.9$/);
});
