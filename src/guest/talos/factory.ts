// Talos Image Factory client: which Talos versions it builds, and the id of a schematic
// (POST /schematics; the id is the content's hash, so posting the same schematic again
// gives the same id). The installer reference is <factory host>/installer/<id>:<version>;
// the Secure Boot variant (installer-secureboot) is never used here.

import { Agent, fetch } from 'undici';
import { z } from 'zod';
import { TargetError } from '../../core/errors.ts';
import { readAnswer } from '../../core/http-answer.ts';
import { describeNetworkError, redirectProblem } from '../../core/network-errors.ts';
import { clip } from '../../core/text.ts';
import { CONNECT_TIMEOUT_MS, REQUEST_TIMEOUT_MS, WaitWatch } from '../../core/waits.ts';
import { TALOS_INSTALLER_IMAGE } from '../../knowledge/pins.ts';
import { type Schematic, schematicYaml } from './schematic.ts';

const SchematicIdSchema = z.object({ id: z.string().regex(/^[0-9a-f]{64}$/, 'not a schematic id') });
const VersionsSchema = z.array(z.string());

export class ImageFactory {
  readonly baseUrl: string;
  private readonly timeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly watch: WaitWatch;
  private readonly dispatcher: Agent;

  constructor(baseUrl: string, options: { connectTimeoutMs?: number; requestTimeoutMs?: number } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.timeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.connectTimeoutMs = options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    this.watch = new WaitWatch(this.baseUrl, this.connectTimeoutMs + this.timeoutMs);
    // Certificates are checked whatever the environment says; connecting and answering
    // are bounded apart.
    this.dispatcher = new Agent({
      connect: { rejectUnauthorized: true, timeout: this.connectTimeoutMs },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  /** Ends every connection at once (a request waiting on a silent factory is given up). */
  async close(): Promise<void> {
    await this.dispatcher.destroy();
  }

  /** Talos versions the factory builds, e.g. `v1.10.9`. */
  async versions(): Promise<string[]> {
    return this.call('GET', '/versions', undefined, VersionsSchema);
  }

  async schematicId(schematic: Schematic): Promise<string> {
    return (await this.call('POST', '/schematics', schematicYaml(schematic), SchematicIdSchema)).id;
  }

  /** Fails with the versions it knows when the factory does not build `version`. */
  async requireVersion(version: string): Promise<void> {
    const known = await this.versions();
    if (known.includes(version)) return;
    const recent = known.filter((v) => /^v\d+\.\d+\.\d+$/.test(v)).slice(-3);
    throw new TargetError(`unknown Talos version ${version}: the Image Factory does not build it`, {
      target: this.baseUrl,
      fix: `use the version the node runs (talosctl version); the factory's newest are ${recent.join(', ') || 'none'}`,
    });
  }

  installerImage(id: string, version: string): string {
    return `${new URL(this.baseUrl).host}/${TALOS_INSTALLER_IMAGE}/${id}:${version}`;
  }

  private async call<S extends z.ZodType>(
    method: string,
    path: string,
    body: string | undefined,
    schema: S,
  ): Promise<z.output<S>> {
    const where = `${method} ${path}`;
    let response: Awaited<ReturnType<typeof fetch>>;
    let text: string;
    try {
      // The answer's body is part of the wait: a factory may stall half-way through it.
      [response, text] = await this.watch.track(
        where,
        fetch(`${this.baseUrl}${path}`, {
          method,
          body,
          headers: body ? { 'content-type': 'application/yaml' } : {},
          dispatcher: this.dispatcher,
          redirect: 'manual',
          signal: AbortSignal.timeout(this.connectTimeoutMs + this.timeoutMs),
        }).then(async (answer) => [answer, await readAnswer(answer)] as const),
      );
    } catch (error) {
      // expected: anything — rethrown as one line saying what failed (connect, timeout, TLS, size)
      const reason = describeNetworkError(error, {
        connectTimeoutMs: this.connectTimeoutMs,
        requestTimeoutMs: this.timeoutMs,
      });
      throw new TargetError(`${where}: ${reason}`, {
        target: this.baseUrl,
        fix: 'check the imageFactory URL in the lab file and that this machine reaches it',
        cause: error,
      });
    }
    const redirect = redirectProblem(response.status, response.headers.get('location'));
    if (redirect)
      throw new TargetError(`${where}: ${redirect}`, {
        target: this.baseUrl,
        fix: 'give imageFactory the factory itself (or leave it out for the default), not a proxy or login page',
      });
    if (!response.ok) {
      // The factory's reason is its first line (the answer is plain text); the rest is not shown.
      const reason = clip(text.trim().split('\n')[0] ?? '', 120);
      throw new TargetError(`${where}: HTTP ${response.status}${reason ? ` (${reason})` : ''}`, {
        target: this.baseUrl,
        fix:
          response.status >= 500
            ? 'the factory had an error; retry later'
            : 'check the schematic (extension names) and the Talos version',
      });
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch (error) {
      // expected: SyntaxError — not JSON: rethrown without the parser's words, which quote the answer
      if (!(error instanceof SyntaxError)) throw error;
      throw new TargetError(`${where}: the answer is not JSON (${text.length} bytes)`, {
        target: this.baseUrl,
        fix: 'check that imageFactory points at a Talos Image Factory',
      });
    }
    const parsed = schema.safeParse(data);
    if (!parsed.success) {
      throw new TargetError(`${where}: unexpected answer (${parsed.error.issues[0]?.message})`, {
        target: this.baseUrl,
        fix: 'check that imageFactory points at a Talos Image Factory',
      });
    }
    return parsed.data;
  }
}
