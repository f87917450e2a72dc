// Extracts the iGPU facts behind src/knowledge/igpu-{ids,platforms}.ts from the kernel and
// driver sources and writes them to snapshots/igpu-facts.json.
//
//   node scripts/extract-igpu-facts.ts \
//     --upstream <owner/name>@<commit> --pciids <pciids.h> --xe-pci <xe_pci.c> \
//     --gvt-upstream <owner/name>@<commit> --gvt <intel_gvt.c> \
//     --dkms <git dir of strongtz/i915-sriov-dkms> [--out <file>]
//
// The upstream files are read from disk (saved whole from their repository); the DKMS files
// straight from its git directory at HEAD. Any file that does not parse the way these files
// are written makes the script stop with one line and exit 1: a table built on a half-read
// header would be silently wrong.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PCIIDS_PATH = 'include/drm/intel/pciids.h';
const XE_PCI_PATH = 'drivers/gpu/drm/xe/xe_pci.c';
const I915_PCI_PATH = 'drivers/gpu/drm/i915/i915_pci.c';
const GVT_PATH = 'drivers/gpu/drm/i915/intel_gvt.c';
const DKMS_CONF_PATH = 'dkms.conf';
const DKMS_REPOSITORY = 'strongtz/i915-sriov-dkms';

/**
 * Every top-level list (one no other list includes) must be named here, in exactly one
 * group, so a list upstream adds stops this script instead of vanishing from the tables.
 */
const INTEGRATED = [
  'INTEL_BDW_IDS',
  'INTEL_CHV_IDS',
  'INTEL_SKL_IDS',
  'INTEL_BXT_IDS',
  'INTEL_GLK_IDS',
  'INTEL_KBL_IDS',
  'INTEL_CFL_IDS',
  'INTEL_WHL_IDS',
  'INTEL_CML_IDS',
  'INTEL_CNL_IDS',
  'INTEL_ICL_IDS',
  'INTEL_EHL_IDS',
  'INTEL_JSL_IDS',
  'INTEL_TGL_IDS',
  'INTEL_RKL_IDS',
  'INTEL_ADLS_IDS',
  'INTEL_ADLP_IDS',
  'INTEL_ADLN_IDS',
  'INTEL_RPLS_IDS',
  'INTEL_RPLU_IDS',
  'INTEL_RPLP_IDS',
  'INTEL_MTL_IDS',
  'INTEL_ARL_IDS',
  'INTEL_LNL_IDS',
  'INTEL_PTL_IDS',
  'INTEL_WCL_IDS',
  'INTEL_NVLS_IDS',
  'INTEL_NVLP_IDS',
];
/** Discrete cards: not iGPUs, never in the tables. */
const DISCRETE = [
  'INTEL_DG1_IDS',
  'INTEL_DG2_IDS',
  'INTEL_DG2_D_IDS',
  'INTEL_ATS_M_IDS',
  'INTEL_PVC_IDS',
  'INTEL_BMG_IDS',
  'INTEL_CRI_IDS',
];
/** iGPUs older than Broadwell: no GVT-g, no SR-IOV, out of the project's scope. */
const PRE_BROADWELL = [
  'INTEL_I810_IDS',
  'INTEL_I815_IDS',
  'INTEL_I830_IDS',
  'INTEL_I845G_IDS',
  'INTEL_I85X_IDS',
  'INTEL_I865G_IDS',
  'INTEL_I915G_IDS',
  'INTEL_I915GM_IDS',
  'INTEL_I945G_IDS',
  'INTEL_I945GM_IDS',
  'INTEL_I965G_IDS',
  'INTEL_G33_IDS',
  'INTEL_I965GM_IDS',
  'INTEL_GM45_IDS',
  'INTEL_G45_IDS',
  'INTEL_PNV_IDS',
  'INTEL_ILK_IDS',
  'INTEL_SNB_IDS',
  'INTEL_IVB_IDS',
  'INTEL_IVB_Q_IDS',
  'INTEL_HSW_IDS',
  'INTEL_VLV_IDS',
];

class Refusal extends Error {}

interface Source {
  repository: string;
  path: string;
  commit: string;
  blob: string;
}

/** The id git gives this text as a blob (`git hash-object`). */
export function gitBlobSha(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  return createHash('sha1')
    .update(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes]))
    .digest('hex');
}

function hex(id: number): string {
  return `0x${id.toString(16).padStart(4, '0')}`;
}

function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, ' ').replace(/\/\/[^\n]*/g, '');
}

