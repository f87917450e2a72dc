// Where the captured host trees live (test/fixtures/hosts/<name>/, see its README).

import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const HOSTS = fileURLToPath(new URL('../fixtures/hosts/', import.meta.url));

export function fixturePath(name: string): string {
  return `${HOSTS}${name}`;
}

export function fixtureNames(): string[] {
  return readdirSync(HOSTS, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}
