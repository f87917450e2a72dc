// The guest's kernel guard run for real: the hook as the guest layer writes it, run by sh in
// a mount namespace of its own (unshare -m, private propagation) whose /etc, /var and /usr
// are overlays onto temp folders and whose /boot is a tmpfs, so the machine's own files are
// never touched (/lib/modules and /etc/igpu-split do not even exist here: overlays can hold
// what a bind mount would need a mount point for). A fake modinfo answers as modinfo -k
// does: i915 from updates/dkms declares max_vfs, the stock one does not.
//
// Kernel 6.8.0-90 arrives without its dkms i915: the guard pins 6.8.0-88 through GRUB_DEFAULT
// in its drop-in, with the entry id grub.cfg gives it. Kernel 6.8.0-91 arrives with one: the
// guard releases its pin (the drop-in goes) and records the release.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { GUEST_GUARD_SPEC, guestGuardChecks, pinnedKernelOf } from '../../src/guest/ubuntu/guard.ts';
import { knownRelease } from '../../src/knowledge/i915-sriov-dkms.ts';
import {
  GUEST_PIN_DROPIN,
  KERNEL_GUARD_CONF,
  KERNEL_GUARD_HOOK,
  KERNEL_GUARD_STATE,
  kernelGuardConfig,
  kernelGuardScript,
} from '../../src/linux/kernel-guard/script.ts';
import { parseGuardRecord } from '../../src/linux/kernel-guard/state.ts';

const UUID = '6f1d3b52-0c4e-4a8e-9d7b-2e5f8a1c3d90';
const RELEASE = '2025.07.22';

/** modinfo -k KERNEL -F parm|name MODULE, as the kernel's module tree would answer. */
const MODINFO = `#!/bin/sh
k=$(uname -r); field=; module=
while [ $# -gt 0 ]; do
  case $1 in -k) k=$2; shift 2 ;; -F) field=$2; shift 2 ;; *) module=$1; shift ;; esac
done
[ "$module" = i915 ] || exit 1
case $field in
  parm)
    for f in /lib/modules/"$k"/updates/dkms/i915.ko*; do
      [ -e "$f" ] && echo 'max_vfs:Limit number of virtual functions to allocate. (0 = no VFs [default]; N = allow up to N VFs) (uint)'
    done
    echo 'enable_guc:Enable GuC load for GuC submission and/or HuC load. (int)' ;;
  name) echo i915 ;;
esac
`;

/** grub.cfg as Ubuntu's 10_linux writes it: the ids the guard builds its GRUB_DEFAULT from. */
const grubCfg = (kernels: string[]) =>
  [
    `menuentry 'Ubuntu' --class ubuntu $menuentry_id_option 'gnulinux-simple-${UUID}' {`,
    '}',
    `submenu 'Advanced options for Ubuntu' $menuentry_id_option 'gnulinux-advanced-${UUID}' {`,
    ...kernels.map(
      (k) =>
        `\tmenuentry 'Ubuntu, with Linux ${k}' --class ubuntu $menuentry_id_option 'gnulinux-${k}-advanced-${UUID}' {\n\t}`,
    ),
    '}',
    '',
  ].join('\n');

