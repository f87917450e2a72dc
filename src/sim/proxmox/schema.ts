// The simulator's parameter check, as Proxmox VE makes it before any endpoint's code runs:
// the parameters of each endpoint from the official API schema (pve-docs
// api-viewer/apidata.js, read at start from ../shared/data next to the checkout), checked
// the way pve-common's JSONSchema.pm does (check_object, check_prop, check_type,
// parse_property_string; proxmox/pve-common src/PVE/JSONSchema.pm at f665029e) after
// pve-common RESTHandler.pm's $normalize_legacy_param_formats (a lone value for an array
// becomes a one-element array, an array for a `-list` string is joined with commas).
//
// When the schema file is absent (the demo lab run from an installed package has no
// ../shared/data), the check falls back to the compact description: the names in the
// simulator's parameter table (test/proxmox/simulator-params.test.ts proves it holds every
// name of the official schema) with the types api-spec.ts gives; the others are taken as
// strings. `schemaSource` says which check is in force.

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EndpointSpec, PropertyStringSpec } from '../../proxmox/api-spec.ts';
import { HOSTPCI } from '../../proxmox/api-spec.ts';

/** One parameter (or property-string key) as the official schema describes it. */
export interface SchemaParam {
  type?: string;
  optional?: number;
  enum?: string[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  format?: string | Record<string, SchemaParam>;
  items?: SchemaParam;
  alias?: string;
  keyAlias?: string;
  default_key?: number;
}

export interface SchemaMethod {
  parameters?: { properties?: Record<string, SchemaParam> };
  returns?: unknown;
  permissions?: unknown;
}

interface SchemaNode {
  path: string;
  info: Record<string, SchemaMethod>;
  children?: SchemaNode[];
}

/** Where the checkout keeps the official schema: ../shared/data beside the repository (or dist's parent). */
export const OFFICIAL_SCHEMA_FILE = fileURLToPath(
  new URL('../../../../shared/data/pve-apidata.js', import.meta.url),
);

/** `METHOD /path` → that method's schema; undefined when the file is absent. */
export function loadApiSchema(file = OFFICIAL_SCHEMA_FILE): Map<string, SchemaMethod> | undefined {
  if (!existsSync(file)) return undefined;
  // The file is `const apiSchema = [ … ];` around plain JSON.
  const text = readFileSync(file, 'utf8');
  const roots = JSON.parse(text.slice(text.indexOf('['), text.lastIndexOf(']') + 1)) as SchemaNode[];
  const methods = new Map<string, SchemaMethod>();
  const walk = (nodes: SchemaNode[]) => {
    for (const node of nodes) {
      for (const [method, info] of Object.entries(node.info ?? {}))
        methods.set(`${method} ${node.path}`, info);
      if (node.children) walk(node.children);
    }
  };
  walk(roots);
  return methods;
}

export type ParamErrors = Record<string, string>;

const NOT_DEFINED = 'property is not defined in schema and the schema does not allow additional properties';

/** A parameter checker for each served endpoint (`METHOD /path`). */
export class ParamChecker {
  /** 'official' when pve-apidata.js was read, else 'compact'. */
  readonly schemaSource: 'official' | 'compact';
  private readonly properties = new Map<string, Record<string, SchemaParam>>();

  constructor(
    endpoints: readonly EndpointSpec[],
    table: Readonly<Record<string, Readonly<Record<string, string>>>>,
    file?: string,
  ) {
    const official = loadApiSchema(file);
    this.schemaSource = official ? 'official' : 'compact';
    for (const endpoint of endpoints) {
      const key = `${endpoint.method} ${endpoint.path}`;
      const fromSchema = official?.get(key)?.parameters?.properties;
      this.properties.set(key, fromSchema ?? compactProperties(endpoint, table[key] ?? {}));
    }
  }

