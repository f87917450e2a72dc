// Our compact API description against the official Proxmox VE API schema
// (../shared/data/pve-apidata.js, see its README). Skipped, saying so, when absent.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ENDPOINTS,
  HOSTPCI,
  type KeySpec,
  PCI_MAP_ENTRY,
  type PermissionSpec,
  type PropertyStringSpec,
} from '../../src/proxmox/api-spec.ts';

const FILE = fileURLToPath(new URL('../../../shared/data/pve-apidata.js', import.meta.url));

interface OfficialParam {
  type: string;
  optional?: number;
  format?: string | Record<string, OfficialParam>;
  items?: OfficialParam;
  typetext?: string;
  alias?: string;
}
interface OfficialNode {
  path: string;
  info: Record<
    string,
    { parameters?: { properties?: Record<string, OfficialParam> }; returns?: unknown; permissions?: unknown }
  >;
  children?: OfficialNode[];
}

function loadSchema(): Map<string, OfficialNode> | undefined {
  if (!existsSync(FILE)) return undefined;
  // The file is `const apiSchema = [ … ];` around plain JSON.
  const text = readFileSync(FILE, 'utf8');
  const nodes = JSON.parse(text.slice(text.indexOf('['), text.lastIndexOf(']') + 1)) as OfficialNode[];
  const index = new Map<string, OfficialNode>();
  const walk = (list: OfficialNode[]) => {
    for (const node of list) {
      index.set(node.path, node);
      if (node.children) walk(node.children);
    }
  };
  walk(nodes);
  return index;
}

const schema = loadSchema();
const skip = schema ? false : `official schema not found at ${FILE} (see ../shared/data/README.md)`;

function sameKey(ours: KeySpec, official: OfficialParam, where: string) {
  assert.equal(ours.type, official.type, `${where}: type`);
  assert.equal(ours.optional, official.optional === 1, `${where}: optional`);
}

/** Key names and boolean-ness from a typetext such as `[[host=]<…>] [,pcie=<1|0>] …`. */
function typetextKeys(typetext: string): Map<string, boolean> {
  const keys = new Map<string, boolean>();
  for (const match of typetext.matchAll(/\[,?\[?([a-z][a-z0-9-]*)=\]?(<[^>]*>)/g)) {
    keys.set(match[1] as string, match[2] === '<1|0>');
  }
  return keys;
}

function sameFormat(ours: PropertyStringSpec, official: OfficialParam, where: string) {
  if (typeof official.format === 'object') {
    // Aliases (efidisk's `volume` for `file`) are other spellings of a key we have.
    const officialKeys = Object.entries(official.format).filter(([, spec]) => !spec.alias);
    assert.deepEqual(
      Object.keys(ours.keys).sort(),
      officialKeys.map(([key]) => key).sort(),
      `${where}: keys`,
    );
    for (const [key, spec] of Object.entries(ours.keys))
      sameKey(spec, official.format[key] as OfficialParam, `${where}.${key}`);
  } else {
    assert.equal(official.format, ours.name, `${where}: format name`);
    const keys = typetextKeys(official.typetext ?? '');
    assert.deepEqual([...keys.keys()].sort(), Object.keys(ours.keys).sort(), `${where}: keys`);
    for (const [key, spec] of Object.entries(ours.keys)) {
      assert.equal(spec.type === 'boolean', keys.get(key), `${where}.${key}: boolean`);
    }
  }
}

test('every endpoint, parameter and property-string key we use exists in the official schema', {
  skip,
}, () => {
  for (const endpoint of ENDPOINTS) {
    const where = `${endpoint.method} ${endpoint.path}`;
    const node = schema?.get(endpoint.path);
    assert.ok(node, `${where}: no such path`);
    const method = node.info[endpoint.method];
    assert.ok(method, `${where}: no such method`);
    const official = method.parameters?.properties ?? {};
    for (const [name, ours] of Object.entries(endpoint.params)) {
      const param = official[name];
      assert.ok(param, `${where}: no parameter ${name}`);
      sameKey(ours, param, `${where} ${name}`);
      if (ours.format)
        sameFormat(
          ours.format,
          ours.type === 'array' ? (param.items as OfficialParam) : param,
          `${where} ${name}`,
        );
    }
  }
});

/** Our PermissionSpec from the schema's `check`: perm (all, or any), or an `or` of perms on one path. */
function officialPermission(permissions: unknown): PermissionSpec | undefined {
  const check = (permissions as { check?: unknown[] } | undefined)?.check;
  if (!check) return undefined;
  if (check[0] === 'perm') {
    return { path: check[1] as string, privileges: check[2] as string[], any: check[3] === 'any' };
  }
  if (check[0] === 'or') {
    const perms = check.slice(1) as [string, string, string[]][];
    const paths = new Set(perms.map((perm) => perm[1]));
    assert.equal(paths.size, 1, 'an or-check over several paths');
    return { path: perms[0]?.[1] as string, privileges: perms.flatMap((perm) => perm[2]), any: true };
  }
  throw new Error(`unknown check ${JSON.stringify(check)}`);
}

test('every endpoint names the privilege check the official schema makes', { skip }, () => {
  for (const endpoint of ENDPOINTS) {
    const method = schema?.get(endpoint.path)?.info[endpoint.method];
    const official = officialPermission(method?.permissions);
    const where = `${endpoint.method} ${endpoint.path}`;
    if (!official) {
      assert.equal(endpoint.permission, undefined, `${where}: the schema makes no check`);
      continue;
    }
    assert.ok(endpoint.permission, `${where}: the schema checks ${JSON.stringify(official)}`);
    assert.equal(endpoint.permission.path, official.path, `${where}: path`);
    // A single privilege is the same check whether it says `any` or not.
    if (official.privileges.length > 1) assert.equal(endpoint.permission.any, official.any, `${where}: any`);
    assert.deepEqual(endpoint.permission.privileges, official.privileges, `${where}: privileges`);
  }
});

test('hostpci and the mapping entry formats match the official key sets', { skip }, () => {
  const config = schema?.get('/nodes/{node}/qemu/{vmid}/config')?.info.POST?.parameters?.properties ?? {};
  sameFormat(HOSTPCI, config['hostpci[n]'] as OfficialParam, 'hostpci[n]');
  const mapping = schema?.get('/cluster/mapping/pci')?.info.POST?.parameters?.properties ?? {};
  sameFormat(PCI_MAP_ENTRY, mapping.map?.items as OfficialParam, 'map');
});

test('the mdev listing returns the fields the mapping and VM layers read', { skip }, () => {
  const returns = schema?.get('/nodes/{node}/hardware/pci/{pci-id-or-mapping}/mdev')?.info.GET?.returns as {
    items: { properties: Record<string, unknown> };
  };
  for (const field of ['type', 'available', 'description', 'name'])
    assert.ok(returns.items.properties[field], field);
});
