// The Talos path: the schematic (kept extensions and kernel args), the refusals (old or
// unknown version, Secure Boot installer), the factory client against a local factory,
// every patch against Talos's own config schema, and apply with and without talosctl.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse, parseAllDocuments } from 'yaml';
import { IgpuSplitError } from '../../src/core/errors.ts';
import { ImageFactory } from '../../src/guest/talos/factory.ts';
import { machinePatch, patchYaml, takesV1alpha1Patch } from '../../src/guest/talos/patch.ts';
import {
  applyTalosPlan,
  gatherTalosFacts,
  planTalos,
  planTalosFrom,
  verifyTalos,
} from '../../src/guest/talos/plan.ts';
import { desiredSchematic, parseTalosVersion, type TalosNodeSpec } from '../../src/guest/talos/schematic.ts';
import { type Talosctl, talosctlAt } from '../../src/guest/talos/talosctl.ts';
import { TALOS_PATCH_NEWEST, TALOS_SCHEMA_MINORS, TALOS_UPGRADE_DRAIN } from '../../src/knowledge/pins.ts';
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

// The patch goes to whatever Talos the node runs: every schema in ../shared/data, each checked
// with the documents of its own tag and of another patch release of its minor (v1.12.3 against
// v1.12.11's schema; v1.14.0 against v1.14.0-rc.1's), strictly: ajv's strict mode on draft
// 2020-12, with Talos's two annotation keywords declared, and the schema's own
// additionalProperties: false.
const SCHEMAS = ['v1.10.9', 'v1.11.6', 'v1.12.11', 'v1.13.9', 'v1.14.0-rc.1'];
const ANNOTATIONS = ['markdownDescription', 'x-intellij-html-description'];
for (const tag of SCHEMAS) {
  const file = SCHEMA.replace('v1.10.9', tag);
  const minor = tag.slice(1).split('.').slice(0, 2).join('.');
  test(`the documents emitted for Talos ${minor} validate (draft 2020-12, strict) against the ${tag} schema`, {
    skip: existsSync(file) ? false : `Talos schema not found at ${file} (see ../shared/data/README.md)`,
  }, () => {
    const schema = JSON.parse(readFileSync(file, 'utf8')) as {
      $id: string;
      $defs: Record<string, { properties?: { kind?: { enum?: string[] } } }>;
    };
    // Strict, but for strictTypes, a lint of the schema's own writing that Talos's schemas up to
    // v1.13 fail (serviceAccount.key: additionalProperties without type: object); v1.14's passes it.
    const ajv = new Ajv2020({ strict: true, strictTypes: minor === '1.14', allErrors: true });
    ajv.addVocabulary(ANNOTATIONS);
    // The one format the schemas use (v1.10 to v1.13: the control plane endpoint), known so strict mode takes it.
    ajv.addFormat('uri', { type: 'string', validate: (text: string) => URL.canParse(text) });
    const validate = ajv.compile(schema);
    // Each document also against its own kind's subschema, not only the oneOf over all of them.
    const ownSchema = (doc: Record<string, unknown>) => {
      const name =
        doc.kind === undefined
          ? 'v1alpha1.Config'
          : Object.keys(schema.$defs).find((d) =>
              schema.$defs[d]?.properties?.kind?.enum?.includes(String(doc.kind)),
            );
      assert.ok(name, `no subschema of kind ${String(doc.kind)} in ${tag}`);
      return ajv.getSchema(`${schema.$id}#/$defs/${name}`) as (data: unknown) => boolean;
    };
    for (const version of [tag.replace(/-.*/, ''), `v${minor}.3`]) {
      for (const installer of [
        `factory.talos.dev/installer/0123abcd:${version}`,
        '127.0.0.1:8080/installer/ff:v1.11.3',
      ]) {
        const text = patchYaml(machinePatch(installer, version));
        const documents = parseAllDocuments(text).map((d) => d.toJSON() as Record<string, unknown>);
        assert.equal(documents.length, 1, text);
        for (const doc of documents) {
          assert.ok(validate(doc), `${version}: ${JSON.stringify(validate.errors)}`);
          assert.ok(ownSchema(doc)(doc), version);
        }
        // v1.14 and later: the label in KubeNodeConfig, no installer and no kernel argument in the config.
        const v1alpha1 = takesV1alpha1Patch(version);
        assert.equal(v1alpha1, minor !== '1.14', version);
        assert.equal(documents[0]?.kind, v1alpha1 ? undefined : 'KubeNodeConfig');
        assert.doesNotMatch(text, /extraKernelArgs/);
        if (!v1alpha1) assert.doesNotMatch(text, /installer|install:/);
      }
    }
    // …and the validation can fail: the other generation's patch, and a label value that is no string.
    const other = machinePatch(
      'factory.talos.dev/installer/0123abcd:v1',
      minor === '1.14' ? 'v1.13.9' : 'v1.14.0',
    );
    assert.equal(validate(other[0]), false, `${tag} takes the other generation's patch`);
    const bad =
      minor === '1.14'
        ? {
            apiVersion: 'v1alpha1',
            kind: 'KubeNodeConfig',
            labels: { 'intel.feature.node.kubernetes.io/gpu': true },
          }
        : { machine: { nodeLabels: { 'intel.feature.node.kubernetes.io/gpu': true } } };
    assert.equal(validate(bad), false);
    // A field the schema does not have is refused (additionalProperties: false).
    assert.equal(
      validate({ ...(machinePatch('i', tag.replace(/-.*/, ''))[0] as object), igpuSplit: true }),
      false,
    );
  });
}

