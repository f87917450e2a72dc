// The proxmox-boot-tool stand-in's kernel pin (test/support/proxmox-boot-tool.sh) against the
// real boot tools of a Debian bookworm and a trixie root, with two kernels: the root's real one
// and a newer fake Proxmox kernel installed by dpkg (test/support/fake-kernel.ts). On a GRUB
// host (no ESP list) the pin must make the real update-grub's grub.cfg boot the pinned kernel;
// on a systemd-boot host the real bootctl must show the pinned kernel's entry as the default.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  bootchainAvailable,
  bootchainHost,
  bootctlDefault,
  bootctlList,
  grubDefaultKernel,
  grubMenu,
  SUITES,
} from '../support/bootchain.ts';
import { literal } from '../support/dkms-module.ts';
import {
  dpkgStatus,
  fakeKernelVersion,
  grubHost,
  hooksRun,
  installFakeKernel,
  kernelPackage,
} from '../support/fake-kernel.ts';
import { shellcheck, shellcheckAvailable } from '../support/shellcheck.ts';

const PIN = 'etc/kernel/proxmox-boot-pin';
const NEXT_BOOT_PIN = 'etc/kernel/next-boot-pin';
const SNIPPET = 'etc/default/grub.d/proxmox-kernel-pin.cfg';

