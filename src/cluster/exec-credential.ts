// A kubeconfig's exec credential plugin, run by igpu-split itself rather than by
// client-node: client-node collects the plugin's output without a limit, lets it run for
// ever, and quotes what it printed when it fails. Here it is run as client-go runs it
// (plugin/pkg/client/auth/exec/exec.go at v0.34.10: the KUBERNETES_EXEC_INFO variable,
// the apiVersions accepted, the checks on the answer), but bounded — within the time given,
// at most MAX_OUTPUT bytes, killed with everything it started when it overruns — and never
// quoted: what it prints may be the credential.
//
// The shapes: ExecConfig in tools/clientcmd/api/v1/types.go; ExecCredential in
// pkg/apis/clientauthentication/v1/types.go (and v1beta1), all at v0.34.10. The plugin
// never gets a terminal (igpu-split runs unattended): `interactiveMode: Always` is refused.

import { spawn } from 'node:child_process';
import { z } from 'zod';
import { onInterrupt } from '../core/interrupt.ts';
import { rememberSecret } from '../core/secrets.ts';
import { seconds } from '../core/waits.ts';

/** The groups client-go accepts (exec.go `apiVersions`). */
const API_VERSIONS = ['client.authentication.k8s.io/v1beta1', 'client.authentication.k8s.io/v1'];

/** A credential is a token or a certificate pair: kilobytes. */
const MAX_OUTPUT = 1024 * 1024;

export const ExecConfigSchema = z.object({
  command: z.string().min(1),
  args: z.array(z.string()).nullish(),
  env: z.array(z.object({ name: z.string(), value: z.string() })).nullish(),
  apiVersion: z.string(),
  provideClusterInfo: z.boolean().nullish(),
  interactiveMode: z.string().nullish(),
});
export type ExecConfig = z.infer<typeof ExecConfigSchema>;

const ExecCredentialSchema = z.object({
  apiVersion: z.string(),
  kind: z.literal('ExecCredential'),
  status: z.object({
    token: z.string().optional(),
    clientCertificateData: z.string().optional(),
    clientKeyData: z.string().optional(),
    expirationTimestamp: z.string().optional(),
  }),
});

export interface ExecCredential {
  token?: string;
  certificate?: { cert: string; key: string };
  /** When to run the plugin again (ms since the epoch), if it said. */
  expires?: number;
}

/** Why the plugin gave no credential, in our words. */
export class ExecCredentialError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'ExecCredentialError';
  }
}

/** What the plugin is told about the cluster when it asks (provideClusterInfo). */
export interface ExecCluster {
  server: string;
  'certificate-authority-data'?: string;
  'insecure-skip-tls-verify'?: boolean;
  'tls-server-name'?: string;
}

/** Runs the plugin once; the credential's secrets are remembered before anything can print them. */
export async function runExecPlugin(
  exec: ExecConfig,
  cluster: ExecCluster,
  limitMs: number,
): Promise<ExecCredential> {
  if (!API_VERSIONS.includes(exec.apiVersion))
    throw new ExecCredentialError(
      `asks for apiVersion ${exec.apiVersion}, not one of ${API_VERSIONS.join(', ')}`,
    );
  if (exec.interactiveMode === 'Always')
    throw new ExecCredentialError(
      'wants a terminal to log in (interactiveMode: Always), and igpu-split gives it none',
    );
  const info = {
    apiVersion: exec.apiVersion,
    kind: 'ExecCredential',
    spec: { interactive: false, ...(exec.provideClusterInfo ? { cluster } : {}) },
  };
  const env: NodeJS.ProcessEnv = { ...process.env, KUBERNETES_EXEC_INFO: JSON.stringify(info) };
  for (const { name, value } of exec.env ?? []) env[name] = value;
  const stdout = await new Promise<Buffer>((resolve, reject) => {
    // Its own process group, so that what it starts (a shell's children) goes with it.
    const child = spawn(exec.command, exec.args ?? [], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let failure: ExecCredentialError | undefined;
    const killGroup = () => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // expected: anything — best-effort kill of a group that may be gone already (ESRCH)
      }
    };
    const stop = (reason: string) => {
      failure ??= new ExecCredentialError(reason);
      killGroup();
    };
    // Detached, the group outlives us: an interrupt (Ctrl-C, SIGTERM) takes it down too.
    const forget = onInterrupt(() => {
      killGroup();
      return undefined;
    });
    const timer = setTimeout(() => stop(`gave no credential within ${seconds(limitMs)}`), limitMs);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_OUTPUT) stop(`printed more than ${MAX_OUTPUT / 1024 / 1024} MB`);
      else chunks.push(chunk);
    });
    // What it says on stderr may hold what it was about to hand out: read, never shown.
    child.stderr.resume();
    child.on('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      forget();
      reject(
        new ExecCredentialError(
          error.code === 'ENOENT'
            ? `cannot be started: ${exec.command} is not found`
            : `cannot be started (${error.code ?? 'error'})`,
        ),
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      forget();
      if (failure) reject(failure);
      else if (code !== 0)
        reject(new ExecCredentialError(`ended with ${code === null ? signal : `status ${code}`}`));
      else resolve(Buffer.concat(chunks));
    });
  });
  let printed: unknown;
  try {
    printed = JSON.parse(stdout.toString('utf8'));
  } catch (error) {
    // expected: SyntaxError — not JSON; no cause kept: the parser's message quotes what it printed
    if (!(error instanceof SyntaxError)) throw error;
    throw new ExecCredentialError('printed no ExecCredential');
  }
  const parsed = ExecCredentialSchema.safeParse(printed);
  if (!parsed.success) throw new ExecCredentialError('printed no ExecCredential');
  const answer = parsed.data;
  const { token, clientCertificateData: cert, clientKeyData: key, expirationTimestamp } = answer.status;
  for (const secret of [token, key]) if (secret) rememberSecret(secret);
  if (answer.apiVersion !== exec.apiVersion)
    throw new ExecCredentialError(`answered in apiVersion ${answer.apiVersion}, not ${exec.apiVersion}`);
  if (!token && !cert && !key) throw new ExecCredentialError('returned neither a token nor a certificate');
  if (!cert !== !key) throw new ExecCredentialError('returned only one of a certificate and its key');
  const expires = expirationTimestamp ? Date.parse(expirationTimestamp) : undefined;
  return {
    token: token || undefined,
    certificate: cert && key ? { cert, key } : undefined,
    expires: Number.isFinite(expires) ? expires : undefined,
  };
}