/** What runs inside the namespace: the machine set up, the guard run twice, what it left copied out. */
const SCENARIO = `set -eu
T=$1
for d in etc var usr; do
  mkdir -p "$T/upper/$d" "$T/work/$d"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/upper/$d,workdir=$T/work/$d" "/$d"
done
mount -t tmpfs tmpfs /boot
mkdir -p /boot/grub /etc/igpu-split /etc/default/grub.d /var/lib/igpu-split /usr/src/i915-sriov-dkms-${RELEASE} /etc/kernel/postinst.d
cp "$T/dkms.conf" /usr/src/i915-sriov-dkms-${RELEASE}/dkms.conf
cp "$T/kernel-guard.conf" ${KERNEL_GUARD_CONF}
cp "$T/hook" ${KERNEL_GUARD_HOOK}
chmod 0755 ${KERNEL_GUARD_HOOK}
# kernel RELEASE yes|no: installed with its headers; with i915 from dkms or without.
kernel() {
  : > "/boot/vmlinuz-$1"
  mkdir -p "/lib/modules/$1/build/include" "/lib/modules/$1/kernel/drivers/gpu/drm/i915"
  if [ "$2" = yes ]; then mkdir -p "/lib/modules/$1/updates/dkms" && : > "/lib/modules/$1/updates/dkms/i915.ko.zst"; fi
}
# run N KERNEL: the guard as a kernel package's postinst runs it; what it left, copied out.
run() {
  mkdir -p "$T/out/$1"
  rc=0
  DEB_MAINT_PARAMS=configure PATH="$T/bin:$PATH" ${KERNEL_GUARD_HOOK} "$2" "/boot/vmlinuz-$2" 2> "$T/out/$1/stderr" || rc=$?
  echo "$rc" > "$T/out/$1/rc"
  cp ${KERNEL_GUARD_STATE} "$T/out/$1/state"
  if [ -e ${GUEST_PIN_DROPIN} ]; then cp ${GUEST_PIN_DROPIN} "$T/out/$1/pin"; fi
  # What update-grub's grub-mkconfig would take: /etc/default/grub, then grub.d/*.cfg in order.
  (GRUB_DEFAULT=0; for f in /etc/default/grub.d/*.cfg; do [ -e "$f" ] && . "$f"; done; echo "$GRUB_DEFAULT") > "$T/out/$1/grub-default"
}
kernel 6.8.0-88-generic yes
kernel 6.8.0-90-generic no
cp "$T/grub-88-90.cfg" /boot/grub/grub.cfg
run 1 6.8.0-90-generic
kernel 6.8.0-91-generic yes
cp "$T/grub-88-91.cfg" /boot/grub/grub.cfg
run 2 6.8.0-91-generic
`;

function namespaceAvailable(t: { skip(message: string): void }): boolean {
  const why =
    process.getuid?.() !== 0
      ? 'not root'
      : spawnSync('unshare', ['-m', '--propagation', 'private', 'true']).status !== 0
        ? 'unshare -m does not work here'
        : undefined;
  if (why === undefined) return true;
  if (process.env.CI) throw new Error(`CI must run the guest guard in a mount namespace: ${why}`);
  t.skip(`${why}: the guard is run in a mount namespace of its own`);
  return false;
}