for (const suite of SUITES) {
  test(`${suite}: proxmox-boot-tool kernel pin through the real update-grub and bootctl`, async (t) => {
    if (!bootchainAvailable(t)) return;
    const { root, stock, remove } = await bootchainHost(undefined, { suite });
    try {
      const { host, run, real } = await grubHost(root);
      const fake = fakeKernelVersion(real);
      const installed = await installFakeKernel(host, { kver: fake, headers: false, stock });
      assert.equal(installed.code, 0, installed.output);
      assert.equal(await dpkgStatus(host, kernelPackage(fake)), 'installed');
      const grub = async () => readFile(join(root, 'boot/grub/grub.cfg'), 'utf8');
      const grubDefault = async () => grubDefaultKernel(await grub());

      await t.test('without a pin the new kernel is grub’s first entry and its default', async () => {
        // The kernel's own postinst ran the real zz-update-grub.
        assert.ok(hooksRun(installed.output).includes('zz-update-grub'), installed.output);
        const cfg = await grub();
        assert.match(grubMenu(cfg)[0]?.linux ?? '', new RegExp(`/boot/vmlinuz-${literal(fake)} `));
        assert.equal(grubDefaultKernel(cfg), fake);
        assert.match(cfg, /^\s*set default="0"$/m);
      });

      await t.test('GRUB host: pin <older> makes update-grub’s default boot the older kernel', async () => {
        const out = await run(`proxmox-boot-tool kernel pin ${real}`);
        assert.match(
          out,
          new RegExp(`Setting '${literal(real)}' as grub default entry and running update-grub\\.`),
        );
        assert.equal((await readFile(join(root, PIN), 'utf8')).trim(), real);
        // The entry id 10_linux gives the kernel inside "Advanced options", under the root device's id.
        const snippet = await readFile(join(root, SNIPPET), 'utf8');
        const [, devid] =
          /^GRUB_DEFAULT="gnulinux-advanced-(\S+)>gnulinux-\S+-advanced-\1"$/m.exec(snippet) ?? [];
        assert.ok(devid, snippet);
        assert.equal(
          snippet,
          `GRUB_DEFAULT="gnulinux-advanced-${devid}>gnulinux-${real}-advanced-${devid}"\n`,
        );
        assert.equal(await grubDefault(), real);
        // The new kernel is still the first entry: only the default moved.
        assert.equal(/vmlinuz-(\S+)/.exec(grubMenu(await grub())[0]?.linux ?? '')?.[1], fake);
      });

      await t.test(
        'GRUB host: a next-boot pin wins over the pin; unpin --next-boot falls back to it',
        async () => {
          const out = await run(`proxmox-boot-tool kernel pin ${fake} --next-boot`);
          assert.match(out, /Pinned for next boot only\./);
          assert.equal((await readFile(join(root, NEXT_BOOT_PIN), 'utf8')).trim(), fake);
          assert.equal(await grubDefault(), fake);
          const list = await run('proxmox-boot-tool kernel list');
          assert.match(list, new RegExp(`Pinned kernel:\\n${literal(real)}\\n`));
          assert.match(list, new RegExp(`Kernel pinned on next-boot:\\n${literal(fake)}\\n`));
          await run('proxmox-boot-tool kernel unpin --next-boot');
          assert.ok(!existsSync(join(root, NEXT_BOOT_PIN)));
          assert.equal(await grubDefault(), real);
        },
      );

      await t.test('GRUB host: unpin removes the pin and the snippet; the newest boots again', async () => {
        await run('proxmox-boot-tool kernel unpin');
        assert.ok(!existsSync(join(root, PIN)));
        assert.ok(!existsSync(join(root, SNIPPET)));
        assert.equal(await grubDefault(), fake);
      });

      await t.test('a kernel with no /boot/vmlinuz is refused, and nothing is pinned', async () => {
        const refused = await host.run('proxmox-boot-tool kernel pin 6.0.0-1-pve');
        assert.equal(refused.code, 1);
        assert.match(
          refused.stderr,
          /E: no kernel image found in \/boot for '6\.0\.0-1-pve', not setting default\./,
        );
        assert.ok(!existsSync(join(root, PIN)));
        assert.equal(await grubDefault(), fake);
      });

      await t.test(
        'ESP host: refresh sets loader.conf’s default from the pin; bootctl boots it',
        async () => {
          await writeFile(join(root, 'etc/kernel/proxmox-boot-uuids'), '5C1E-2F7A\n');
          await writeFile(join(root, 'etc/kernel/cmdline'), 'root=/dev/sda1 ro quiet\n');
          await run('proxmox-boot-tool refresh');
          const entry = (kver: string) => `proxmox-${kver}.conf`;
          // No pin: loader.conf's glob, and bootctl takes the newest entry.
          assert.match(
            await readFile(join(root, 'boot/efi/loader/loader.conf'), 'utf8'),
            /^default proxmox-\*$/m,
          );
          assert.equal(bootctlDefault(bootctlList(root)), entry(fake));
          // With an ESP list, pin only writes the pin: the refresh (or the next kernel's
          // zz-proxmox-boot) applies it, as the real tool says.
          const out = await run(`proxmox-boot-tool kernel pin ${real}`);
          assert.match(out, /Use the 'refresh' command to update the ESPs\./);
          assert.equal(bootctlDefault(bootctlList(root)), entry(fake));
          await run('proxmox-boot-tool refresh');
          assert.equal(bootctlDefault(bootctlList(root)), entry(real));
          assert.match(
            await readFile(join(root, 'boot/efi/loader/loader.conf'), 'utf8'),
            new RegExp(`^default ${literal(entry(real))}$`, 'm'),
          );
          await run(`proxmox-boot-tool kernel pin ${fake} --next-boot && proxmox-boot-tool refresh`);
          assert.equal(bootctlDefault(bootctlList(root)), entry(fake));
          await run('proxmox-boot-tool kernel unpin --next-boot && proxmox-boot-tool refresh');
          assert.equal(bootctlDefault(bootctlList(root)), entry(real));
          await run('proxmox-boot-tool kernel unpin && proxmox-boot-tool refresh');
          assert.equal(bootctlDefault(bootctlList(root)), entry(fake));
          assert.match(
            await readFile(join(root, 'boot/efi/loader/loader.conf'), 'utf8'),
            /^default proxmox-\*$/m,
          );
        },
      );
    } finally {
      await remove();
    }
  });
}

test('the proxmox-boot-tool stand-in has no shellcheck findings', (t) => {
  if (!shellcheckAvailable(t)) return;
  const { code, findings } = shellcheck(
    fileURLToPath(new URL('../support/proxmox-boot-tool.sh', import.meta.url)),
  );
  assert.equal(findings, '');
  assert.equal(code, 0);
});
