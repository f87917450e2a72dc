// Reading the kubeconfig as kubectl does, without ever quoting it: a parse error names the
// file, line and column, never the text (a kubeconfig holds tokens and keys), and every
// credential read is remembered so no output can carry it (src/core/secrets.ts).
//
// Which files, and how they merge — client-go tools/clientcmd/loader.go and merge.go at
// v0.34.10 (commit e1a156ee), and the docs page "Organizing Cluster Access Using kubeconfig
// Files" (kubernetes/website organize-cluster-access-kubeconfig.md, commit 0189ae0f):
// - the lab file's `kubernetes.kubeconfig`, else each file of $KUBECONFIG (split on `:`,
//   empty and repeated entries dropped), else ~/.kube/config;
// - in a $KUBECONFIG list a missing file is skipped (an error only when all are missing);
//   a file that cannot be read or parsed is an error;
// - the first file to set current-context, or to define a cluster, user or context of a
//   given name, wins, and its entry is taken whole;
// - a relative path in an entry (certificate-authority, client-certificate, client-key,
//   tokenFile, an exec command holding a `/`) is relative to the file the entry came from
//   — and so, by the same rule, is the tokenFile of client-node's file auth provider;
// - `~` is not expanded inside a kubeconfig or in $KUBECONFIG (client-go has no such code).

import { readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import { shownPath } from '../config/paths.ts';
import { errnoText, UsageError } from '../core/errors.ts';
import { readSmallFileSync } from '../core/files.ts';
import { rememberSecret, shownValue } from '../core/secrets.ts';
import { controlAt } from '../core/text.ts';
import { type ExecConfig, ExecConfigSchema } from './exec-credential.ts';

export interface KubeconfigSource {
  /** The lab file's kubernetes.kubeconfig, resolved. */
  kubeconfig?: string;
  /** As written in the lab file, for messages. */
  kubeconfigShown?: string;
  /** kubeconfig context to use instead of its current-context. */
  context?: string;
}

type Entry = { name?: unknown; [key: string]: unknown };
interface Parsed {
  file: string;
  clusters: Entry[];
  users: Entry[];
  contexts: Entry[];
  currentContext?: string;
}

/** Larger than any kubeconfig (a few kilobytes, more with many embedded certificates). */
const MAX_KUBECONFIG_BYTES = 4 * 1024 * 1024;

const FIX_FILE =
  'set kubernetes.kubeconfig in the lab file, or KUBECONFIG (K3s: /etc/rancher/k3s/k3s.yaml; Talos: talosctl kubeconfig)';

/** The kubeconfig the lab names, loaded and checked; `name` is how messages name it. */
export function loadKubeconfig(source: KubeconfigSource): {
  config: KubeConfig;
  name: string;
  exec?: ExecConfig;
} {
  const { files, name, list } = kubeconfigFiles(source);
  const parsed: Parsed[] = [];
  for (const file of files) {
    const one = readKubeconfigFile(file, list ? shownPath(file) : name, list);
    if (one) parsed.push(one);
  }
  if (parsed.length === 0)
    throw new UsageError(`none of the kubeconfig files in KUBECONFIG (${name}) exists`, { fix: FIX_FILE });
  const merged = merge(parsed);
  // Only the cluster and user the chosen context names have their files read, as kubectl does.
  const contextName = source.context ?? merged.currentContext;
  const context = merged.contexts.find((c) => c.name === contextName)?.context as
    | { cluster?: unknown; user?: unknown }
    | undefined;
  merged.clusters = merged.clusters.map((entry) =>
    withFilesRead(entry, 'cluster', entry.name === context?.cluster, name),
  );
  merged.users = merged.users.map((entry) =>
    withFilesRead(entry, 'user', entry.name === context?.user, name),
  );
  const { users, exec } = withoutExec(merged.users, context?.user, name);
  merged.users = users;
  const config = toKubeConfig(merged, name);
  checkUsers(config, name);
  chooseContext(config, source.context, name);
  return { config, name, exec };
}

/**
 * The users without their exec plugins, and the plugin of the context's user, checked: an
 * exec plugin is run by igpu-split itself (exec-credential.ts), never by client-node.
 */
function withoutExec(
  entries: Entry[],
  contextUser: unknown,
  name: string,
): { users: Entry[]; exec: ExecConfig | undefined } {
  let exec: ExecConfig | undefined;
  const users = entries.map((entry) => {
    const user = entry.user as Record<string, unknown> | undefined;
    if (!user || typeof user !== 'object' || user.exec === undefined) return entry;
    const { exec: given, ...rest } = user;
    if (entry.name === contextUser && given !== null) exec = execConfig(given, entry, name);
    return { ...entry, user: rest };
  });
  return { users, exec };
}

function execConfig(given: unknown, entry: Entry, name: string): ExecConfig {
  const parsed = ExecConfigSchema.safeParse(given);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new UsageError(
    `kubeconfig ${name}: the exec plugin of user ${String(entry.name)} is not valid (${issue?.path.join('.') || 'exec'}: ${issue?.message})`,
    { fix: 'check users[].user.exec in the kubeconfig: command and apiVersion are needed' },
  );
}

/** The merged entries, read by client-node with its own checks. */
function toKubeConfig(merged: Omit<Parsed, 'file'>, name: string): KubeConfig {
  const config = new KubeConfig();
  try {
    // JSON is YAML: client-node reads the merged entries with its own checks.
    config.loadFromString(
      JSON.stringify({
        clusters: merged.clusters,
        users: merged.users,
        contexts: merged.contexts,
        'current-context': merged.currentContext,
      }),
    );
  } catch (error) {
    // expected: anything client-node refuses — rethrown as one line. Its messages name fields
    // (`clusters[0].cluster.server is missing`), never values; it reads no file while loading
    // (withFilesRead has read them).
    const text =
      error instanceof Error && /is missing$/.test(error.message) ? error.message : 'not a kubeconfig';
    throw new UsageError(`kubeconfig ${name}: ${text}`, {
      fix: 'check it with kubectl config view',
      cause: error,
    });
  }
  return config;
}

/** Each user's credentials remembered as secrets; a token must fit in an HTTP header. */
function checkUsers(config: KubeConfig, name: string): void {
  for (const user of config.getUsers()) {
    // A token read from a token file keeps its trailing newline in client-node, which no
    // HTTP header may carry: the surrounding blanks go.
    if (typeof user.token === 'string') (user as { token: string }).token = user.token.trim();
    // An auth provider's config holds its tokens and client secret: the keys client-node
    // 1.4.0 reads them from (dist/oidc_auth.js, azure_auth.js, gcp_auth.js).
    const config: Record<string, unknown> = user.authProvider?.config ?? {};
    const provider = ['id-token', 'refresh-token', 'client-secret', 'access-token'].map((key) => config[key]);
    for (const secret of [user.token, user.password, user.keyData, ...provider])
      if (typeof secret === 'string') rememberSecret(secret);
    // A token goes into an HTTP header: a line break or another control character cannot.
    if (typeof user.token === 'string' && controlAt(user.token, '') >= 0)
      throw new UsageError(
        `kubeconfig ${name}: the token of user ${user.name} holds a line break or another control character`,
        {
          fix: 'put the token back on one line (it is not shown here)',
        },
      );
  }
}

/** The context asked for (or the current one), which must name a cluster reached over https. */
function chooseContext(config: KubeConfig, asked: string | undefined, name: string): void {
  if (asked) {
    if (!config.getContexts().some((c) => c.name === asked))
      throw new UsageError(`kubeconfig ${name} has no context ${shownValue(asked)}`, {
        fix: contextChoice(config),
      });
    config.setCurrentContext(asked);
  }
  const current = config.getCurrentContext();
  const currentContext = config.getContextObject(current);
  if (!current || !currentContext)
    throw new UsageError(
      current
        ? `kubeconfig ${name}: its current-context ${current} is not among its contexts`
        : `kubeconfig ${name} has no current-context`,
      {
        fix: contextChoice(config),
      },
    );
  const cluster = config.getCluster(currentContext.cluster);
  if (!cluster)
    throw new UsageError(
      `kubeconfig ${name}: context ${current} names cluster ${currentContext.cluster}, which it does not define`,
      {
        fix: 'check it with kubectl config view',
      },
    );
  const server = URL.parse(cluster.server);
  if (!server)
    throw new UsageError(`kubeconfig ${name}: cluster ${cluster.name} has no valid server address`, {
      fix: 'set its server: to https://<address>:6443',
    });
  if (server.protocol !== 'https:')
    throw new UsageError(
      `kubeconfig ${name}: cluster ${cluster.name} is reached over ${server.protocol.replace(':', '')}, not https: its credentials would cross the network in clear`,
      { fix: 'point server: at the API server over https (K3s and Talos serve it on port 6443)' },
    );
}

/** What to set kubernetes.context to: one of the contexts, or that there are none. */
function contextChoice(config: KubeConfig): string {
  const names = config.getContexts().map((c) => c.name);
  return names.length > 0
    ? `set kubernetes.context in the lab file to one of: ${names.join(', ')}`
    : 'the kubeconfig defines no contexts: get a complete one (K3s: /etc/rancher/k3s/k3s.yaml; Talos: talosctl kubeconfig)';
}

function kubeconfigFiles(source: KubeconfigSource): { files: string[]; name: string; list: boolean } {
  if (source.kubeconfig)
    return {
      files: [source.kubeconfig],
      name: shownPath(source.kubeconfig, source.kubeconfigShown),
      list: false,
    };
  const env = process.env.KUBECONFIG;
  if (env !== undefined && env !== '') {
    const files = [...new Set(env.split(delimiter).filter((f) => f !== ''))].map((f) => resolve(f));
    return { files, name: env.split(delimiter).map(shownValue).join(delimiter), list: true };
  }
  const home = join(homedir(), '.kube', 'config');
  return { files: [home], name: home, list: false };
}

/** One file, parsed and checked; undefined for a missing file of a $KUBECONFIG list. */
function readKubeconfigFile(file: string, name: string, inList: boolean): Parsed | undefined {
  let info: ReturnType<typeof statSync>;
  try {
    info = statSync(file);
  } catch (error) {
    // expected: ENOENT in a $KUBECONFIG list — kubectl skips a missing file there; the rest is rethrown
    if (inList && (error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UsageError(`cannot read kubeconfig ${name}: ${errnoText(error)}`, {
      fix: FIX_FILE,
      cause: error,
    });
  }
  if (info.isDirectory()) throw new UsageError(`kubeconfig ${name} is a directory`, { fix: FIX_FILE });
  if (!info.isFile())
    throw new UsageError(`kubeconfig ${name} is not a regular file (a pipe or a device)`, { fix: FIX_FILE });
  if (info.size > MAX_KUBECONFIG_BYTES)
    throw new UsageError(`kubeconfig ${name} is ${info.size} bytes: not a kubeconfig`, { fix: FIX_FILE });
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    // expected: anything — rethrown as one line naming the file
    throw new UsageError(`cannot read kubeconfig ${name}: ${errnoText(error)}`, {
      fix: FIX_FILE,
      cause: error,
    });
  }
  const lines = new LineCounter();
  const bad = (offset: number, what: string) => {
    const pos = lines.linePos(offset);
    return new UsageError(`kubeconfig ${name}:${pos.line}:${pos.col}: ${what}`, {
      fix: 'check it with kubectl config view (its content is not shown here: it holds credentials)',
    });
  };
  let value: unknown;
  try {
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
    const first = doc.errors[0];
    // The YAML library's codes say what is wrong without quoting the text.
    if (first) throw bad(first.pos[0], `not valid YAML (${first.code.toLowerCase().replaceAll('_', ' ')})`);
    if (doc.contents !== null && !isMap(doc.contents)) throw bad(0, 'not a mapping: not a kubeconfig');
    for (const key of ['clusters', 'users', 'contexts']) {
      const node = isMap(doc.contents) ? doc.contents.get(key, true) : undefined;
      if (node !== undefined && node !== null && !isSeq(node) && (node as { value?: unknown }).value !== null)
        throw bad((node as { range?: [number] }).range?.[0] ?? 0, `${key} is not a list`);
    }
    value = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (error) {
    // expected: anything — rethrown: ours as it is, the YAML library's (too many aliases) as one line
    if (error instanceof UsageError) throw error;
    throw bad(0, 'cannot be read as YAML');
  }
  const object = value as Record<string, unknown>;
  const base = dirname(file);
  const list = (key: string) =>
    ((object[key] as unknown[] | null | undefined) ?? []).filter(
      (entry): entry is Entry => entry !== null && typeof entry === 'object',
    );
  const clusters = list('clusters').map((entry) =>
    withPaths(entry, 'cluster', ['certificate-authority'], base),
  );
  const users = list('users').map((entry) =>
    withPaths(entry, 'user', ['client-certificate', 'client-key', 'tokenFile'], base),
  );
  const current = object['current-context'];
  return {
    file,
    clusters,
    users,
    contexts: list('contexts'),
    currentContext: typeof current === 'string' && current !== '' ? current : undefined,
  };
}

/** The entry with its relative file references resolved against `base` (the file's folder). */
function withPaths(entry: Entry, field: string, keys: string[], base: string): Entry {
  const inner = entry[field];
  if (inner === null || typeof inner !== 'object') return entry;
  const copy: Record<string, unknown> = { ...(inner as Record<string, unknown>) };
  for (const key of keys) {
    const value = copy[key];
    if (typeof value === 'string' && value !== '' && !isAbsolute(value)) copy[key] = join(base, value);
  }
  const provider = copy['auth-provider'] as { config?: Record<string, unknown> } | undefined;
  const providerFile = provider?.config?.tokenFile;
  if (typeof providerFile === 'string' && providerFile !== '' && !isAbsolute(providerFile))
    copy['auth-provider'] = {
      ...provider,
      config: { ...provider?.config, tokenFile: join(base, providerFile) },
    };
  const exec = copy.exec as { command?: unknown } | undefined;
  if (exec && typeof exec.command === 'string' && exec.command.includes('/') && !isAbsolute(exec.command))
    copy.exec = { ...exec, command: join(base, exec.command) };
  return { ...entry, [field]: copy };
}

/** A bearer token is one short line; a service account's JWT is about a kilobyte. */
const MAX_TOKEN_FILE_BYTES = 64 * 1024;
/** A CA bundle, a certificate or a key: a few kilobytes. */
const MAX_PEM_FILE_BYTES = 1024 * 1024;

/** The file references of an entry, with the `*-data` key each is read into. */
const CLUSTER_FILES = [['certificate-authority', 'certificate-authority-data']] as const;
const USER_FILES = [
  ['client-certificate', 'client-certificate-data'],
  ['client-key', 'client-key-data'],
] as const;

/**
 * The entry with the files it names read in, when it is the one the chosen context uses,
 * or dropped when it is not (kubectl reads only those). client-node would read them itself,
 * whole and synchronously, when a request goes out: a pipe there would hang the run past
 * any timeout and any Ctrl-C, a device never end. Here each must be a small regular file,
 * and a failure names the entry.
 *
 * - certificate-authority, client-certificate, client-key: read into their `*-data` twin;
 *   both given is refused, as kubectl refuses it (client-go tools/clientcmd/validation.go
 *   at v0.34.10);
 * - tokenFile: read as client-go reads it (tools/clientcmd/client_config.go and
 *   transport/token_source.go at v0.34.10): blanks around it trimmed, an empty one an
 *   error, and the file winning over a `token` beside it;
 * - token-file, client-node's own spelling, which kubectl does not know: ignored;
 * - an auth provider: client-node 1.4.0 reads one with a `config.tokenFile` itself
 *   (dist/file_auth.js) — read here instead, as a token — and runs the `gcp` and `azure`
 *   ones' commands with execSync (dist/gcp_auth.js, azure_auth.js), which nothing can
 *   bound: those are refused. `oidc` (dist/oidc_auth.js) works without blocking and stays.
 */
function withFilesRead(entry: Entry, field: 'cluster' | 'user', used: boolean, name: string): Entry {
  const inner = entry[field];
  if (inner === null || typeof inner !== 'object') return entry;
  const { tokenFile, 'token-file': _ignored, ...fields } = inner as Record<string, unknown>;
  const what = (key: string) => `the ${key} of ${field} ${String(entry.name)}`;
  const fix = `check it in the kubeconfig (${field === 'user' ? 'its content is not shown here' : 'kubectl config view'})`;
  const read = (key: string, file: string, maxBytes: number) => {
    try {
      return readSmallFileSync(file, maxBytes);
    } catch (error) {
      // expected: anything — rethrown as one line naming the entry and the file
      throw new UsageError(
        `kubeconfig ${name}: cannot read ${what(key)}, ${shownPath(file)}: ${errnoText(error)}`,
        { fix, cause: error },
      );
    }
  };
  const readToken = (key: string, file: string) => {
    const token = read(key, file, MAX_TOKEN_FILE_BYTES).toString('utf8').trim();
    if (token === '') throw new UsageError(`kubeconfig ${name}: ${what(key)} is empty`, { fix });
    return token;
  };
  for (const [pathKey, dataKey] of field === 'cluster' ? CLUSTER_FILES : USER_FILES) {
    const file = fields[pathKey];
    delete fields[pathKey];
    if (!used || typeof file !== 'string' || file === '') continue;
    if (fields[dataKey] !== undefined)
      throw new UsageError(
        `kubeconfig ${name}: ${field} ${String(entry.name)} gives both ${pathKey} and ${dataKey}`,
        {
          fix: `keep one of them (kubectl refuses both as well)`,
        },
      );
    const data = read(pathKey, file, MAX_PEM_FILE_BYTES);
    if (pathKey === 'client-key') rememberSecret(data.toString('utf8'));
    fields[dataKey] = data.toString('base64');
  }
  if (used && typeof tokenFile === 'string' && tokenFile !== '')
    fields.token = readToken('tokenFile', tokenFile);
  const provider = fields['auth-provider'] as
    | { name?: unknown; config?: Record<string, unknown> }
    | undefined;
  if (used && provider && typeof provider === 'object') {
    if (provider.name === 'gcp' || provider.name === 'azure')
      throw new UsageError(
        `kubeconfig ${name}: user ${String(entry.name)} uses the ${provider.name} auth provider, which the Kubernetes client runs without any time bound`,
        { fix: 'give the user an exec credential plugin (users[].user.exec) or a token instead' },
      );
    const file = provider.config?.tokenFile;
    if (typeof file === 'string' && file !== '') {
      fields.token = readToken('auth-provider tokenFile', file);
      delete fields['auth-provider'];
    }
  }
  return { ...entry, [field]: fields };
}

/** kubectl's rule: the first file to define a name, or to set current-context, wins. */
function merge(files: Parsed[]): Omit<Parsed, 'file'> {
  const pick = (key: 'clusters' | 'users' | 'contexts') => {
    const seen = new Map<string, Entry>();
    for (const file of files)
      for (const entry of file[key]) {
        const name = typeof entry.name === 'string' ? entry.name : '';
        if (!seen.has(name)) seen.set(name, entry);
      }
    return [...seen.values()];
  };
  return {
    clusters: pick('clusters'),
    users: pick('users'),
    contexts: pick('contexts'),
    currentContext: files.find((f) => f.currentContext)?.currentContext,
  };
}