  /** Normalizes `params` in place (as RESTHandler does) and returns Proxmox's per-parameter errors. */
  check(endpoint: string, params: Record<string, unknown>): ParamErrors {
    const properties = this.properties.get(endpoint) ?? {};
    const errors: ParamErrors = {};
    const schemaOf = (name: string): SchemaParam | undefined =>
      properties[name] ?? properties[`${/^(.*\D)\d+$/.exec(name)?.[1] ?? ''}[n]`];
    for (const [name, value] of Object.entries(params)) {
      const schema = schemaOf(name);
      if (!schema || value === undefined) continue;
      if (Array.isArray(value) && schema.type === 'string' && /-list$/.test(String(schema.format)))
        params[name] = value.join(',');
      else if (!Array.isArray(value) && schema.type === 'array') params[name] = [value];
    }
    for (const [name, schema] of Object.entries(properties)) {
      if (!name.endsWith('[n]')) checkProp(params[name], schema, name, errors);
    }
    for (const [name, value] of Object.entries(params)) {
      if (properties[name]) continue;
      const indexed = name.endsWith('[n]') ? undefined : schemaOf(name);
      if (indexed) checkProp(value, indexed, name, errors);
      else addError(errors, name, NOT_DEFINED);
    }
    return errors;
  }
}

/** The fallback: names from the table, types from api-spec.ts (strings where it has none). */
function compactProperties(endpoint: EndpointSpec, handled: Readonly<Record<string, string>>) {
  const properties: Record<string, SchemaParam> = {};
  for (const name of Object.keys(handled)) {
    const spec = endpoint.params[name];
    properties[name] = spec
      ? {
          type: spec.type,
          optional: spec.optional ? 1 : 0,
          ...(spec.format ? { format: formatOf(spec.format) } : {}),
        }
      : { type: 'string', optional: 1 };
  }
  return properties;
}

/** Our compact property-string description in the schema's shape. */
function formatOf(spec: PropertyStringSpec): Record<string, SchemaParam> {
  return Object.fromEntries(
    Object.entries(spec.keys).map(([key, keySpec]) => [
      key,
      {
        type: keySpec.type,
        optional: keySpec.optional ? 1 : 0,
        ...(key === spec.defaultKey ? { default_key: 1 } : {}),
      },
    ]),
  );
}

function addError(errors: ParamErrors, path: string, message: string): void {
  errors[path] = errors[path] === undefined ? message : `${errors[path]}\n${message}`;
}

/** check_prop: presence, type, then (for scalars) format, pattern, length, range, enumeration. */
function checkProp(value: unknown, schema: SchemaParam, path: string, errors: ParamErrors): void {
  // An alias's value is remapped to its target, so it is not checked under its own name.
  if (schema.alias) return;
  if (value === undefined || value === null) {
    if (!schema.optional) addError(errors, path, 'property is missing and it is not optional');
    return;
  }
  if (!checkType(value, schema.type, path, errors)) return;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      if (schema.items) checkProp(item, schema.items, `${path}[${i}]`, errors);
    }
    return;
  }
  const problem = scalarProblem(String(value), schema, path);
  if (problem) addError(errors, path, problem);
}

/** The first thing check_prop finds wrong with a scalar, in its order. */
function scalarProblem(text: string, schema: SchemaParam, path: string): string | undefined {
  if (schema.format !== undefined) {
    const problem = formatProblem(schema.format, text, path);
    if (problem) return `invalid format - ${problem}`;
  }
  const pattern = schema.pattern === undefined ? undefined : patternOf(schema.pattern);
  if (pattern && !pattern.test(text)) return 'value does not match the regex pattern';
  if (schema.maxLength !== undefined && text.length > schema.maxLength)
    return `value may only be ${schema.maxLength} characters long`;
  if (schema.minLength !== undefined && text.length < schema.minLength)
    return `value must be at least ${schema.minLength} characters long`;
  if (IS_NUMBER.test(text)) {
    if (schema.maximum !== undefined && Number(text) > schema.maximum)
      return `value must have a maximum value of ${schema.maximum}`;
    if (schema.minimum !== undefined && Number(text) < schema.minimum)
      return `value must have a minimum value of ${schema.minimum}`;
  }
  if (schema.enum && !schema.enum.includes(text))
    return `value '${text}' does not have a value in the enumeration '${schema.enum.join(', ')}'`;
  return undefined;
}

