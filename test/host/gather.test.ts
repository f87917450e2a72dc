// gather against a host whose files misbehave: permission errors are recorded as
// facts (and become warnings), never thrown.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { type HostAccess, HostError } from '../../src/access/host.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { hostVerdict } from '../../src/host/verdict.ts';
import { fixturePath } from '../support/fixtures.ts';

/** A fixture host on which some paths answer "permission denied" (as a non-root SSH user sees them). */
function denying(inner: HostAccess, denied: (path: string) => boolean): HostAccess {
  const deny = (path: string) => {
    if (denied(path)) throw new HostError('EACCES', path, `${path}: permission denied`);
  };
  return {
    target: inner.target,
    readFile: async (path) => {
      deny(path);
      return inner.readFile(path);
    },
    list: async (path) => {
      deny(path);
      return inner.list(path);
    },
    readLink: (path) => inner.readLink(path),
    entryType: (path) => inner.entryType(path),
    run: (command) => inner.run(command),
    writeFileAtomic: (path, data) => inner.writeFileAtomic(path, data),
    createExclusive: (path, data, mode) => inner.createExclusive(path, data, mode),
    makeDir: (path, mode) => inner.makeDir(path, mode),
    remove: (path) => inner.remove(path),
    close: () => inner.close(),
  };
}

test('unreadable files become host.readable warnings naming the path', async () => {
  const inner = await new CapturedRoot(fixturePath('i5-8500t-gvt')).open();
  const host = denying(
    inner,
    (path) => path.endsWith('/resource') || path.startsWith('/sys/firmware/efi/efivars'),
  );
  const facts = await gatherHostFacts(host);
  assert.deepEqual(facts.unreadable.map((u) => u.path).sort(), [
    '/sys/bus/pci/devices/0000:00:02.0/resource',
    '/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c',
  ]);
  assert.equal(facts.firmware.secureBoot, undefined);
  const verdict = hostVerdict(facts);
  const readable = verdict.checks.filter((c) => c.id === 'host.readable');
  assert.equal(readable.length, 2);
  assert.ok(readable.every((c) => c.status === 'warn' && /permission denied/.test(c.evidence)));
  // Without the aperture the prediction is withheld, with a reason.
  const aperture = verdict.checks.find((c) => c.id === 'gvt.aperture');
  assert.equal(aperture?.status, 'warn');
  assert.deepEqual(verdict.vgpu.predicted, {});
});

test('a missing sysfs folder is an absence, not an error', async () => {
  const inner = await new CapturedRoot(fixturePath('i5-8500t-gvt')).open();
  const host = denying(inner, () => false);
  const hidden: HostAccess = {
    ...host,
    list: async (path) => {
      if (path === '/sys/class/iommu') throw new HostError('ENOENT', path, 'gone');
      return inner.list(path);
    },
  };
  const facts = await gatherHostFacts(hidden);
  assert.deepEqual(facts.iommu.units, []);
  assert.deepEqual(facts.unreadable, []);
});
