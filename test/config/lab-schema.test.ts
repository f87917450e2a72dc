// The published lab JSON Schema (docs/schemas/lab.schema.json) is what editors check a lab
// file with: every lab file the project writes or keeps must pass it under a standard
// validator (ajv, JSON Schema 2020-12), and a broken one must not.

import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { type DemoLab, startDemoLab } from '../../src/demo/lab.ts';
import { runCli } from '../support/cli.ts';

const published = JSON.parse(
  await readFile(new URL('../../docs/schemas/lab.schema.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;
// formats (uri) are not checked: the loader checks them; the schema's structure is what is tested.
const validate = new Ajv2020({ strict: false, allErrors: true, validateFormats: false }).compile(published);

/** The validator's complaints about one lab file's text, or [] when it passes. */
function problems(text: string): string[] {
  if (validate(parse(text))) return [];
  return (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

/** Every lab file under test/fixtures: a YAML file with a top-level `proxmox:` key. */
async function labFixtures(): Promise<string[]> {
  const root = fileURLToPath(new URL('../fixtures/', import.meta.url));
  const files: string[] = [];
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !/\.ya?ml$/.test(entry.name)) continue;
    const file = join(entry.parentPath, entry.name);
    if (/^proxmox:/m.test(await readFile(file, 'utf8'))) files.push(file);
  }
  return files;
}

let demo: DemoLab;
before(async () => {
  demo = await startDemoLab();
});
after(async () => {
  await demo?.close();
});

test('the published schema is 2020-12 and leaves defaulted fields optional', () => {
  assert.equal(published.$schema, 'https://json-schema.org/draft/2020-12/schema');
  // The smallest lab file the loader takes: every other field has a default.
  assert.deepEqual(
    problems(
      'proxmox: { url: "https://pve1:8006", token: "a@pam!b" }\nhosts: [{ node: pve1 }]\nvms: [{ vmid: 101, host: pve1, os: ubuntu }]\n',
    ),
    [],
  );
});

test("the demo lab's file passes the published schema", async () => {
  assert.deepEqual(problems(await readFile(demo.labFile, 'utf8')), []);
});

test("init's output passes the published schema", async () => {
  const out = join(demo.dir, 'init.yaml');
  const result = await runCli([
    'init',
    '--url',
    demo.description.proxmoxUrl,
    '--token',
    'igpu-split@pve!demo',
    '--token-secret-env',
    'IGPU_SPLIT_DEMO_TOKEN',
    '--fingerprint',
    demo.description.fingerprint,
    '--out',
    out,
    '--vm',
    '101:ubuntu',
    '102:talos',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const text = await readFile(out, 'utf8');
  assert.match(text, /os: talos/);
  assert.deepEqual(problems(text), []);
});

test('every lab fixture passes the published schema', async () => {
  const files = await labFixtures();
  assert.ok(files.length >= 2, files.join(', '));
  for (const file of files) assert.deepEqual(problems(await readFile(file, 'utf8')), [], file);
});

test('a broken lab file fails the published schema, naming the field', async () => {
  const good = await readFile(demo.labFile, 'utf8');
  assert.ok(problems(good.replace(/^hosts:/m, 'hostz:')).some((p) => /hostz|hosts/.test(p)));
  assert.ok(problems(good.replace('vmid: 101', 'vmid: "one-oh-one"')).some((p) => /vmid/.test(p)));
  const bad = await readFile(new URL('../corpus/lab/bad-values.yaml', import.meta.url), 'utf8');
  assert.notDeepEqual(problems(bad), []);
});