const IS_NUMBER = /^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$/;

/** check_type: a JSON boolean passes as boolean; otherwise booleans are exactly '1' or '0'. */
function checkType(value: unknown, type: string | undefined, path: string, errors: ParamErrors): boolean {
  if (!type || type === 'any') return true;
  if (type === 'array' || type === 'object') {
    const ok = type === 'array' ? Array.isArray(value) : typeof value === 'object' && !Array.isArray(value);
    if (!ok) addError(errors, path, `type check ('${type}') failed`);
    return ok;
  }
  if (typeof value === 'object') {
    addError(errors, path, `type check ('${type}') failed - got ${Array.isArray(value) ? 'ARRAY' : 'HASH'}`);
    return false;
  }
  if (type === 'boolean' && typeof value === 'boolean') return true;
  const text = String(value);
  const ok =
    type === 'boolean'
      ? text === '1' || text === '0'
      : type === 'integer'
        ? /^[+-]?\d+$/.test(text)
        : type === 'number'
          ? IS_NUMBER.test(text)
          : true;
  if (!ok) addError(errors, path, `type check ('${type}') failed - got '${text}'`);
  return ok;
}

/**
 * Perl patterns as Proxmox matches them, `m/^$pattern$/` — so `^a|b$` keeps Perl's
 * precedence. `(?^:` (a stringified qr//) becomes a plain group; a pattern JavaScript
 * cannot compile is not checked.
 */
function patternOf(pattern: string): RegExp | undefined {
  try {
    return new RegExp(`^${pattern.replaceAll('(?^:', '(?:').replaceAll('\\@', '@')}$`);
  } catch (error) {
    // expected: SyntaxError — a Perl pattern JavaScript cannot compile is not checked
    if (!(error instanceof SyntaxError)) throw error;
    return undefined;
  }
}

/**
 * The named formats the endpoints we serve use, with pve-common's wording (JSONSchema.pm
 * pve_verify_node_name, pve_verify_vmid, pve_verify_configid, verify_task_status_type);
 * `pve-qm-hostpci` through our compact HOSTPCI (checked against the schema's typetext).
 * Other named formats (e.g. pve-volume-id, pve-vm-cpu-conf) are not checked by the simulator.
 */
const NAMED_FORMATS: Record<string, (value: string) => string | undefined> = {
  string: () => undefined,
  'pve-node': (v) =>
    /^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$/.test(v)
      ? undefined
      : 'value does not look like a valid node name',
  'pve-vmid': (v) => (/^[1-9][0-9]{2,8}$/.test(v) ? undefined : 'value does not look like a valid VM ID'),
  'pve-configid': (v) => (/^[a-z][a-z0-9_-]+$/i.test(v) ? undefined : `invalid configuration ID '${v}'`),
  'pve-task-status-type': (v) =>
    /^(ok|error|warning|unknown)$/i.test(v) ? undefined : `invalid status '${v}'`,
};
const HASH_FORMATS: Record<string, Record<string, SchemaParam>> = { 'pve-qm-hostpci': formatOf(HOSTPCI) };

/** check_format: a message without the `invalid format - ` prefix, or undefined when it fits. */
function formatProblem(
  format: string | Record<string, SchemaParam>,
  value: string,
  path: string,
): string | undefined {
  if (typeof format === 'object') return propertyStringProblem(format, value, path);
  if (HASH_FORMATS[format]) return propertyStringProblem(HASH_FORMATS[format], value, path);
  const [, name, kind] = /^(.*?)(?:-(list|opt))?$/.exec(format) as unknown as [string, string, string?];
  const check = NAMED_FORMATS[name];
  if (!check) return undefined;
  if (kind === 'list') {
    for (const item of splitList(value)) {
      const problem = check(item);
      if (problem) return `${problem}\n`;
    }
    return undefined;
  }
  if (kind === 'opt' && !value) return undefined;
  const problem = check(value);
  return problem && `${problem}\n`;
}

