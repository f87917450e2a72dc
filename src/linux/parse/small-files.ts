// Parsers for the small text files gather reads.

/** /proc/modules: the first field of each line is the module name. */
export function parseModules(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => /^[\w-]+$/.test(name));
}

/** os-release(5): KEY=value lines, values optionally quoted. */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!match?.[1] || match[2] === undefined) continue;
    fields[match[1]] = match[2].replace(/^(["'])(.*)\1$/, '$2');
  }
  return fields;
}

/**
 * PVE::pvecfg (pve-manager, PVE/pvecfg.pm.in) holds the version as
 * `sub version { return '8.2.7'; }` and `sub release { return '8.2'; }`.
 */
export function parsePveCfg(text: string): { version?: string; release?: string } {
  const pick = (sub: string) =>
    new RegExp(`sub\\s+${sub}\\s*\\{\\s*return\\s+['"]([^'"]+)['"]`).exec(text)?.[1];
  const result: { version?: string; release?: string } = {};
  const version = pick('version');
  const release = pick('release');
  if (version) result.version = version;
  if (release) result.release = release;
  return result;
}

/**
 * An efivarfs variable is a 4-byte little-endian attribute word followed by the
 * data (kernel Documentation/filesystems/efivarfs.rst); SecureBoot's data is one
 * byte, 1 when enforcing.
 */
export function parseSecureBootVar(data: Buffer): boolean | undefined {
  if (data.length < 5) return undefined;
  return data[4] === 1;
}

/** i915 bool parameters read `Y`/`N`, int ones a decimal number. */
export function parseModuleParam(text: string | undefined): boolean | number | undefined {
  const value = text?.trim();
  if (value === undefined || value === '') return undefined;
  if (value === 'Y') return true;
  if (value === 'N') return false;
  return /^-?\d+$/.test(value) ? Number(value) : undefined;
}

/** Splits a kernel command line into parameters, keeping double-quoted values together. */
export function splitCmdline(text: string): string[] {
  return text.match(/(?:[^\s"]+|"[^"]*")+/g) ?? [];
}
