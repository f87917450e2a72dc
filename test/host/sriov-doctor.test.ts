// Doctor's SR-IOV checks, each failing the way a real host fails: through gatherHostFacts on
// copies of the n100 fixtures changed one fact at a time, and a host that runs commands
// (the kernel log comes from journalctl/dmesg there, and a capture turns it into a file).

import assert from 'node:assert/strict';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { extract } from 'tar';
import { CapturedRoot } from '../../src/access/captured-root.ts';
import { DirectoryHost } from '../../src/access/directory-host.ts';
import { captureHost } from '../../src/capture/capture.ts';
import type { Check } from '../../src/core/model.ts';
import { gatherHostFacts } from '../../src/host/gather.ts';
import { filterKernelLog, gucVersionOf, KERNEL_LOG_COMMAND } from '../../src/host/gather-sriov.ts';
import { vfInterfaceOf } from '../../src/host/sriov/checks.ts';
import { hostVerdict } from '../../src/host/verdict.ts';
import { PATHS } from '../../src/linux/paths.ts';
import { fixturePath } from '../support/fixtures.ts';

async function withCopy(
  name: string,
  change: (tree: string) => Promise<void>,
  look: (checks: Check[]) => void,
) {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-sriov-doctor-'));
  try {
    await cp(fixturePath(name), tree, { recursive: true, verbatimSymlinks: true });
    await change(tree);
    look(hostVerdict(await gatherHostFacts(await new CapturedRoot(tree).open())).checks);
  } finally {
    await rm(tree, { recursive: true, force: true });
  }
}

const check = (checks: Check[], id: string) => checks.find((c) => c.id === id);
const log = (tree: string) => join(tree, PATHS.kernelLogCapture.slice(1));

test('the stock i915 ignoring max_vfs fails with the kernel line and the rebuild as fix', async () => {
  await withCopy(
    'n100-sriov',
    async (tree) => {
      await writeFile(log(tree), "[    3.9] i915: unknown parameter 'max_vfs' ignored\n", { flag: 'a' });
      await unlink(join(tree, 'sys/module/i915/parameters/max_vfs'));
    },
    (checks) => {
      const maxVfs = check(checks, 'sriov.max-vfs');
      assert.equal(maxVfs?.status, 'fail');
      assert.match(maxVfs?.evidence ?? '', /"i915: unknown parameter 'max_vfs' ignored"/);
      assert.match(maxVfs?.fix ?? '', /dkms autoinstall/);
      assert.equal(check(checks, 'sriov.module-loaded')?.status, 'fail');
    },
  );
});

test('no dkms build for the running kernel fails module-built and next-boot', async () => {
  await withCopy(
    'n100-sriov',
    (tree) => unlink(join(tree, 'lib/modules/6.8.12-4-pve/updates/dkms/i915.ko')),
    (checks) => {
      assert.equal(check(checks, 'sriov.module-built')?.status, 'fail');
      assert.equal(check(checks, 'sriov.next-boot')?.status, 'fail');
      assert.match(check(checks, 'sriov.module-built')?.fix ?? '', /dkms autoinstall -k 6\.8\.12-4-pve/);
    },
  );
});

test('a pinned kernel in range keeps the next boot in range although a newer one is installed', async () => {
  await withCopy(
    'n100-sriov-upgraded',
    async (tree) => {
      await mkdir(join(tree, 'etc/kernel'), { recursive: true });
      await writeFile(join(tree, 'etc/kernel/proxmox-boot-pin'), '6.8.12-4-pve\n');
    },
    (checks) => {
      assert.equal(check(checks, 'sriov.next-boot')?.status, 'pass');
      assert.match(check(checks, 'sriov.next-boot')?.evidence ?? '', /^next boot \(pinned\) 6\.8\.12-4-pve/);
    },
  );
});

test('Secure Boot with the dkms key not in MokListRT fails with mokutil; enrolled passes', async () => {
  const cert = Buffer.alloc(300, 0x5a);
  const setup = (enrolled: boolean) => async (tree: string) => {
    await writeFile(
      join(tree, 'sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c'),
      Buffer.from([6, 0, 0, 0, 1]),
    );
    await mkdir(join(tree, 'var/lib/dkms'), { recursive: true });
    await writeFile(join(tree, 'var/lib/dkms/mok.pub'), cert);
    const other = Buffer.alloc(300, 0x11);
    await writeFile(
      join(tree, PATHS.mokListRtVar.slice(1)),
      Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.alloc(44), enrolled ? cert : other]),
    );
  };
  await withCopy('n100-sriov', setup(false), (checks) => {
    assert.equal(check(checks, 'sriov.secure-boot')?.status, 'fail');
    assert.match(
      check(checks, 'sriov.secure-boot')?.fix ?? '',
      /mokutil --import \/var\/lib\/dkms\/mok\.pub/,
    );
  });
  await withCopy('n100-sriov', setup(true), (checks) =>
    assert.equal(check(checks, 'sriov.secure-boot')?.status, 'pass'),
  );
});

