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