test('a Talos minor without a config schema is refused in one line naming the node and what to do', () => {
  for (const [version, context, fix] of [
    [
      'v1.15.0',
      { node: '10.0.0.5' },
      /set talos\.version to a release of Talos 1\.10 to 1\.14 \(e\.g\. v1\.13\.9\)$/,
    ],
    ['v1.15.2', { node: '10.0.0.5', running: 'v1.15.2' }, /set up the siderolabs\/i915 extension .* by hand/],
    [
      'v1.9.6',
      { node: '10.0.0.5', running: 'v1.9.6' },
      /upgrade the node to Talos v1\.10\.9 with talosctl upgrade first, then plan again$/,
    ],
    [
      'v1.9.6',
      { node: '10.0.0.5' },
      /set talos\.version to a release of Talos 1\.10 to 1\.14 \(e\.g\. v1\.10\.9\)$/,
    ],
  ] as const) {
    assert.throws(
      () => parseTalosVersion(version, context),
      (error: unknown) => {
        assert.ok(error instanceof IgpuSplitError);
        const line = error.oneLine();
        assert.doesNotMatch(line, /\n/);
        assert.match(
          line,
          new RegExp(
            `talos 10\\.0\\.0\\.5.*Talos ${version.replace(/\./g, '\\.')}: igpu-split has no Talos \\d+\\.\\d+ config schema`,
          ),
        );
        assert.match(line, / — /, 'the fix follows the reason');
        assert.match(line, fix);
        return true;
      },
    );
  }
  for (const minor of TALOS_SCHEMA_MINORS)
    assert.deepEqual(parseTalosVersion(`v${minor}.1`).slice(0, 2), minor.split('.').map(Number));
});

test('the schema set igpu-split knows is the one in ../shared/data, byte for byte as upstream tagged it', {
  skip: existsSync(SCHEMA) ? false : `Talos schema not found at ${SCHEMA} (see ../shared/data/README.md)`,
}, () => {
  const dirOf = SCHEMA.replace(/[^/]+$/, '');
  const files = readdirSync(dirOf).filter((f) => /^talos-v.*-config\.schema\.json$/.test(f));
  const minors = files.map((f) => f.replace(/^talos-v(\d+\.\d+)\..*$/, '$1'));
  assert.deepEqual([...new Set(minors)].sort(byMinor), [...TALOS_SCHEMA_MINORS]);
  const snapshot = versionFacts();
  for (const file of files) {
    const tag = file.replace(/^talos-(.*)-config\.schema\.json$/, '$1');
    const bytes = readFileSync(join(dirOf, file));
    const blob = createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
    assert.equal(
      blob,
      snapshot.schemas[tag]?.blob,
      `${file} is not siderolabs/talos config.schema.json@${tag}`,
    );
  }
});

