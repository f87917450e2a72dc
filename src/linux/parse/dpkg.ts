// dpkg's status database, read by host and guest alike.

/** /var/lib/dpkg/status: stanzas of `Field: value`; only fully installed packages count. */
export function parseDpkgStatus(text: string): Map<string, string> {
  const installed = new Map<string, string>();
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(stanza)?.[1]?.trim();
    const name = field('Package');
    if (name && field('Status') === 'install ok installed') installed.set(name, field('Version') ?? '');
  }
  return installed;
}

/**
 * Packages dpkg has unpacked but not finished configuring, whose names start with one of
 * `prefixes`: the status's third word (dpkg(1) "Package states": half-installed, unpacked,
 * half-configured, triggers-awaited; installed and config-files are done or gone).
 */
export function parseDpkgUnfinished(
  text: string,
  prefixes: readonly string[],
): { package: string; status: string }[] {
  const unfinished: { package: string; status: string }[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}: (.*)$`, 'm').exec(stanza)?.[1]?.trim();
    const name = field('Package');
    const state = field('Status')?.split(/\s+/)[2];
    if (!name || !prefixes.some((p) => name.startsWith(p))) continue;
    if (state === 'half-installed' || state === 'unpacked' || state === 'half-configured')
      unfinished.push({ package: name, status: state });
  }
  return unfinished;
}
