// An SSH server in this process for the demo playground (`igpu-split demo --serve`): one
// listener per demo machine on 127.0.0.1, serving that machine's directory tree over SFTP
// and its emulated commands over `exec`, so that igpu-split in another shell reaches the
// demo hosts and guest exactly as it reaches real ones (src/access/ssh.ts, unchanged).
// It answers what that client sends — the SFTP v3 requests of draft-ietf-secsh-filexfer-02
// plus OpenSSH's posix-rename@openssh.com and fsync@openssh.com (openssh/openssh-portable
// PROTOCOL §4.3 and §4.6 at 0ef0f5a839)
// — and nothing else: no shell, no port forwarding, one public key.

import { chmod, chown, type FileHandle, lstat, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { posix } from 'node:path';
import ssh2, { type Connection, type ParsedKey, type SFTPWrapper } from 'ssh2';
import type { DirectoryHost } from '../access/directory-host.ts';
import { HostError } from '../access/host.ts';

const { OPEN_MODE, STATUS_CODE } = ssh2.utils.sftp;

/** A key pair in OpenSSH's formats, as ssh2's generator gives it. */
export interface KeyPair {
  private: string;
  public: string;
}

/**
 * A new ed25519 pair. ssh2 1.17's generator now and then writes a key its own parser
 * refuses ("Malformed OpenSSH private key": 15 of 3,000 here), which would stop the
 * playground at start: such a pair is made again.
 */
export function newKeyPair(comment: string): KeyPair {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    const readable = [pair.private, pair.public].every((key) => !(ssh2.utils.parseKey(key) instanceof Error));
    if (readable) return pair;
  }
  throw new Error('ssh2 made no ed25519 key pair it can read in 20 attempts');
}

export interface RunningSshServer {
  port: number;
  /** `[127.0.0.1]:port <type> <key>`: the line known_hosts holds for it. */
  knownHostsLine: string;
  close(): Promise<void>;
}