test('the pins agree with snapshots/talos-versions.json: the schemas, the patch fields, the drains, the schematic', () => {
  const snapshot = versionFacts();
  const tags = Object.keys(snapshot.schemas);
  assert.deepEqual(
    tags.map((t) => t.slice(1).split('.').slice(0, 2).join('.')),
    [...TALOS_SCHEMA_MINORS],
  );
  for (const [tag, facts] of Object.entries(snapshot.schemas)) {
    const minor = tag.slice(1).split('.').slice(0, 2).join('.');
    const v1alpha1 = takesV1alpha1Patch(`v${minor}.0`);
    assert.equal(
      facts.v1alpha1.install && facts.v1alpha1.installImage && facts.v1alpha1.nodeLabels,
      v1alpha1,
      tag,
    );
    assert.equal(facts.kubeNodeConfigFields?.includes('labels') ?? false, !v1alpha1, tag);
    assert.equal(facts.id, `https://talos.dev/v${minor}/schemas/config.schema.json`);
    // Where the upgrade drains: machined's Upgrade sequence in every minor; talosctl itself from 1.13.
    const drain = snapshot.drains[tag];
    assert.equal(drain?.machined.drainPhase, true, tag);
    const byTalosctl = drain?.talosctl.drainFlagDefault === true && drain.talosctl.drainsBeforeReboot;
    const pin = TALOS_UPGRADE_DRAIN[minor as keyof typeof TALOS_UPGRADE_DRAIN];
    assert.ok(
      pin.includes(`${byTalosctl ? drain?.talosctl.path : drain?.machined.path}@${tag}`),
      `${minor}: ${pin}`,
    );
  }
  assert.equal(TALOS_PATCH_NEWEST.join('.'), '1.13');
  // The schematic's two fields exist at the factory, whose installer carries the kernel arguments from 1.10.
  assert.ok(snapshot.imageFactory.customizationFields.includes('extraKernelArgs'));
  assert.ok(snapshot.imageFactory.customizationFields.includes('systemExtensions'));
  assert.deepEqual(snapshot.imageFactory.systemExtensionsFields, ['officialExtensions']);
  assert.match(snapshot.imageFactory.installerKernelArgsWhen, /SupportsUnifiedInstaller/);
  assert.equal(snapshot.imageFactory.unifiedInstallerSince.version, `${TALOS_SCHEMA_MINORS[0]}.0`);
  // Why 1.14 writes no UnattendedInstall document (patch.ts).
  assert.deepEqual(snapshot.v1_14.unattendedInstall, {
    path: 'pkg/machinery/config/types/runtime/unattended_install.go',
    registeredKind: 'UnattendedInstallConfig',
    conflictsWithMachineInstall: true,
    provisioningMatchRequired: true,
  });
  assert.equal(
    snapshot.schemas['v1.14.0-rc.1']?.documents['runtime.UnattendedInstallConfigV1Alpha1'],
    'UnattendedInstall',
  );
});

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

test('a 1.14 node gets the KubeNodeConfig document; one whose config still sets machine.nodeLabels is told how to move it', async () => {
  const installer = 'factory.talos.dev/installer/ab:v1.14.0';
  const plan = planTalosFrom(
    { ...NODE, version: 'v1.14.0' },
    { node: NODE.node, extensions: [], dri: [], running: { version: 'v1.14.0', from: 'talosctl version' } },
    { version: { version: 'v1.14.0', kind: 'same', text: 'Talos v1.14.0' }, schematicId: 'ab', installer },
  );
  assert.deepEqual(plan.patch, [
    {
      apiVersion: 'v1alpha1',
      kind: 'KubeNodeConfig',
      labels: { 'intel.feature.node.kubernetes.io/gpu': 'true' },
    },
  ]);
  assert.match(plan.steps[0]?.description ?? '', /GPU node label \(KubeNodeConfig document\)/);
  // The same command as before: talosctl patch machineconfig merges or appends the document.
  assert.match(
    plan.commands[0] ?? '',
    /^talosctl patch machineconfig --nodes 10\.0\.0\.5 --patch @<dir>\/machine-patch\.yaml$/,
  );
  const calls: string[][] = [];
  const talosctl: Talosctl = async (args) => {
    calls.push(args);
    return {
      code: 1,
      stdout: '',
      stderr: 'error: 1 error occurred:\n\t* .machine.nodeLabels is already set in v1alpha1 config\n',
    };
  };
  const out = join(dir, 'v1.14');
  await fails(
    applyTalosPlan(plan, talosctl, out),
    /talos 10\.0\.0\.5: talosctl patch failed: .*; nothing was changed — move \.machine\.nodeLabels into the node's KubeNodeConfig document \(talosctl edit machineconfig --nodes 10\.0\.0\.5\), then apply again$/,
  );
  assert.equal(calls.length, 1, 'no upgrade after a refused patch');
  const written = parseAllDocuments(await readFile(join(out, 'machine-patch.yaml'), 'utf8')).map((d) =>
    d.toJSON(),
  );
  assert.deepEqual(written, plan.patch);
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

interface VersionFacts {
  schemas: Record<
    string,
    {
      blob: string;
      id: string;
      documents: Record<string, string>;
      v1alpha1: {
        install: boolean;
        installImage: boolean;
        installExtraKernelArgs: boolean;
        nodeLabels: boolean;
      };
      kubeNodeConfigFields?: string[];
    }
  >;
  drains: Record<
    string,
    {
      machined: { path: string; drainPhase: boolean };
      talosctl: { path: string; drainFlagDefault: boolean | null; drainsBeforeReboot: boolean };
    }
  >;
  imageFactory: {
    customizationFields: string[];
    systemExtensionsFields: string[];
    installerKernelArgsWhen: string;
    unifiedInstallerSince: { version: string };
  };
  v1_14: { unattendedInstall: Record<string, unknown> };
}

function versionFacts(): VersionFacts {
  return JSON.parse(
    readFileSync(new URL('../../snapshots/talos-versions.json', import.meta.url), 'utf8'),
  ) as VersionFacts;
}

function byMinor(a: string, b: string): number {
  const [x, y] = [a, b].map((m) => m.split('.').map(Number)) as [number[], number[]];
  return (x[0] ?? 0) - (y[0] ?? 0) || (x[1] ?? 0) - (y[1] ?? 0);
}