test('the guest guard pins the last kernel with i915 from dkms through GRUB_DEFAULT, and releases it once a newer kernel has it', async (t) => {
  if (!namespaceAvailable(t)) return;
  const before = ['/etc/igpu-split', '/var/lib/igpu-split', GUEST_PIN_DROPIN].map(existsSync);
  const dir = await mkdtemp(join(tmpdir(), 'igpu-guest-guard-'));
  try {
    const range = knownRelease(RELEASE)?.buildExclusiveKernel ?? '';
    await writeFile(
      join(dir, 'dkms.conf'),
      `PACKAGE_NAME="i915-sriov-dkms"\nPACKAGE_VERSION="${RELEASE}"\nBUILT_MODULE_NAME[0]="i915"\nDEST_MODULE_LOCATION[0]=/updates\nBUILD_EXCLUSIVE_KERNEL="${range}"\n`,
    );
    await writeFile(
      join(dir, 'kernel-guard.conf'),
      kernelGuardConfig({ spec: GUEST_GUARD_SPEC, strict: false, pinWith: 'grub-default', maxPinDays: 30 }),
    );
    await writeFile(join(dir, 'hook'), kernelGuardScript(GUEST_GUARD_SPEC, 'ubuntu'));
    await writeFile(join(dir, 'grub-88-90.cfg'), grubCfg(['6.8.0-90-generic', '6.8.0-88-generic']));
    await writeFile(
      join(dir, 'grub-88-91.cfg'),
      grubCfg(['6.8.0-91-generic', '6.8.0-90-generic', '6.8.0-88-generic']),
    );
    execFileSync('mkdir', ['-p', join(dir, 'bin')]);
    await writeFile(join(dir, 'bin/modinfo'), MODINFO);
    await chmod(join(dir, 'bin/modinfo'), 0o755);
    // dkms is there (the guard asks only that it is installed; what it built is read from files).
    await writeFile(join(dir, 'bin/dkms'), '#!/bin/sh\nexit 0\n');
    await chmod(join(dir, 'bin/dkms'), 0o755);
    const ran = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', SCENARIO, 'sh', dir], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(ran.status, 0, `${ran.stdout}${ran.stderr}`);
    const out = (run: number, file: string) => readFile(join(dir, 'out', String(run), file), 'utf8');

    // 6.8.0-90 has no i915 from dkms: 6.8.0-88 stays the default, by its entry in the submenu.
    assert.equal((await out(1, 'rc')).trim(), '0', await out(1, 'stderr'));
    const entry = `gnulinux-advanced-${UUID}>gnulinux-6.8.0-88-generic-advanced-${UUID}`;
    const pin = await out(1, 'pin');
    assert.match(pin, new RegExp(`^GRUB_DEFAULT="${entry.replace(/[.>]/g, '\\$&')}"$`, 'm'));
    assert.equal((await out(1, 'grub-default')).trim(), entry);
    assert.equal(pinnedKernelOf(pin), '6.8.0-88-generic');
    const stderr = await out(1, 'stderr');
    assert.match(
      stderr,
      /kernel 6\.8\.0-90-generic would boot WITHOUT the GPU split: dkms has not installed i915/,
    );
    assert.match(stderr, /keeps booting kernel 6\.8\.0-88-generic/);
    const first = parseGuardRecord(await out(1, 'state'));
    assert.equal(first?.action, 'pinned');
    assert.deepEqual(first?.pin && { kernel: first.pin.kernel, kind: first.pin.kind }, {
      kernel: '6.8.0-88-generic',
      kind: 'persistent',
    });
    assert.deepEqual(first?.kernels, { '6.8.0-88-generic': 'keeps', '6.8.0-90-generic': 'breaks' });
    // What verify says for the node from these files.
    const checks = guestGuardChecks(
      {
        files: {
          hook: kernelGuardScript(GUEST_GUARD_SPEC, 'ubuntu'),
          ahead: undefined,
          conf: await readFile(join(dir, 'kernel-guard.conf'), 'utf8'),
          state: await out(1, 'state'),
          readAt: new Date().toISOString(),
          unconfigured: [],
          pinWritten: {},
        },
        installed: ['6.8.0-88-generic', '6.8.0-90-generic'],
        pinDropin: pin,
      },
      {
        kind: 'vf',
        host: 'pve1',
        route: 'i915-sriov-dkms',
        forceProbe: false,
        explicit: true,
      },
    );
    assert.deepEqual(
      checks.map((c) => `${c.id} ${c.status}`),
      ['guard.installed pass', 'guard.last-check warn', 'guard.pending warn', 'guard.pin warn'],
    );
    assert.match(
      checks[3]?.evidence ?? '',
      /^pinned to 6\.8\.0-88-generic by the igpu-split kernel guard.*1 newer kernel held back \(6\.8\.0-90-generic\)/,
    );

    // 6.8.0-91 has it: the pin goes, GRUB boots the newest kernel again.
    assert.equal((await out(2, 'rc')).trim(), '0', await out(2, 'stderr'));
    assert.ok(!existsSync(join(dir, 'out/2/pin')), 'the pin drop-in is still there');
    assert.equal((await out(2, 'grub-default')).trim(), '0');
    assert.match(await out(2, 'stderr'), /released the guard's pin/);
    const second = parseGuardRecord(await out(2, 'state'));
    assert.equal(second?.action, 'unpinned');
    assert.equal(second?.verdict, 'keeps');
    assert.equal(second?.pin, undefined);
    assert.equal(second?.kernels['6.8.0-91-generic'], 'keeps');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // The machine's own files were never touched.
  assert.deepEqual(['/etc/igpu-split', '/var/lib/igpu-split', GUEST_PIN_DROPIN].map(existsSync), before);
});