/** `#define` bodies with their continuation lines joined, comments gone. */
function defines(text: string): Map<string, { params: string | undefined; body: string }> {
  const out = new Map<string, { params: string | undefined; body: string }>();
  const joined = withoutComments(text).replace(/\\\r?\n/g, ' ');
  for (const m of joined.matchAll(/^[ \t]*#define[ \t]+(\w+)(\([^)]*\))?([^\n]*)$/gm))
    out.set(m[1] as string, { params: m[2], body: (m[3] as string).trim() });
  return out;
}

type Item = { id: number } | { list: string } | { subsystemMatch: true };

/** INTEL_*_IDS lists of a pciids.h, each with its own items in order. */
export function parsePciIdLists(text: string, what: string): Map<string, Item[]> {
  const lists = new Map<string, Item[]>();
  for (const [name, { params, body }] of defines(text)) {
    if (!/^INTEL_\w+_IDS$/.test(name)) continue;
    if (params !== '(MACRO__, ...)')
      throw new Refusal(`${what}: ${name} is not a list of the form NAME(MACRO__, ...)`);
    const items: Item[] = [];
    for (const raw of body.split(/,(?![^()]*\))/)) {
      const part = raw.trim();
      if (part === '') continue;
      const id = /^MACRO__\((0x[0-9A-Fa-f]{1,4}), ## __VA_ARGS__\)$/.exec(part);
      const sub = /^(INTEL_\w+_IDS)\(MACRO__, (?:## )?__VA_ARGS__\)$/.exec(part);
      if (id) items.push({ id: Number.parseInt(id[1] as string, 16) });
      else if (sub) items.push({ list: sub[1] as string });
      // The Quanta IVB entry matches on subsystem ids, not on a device id of its own.
      else if (part === 'INTEL_QUANTA_VGA_DEVICE(__VA_ARGS__)') items.push({ subsystemMatch: true });
      else throw new Refusal(`${what}: ${name} has an entry this script cannot read: ${part}`);
    }
    lists.set(name, items);
  }
  if (lists.size === 0) throw new Refusal(`${what}: no INTEL_*_IDS lists found`);
  return lists;
}

function resolve(lists: Map<string, Item[]>, name: string, what: string, seen: string[] = []): number[] {
  const items = lists.get(name);
  if (!items)
    throw new Refusal(`${what}: ${seen.at(-1) ?? 'a binding'} refers to ${name}, which is not defined`);
  if (seen.includes(name)) throw new Refusal(`${what}: ${name} includes itself`);
  return items.flatMap((item) =>
    'id' in item ? [item.id] : 'list' in item ? resolve(lists, item.list, what, [...seen, name]) : [],
  );
}

function classifyLists(lists: Map<string, Item[]>, what: string) {
  const included = new Set<string>();
  for (const items of lists.values()) for (const item of items) if ('list' in item) included.add(item.list);
  const groups = new Map<string, string>();
  for (const [group, names] of [
    ['integrated', INTEGRATED],
    ['discrete', DISCRETE],
    ['preBroadwell', PRE_BROADWELL],
  ] as const) {
    for (const name of names) {
      if (included.has(name))
        throw new Refusal(`${what}: ${name} is now part of another list; review its class`);
      groups.set(name, group);
    }
  }
  for (const name of lists.keys()) {
    if (included.has(name)) continue;
    if (!groups.has(name))
      throw new Refusal(
        `${what}: unknown list macro ${name}: classify it (integrated, discrete or pre-Broadwell) in scripts/extract-igpu-facts.ts`,
      );
  }
  const pick = (names: string[]) =>
    Object.fromEntries(names.filter((n) => lists.has(n)).map((n) => [n, resolve(lists, n, what).map(hex)]));
  const integrated = pick(INTEGRATED);
  // Every list an integrated list includes, so a table may bind a sub-list (Amber Lake).
  const subLists: Record<string, string[]> = {};
  const walk = (name: string) => {
    for (const item of lists.get(name) ?? [])
      if ('list' in item) {
        subLists[item.list] = resolve(lists, item.list, what).map(hex);
        walk(item.list);
      }
  };
  for (const name of Object.keys(integrated)) walk(name);
  const discrete = pick(DISCRETE);
  const integratedIds = new Set(Object.values(integrated).flat());
  for (const [name, ids] of Object.entries(discrete))
    for (const id of ids)
      if (integratedIds.has(id)) throw new Refusal(`${what}: ${id} is in ${name} and in an integrated list`);
  return {
    integrated,
    subLists,
    discrete,
    preBroadwell: PRE_BROADWELL.filter((n) => lists.has(n)),
    absent: INTEGRATED.filter((n) => !lists.has(n)),
  };
}

/** Object-like macros expanded until none is left, so flags set inside *_FEATURES count. */
function expand(body: string, macros: Map<string, { params: string | undefined; body: string }>): string {
  let text = body;
  for (let depth = 0; depth < 20; depth++) {
    let changed = false;
    text = text.replace(/\b[A-Z][A-Z0-9_]*\b/g, (word) => {
      const macro = macros.get(word);
      if (!macro || macro.params !== undefined) return word;
      changed = true;
      return ` ${macro.body} `;
    });
    if (!changed) return text;
  }
  throw new Refusal('macro expansion does not end');
}

function lastFlag(text: string, flag: string): boolean {
  const values = [...text.matchAll(new RegExp(`\\.${flag}\\s*=\\s*(\\w+)`, 'g'))].map((m) => m[1]);
  const last = values.at(-1);
  return last === '1' || last === 'true';
}

/** Driver descriptors (i915 intel_device_info / xe xe_device_desc) and the lists bound to them. */
function parseDriver(text: string, struct: string, what: string, lists: Map<string, Item[]>) {
  const macros = defines(text);
  const clean = withoutComments(text);
  const descs: Record<string, { platform: string; hasSriov: boolean; requireForceProbe: boolean }> = {};
  const start = new RegExp(`static const (?:__maybe_unused\\s+)?struct ${struct} (\\w+) = \\{`, 'g');
  for (const m of clean.matchAll(start)) {
    const end = clean.indexOf('\n};', m.index);
    if (end < 0) throw new Refusal(`${what}: ${m[1]} has no end`);
    const body = expand(clean.slice(m.index + m[0].length, end), macros);
    const platform = [...body.matchAll(/PLATFORM\(\s*(?:INTEL_)?(\w+)\s*\)/g)].at(-1)?.[1];
    if (!platform) throw new Refusal(`${what}: ${m[1]} names no PLATFORM()`);
    descs[m[1] as string] = {
      platform,
      hasSriov: lastFlag(body, 'has_sriov'),
      requireForceProbe: lastFlag(body, 'require_force_probe'),
    };
  }
  const table = /static const struct pci_device_id pciidlist\[\] = \{([\s\S]*?)\n\};/.exec(clean);
  if (!table) throw new Refusal(`${what}: no pciidlist[] table`);
  const bindings: { list: string; desc: string; ids: string[] }[] = [];
  for (const line of (table[1] as string).split('\n')) {
    const entry = line.trim();
    if (entry === '' || /^\{\s*\}/.test(entry)) continue;
    const m = /^(INTEL_\w+_IDS)\(INTEL_(?:VGA|PCI)_DEVICE, &(\w+)\),$/.exec(entry);
    if (!m) throw new Refusal(`${what}: pciidlist entry this script cannot read: ${entry}`);
    if (!descs[m[2] as string])
      throw new Refusal(`${what}: ${m[1]} is bound to ${m[2]}, which is not defined`);
    bindings.push({
      list: m[1] as string,
      desc: m[2] as string,
      ids: resolve(lists, m[1] as string, what).map(hex),
    });
  }
  if (Object.keys(descs).length === 0 || bindings.length === 0)
    throw new Refusal(`${what}: no device descriptors`);
  return { descs, bindings };
}

/** i915 IS_<PLATFORM>() checks of intel_gvt.c is_supported_device(). */
export function parseGvt(text: string, what: string): string[] {
  const fn = /static bool is_supported_device\([^)]*\)\s*\{([\s\S]*?)\n\}/.exec(withoutComments(text));
  if (!fn) throw new Refusal(`${what}: no is_supported_device()`);
  const platforms = [...(fn[1] as string).matchAll(/if \(IS_(\w+)\(\w+\)\)\s*return true;/g)].map(
    (m) => m[1] as string,
  );
  if (platforms.length === 0) throw new Refusal(`${what}: is_supported_device() accepts no platform`);
  return platforms;
}

function parseDkmsConf(text: string): { packageVersion: string; buildExclusiveKernel: string } {
  const value = (key: string) => new RegExp(`^${key}="([^"]*)"`, 'm').exec(text)?.[1];
  const packageVersion = value('PACKAGE_VERSION');
  const buildExclusiveKernel = value('BUILD_EXCLUSIVE_KERNEL');
  if (!packageVersion || !buildExclusiveKernel)
    throw new Refusal(`${DKMS_CONF_PATH}: PACKAGE_VERSION or BUILD_EXCLUSIVE_KERNEL missing`);
  return { packageVersion, buildExclusiveKernel };
}

function readSaved(file: string | undefined, flag: string): string {
  if (!file) throw new Refusal(`missing ${flag} <file>`);
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new Refusal(`${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function repoAtCommit(value: string | undefined, flag: string): { repository: string; commit: string } {
  const m = value ? /^([\w.-]+\/[\w.-]+)@([0-9a-f]{40})$/.exec(value) : null;
  if (!m) throw new Refusal(`${flag} must be <owner/name>@<40-hex commit>`);
  return { repository: m[1] as string, commit: m[2] as string };
}

function git(dir: string, ...args: string[]): string {
  try {
    return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch {
    throw new Refusal(`${dir}: git ${args.join(' ')} failed`);
  }
}

function options(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i] as string;
    const value = argv[i + 1];
    if (!key.startsWith('--') || value === undefined) throw new Refusal(`unexpected argument ${key}`);
    out.set(key, value);
  }
  return out;
}

export function extract(argv: string[]): unknown {
  const args = options(argv);
  const upstream = repoAtCommit(args.get('--upstream'), '--upstream');
  const gvtUpstream = repoAtCommit(args.get('--gvt-upstream'), '--gvt-upstream');
  const pciidsText = readSaved(args.get('--pciids'), '--pciids');
  const xeText = readSaved(args.get('--xe-pci'), '--xe-pci');
  const gvtText = readSaved(args.get('--gvt'), '--gvt');
  const dkms = args.get('--dkms');
  if (!dkms) throw new Refusal('missing --dkms <git dir>');

  const lists = parsePciIdLists(pciidsText, PCIIDS_PATH);
  const pciIds = classifyLists(lists, PCIIDS_PATH);
  const xe = parseDriver(xeText, 'xe_device_desc', XE_PCI_PATH, lists);

  const dkmsCommit = git(dkms, 'rev-parse', 'HEAD').trim();
  const dkmsFile = (path: string) => git(dkms, 'show', `${dkmsCommit}:${path}`);

  const dkmsPciids = dkmsFile(PCIIDS_PATH);
  const dkmsI915 = dkmsFile(I915_PCI_PATH);
  const dkmsGvt = dkmsFile(GVT_PATH);
  const dkmsConf = dkmsFile(DKMS_CONF_PATH);
  const dkmsLists = parsePciIdLists(dkmsPciids, `${DKMS_REPOSITORY} ${PCIIDS_PATH}`);
  const i915 = parseDriver(dkmsI915, 'intel_device_info', `${DKMS_REPOSITORY} ${I915_PCI_PATH}`, dkmsLists);

  const gvt = parseGvt(gvtText, GVT_PATH);
  const gvtInDkms = parseGvt(dkmsGvt, `${DKMS_REPOSITORY} ${GVT_PATH}`);
  if (gvt.join() !== gvtInDkms.join())
    throw new Refusal(
      `${GVT_PATH}: upstream accepts ${gvt.join(', ')} but the DKMS copy ${gvtInDkms.join(', ')}`,
    );

  const sources: Source[] = [
    { ...upstream, path: PCIIDS_PATH, blob: gitBlobSha(pciidsText) },
    { ...upstream, path: XE_PCI_PATH, blob: gitBlobSha(xeText) },
    { ...gvtUpstream, path: GVT_PATH, blob: gitBlobSha(gvtText) },
    ...[PCIIDS_PATH, I915_PCI_PATH, GVT_PATH, DKMS_CONF_PATH].map((path) => ({
      repository: DKMS_REPOSITORY,
      path,
      commit: dkmsCommit,
      blob: git(dkms, 'rev-parse', `${dkmsCommit}:${path}`).trim(),
    })),
  ];
  return {
    sources: sources.map(({ repository, path, commit, blob }) => ({ repository, path, commit, blob })),
    producedBy: 'scripts/extract-igpu-facts.ts',
    pciIds,
    gvt: { source: `${gvtUpstream.repository}@${gvtUpstream.commit}`, supported: gvt },
    i915SriovDkms: {
      commit: dkmsCommit,
      ...parseDkmsConf(dkmsConf),
      infos: i915.descs,
      bindings: i915.bindings,
    },
    xe: { commit: upstream.commit, descs: xe.descs, bindings: xe.bindings },
  };
}

const here = dirname(fileURLToPath(import.meta.url));
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    const argv = process.argv.slice(2);
    const outAt = argv.indexOf('--out');
    const out =
      outAt >= 0 ? (argv.splice(outAt, 2)[1] as string) : join(here, '..', 'snapshots', 'igpu-facts.json');
    writeFileSync(out, `${JSON.stringify(extract(argv), null, 2)}\n`);
    process.stdout.write(`wrote ${out}\n`);
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    process.stderr.write(`extract-igpu-facts: ${error.message}\n`);
    process.exit(1);
  }
}
