// Proxmox property strings (`mapping=iGPU,mdev=i915-GVTg_V5_4,pcie=1`): parsed and
// written against a PropertyStringSpec, so every string we send names only keys the
// format has, with values of the right type, in a stable order.

import { IgpuSplitError } from '../core/errors.ts';
import type { PropertyStringSpec } from './api-spec.ts';

export type PropertyValues = Record<string, string | number | boolean>;

/** A value that does not fit its format: one line, with what to do. */
export class PropertyStringError extends IgpuSplitError {
  constructor(message: string) {
    super(message, {
      fix: 'if Proxmox wrote this value, it may be newer than igpu-split knows: report it with the value',
    });
  }
}

const BOOL: Record<string, boolean> = {
  1: true,
  0: false,
  yes: true,
  no: false,
  on: true,
  off: false,
  true: true,
  false: false,
};

export function parsePropertyString(text: string, spec: PropertyStringSpec): PropertyValues {
  const values: PropertyValues = {};
  for (const [index, part] of text.split(',').entries()) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let key: string;
    let raw: string;
    if (eq < 0) {
      if (index !== 0 || !spec.defaultKey)
        throw new PropertyStringError(`${spec.name}: "${part}" has no key`);
      key = spec.defaultKey;
      raw = part;
    } else {
      key = part.slice(0, eq);
      raw = part.slice(eq + 1);
    }
    const keySpec = spec.keys[key];
    if (!keySpec) throw new PropertyStringError(`${spec.name}: unknown key "${key}"`);
    if (key in values) throw new PropertyStringError(`${spec.name}: "${key}" given twice`);
    values[key] = convert(raw, keySpec.type, `${spec.name}: ${key}`);
  }
  for (const [key, keySpec] of Object.entries(spec.keys)) {
    if (!keySpec.optional && !(key in values))
      throw new PropertyStringError(`${spec.name}: "${key}" is required`);
  }
  return values;
}

/** Keys in the spec's order; booleans as 1/0 as Proxmox writes them. */
export function formatPropertyString(values: PropertyValues, spec: PropertyStringSpec): string {
  for (const key of Object.keys(values)) {
    if (!spec.keys[key]) throw new PropertyStringError(`${spec.name}: unknown key "${key}"`);
  }
  const parts: string[] = [];
  for (const [key, keySpec] of Object.entries(spec.keys)) {
    const value = values[key];
    if (value === undefined) {
      if (!keySpec.optional) throw new PropertyStringError(`${spec.name}: "${key}" is required`);
      continue;
    }
    const text = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
    if (/[,=]/.test(text) && key !== spec.defaultKey)
      throw new PropertyStringError(`${spec.name}: ${key} holds a "," or "="`);
    parts.push(key === spec.defaultKey ? text : `${key}=${text}`);
  }
  // The default key is written bare, first.
  if (spec.defaultKey && values[spec.defaultKey] !== undefined) {
    const bare = parts.splice(parts.indexOf(String(values[spec.defaultKey])), 1);
    parts.unshift(...bare);
  }
  return parts.join(',');
}

function convert(raw: string, type: string, what: string): string | number | boolean {
  if (type === 'boolean') {
    const value = BOOL[raw.toLowerCase()];
    if (value === undefined) throw new PropertyStringError(`${what}: "${raw}" is not a boolean`);
    return value;
  }
  if (type === 'integer') {
    if (!/^-?\d+$/.test(raw)) throw new PropertyStringError(`${what}: "${raw}" is not an integer`);
    return Number(raw);
  }
  if (type === 'number') {
    if (!/^-?\d+(\.\d+)?$/.test(raw)) throw new PropertyStringError(`${what}: "${raw}" is not a number`);
    return Number(raw);
  }
  return raw;
}
