import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { HostError, isMissing } from '../../src/access/host.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'igpu-root-'));
  await mkdir(join(root, 'sys/devices/pci0000:00/0000:00:02.0'), { recursive: true });
  await mkdir(join(root, 'sys/bus/pci/devices'), { recursive: true });
  await mkdir(join(root, 'sys/bus/pci/drivers/i915'), { recursive: true });
  await writeFile(join(root, 'sys/devices/pci0000:00/0000:00:02.0/vendor'), '0x8086\n');
  await symlink('../../../devices/pci0000:00/0000:00:02.0', join(root, 'sys/bus/pci/devices/0000:00:02.0'));
  await symlink('../../../bus/pci/drivers/i915', join(root, 'sys/devices/pci0000:00/0000:00:02.0/driver'));
  // An absolute link must resolve inside the root, never on the real machine.
  await mkdir(join(root, 'etc'));
  await symlink('/etc/hostname-in-capture', join(root, 'etc/hostname'));
  await writeFile(join(root, 'etc/hostname-in-capture'), 'pve1\n');
  await symlink('../../..', join(root, 'etc/escape'));
});
after(() => rm(root, { recursive: true, force: true }));

test('relative links resolve as on the host', async () => {
  const host = await new CapturedRoot(root).open();
  assert.equal((await host.readFile('/sys/bus/pci/devices/0000:00:02.0/vendor')).toString(), '0x8086\n');
  assert.equal(
    await host.readLink('/sys/bus/pci/devices/0000:00:02.0/driver'),
    '../../../bus/pci/drivers/i915',
  );
  assert.equal(await host.entryType('/sys/bus/pci/devices/0000:00:02.0'), 'link');
  assert.deepEqual(await host.list('/sys/bus/pci/devices/0000:00:02.0'), [
    { name: 'driver', type: 'link' },
    { name: 'vendor', type: 'file' },
  ]);
});

test('absolute links and .. never leave the root', async () => {
  const host = await new CapturedRoot(root).open();
  assert.equal((await host.readFile('/etc/hostname')).toString(), 'pve1\n');
  // ../../.. from /etc climbs no higher than the root: /etc/escape/etc is the capture's /etc.
  assert.deepEqual(
    (await host.list('/etc/escape/etc')).map((e) => e.name),
    ['escape', 'hostname', 'hostname-in-capture'],
  );
  await assert.rejects(host.readFile('/../../etc/passwd'), (error) => isMissing(error));
});

test('missing files are ENOENT, commands and writes are refused', async () => {
  const host = await new CapturedRoot(root).open();
  await assert.rejects(
    host.readFile('/proc/cpuinfo'),
    (error) => error instanceof HostError && error.code === 'ENOENT',
  );
  assert.equal(await host.entryType('/proc'), undefined);
  await assert.rejects(
    host.run('reboot'),
    (error) => error instanceof HostError && error.code === 'EUNSUPPORTED',
  );
  await assert.rejects(
    host.writeFileAtomic('/etc/x', 'y'),
    (error) => error instanceof HostError && error.code === 'EUNSUPPORTED',
  );
});
