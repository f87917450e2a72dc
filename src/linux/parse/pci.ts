// sysfs PCI attribute files: ids are `0x%04x`, class is `0x%06x`, and `resource`
// has one `start end flags` line per region (BARs 0–5, then the ROM), all hex.
// The formats are the kernel's: drivers/pci/pci-sysfs.c pci_config_attr(vendor, "0x%04x\n"),
// (device, …), (subsystem_vendor, …), (subsystem_device, …) and (class, "0x%06x\n")
// (torvalds/linux, unchanged from commit f0b433e9 through the sysfs_emit rewrite).

/**
 * A sysfs id file exactly as the kernel writes it (`0x` and `digits` hex digits, a
 * newline): anything else — truncated, padded, garbage — is not an id, and says why.
 */
export function parseSysfsId(
  text: string,
  digits: 4 | 6,
): { value: number; problem?: undefined } | { value?: undefined; problem: string } {
  const match = new RegExp(`^0x([0-9a-f]{${digits}})\n?$`, 'i').exec(text);
  if (match?.[1]) return { value: Number.parseInt(match[1], 16) };
  return {
    problem: `not a PCI ${digits === 4 ? 'id' : 'class'} (the kernel writes 0x and ${digits} hex digits; this holds ${Buffer.byteLength(text)} bytes)`,
  };
}

/** Size in bytes of each region in a `resource` file (0 for unused ones). */
export function parseResource(text: string): number[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const [start, end] = line
        .trim()
        .split(/\s+/)
        .map((field) => BigInt(/^0x[0-9a-f]+$/i.test(field) ? field : '0'));
      if (start === undefined || end === undefined || end <= start) return 0;
      return Number(end - start + 1n);
    });
}

/** PCI base class 0x03 is "display controller" (VGA 0x0300, XGA 0x0301, 3D 0x0302, other 0x0380). */
export function isDisplayClass(classCode: number): boolean {
  return classCode >> 16 === 0x03;
}

export function hex4(id: number): string {
  return id.toString(16).padStart(4, '0');
}
