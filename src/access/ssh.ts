// A live host over SSH (ssh2). One connection per host, reused for every read and
// command; files move over one SFTP session so reads pipeline and writes can be
// made atomic (temp file, fsync, rename) without a shell on the far side.

import { randomBytes } from 'node:crypto';
import { appendFile, mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import ssh2, { Client, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { shownPath } from '../config/paths.ts';
import { errnoText, TargetError } from '../core/errors.ts';
import { readSmallFile } from '../core/files.ts';
import { CONNECT_TIMEOUT_MS, WaitWatch, waitVisibly } from '../core/waits.ts';
import {
  type CommandResult,
  type DirEntry,
  type EntryType,
  type HostAccess,
  HostError,
  isMissing,
  type WriteOptions,
} from './host.ts';
import {
  fingerprint,
  keyTypeOf,
  knownHostName,
  knownHostsLine,
  knownKeyTypes,
  parseKnownHosts,
  verifyHostKey,
} from './known-hosts.ts';
import { parseSshTarget, type SshTarget } from './target.ts';

export interface SshOptions {
  /** ssh://user@host[:port] */
  url: string;
  /** Private key file; otherwise keys come from ssh-agent ($SSH_AUTH_SOCK). */
  identityFile?: string;
  /** Default ~/.ssh/known_hosts. */
  knownHostsFile?: string;
  /** Trust and record a host key we have never seen (never a changed one). */
  acceptNewHostKey?: boolean;
  agentSocket?: string;
  connectTimeoutMs?: number;
}

// SFTP status codes (draft-ietf-secsh-filexfer-02, section 7).
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;
const READ_CHUNK = 32 * 1024;
/** No file doctor reads is near this; a bigger one (or a device that never ends) is refused. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
/** One file operation on the host (a read of a pipe never ends): bounded, then an error. */
const OPERATION_TIMEOUT_MS = 30_000;

/** `work`, or an error naming `path` once it has taken longer than OPERATION_TIMEOUT_MS. */
function bounded<T>(path: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new HostError(
            'EIO',
            path,
            `${path}: no answer from the host within ${OPERATION_TIMEOUT_MS / 1000} s`,
          ),
        ),
      OPERATION_TIMEOUT_MS,
    );
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

export async function connectSsh(options: SshOptions): Promise<SshHost> {
  const target = parseSshTarget(options.url);
  const knownHostsFile = options.knownHostsFile ?? posix.join(homedir(), '.ssh', 'known_hosts');
  // No known_hosts yet is fine (every key is then unknown); one that cannot be read is not.
  const knownText = await readSmallFile(knownHostsFile)
    .then((data) => data.toString('utf8'))
    .catch((error: NodeJS.ErrnoException) => {
      // expected: ENOENT — no known_hosts yet; anything else is rethrown as a TargetError
      if (error.code === 'ENOENT') return '';
      throw new TargetError(`cannot read known_hosts file ${knownHostsFile}: ${errnoText(error)}`, {
        target: target.url,
        fix: 'name a readable file with --known-hosts',
        cause: error,
      });
    });
  const known = parseKnownHosts(knownText);
  const name = knownHostName(target.host, target.port);

  const config: ConnectConfig = {
    host: target.host,
    port: target.port,
    username: target.user,
    // Handshake and login, bounded; a host that goes silent later is noticed within about
    // 15 s by keepalives (3 unanswered, 5 s apart), which ends every read waiting on it.
    readyTimeout: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    keepaliveInterval: 5_000,
    keepaliveCountMax: 3,
  };
  const agent = options.agentSocket ?? process.env.SSH_AUTH_SOCK;
  if (agent) config.agent = agent;
  const identityFile = options.identityFile;
  if (identityFile) {
    const key = await readSmallFile(identityFile, 1024 * 1024).catch((error: unknown) => {
      // expected: any read failure — rethrown as a TargetError naming the file
      throw new TargetError(`cannot read identity file ${shownPath(identityFile)}: ${errnoText(error)}`, {
        target: target.url,
        fix: 'pass --identity with a readable private key file',
        cause: error,
      });
    });
    // Checked here so a passphrase-protected or foreign file is one clear line, not a parser error.
    const parsed = ssh2.utils.parseKey(key);
    if (parsed instanceof Error) {
      const encrypted = /passphrase|encrypted/i.test(parsed.message);
      throw new TargetError(
        `cannot use identity file ${shownPath(identityFile)}: ${encrypted ? 'it is protected by a passphrase' : 'not a private key ssh can read'}`,
        {
          target: target.url,
          fix: encrypted
            ? 'load it into ssh-agent (ssh-add) instead of passing --identity'
            : 'pass --identity with your private key file (not the .pub file)',
        },
      );
    }
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    if (first && !first.isPrivateKey())
      throw new TargetError(`identity file ${shownPath(identityFile)} holds a public key`, {
        target: target.url,
        fix: 'pass --identity the private key (the file without .pub)',
      });
    config.privateKey = key;
  }
  if (!agent && !options.identityFile) {
    throw new TargetError('no SSH key available', {
      target: target.url,
      fix: 'start ssh-agent and add your key (ssh-add), or pass --identity FILE',
    });
  }
  // Ask the server for a key type we can check, as OpenSSH does.
  const types = knownKeyTypes(known, name);
  if (types.length > 0) config.algorithms = { serverHostKey: types as never };

  let refusal: TargetError | undefined;
  let newKey: Buffer | undefined;
  config.hostVerifier = (key: Buffer): boolean => {
    const verdict = verifyHostKey(known, name, key);
    const offered = `${keyTypeOf(key)} ${fingerprint(key)}`;
    if (verdict.kind === 'match') return true;
    if (verdict.kind === 'unknown' && options.acceptNewHostKey) {
      newKey = key;
      return true;
    }
    refusal =
      verdict.kind === 'unknown'
        ? new TargetError(`host key not known (offered ${offered})`, {
            target: target.url,
            fix: `check the fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then rerun with --accept-new-host-key or add it to ${knownHostsFile}`,
          })
        : verdict.kind === 'revoked'
          ? new TargetError(
              `host key is marked @revoked in ${knownHostsFile}:${verdict.line} (offered ${offered})`,
              {
                target: target.url,
                fix: 'the host must get a new key; do not connect until it has one',
              },
            )
          : new TargetError(
              `host key changed: offered ${offered}, ${knownHostsFile}:${verdict.line} has ${verdict.knownFingerprint}`,
              {
                target: target.url,
                fix: `if the host was reinstalled, remove the old key (ssh-keygen -R '${name}') and reconnect; otherwise treat this as an attack`,
              },
            );
    return false;
  };

  const client = new Client();
  // ssh2 may emit more than one error (e.g. a timeout, then "connection lost"); an error
  // event without a listener would crash the process, so one listener stays for good.
  client.on('error', () => {});
  const connected = new Promise<void>((resolve, reject) => {
    const onReady = () => {
      client.off('error', onError);
      resolve();
    };
    const onError = (error: Error & { level?: string; code?: string }) => {
      client.off('ready', onReady);
      client.destroy();
      reject(refusal ?? describeConnectError(error, target, config.readyTimeout ?? 0));
    };
    client.once('ready', onReady);
    client.once('error', onError);
    client.connect(config);
  });
  await waitVisibly(
    { target: target.url, what: 'the SSH connection', limitMs: config.readyTimeout },
    connected,
  );
  if (newKey) {
    await mkdir(posix.dirname(knownHostsFile), { recursive: true, mode: 0o700 });
    const prefix = knownText === '' || knownText.endsWith('\n') ? '' : '\n';
    await appendFile(knownHostsFile, `${prefix}${knownHostsLine(name, newKey)}\n`, { mode: 0o600 });
  }
  return new SshHost(client, target);
}

function describeConnectError(
  error: Error & { level?: string; code?: string },
  target: SshTarget,
  timeoutMs: number,
) {
  const where = `${target.host}:${target.port}`;
  if (error.level === 'client-authentication') {
    return new TargetError(`authentication failed for user ${target.user}`, {
      target: target.url,
      fix: `make sure the key in ssh-agent or --identity is in ~${target.user}/.ssh/authorized_keys on the host`,
    });
  }
  if (error.level === 'client-timeout' || error.code === 'ETIMEDOUT') {
    return new TargetError(`no SSH answer from ${where} within ${Math.round(timeoutMs / 1000)} s`, {
      target: target.url,
      fix: 'check that the host is up and the address and port are right',
    });
  }
  if (error.code === 'ECONNREFUSED') {
    return new TargetError(`connection refused by ${where}`, {
      target: target.url,
      fix: 'check that sshd runs on the host and listens on that port',
    });
  }
  if (error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN') {
    return new TargetError(`cannot resolve host name ${target.host}`, {
      target: target.url,
      fix: 'check the name, or use the address',
    });
  }
  return new TargetError(`SSH connection failed: ${error.message}`, {
    target: target.url,
    fix: 'check the host address, port and network path',
  });
}

export class SshHost implements HostAccess {
  readonly target: string;
  private readonly client: Client;
  private readonly watch: WaitWatch;
  private sftpSession: Promise<SFTPWrapper> | undefined;

  constructor(client: Client, target: SshTarget) {
    this.client = client;
    this.target = target.url;
    this.watch = new WaitWatch(target.url);
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpSession ??= new Promise((resolve, reject) => {
      this.client.sftp((error, sftp) => {
        if (error)
          reject(new HostError('EIO', '', `cannot open SFTP on ${this.target}: ${error.message}`, error));
        else resolve(sftp);
      });
    });
    return this.sftpSession;
  }

  /**
   * One SFTP operation, bounded. sftp-server answers one request at a time, so one that
   * never ends (a pipe opened on a host that changed under us) would hold every later one:
   * after a timeout the channel is closed and the next operation opens a new one.
   */
  private bounded<T>(path: string, work: Promise<T>): Promise<T> {
    // The channel this operation went out on (work has asked for it by now).
    const session = this.sftpSession;
    return bounded(path, work).catch(async (error: unknown) => {
      // expected: the bound's "no answer from the host" — the channel is dropped; every error is rethrown
      if (error instanceof HostError && /no answer from the host/.test(error.message)) {
        if (this.sftpSession === session) this.sftpSession = undefined;
        // expected: anything — ending a channel that stopped answering is best-effort; the timeout is what is reported
        await session?.then((sftp) => sftp.end()).catch(() => undefined);
      }
      throw error;
    });
  }

  readFile(path: string): Promise<Buffer> {
    return this.watch.track(`reading ${path}`, this.bounded(path, this.readFileNow(path)));
  }

  private async readFileNow(path: string): Promise<Buffer> {
    const sftp = await this.sftp();
    // Only a regular file is opened: sftp-server would block in open(2) on a pipe, and
    // a device may never end (stat does not block, and follows links as open would).
    const stats = await call<{ mode: number }>((cb) => sftp.stat(path, cb), path);
    const kind = typeOfMode(stats.mode);
    if (kind === 'dir') throw new HostError('EISDIR', path, `${path}: a directory, not a file`);
    if (kind !== 'file') throw new HostError('EIO', path, `${path}: not a regular file (a pipe or a device)`);
    const handle = await call<Buffer>((cb) => sftp.open(path, 'r', cb), path);
    try {
      // Read until EOF: /proc and /sys files report sizes of 0 or 4096 that mean nothing.
      const chunks: Buffer[] = [];
      let position = 0;
      for (;;) {
        const buffer = Buffer.alloc(READ_CHUNK);
        const bytes = await new Promise<number>((resolve, reject) => {
          sftp.read(handle, buffer, 0, READ_CHUNK, position, (error, count) => {
            // ssh2 reports EOF as an error with code 1 (SSH_FX_EOF).
            if (error && (error as { code?: number }).code === 1) resolve(0);
            else if (error) reject(toHostError(error, path));
            else resolve(count);
          });
        });
        if (bytes === 0) break;
        chunks.push(buffer.subarray(0, bytes));
        position += bytes;
        if (position > MAX_FILE_BYTES) throw new HostError('EIO', path, `${path}: far too big (over 16 MB)`);
      }
      return Buffer.concat(chunks);
    } finally {
      // expected: anything — closing a read handle; the bytes are read, or the read's own error is what is reported
      await call<void>((cb) => sftp.close(handle, cb), path).catch(() => undefined);
    }
  }

  list(path: string): Promise<DirEntry[]> {
    return this.watch.track(`listing ${path}`, this.bounded(path, this.listNow(path)));
  }

  private async listNow(path: string): Promise<DirEntry[]> {
    const sftp = await this.sftp();
    const entries = await call<{ filename: string; attrs: { mode: number } }[]>(
      (cb) => sftp.readdir(path, cb),
      path,
    );
    return entries
      .filter((entry) => entry.filename !== '.' && entry.filename !== '..')
      .map((entry) => ({ name: entry.filename, type: typeOfMode(entry.attrs.mode) }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  readLink(path: string): Promise<string> {
    return this.watch.track(`reading link ${path}`, this.bounded(path, this.readLinkNow(path)));
  }

  private async readLinkNow(path: string): Promise<string> {
    const sftp = await this.sftp();
    return call<string>((cb) => sftp.readlink(path, cb), path);
  }

  async entryType(path: string): Promise<EntryType | undefined> {
    const sftp = await this.sftp();
    try {
      const stats = await call<{ mode: number }>((cb) => sftp.lstat(path, cb), path);
      return typeOfMode(stats.mode);
    } catch (error) {
      // expected: ENOENT, ENOTDIR (isMissing) — nothing is there; a refused or lost connection is rethrown
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  run(command: string, options: { stdin?: string; timeoutMs?: number } = {}): Promise<CommandResult> {
    return this.watch.track(`\`${command.split('\n')[0]}\``, this.runNow(command, options));
  }

  private runNow(command: string, options: { stdin?: string; timeoutMs?: number }): Promise<CommandResult> {
    return new Promise((resolve, reject) => {
      this.client.exec(command, (error, stream) => {
        if (error)
          return reject(new HostError('EIO', '', `cannot run a command on ${this.target}: ${error.message}`));
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const timer =
          options.timeoutMs === undefined
            ? undefined
            : setTimeout(() => {
                stream.close();
                reject(
                  new HostError(
                    'EIO',
                    '',
                    `command timed out after ${options.timeoutMs} ms on ${this.target}`,
                  ),
                );
              }, options.timeoutMs);
        stream.on('data', (chunk: Buffer) => out.push(chunk));
        stream.stderr.on('data', (chunk: Buffer) => err.push(chunk));
        stream.on('close', (code: number | null) => {
          if (timer) clearTimeout(timer);
          resolve({
            code: code ?? -1,
            stdout: Buffer.concat(out).toString(),
            stderr: Buffer.concat(err).toString(),
          });
        });
        if (options.stdin !== undefined) stream.end(options.stdin);
        else stream.end();
      });
    });
  }

  writeFileAtomic(path: string, data: string | Buffer, options: WriteOptions = {}): Promise<void> {
    return this.watch.track(`writing ${path}`, this.writeFileAtomicNow(path, data, options));
  }

  private async writeFileAtomicNow(
    path: string,
    data: string | Buffer,
    options: WriteOptions,
  ): Promise<void> {
    const sftp = await this.sftp();
    const existing = await call<{ mode: number; uid: number; gid: number }>(
      (cb) => sftp.stat(path, cb),
      path,
    ).catch((error: unknown) => {
      // expected: ENOENT, ENOTDIR (isMissing) — a new file; anything else is rethrown
      if (isMissing(error)) return undefined;
      throw error;
    });
    const temp = posix.join(
      posix.dirname(path),
      `.${posix.basename(path)}.igpu-split-${randomBytes(4).toString('hex')}`,
    );
    const mode = existing ? existing.mode & 0o7777 : (options.mode ?? 0o644);
    const handle = await call<Buffer>((cb) => sftp.open(temp, 'wx', { mode }, cb), temp);
    try {
      const body = typeof data === 'string' ? Buffer.from(data) : data;
      await call<void>((cb) => sftp.write(handle, body, 0, body.length, 0, cb), temp);
      if (existing) await call<void>((cb) => sftp.fchown(handle, existing.uid, existing.gid, cb), temp);
      await call<void>((cb) => sftp.fchmod(handle, mode, cb), temp);
      await call<unknown>((cb) => sftp.ext_openssh_fsync(handle, cb), temp);
      await call<void>((cb) => sftp.close(handle, cb), temp);
      await call<void>((cb) => sftp.ext_openssh_rename(temp, path, cb), path);
    } catch (error) {
      // expected: any write failure — the temp file is removed (best-effort) and the error rethrown
      await call<void>((cb) => sftp.unlink(temp, cb), temp).catch(() => undefined);
      throw error;
    }
  }

  async createExclusive(path: string, data: string, mode: number): Promise<void> {
    const sftp = await this.sftp();
    const handle = await call<Buffer>((cb) => sftp.open(path, 'wx', { mode }, cb), path).catch(
      async (error) => {
        // expected: an existing path (SFTP v3 has no EEXIST; it is looked up) — renamed EEXIST; every failure is rethrown; an existing path is what makes an exclusive open fail.
        if (await this.entryType(path)) throw new HostError('EEXIST', path, `${path} exists`, error);
        throw error;
      },
    );
    const body = Buffer.from(data);
    try {
      await call<void>((cb) => sftp.write(handle, body, 0, body.length, 0, cb), path);
      await call<unknown>((cb) => sftp.ext_openssh_fsync(handle, cb), path);
    } finally {
      // expected: anything — closing after the fsync; a failed write or fsync is what is reported
      await call<void>((cb) => sftp.close(handle, cb), path).catch(() => undefined);
    }
  }

  async makeDir(path: string, mode: number): Promise<void> {
    const sftp = await this.sftp();
    let current = '';
    for (const part of path.split('/').filter(Boolean)) {
      current += `/${part}`;
      if ((await this.entryType(current)) === 'dir') continue;
      await call<void>((cb) => sftp.mkdir(current, { mode }, cb), current);
    }
  }

  async remove(path: string): Promise<void> {
    const sftp = await this.sftp();
    await call<void>((cb) => sftp.unlink(path, cb), path).catch((error: unknown) => {
      // expected: ENOENT — already gone; anything else is rethrown
      if (!(error instanceof HostError && error.code === 'ENOENT')) throw error;
    });
  }

  async close(): Promise<void> {
    this.client.end();
  }
}

function typeOfMode(mode: number): EntryType {
  const kind = mode & 0o170000;
  if (kind === 0o040000) return 'dir';
  if (kind === 0o120000) return 'link';
  if (kind === 0o100000) return 'file';
  return 'other';
}

function toHostError(error: Error & { code?: number }, path: string): HostError {
  if (error.code === SFTP_NO_SUCH_FILE) return new HostError('ENOENT', path, `${path}: no such file`, error);
  if (error.code === SFTP_PERMISSION_DENIED)
    return new HostError('EACCES', path, `${path}: permission denied`, error);
  return new HostError('EIO', path, `${path}: ${error.message}`, error);
}

function call<T>(
  start: (callback: (error: Error | undefined | null, value: T) => void) => void,
  path: string,
): Promise<T> {
  return new Promise((resolve, reject) => {
    start((error, value) => (error ? reject(toHostError(error, path)) : resolve(value)));
  });
}
