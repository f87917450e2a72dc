// Every generated user-data file passes `cloud-init schema` (Debian's cloud-init).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { NEEDS_REBOOT, ubuntuUserData } from '../../src/guest/ubuntu/cloud-init.ts';
import { guardFiles } from '../../src/guest/ubuntu/guard.ts';
import { KERNEL_GUARD_CONF } from '../../src/linux/kernel-guard/script.ts';

const CLOUD_INIT = '/usr/bin/cloud-init';

function available(t: { skip(message: string): void }): boolean {
  if (existsSync(CLOUD_INIT)) return true;
  if (process.env.CI) throw new Error('CI must validate user-data: apt-get install cloud-init');
  t.skip('cloud-init is missing (apt-get install cloud-init)');
  return false;
}

const variants = {
  plain: ubuntuUserData(),
  full: ubuntuUserData({
    hostname: 'k3s-1',
    sshAuthorizedKeys: [
      'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHRlc3RrZXl0ZXN0a2V5dGVzdGtleXRlc3RrZXk0 op@lab',
    ],
    qemuGuestAgent: true,
  }),
};

test('user-data installs linux-generic and reboots only when the running kernel lacks i915', () => {
  const config = parse(variants.full) as Record<string, unknown>;
  assert.ok(variants.full.startsWith('#cloud-config\n'));
  assert.deepEqual(config.packages, ['linux-generic', 'qemu-guest-agent']);
  assert.deepEqual(config.power_state, {
    mode: 'reboot',
    message: 'igpu-split: rebooting into the kernel with i915',
    condition: NEEDS_REBOOT,
  });
  // The condition is true on the cloud image kernel and false once i915 is there.
  const dir = execFileSync('mktemp', ['-d']).toString().trim();
  const shell = (modules: string) =>
    Number(
      execFileSync('sh', ['-c', `${NEEDS_REBOOT.replace('/lib/modules', `${modules}`)}; echo $?`])
        .toString()
        .trim(),
    );
  assert.equal(shell(dir), 0);
  execFileSync('mkdir', [
    '-p',
    `${dir}/${execFileSync('uname', ['-r']).toString().trim()}/kernel/drivers/gpu/drm/i915`,
  ]);
  assert.equal(shell(dir), 1);
  execFileSync('rm', ['-r', dir]);
});

for (const [name, text] of Object.entries(variants)) {
  test(`cloud-init schema accepts the ${name} user-data`, async (t) => {
    if (!available(t)) return;
    const dir = await mkdtemp(join(tmpdir(), 'igpu-ci-'));
    try {
      const file = join(dir, 'user-data.yaml');
      await writeFile(file, text);
      const out = execFileSync(CLOUD_INIT, ['schema', '--config-file', file], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString();
      assert.match(out, /Valid (schema|cloud-config)/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('cloud-init schema refuses a broken file, so the check above can fail', async (t) => {
  if (!available(t)) return;
  const dir = await mkdtemp(join(tmpdir(), 'igpu-ci-'));
  try {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, variants.plain.replace('mode: reboot', 'mode: explode'));
    assert.throws(() =>
      execFileSync(CLOUD_INIT, ['schema', '--config-file', file], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const VF = {
  kind: 'vf',
  host: 'pve1',
  pfDeviceId: '46d1',
  route: 'i915-sriov-dkms',
  forceProbe: false,
  explicit: true,
  guestPackage: {
    url: 'https://github.com/strongtz/i915-sriov-dkms/releases/download/2025.07.22/i915-sriov-dkms_2025.07.22_amd64.deb',
    sha256: 'b'.repeat(64),
  },
} as const;

test('on an SR-IOV VF: the DKMS release from its url (checked), the drop-in deferred, a reboot while the parameters are missing', async (t) => {
  const text = ubuntuUserData({ hostname: 'k3s-1', attachment: VF, vm: 'VM 101' });
  const config = parse(text) as Record<string, unknown>;
  assert.deepEqual(config.packages, ['linux-generic', 'build-essential', 'dkms', 'wget']);
  assert.deepEqual(config.write_files, [
    {
      path: '/etc/default/grub.d/99-igpu-split-sriov.cfg',
      content:
        '# Written by igpu-split: kernel parameters for the SR-IOV virtual function (see igpu-split guest plan).\nGRUB_CMDLINE_LINUX_DEFAULT="${GRUB_CMDLINE_LINUX_DEFAULT} i915.enable_guc=3 module_blacklist=xe"\n',
      permissions: '0644',
      defer: true,
    },
    // The kernel guard as the guest layer writes it (test/guest/ubuntu-guard.test.ts), settings first.
    ...guardFiles(VF).map((file) => ({
      path: file.path,
      content: file.content,
      permissions: file.path === KERNEL_GUARD_CONF ? '0644' : '0755',
      defer: true,
    })),
  ]);
  assert.deepEqual(
    (config.write_files as { path: string }[]).map((f) => f.path),
    [
      '/etc/default/grub.d/99-igpu-split-sriov.cfg',
      '/etc/igpu-split/kernel-guard.conf',
      '/etc/kernel/postinst.d/z-igpu-split-kernel-guard',
      '/etc/kernel/postinst.d/a-igpu-split-kernel-guard',
    ],
  );
  assert.match((config.write_files as { content: string }[])[1]?.content ?? '', /^pin=grub-default$/m);
  // On the xe route the guest runs its own modules: no guard.
  const xe = parse(ubuntuUserData({ attachment: { ...VF, route: 'xe' }, vm: 'VM 101' })) as {
    write_files: unknown[];
  };
  assert.equal(xe.write_files.length, 1);
  const runcmd = config.runcmd as string[];
  assert.match(
    runcmd[0] ?? '',
    /sha256sum -c --quiet && mv -f .* && dpkg -i \/var\/cache\/igpu-split\/i915-sriov-dkms_2025\.07\.22_amd64\.deb$/,
  );
  assert.equal(runcmd[1], 'update-grub && update-initramfs -u');
  const condition = (config.power_state as { condition: string }).condition;
  // The condition reboots while /proc/cmdline lacks the parameter (run against stand-in files).
  const probe = (cmdline: string) =>
    Number(
      execFileSync('sh', ['-c', `${condition.replace('/proc/cmdline', '"$1"')}; echo $?`, 'sh', cmdline])
        .toString()
        .trim(),
    );
  const dir = execFileSync('mktemp', ['-d']).toString().trim();
  execFileSync('sh', [
    '-c',
    `echo 'ro console=tty1' > ${dir}/before; echo 'ro i915.enable_guc=3 module_blacklist=xe' > ${dir}/after`,
  ]);
  assert.equal(probe(`${dir}/before`), 0);
  assert.equal(probe(`${dir}/after`), 1);
  execFileSync('rm', ['-r', dir]);
  // A file cannot travel in user-data, and a guest without a named package is refused: one line naming the VM.
  assert.throws(
    () => ubuntuUserData({ attachment: { ...VF, guestPackage: { file: '/tmp/x.deb' } }, vm: 'VM 101' }),
    (error: Error) =>
      /^VM 101: user-data can only fetch i915-sriov-dkms from a url \(sriov\.guestDriver names a file/.test(
        error.message,
      ),
  );
  if (!available(t)) return;
  const work = await mkdtemp(join(tmpdir(), 'igpu-ci-'));
  try {
    const file = join(work, 'user-data.yaml');
    await writeFile(file, text);
    const out = execFileSync(CLOUD_INIT, ['schema', '--config-file', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
    assert.match(out, /Valid (schema|cloud-config)/);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