/** Serves `machine` to whoever holds the private half of `clientKey`, on a free loopback port. */
export async function serveOverSsh(
  machine: DirectoryHost,
  hostKey: KeyPair,
  clientKey: KeyPair,
): Promise<RunningSshServer> {
  const allowed = parsed(clientKey.public);
  const connections = new Set<Connection>();
  const server = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
    connections.add(client);
    client.on('close', () => connections.delete(client));
    // expected: a client that vanishes mid-handshake — nothing to clean beyond the set above
    client.on('error', () => undefined);
    client.on('authentication', (context) => {
      if (context.method !== 'publickey' || !sameKey(context.key, allowed))
        return context.reject(['publickey']);
      // The first try asks whether the key would do; the second carries the signature.
      if (!context.signature) return context.accept();
      if (allowed.verify(context.blob as Buffer, context.signature, context.hashAlgo) === true)
        return context.accept();
      return context.reject(['publickey']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('exec', (accept, _reject, info) => {
          const stream = accept();
          // expected: a client gone mid-command — the connection's close ends it
          stream.on('error', () => undefined);
          runCommand(machine, stream, info.command);
        });
        session.on('sftp', (accept) => {
          const sftp = accept();
          // expected: a protocol error or a client gone mid-transfer — that session ends, the server stays
          sftp.on('error', () => undefined);
          serveFiles(machine, sftp);
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const [type, key] = hostKey.public.split(' ');
  return {
    port,
    knownHostsLine: `[127.0.0.1]:${port} ${type} ${key}`,
    close: () =>
      new Promise((resolve) => {
        for (const client of connections) client.end();
        server.close(() => resolve());
      }),
  };
}

function parsed(publicKey: string): ParsedKey {
  const key = ssh2.utils.parseKey(publicKey);
  if (key instanceof Error) throw key;
  return Array.isArray(key) ? (key[0] as ParsedKey) : key;
}

function sameKey(offered: { algo: string; data: Buffer }, allowed: ParsedKey): boolean {
  return offered.algo === allowed.type && offered.data.equals(allowed.getPublicSSH());
}

/**
 * Reads the command's stdin to its end, runs it, sends the result. igpu-split's client always
 * ends stdin; from a terminal, `ssh -n` does (the emulated commands take stdin whole).
 */
function runCommand(machine: DirectoryHost, stream: ssh2.ServerChannel, command: string): void {
  const input: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => input.push(chunk));
  stream.on('end', async () => {
    const stdin = input.length > 0 ? Buffer.concat(input).toString('utf8') : undefined;
    const result = await machine.run(command, { stdin }).catch((error: unknown) => ({
      // expected: anything the emulated command throws — reported as a failed command, as a shell would
      code: 1,
      stdout: '',
      stderr: `${error instanceof Error ? error.message : String(error)}\n`,
    }));
    if (result.stdout) stream.write(result.stdout);
    if (result.stderr) stream.stderr.write(result.stderr);
    stream.exit(result.code);
    stream.end();
  });
}

type Handle =
  | { kind: 'read'; data: Buffer }
  | { kind: 'write'; file: FileHandle }
  | { kind: 'dir'; names: ssh2.FileEntry[]; sent: boolean };

const MODE_OF = { dir: 0o040755, file: 0o100644, link: 0o120777, other: 0o010644 } as const;

/** SFTP over the machine's tree: reads through the DirectoryHost (links resolve inside it), writes to its files. */
function serveFiles(machine: DirectoryHost, sftp: SFTPWrapper): void {
  announceOpenSshExtensions(sftp);
  const handles = new Map<number, Handle>();
  let next = 0;
  const handleOf = (id: number, raw: Buffer) => {
    const handle = handles.get(raw.readUInt32BE(0));
    if (!handle) sftp.status(id, STATUS_CODE.FAILURE, 'no such handle');
    return handle;
  };
  const give = (id: number, handle: Handle) => {
    const raw = Buffer.alloc(4);
    raw.writeUInt32BE(next);
    handles.set(next++, handle);
    sftp.handle(id, raw);
  };
  // Every request ends in one answer: its result, or the status its failure maps to.
  const answer = (id: number, work: () => Promise<void>) => {
    work().catch((error: unknown) => {
      // expected: any fs or host failure — sent to the client as the SFTP status it maps to
      sftp.status(id, statusOf(error), error instanceof Error ? error.message : String(error));
    });
  };
  const ok = (id: number) => sftp.status(id, STATUS_CODE.OK);

  sftp.on('STAT', (id, path) =>
    answer(id, async () => sftp.attrs(id, attrsOf(await stat(await machine.realPath(path, true))))),
  );
  sftp.on('LSTAT', (id, path) =>
    answer(id, async () => sftp.attrs(id, attrsOf(await lstat(await machine.realPath(path, false))))),
  );
  sftp.on('OPEN', (id, path, flags, attrs) =>
    answer(id, async () => {
      if ((flags & OPEN_MODE.WRITE) === 0)
        return give(id, { kind: 'read', data: await machine.readFile(path) });
      const how = flags & OPEN_MODE.EXCL ? 'wx' : flags & OPEN_MODE.TRUNC ? 'w' : 'r+';
      give(id, {
        kind: 'write',
        file: await open(await machine.realPath(path, false), how, attrs.mode ?? 0o644),
      });
    }),
  );
  sftp.on('READ', (id, raw, offset, length) => {
    const handle = handleOf(id, raw);
    if (!handle) return;
    if (handle.kind !== 'read') return sftp.status(id, STATUS_CODE.FAILURE, 'not open for reading');
    if (offset >= handle.data.length) return sftp.status(id, STATUS_CODE.EOF);
    sftp.data(id, handle.data.subarray(offset, offset + length));
  });
  sftp.on('WRITE', (id, raw, offset, data) => {
    const handle = handleOf(id, raw);
    if (!handle) return;
    if (handle.kind !== 'write') return sftp.status(id, STATUS_CODE.FAILURE, 'not open for writing');
    answer(id, async () => {
      await handle.file.write(data, 0, data.length, offset);
      ok(id);
    });
  });
  sftp.on('FSETSTAT', (id, raw, attrs) => {
    const handle = handleOf(id, raw);
    if (!handle) return;
    if (handle.kind !== 'write') return ok(id);
    answer(id, async () => {
      if (attrs.mode !== undefined) await handle.file.chmod(attrs.mode & 0o7777);
      // Owners are kept only where this process may set them (it need not run as root).
      if (attrs.uid !== undefined && attrs.gid !== undefined)
        // expected: EPERM — not root here; the file keeps this process's owner
        await handle.file.chown(attrs.uid, attrs.gid).catch(() => undefined);
      ok(id);
    });
  });
  sftp.on('CLOSE', (id, raw) => {
    const handle = handleOf(id, raw);
    if (!handle) return;
    handles.delete(raw.readUInt32BE(0));
    if (handle.kind !== 'write') return ok(id);
    answer(id, async () => {
      await handle.file.close();
      ok(id);
    });
  });
  sftp.on('OPENDIR', (id, path) =>
    answer(id, async () => {
      const entries = await machine.list(path);
      const names = entries.map((entry) => ({
        filename: entry.name,
        longname: entry.name,
        attrs: { mode: MODE_OF[entry.type], uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 },
      }));
      give(id, { kind: 'dir', names, sent: false });
    }),
  );
  sftp.on('READDIR', (id, raw) => {
    const handle = handleOf(id, raw);
    if (!handle) return;
    if (handle.kind !== 'dir') return sftp.status(id, STATUS_CODE.FAILURE, 'not a directory handle');
    if (handle.sent || handle.names.length === 0) return sftp.status(id, STATUS_CODE.EOF);
    handle.sent = true;
    sftp.name(id, handle.names);
  });
  sftp.on('READLINK', (id, path) =>
    answer(id, async () => {
      const target = await machine.readLink(path);
      sftp.name(id, [{ filename: target, longname: target, attrs: {} as ssh2.Attributes }]);
    }),
  );
  // OpenSSH's sftp asks where "." is before anything else: the machine's root.
  sftp.on('REALPATH', (id, path) => {
    const absolute = posix.resolve('/', path);
    sftp.name(id, [{ filename: absolute, longname: absolute, attrs: {} as ssh2.Attributes }]);
  });
  sftp.on('MKDIR', (id, path, attrs) =>
    answer(id, async () => {
      await mkdir(await machine.realPath(path, false), { mode: attrs.mode ?? 0o755 });
      ok(id);
    }),
  );
  sftp.on('REMOVE', (id, path) =>
    answer(id, async () => {
      await unlink(await machine.realPath(path, false));
      ok(id);
    }),
  );
  sftp.on('SETSTAT', (id, path, attrs) =>
    answer(id, async () => {
      const real = await machine.realPath(path, true);
      if (attrs.mode !== undefined) await chmod(real, attrs.mode & 0o7777);
      // expected: EPERM — not root here; the file keeps this process's owner
      if (attrs.uid !== undefined && attrs.gid !== undefined)
        await chown(real, attrs.uid, attrs.gid).catch(() => undefined);
      ok(id);
    }),
  );
  sftp.on('EXTENDED', (id: number, name: string, data: Buffer | undefined) => {
    if (name === 'fsync@openssh.com' && data) {
      const handle = handles.get(data.readUInt32BE(4));
      if (handle?.kind !== 'write') return ok(id);
      return answer(id, async () => {
        await handle.file.sync();
        ok(id);
      });
    }
    if (name === 'posix-rename@openssh.com' && data) {
      const [from, to] = twoStrings(data);
      return answer(id, async () => {
        await rename(await machine.realPath(from, false), await machine.realPath(to, false));
        ok(id);
      });
    }
    sftp.status(id, STATUS_CODE.OP_UNSUPPORTED);
  });
  // The client's end of input (OpenSSH's sftp at the end of its batch) closes the channel.
  sftp.on('end', () => sftp.end());
  sftp.on('close', async () => {
    // expected: anything — closing what a vanished client left open
    for (const handle of handles.values())
      if (handle.kind === 'write') await handle.file.close().catch(() => undefined);
  });
}

/** Two SSH strings (uint32 length + bytes), as posix-rename@openssh.com carries its paths. */
function twoStrings(data: Buffer): [string, string] {
  const first = data.readUInt32BE(0);
  const from = data.subarray(4, 4 + first).toString('utf8');
  const secondAt = 4 + first;
  const second = data.readUInt32BE(secondAt);
  return [from, data.subarray(secondAt + 4, secondAt + 4 + second).toString('utf8')];
}

/**
 * ssh2's SFTP server always answers INIT with a bare version-3 packet; OpenSSH's sftp-server
 * lists its extensions there, each with its version string (sftp-server.c process_init at
 * 0ef0f5a839: "1" for both we serve), and ssh2's client uses fsync and posix-rename only when listed.
 * So the one VERSION packet of this channel is replaced by one that names the two we serve
 * (and the channel's window is charged for the longer packet).
 */
function announceOpenSshExtensions(sftp: SFTPWrapper): void {
  const inner = sftp as unknown as {
    _protocol: { channelData(id: number, data: Buffer): void };
    outgoing: { id: number; window: number };
  };
  const protocol = inner._protocol;
  const original = protocol.channelData;
  const bare = Buffer.from([0, 0, 0, 5, 2, 0, 0, 0, 3]);
  const sshString = (text: string) => {
    const bytes = Buffer.from(text);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    return Buffer.concat([length, bytes]);
  };
  const body = Buffer.concat([
    Buffer.from([2, 0, 0, 0, 3]),
    sshString('posix-rename@openssh.com'),
    sshString('1'),
    sshString('fsync@openssh.com'),
    sshString('1'),
  ]);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(body.length);
  const full = Buffer.concat([length, body]);
  protocol.channelData = function (this: unknown, id: number, data: Buffer) {
    if (id === inner.outgoing.id && data.equals(bare)) {
      protocol.channelData = original;
      inner.outgoing.window -= full.length - bare.length;
      return original.call(protocol, id, full);
    }
    return original.call(protocol, id, data);
  };
}

function attrsOf(info: {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  atimeMs: number;
  mtimeMs: number;
}): ssh2.Attributes {
  return {
    mode: info.mode,
    uid: info.uid,
    gid: info.gid,
    size: info.size,
    atime: Math.floor(info.atimeMs / 1000),
    mtime: Math.floor(info.mtimeMs / 1000),
  };
}

function statusOf(error: unknown): number {
  const code = error instanceof HostError ? error.code : (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return STATUS_CODE.NO_SUCH_FILE;
  if (code === 'EACCES' || code === 'EPERM') return STATUS_CODE.PERMISSION_DENIED;
  return STATUS_CODE.FAILURE;
}
