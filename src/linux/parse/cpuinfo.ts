// /proc/cpuinfo on x86: blocks of `key\t: value` lines, one block per logical CPU.

export interface CpuInfo {
  vendor: string;
  family: number;
  model: number;
  stepping: number | undefined;
  modelName: string;
  flags: string[];
  logicalCpus: number;
  microcode: string | undefined;
}

/** Returns undefined when the text holds no CPU block we can use (garbled, truncated, not x86). */
export function parseCpuinfo(text: string): CpuInfo | undefined {
  const blocks = text
    .split(/\n\s*\n/)
    .map(parseBlock)
    .filter((block) => block.has('processor'));
  const first = blocks[0];
  if (!first) return undefined;
  const vendor = first.get('vendor_id');
  const family = toInt(first.get('cpu family'));
  const model = toInt(first.get('model'));
  if (!vendor || family === undefined || model === undefined) return undefined;
  return {
    vendor,
    family,
    model,
    stepping: toInt(first.get('stepping')),
    modelName: first.get('model name') ?? '',
    flags: (first.get('flags') ?? '').split(/\s+/).filter(Boolean),
    logicalCpus: blocks.length,
    microcode: first.get('microcode'),
  };
}

function parseBlock(block: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of block.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    fields.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return fields;
}

function toInt(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}