/** pve-common ParseUtils.pm split_list: on NUL, else on commas, semicolons and white space. */
export function splitList(text: string): string[] {
  if (text.includes('\0')) return text.split('\0');
  return text
    .replace(/[,;]/g, ' ')
    .trim()
    .split(/\s+/)
    .filter((item) => item !== '');
}

const BOOLEAN_WORDS: Record<string, string> = {
  1: '1',
  on: '1',
  yes: '1',
  true: '1',
  0: '0',
  off: '0',
  no: '0',
  false: '0',
};

/** One comma-separated part into `parsed`: `key=value`, or a value for the default key; a problem, or undefined. */
function takePart(
  format: Record<string, SchemaParam>,
  part: string,
  parsed: Record<string, string>,
  seen: { defaultKey?: string },
): string | undefined {
  const pair = /^([^=]+)=(.+)$/.exec(part);
  if (pair) return takeKeyed(format, pair[1] as string, pair[2] as string, parsed);
  if (!part.includes('=')) return takeDefault(format, part, parsed, seen);
  return 'missing key in comma-separated list property\n';
}

/** `key=value`, through the key's alias if it has one. */
function takeKeyed(
  format: Record<string, SchemaParam>,
  given: string,
  raw: string,
  parsed: Record<string, string>,
): string | undefined {
  if (parsed[given] !== undefined) return `duplicate key in comma-separated list property: ${given}\n`;
  let key = given;
  let schema = format[key];
  if (schema?.alias) {
    if (schema.keyAlias) {
      if (parsed[schema.keyAlias] !== undefined) return `key alias '${schema.keyAlias}' is already defined\n`;
      parsed[schema.keyAlias] = key;
    }
    key = schema.alias;
    schema = format[key];
    if (parsed[key] !== undefined) return `key '${key}' is already defined (via alias)\n`;
  }
  if (!schema) return `invalid key in comma-separated list property: ${key}\n`;
  parsed[key] = schema.type === 'boolean' ? (BOOLEAN_WORDS[raw.toLowerCase()] ?? raw) : raw;
  return undefined;
}

/** A value without a key: the schema's default key, once. */
function takeDefault(
  format: Record<string, SchemaParam>,
  part: string,
  parsed: Record<string, string>,
  seen: { defaultKey?: string },
): string | undefined {
  if (seen.defaultKey) return `duplicate key in comma-separated list property: ${seen.defaultKey}\n`;
  const key = Object.keys(format).find((name) => format[name]?.default_key);
  seen.defaultKey = key;
  if (!key) return 'value without key, but schema does not define a default key\n';
  if (parsed[key] !== undefined) return `duplicate key in comma-separated list property: ${key}\n`;
  parsed[key] = format[key]?.type === 'boolean' ? (BOOLEAN_WORDS[part.toLowerCase()] ?? part) : part;
  return undefined;
}

/** parse_property_string, then check_object on what it parsed (no additional keys). */
function propertyStringProblem(
  format: Record<string, SchemaParam>,
  text: string,
  path: string,
): string | undefined {
  const parsed: Record<string, string> = {};
  const seen: { defaultKey?: string } = {};
  for (const part of text.split(',')) {
    if (/^\s*$/.test(part)) continue;
    const problem = takePart(format, part, parsed, seen);
    if (problem) return problem;
  }
  const errors: ParamErrors = {};
  for (const [key, schema] of Object.entries(format))
    checkProp(parsed[key], schema, `${path}.${key}`, errors);
  const lines = Object.entries(errors).map(([key, message]) => `${key}: ${message}\n`);
  // PVE::Exception's text: the message, then one `path: error` line per error.
  return lines.length > 0 ? `format error\n${lines.join('')}` : undefined;
}
