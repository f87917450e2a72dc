// A Talos Image Factory of the project's own on loopback, for the tests and the demo lab: GET /versions, and POST
// /schematics answering {"id"} as the content's SHA-256 (the real factory's ids are
// content hashes too, so the same schematic always gets the same id). It can be told
// to fail or to answer garbage.

import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse, stringify, YAMLError } from 'yaml';
import { TALOS_NEWEST_PATCH } from '../knowledge/pins.ts';

export interface FakeFactory {
  url: string;
  /** Schematics posted, parsed. */
  posted: unknown[];
  mode: 'ok' | 'error' | 'garbage';
  close(): Promise<void>;
}

/** Real releases (siderolabs/talos tags, snapshots/upstream-pins.json): a few, and the newest patch of each minor. */
const RELEASES = [...new Set(['v1.10.8', 'v1.11.3', ...Object.values(TALOS_NEWEST_PATCH)])].sort((a, b) =>
  a.localeCompare(b, 'en', { numeric: true }),
);

export async function startImageFactory(versions = RELEASES): Promise<FakeFactory> {
  const factory: Partial<FakeFactory> & { posted: unknown[]; mode: FakeFactory['mode'] } = {
    posted: [],
    mode: 'ok',
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (factory.mode === 'error') {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error: registry unavailable\n');
        return;
      }
      if (factory.mode === 'garbage') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>maintenance</body></html>');
        return;
      }
      if (req.method === 'GET' && req.url === '/versions') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(versions));
        return;
      }
      if (req.method === 'POST' && req.url === '/schematics') {
        let schematic: { customization?: { systemExtensions?: { officialExtensions?: string[] } } };
        try {
          schematic = parse(Buffer.concat(chunks).toString('utf8'));
        } catch (error) {
          // expected: YAMLError — a body that is not YAML is the factory's 400
          if (!(error instanceof YAMLError)) throw error;
          res.writeHead(400).end('invalid schematic');
          return;
        }
        const unknown = (schematic.customization?.systemExtensions?.officialExtensions ?? []).filter(
          (e) => !e.startsWith('siderolabs/'),
        );
        if (unknown.length > 0) {
          res.writeHead(400).end(`unknown extension: ${unknown[0]}`);
          return;
        }
        factory.posted.push(schematic);
        const id = createHash('sha256').update(stringify(schematic)).digest('hex');
        res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ id }));
        return;
      }
      res.writeHead(404).end('not found');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  factory.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  factory.close = () => new Promise<void>((resolve) => server.close(() => resolve()));
  return factory as FakeFactory;
}