test('a VF the host drives is a warning naming it, with the vfio-pci fix', async () => {
  await withCopy(
    'n100-sriov',
    (tree) =>
      symlink('../../../../bus/pci/drivers/i915', join(tree, 'sys/bus/pci/devices/0000:00:02.5/driver')),
    (checks) => {
      const vfs = check(checks, 'sriov.vf-drivers');
      assert.equal(vfs?.status, 'warn');
      assert.equal(vfs?.evidence, 'VFs driven by the host: 0000:00:02.5 i915');
      assert.match(vfs?.fix ?? '', /sriov_drivers_autoprobe=0/);
    },
  );
});

test('an old GuC warns with the VF interface it offers; no GuC line and no log are said apart', async () => {
  await withCopy(
    'n100-sriov',
    (tree) =>
      writeFile(
        log(tree),
        'i915 0000:00:02.0: [drm] GT0: GuC firmware i915/adlp_guc_70.bin version 70.20.0\n',
      ),
    (checks) => {
      assert.equal(check(checks, 'sriov.guc')?.status, 'warn');
      assert.match(check(checks, 'sriov.guc')?.evidence ?? '', /^GuC 70\.20\.0: VF interface 1\.9;/);
    },
  );
  await withCopy(
    'n100-sriov',
    (tree) => writeFile(log(tree), ''),
    (checks) => assert.match(check(checks, 'sriov.guc')?.evidence ?? '', /no "GuC firmware … version" line/),
  );
  await withCopy(
    'n100-sriov',
    (tree) => unlink(log(tree)),
    (checks) => {
      assert.match(check(checks, 'sriov.guc')?.evidence ?? '', /kernel log could not be read/);
      assert.equal(check(checks, 'sriov.max-vfs')?.status, 'pass', 'max_vfs read from sysfs');
    },
  );
  assert.equal(vfInterfaceOf('70.29.2'), 'VF interface 1.13');
  assert.equal(vfInterfaceOf('70.36.0'), 'VF interface 1.13 or newer (GuC newer than 70.29.2)');
  assert.equal(vfInterfaceOf('70.9.1'), 'VF interface older than 1.4 (GuC older than 70.13.1)');
});

test('kernel log lines: filtered, timestamps dropped, each once, bounded; GuC from the PF first', () => {
  const text = [
    '[    1.000000] e1000e 0000:00:1f.6: eth0: link up',
    '[    4.500000] i915 0000:00:02.1: [drm] GT0: GuC firmware i915/adlp_guc_70.bin version 70.20.0',
    '[    4.400000] i915 0000:00:02.0: [drm] GT0: GuC firmware i915/adlp_guc_70.bin version 70.29.2',
    'xe 0000:00:02.0: [drm] Using GuC firmware from xe/ptl_guc_70.bin version 70.44.1',
    '[    4.400000] i915 0000:00:02.0: [drm] GT0: GuC firmware i915/adlp_guc_70.bin version 70.29.2',
  ].join('\n');
  const lines = filterKernelLog(text);
  assert.equal(lines.length, 3);
  assert.ok(lines.every((l) => !l.startsWith('[')));
  assert.equal(gucVersionOf(lines, '0000:00:02.0'), '70.29.2');
  assert.equal(gucVersionOf([lines[2] as string], undefined), '70.44.1', 'xe’s wording');
  assert.equal(
    filterKernelLog('i915 x\n'.repeat(10) + Array.from({ length: 1000 }, (_, i) => `i915 ${i}`).join('\n'))
      .length,
    400,
  );
});

test('on a host that runs commands the log comes from the command, and capture keeps it for --root', async () => {
  const tree = await mkdtemp(join(tmpdir(), 'igpu-sriov-live-'));
  const work = await mkdtemp(join(tmpdir(), 'igpu-sriov-cap-'));
  try {
    await cp(fixturePath('n100-sriov'), tree, { recursive: true, verbatimSymlinks: true });
    await unlink(log(tree));
    const asked: string[] = [];
    const live = new DirectoryHost(tree, async (command) => {
      asked.push(command);
      return command === KERNEL_LOG_COMMAND
        ? {
            code: 0,
            stdout: "[ 3.2] i915: unknown parameter 'max_vfs' ignored\n[ 3.3] audit: noise\n",
            stderr: '',
          }
        : { code: 127, stdout: '', stderr: 'not found' };
    });
    const facts = await gatherHostFacts(live);
    assert.deepEqual(asked, [KERNEL_LOG_COMMAND]);
    assert.deepEqual(facts.sriovDriver.kernelLog, ["i915: unknown parameter 'max_vfs' ignored"]);
    await captureHost(live, join(work, 'c.tar.gz'), 'test', 'n100');
    await extract({ file: join(work, 'c.tar.gz'), cwd: work });
    const root = join(work, 'igpu-split-capture-n100');
    assert.equal(
      await readFile(join(root, PATHS.kernelLogCapture.slice(1)), 'utf8'),
      "i915: unknown parameter 'max_vfs' ignored\n",
    );
    const again = await gatherHostFacts(await new CapturedRoot(root).open());
    assert.deepEqual(again.sriovDriver.kernelLog, facts.sriovDriver.kernelLog);
  } finally {
    await rm(tree, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  }
});
