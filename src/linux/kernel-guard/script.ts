// The kernel guard: a POSIX sh hook in /etc/kernel/postinst.d that judges every newly
// installed kernel against the split's requirements (requirements.ts) and keeps the machine
// booting the newest kernel that keeps the split. Rendered here per host: the requirement
// checks and their messages come from requirements.ts, the rest is fixed.
//
// Decisions (KERNEL-UPGRADE-FACTS §2b for the hook contract):
// - Two hooks, named for where run-parts (lexical order) runs them in /etc/kernel/postinst.d:
//   `a-igpu-split-kernel-guard` before `dkms`, `z-igpu-split-kernel-guard` after `dkms` and
//   `initramfs-tools` and before the `zz-proxmox-boot`/`zz-update-grub` boot loader hooks.
//   The check runs in the second: the module is built or not, the new kernel has its
//   initramfs, and the boot loader is refreshed after the guard decided. The first pins the
//   last good kernel ahead, while a new kernel's module is not built yet: a dkms build that
//   fails makes the dkms hook exit non-zero, the kernel's postinst (`run-parts
//   --exit-on-error`, proxmox/pve-kernel debian/proxmox-kernel.postinst.in @ 6e44995) stops
//   there, and the next update-grub anything runs would make the half-configured kernel, with
//   no initramfs, the default (seen in the boot-chain tier). Debian 12's dkms 3.0.10 does the
//   same for a kernel outside the module's range; trixie's 3.2.2 calls that "skipped" and goes
//   on, and then the check after it is what keeps the kernel from being the default.
// - It decides from files (requirements.ts), never from what dkms printed or returned.
// - A breaking kernel never fails the configure step unless the user chose `strict`: the
//   kernel installs, and the newest installed kernel that keeps the split is pinned
//   (`proxmox-boot-tool kernel pin` on Proxmox, a GRUB_DEFAULT drop-in in a guest). Once a
//   kernel that keeps the split is the one that would boot anyway, the guard releases its pin.
// - Pins someone else wrote are never changed: when such a pin selects a breaking kernel, the
//   guard sets only the next-boot pin (enough to come back with the split after this upgrade)
//   and says so; a next-boot pin someone else wrote is left alone with a warning.
// - When the pin cannot be set (proxmox-boot-tool fails, e.g. /boot full), the guard fails the
//   configure step even when not strict: the breaking kernel must not become the default
//   unnoticed. Every decision is recorded in kernel-guard.state for doctor and verify.
// - Everything goes to stderr: the hook may run under debconf (Debian Kernel Handbook 8.1).

import {
  type GuardPlatform,
  type GuardSpec,
  noSourcesShortfall,
  type Requirement,
  shortfall,
  splitRequirements,
} from './requirements.ts';

/** The hook: after `dkms` and `initramfs-tools`, before the `zz-*` boot loader hooks. */
export const KERNEL_GUARD_HOOK = '/etc/kernel/postinst.d/z-igpu-split-kernel-guard';
/** Its part before dkms: holds the last good kernel as the default while the module is built. */
export const KERNEL_GUARD_AHEAD = '/etc/kernel/postinst.d/a-igpu-split-kernel-guard';
/** Its settings (strict, how to pin, the pin age doctor tolerates). */
export const KERNEL_GUARD_CONF = '/etc/igpu-split/kernel-guard.conf';
/** What it decided last, for doctor and verify. */
export const KERNEL_GUARD_STATE = '/var/lib/igpu-split/kernel-guard.state';
/** A guest's pin: GRUB_DEFAULT in a drop-in sourced after /etc/default/grub (grub-mkconfig sources grub.d/*.cfg last). */
export const GUEST_PIN_DROPIN = '/etc/default/grub.d/99-igpu-split-kernel-pin.cfg';

/** Pins age: doctor warns from the first newer kernel and fails after this many days (KERNEL-UPGRADE-FACTS §2b: pins hold back security fixes). */
export const DEFAULT_MAX_PIN_DAYS = 30;

export interface GuardSettings {
  spec: GuardSpec;
  /** Fail the kernel's configure step instead of pinning. */
  strict: boolean;
  /** proxmox-boot-tool on a Proxmox host; a GRUB_DEFAULT drop-in in a guest. */
  pinWith: 'proxmox-boot-tool' | 'grub-default';
  maxPinDays: number;
}

/** The settings file: `key=value` lines the hook reads (never sources). */
export function kernelGuardConfig(settings: GuardSettings): string {
  return [
    `# Written by igpu-split: settings of its kernel guard (${KERNEL_GUARD_HOOK}).`,
    '# Change them in the lab file (kernelGuard) and apply; a hand edit is shown as drift by plan.',
    `mode=${describeSpec(settings.spec)}`,
    `strict=${settings.strict ? 'yes' : 'no'}`,
    `pin=${settings.pinWith}`,
    `max_pin_days=${settings.maxPinDays}`,
    '',
  ].join('\n');
}

/** The hook before dkms: runs the guard's ahead phase, and never stops a kernel's hooks itself. */
export function kernelGuardAheadScript(): string {
  return `#!/bin/sh
# igpu-split kernel guard, before dkms. Written by igpu-split: apply rewrites it, rollback
# removes it. While a new kernel's module is built, the last kernel that keeps the GPU split
# stays the default (a pin), so a build that stops the kernel's hooks cannot leave the new
# kernel the default; the check after the build (${KERNEL_GUARD_HOOK})
# decides and releases the pin when the new kernel keeps the split.
main=${KERNEL_GUARD_HOOK}
[ -x "$main" ] || exit 0
"$main" --ahead "$@"
exit 0
`;
}

/** How the settings and doctor name a spec: `sriov i915-sriov-dkms`, `gvt-g`. */
export function describeSpec(spec: GuardSpec): string {
  return spec.mode === 'sriov' ? `sriov ${spec.route}` : spec.mode;
}

// Placeholders for the shell variables a message names; replaced after quoting.
const KERNEL = '\u0001kernel\u0001';
const RELEASE = '\u0001release\u0001';
const RANGE = '\u0001range\u0001';

/** A message as a double-quoted sh string whose placeholders expand the guard's variables. */
function shString(text: string): string {
  const quoted = text.replace(/[\\"$`]/g, (c) => `\\${c}`);
  const variable = (name: string) => `$\{${name}}`;
  return `"${quoted.replaceAll(KERNEL, variable('k')).replaceAll(RELEASE, variable('release')).replaceAll(RANGE, variable('range'))}"`;
}

/** One requirement as sh: on a miss it sets why and fix and returns 1 from judge. */
function requirementCheck(req: Requirement, platform: GuardPlatform): string {
  const values = { kernel: KERNEL, release: RELEASE, range: RANGE, platform };
  const miss = (test: string, texts = shortfall(req, values)) =>
    [
      `  if ${test}; then`,
      `    why=${shString(texts.why)}`,
      `    fix=${shString(texts.fix)}`,
      '    return 1',
      '  fi',
    ].join('\n');
  switch (req.kind) {
    case 'dkms-range':
      return [
        `  range_of ${req.package} "$k"`,
        '  in_range=$?',
        miss('[ "$in_range" = 2 ]', noSourcesShortfall(req.package, KERNEL)),
        miss('[ "$in_range" = 1 ]'),
      ].join('\n');
    case 'dkms-tool':
      return miss('! command -v dkms > /dev/null 2>&1');
    case 'headers':
      return miss('[ ! -e "/lib/modules/$k/build/include" ]');
    case 'dkms-module':
      return miss(`! dkms_module "$k" ${req.module}`);
    case 'module-parm':
      return miss(`! has_parm "$k" ${req.module} ${req.parm}`);
    case 'module':
      return miss(`! has_module "$k" ${req.module}`);
    case 'min-kernel':
      return miss(`! at_least "$k" ${req.major} ${req.minor}`);
  }
}

/** The sh function each kind of requirement is tested with (only those a spec needs go in). */
const HELPERS: Readonly<Record<Requirement['kind'], string>> = {
  'dkms-tool': '',
  headers: ``,
  'dkms-range': `# range_of PACKAGE KERNEL: 0 when an installed release's BUILD_EXCLUSIVE_KERNEL holds KERNEL
# (or it names none), 1 when none does, 2 when no release is installed. Sets release, range.
range_of() {
  release=
  range=
  found=2
  for dkms_conf in /usr/src/"$1"-*/dkms.conf; do
    [ -r "$dkms_conf" ] || continue
    found=1
    release=\${dkms_conf%/dkms.conf}
    release=\${release#/usr/src/"$1"-}
    range=$(sed -n "s/^[[:space:]]*BUILD_EXCLUSIVE_KERNEL=[\\"']\\{0,1\\}\\([^\\"']*\\)[\\"']\\{0,1\\}[[:space:]]*$/\\1/p" "$dkms_conf" | tail -n 1)
    [ -z "$range" ] && return 0
    printf '%s\\n' "$2" | grep -Eq -- "$range" && return 0
  done
  return "$found"
}
`,
  'dkms-module': `# dkms_module KERNEL MODULE: dkms installed MODULE for KERNEL.
dkms_module() {
  for f in "/lib/modules/$1/updates/dkms/$2.ko" "/lib/modules/$1/updates/dkms/$2.ko.xz" \\
    "/lib/modules/$1/updates/dkms/$2.ko.zst" "/lib/modules/$1/updates/dkms/$2.ko.gz"; do
    [ -e "$f" ] && return 0
  done
  return 1
}
`,
  'module-parm': `# has_parm KERNEL MODULE PARM: the MODULE that KERNEL would load declares PARM.
has_parm() { modinfo -k "$1" -F parm "$2" 2> /dev/null | grep -q "^$3:"; }
`,
  module: `# has_module KERNEL MODULE: built in or a file of KERNEL.
has_module() { modinfo -k "$1" -F name "$2" > /dev/null 2>&1; }
`,
  'min-kernel': `# at_least KERNEL MAJOR MINOR
at_least() {
  major=\${1%%.*}
  minor=\${1#*.}
  minor=\${minor%%[!0-9]*}
  case $major$minor in '' | *[!0-9]*) return 1 ;; esac
  [ "$major" -gt "$2" ] || { [ "$major" -eq "$2" ] && [ "$minor" -ge "$3" ]; }
}
`,
};

/** The guard for a host or guest: fixed helpers and decisions around the spec's judge(). */
export function kernelGuardScript(spec: GuardSpec, platform: GuardPlatform = 'proxmox'): string {
  // Rendered once per spec and platform: a fleet plan asks for the same script per machine.
  const key = `${JSON.stringify(spec)} ${platform}`;
  const known = rendered.get(key);
  if (known !== undefined) return known;
  const script = renderScript(spec, platform);
  rendered.set(key, script);
  return script;
}

const rendered = new Map<string, string>();

function renderScript(spec: GuardSpec, platform: GuardPlatform): string {
  const requirements = splitRequirements(spec);
  const kinds = [...new Set(requirements.map((r) => r.kind))];
  const judge = [
    ...kinds.map((kind) => HELPERS[kind]).filter((text) => text !== ''),
    '# judge KERNEL: 0 when it keeps the split; else 1 with why and fix set (the first requirement missed).',
    'judge() {',
    '  k=$1',
    '  why=',
    '  fix=',
    ...requirements.map((req) => requirementCheck(req, platform)),
    '  return 0',
    '}',
  ].join('\n');
  return SCRIPT.replace('@MODE@', describeSpec(spec)).replace('@JUDGE@\n', `${judge}\n`);
}

const SCRIPT = `#!/bin/sh
# igpu-split kernel guard (@MODE@). Written by igpu-split: apply rewrites it, rollback
# removes it; do not edit. A kernel package's postinst runs it through run-parts with
# KERNEL-VERSION [IMAGE-PATH], after dkms and before the boot loader is refreshed. It
# checks that the kernel keeps the GPU split and, when it does not, keeps this machine
# booting the newest installed kernel that does. Run it by hand with a kernel version to
# check again (for example after fixing a dkms build): it releases its pin once the kernel
# that would boot keeps the split.
set -u

conf=${KERNEL_GUARD_CONF}
state=${KERNEL_GUARD_STATE}
pin_file=/etc/kernel/proxmox-boot-pin
next_pin_file=/etc/kernel/next-boot-pin
grub_pin=${GUEST_PIN_DROPIN}

say() { printf 'igpu-split kernel guard: %s\\n' "$*" >&2; }

# Only a kernel being configured is checked (DEB_MAINT_PARAMS: Debian Kernel Handbook 8.1).
maint=\${DEB_MAINT_PARAMS:-configure}
maint=\${maint#\\'}
case $maint in configure*) ;; *) exit 0 ;; esac

phase=check
if [ "\${1:-}" = --ahead ]; then
  phase=ahead
  shift
fi
if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  say "usage: $0 KERNEL-VERSION [/boot/vmlinuz-KERNEL-VERSION]: give the version of an installed kernel (ls /boot/vmlinuz-*)"
  exit 2
fi
kver=$1
case $kver in
  '' | -* | */* | *' '*)
    say "'$kver' is not a kernel version: give the version of an installed kernel (ls /boot/vmlinuz-*)"
    exit 2
    ;;
esac
if [ ! -e "/boot/vmlinuz-$kver" ] && [ ! -d "/lib/modules/$kver" ]; then
  say "kernel $kver is not installed (no /boot/vmlinuz-$kver): give the version of an installed kernel (ls /boot/vmlinuz-*)"
  exit 2
fi

first_line() {
  line=
  if [ -r "$1" ]; then IFS= read -r line < "$1" || true; fi
  printf '%s' "$line"
}

strict=no
pin=proxmox-boot-tool
if [ ! -r "$conf" ]; then
  say "kernel $kver not checked: $conf is missing; run igpu-split apply to write it again (or rollback to remove this hook)"
  exit 0
fi
while IFS='=' read -r key value; do
  case $key in
    strict) strict=$value ;;
    pin) pin=$value ;;
  esac
done < "$conf"

@JUDGE@
# Installed kernels, oldest first (the order grub's 10_linux and proxmox-boot-tool sort by).
kernels=$(for image in /boot/vmlinuz-*; do [ -e "$image" ] && printf '%s\\n' "\${image#/boot/vmlinuz-}"; done | sort -V)
newest=$(printf '%s\\n' "$kernels" | tail -n 1)

# What the guard did before: its pin, if any.
our_pin=
our_kind=
our_pinned_at=
if [ -r "$state" ]; then
  while IFS='=' read -r key value; do
    case $key in
      pin_kernel) our_pin=$value ;;
      pin_kind) our_kind=$value ;;
      pinned_at) our_pinned_at=$value ;;
    esac
  done < "$state"
fi
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# Pins in force and whose they are.
if [ "$pin" = grub-default ]; then
  user_pin=
  user_next=
  our_in_force=
  [ -n "$our_pin" ] && [ -e "$grub_pin" ] && our_in_force=yes
else
  current_pin=$(first_line "$pin_file")
  current_next=$(first_line "$next_pin_file")
  our_in_force=
  user_pin=$current_pin
  user_next=$current_next
  if [ -n "$our_pin" ] && [ "$our_kind" = persistent ] && [ "$current_pin" = "$our_pin" ]; then
    our_in_force=yes
    user_pin=
  elif [ -n "$our_pin" ] && [ "$our_kind" = next-boot ] && [ "$current_next" = "$our_pin" ]; then
    our_in_force=yes
    user_next=
  fi
fi

# The verdict on the kernel being installed.
if judge "$kver"; then
  verdict=keeps
  kwhy=
  kfix=
else
  verdict=breaks
  kwhy=$why
  kfix=$fix
fi

# Every installed kernel's verdict (recorded for doctor), and the newest that keeps the split.
verdicts=
good=
for k in $kernels; do
  if judge "$k"; then
    verdicts="$verdicts$k=keeps
"
    good=$k
  else
    verdicts="$verdicts$k=breaks
"
  fi
done

# The kernel that boots when the guard sets nothing: pins of others, else the newest.
if [ -n "$user_next" ]; then
  unguarded=$user_next
elif [ -n "$user_pin" ]; then
  unguarded=$user_pin
else
  unguarded=$newest
fi

record() {
  mkdir -p "\${state%/*}" 2> /dev/null
  tmp="$state.new"
  {
    printf 'format=1\\n'
    printf 'checked_kernel=%s\\nchecked_at=%s\\nverdict=%s\\n' "$kver" "$now" "$verdict"
    printf 'why=%s\\nfix=%s\\n' "$kwhy" "$kfix"
    printf 'action=%s\\nboots=%s\\nstrict=%s\\n' "$1" "$2" "$strict"
    printf 'pin_kernel=%s\\npin_kind=%s\\npinned_at=%s\\n' "$our_pin" "$our_kind" "$our_pinned_at"
    printf '%s' "$verdicts" | sed 's/^/kernel./'
  } > "$tmp" 2> /dev/null || written=no
  if [ "\${written:-yes}" = no ] || ! mv -f "$tmp" "$state" 2> /dev/null; then
    say "kernel $kver: could not record the verdict in $state (is /var full?); doctor will not see it"
  fi
}

banner() {
  printf '%s\\n' '**********************************************************************' >&2
  for text in "$@"; do printf '*** igpu-split: %s\\n' "$text" >&2; done
  printf '%s\\n' '**********************************************************************' >&2
}

if [ "$phase" = check ] && [ "$verdict" = breaks ] && [ "$strict" = yes ]; then
  package=$(dpkg-query -S "/boot/vmlinuz-$kver" 2> /dev/null | sed -n '1s/:.*//p')
  record refused "$unguarded"
  banner "kernel $kver would boot WITHOUT the GPU split: $kwhy" \\
    "fix: $kfix" \\
    "strict mode: this stops the configure step of \${package:-the package of /boot/vmlinuz-$kver}, which stays half-configured." \\
    "Then run dpkg --configure -a, or remove that kernel (apt remove \${package:-<its package>}); until then apt reports the error."
  exit 1
fi

# refresh_by_hand: run by hand rather than by dpkg (which sets DPKG_MAINTSCRIPT_PACKAGE for
# maintainer scripts, dpkg(1) ENVIRONMENT, dpkg 1.21.22), no later hook refreshes the boot
# loader: make a pin change live now. (proxmox-boot-tool pin and unpin run update-grub
# themselves on a host without an ESP list.)
refresh_by_hand() {
  [ -n "\${DPKG_MAINTSCRIPT_PACKAGE:-}" ] && return 0
  if [ "$pin" = grub-default ]; then
    quietly update-grub || say "kernel $kver: update-grub failed; run it before rebooting"
  elif [ -e /etc/kernel/proxmox-boot-uuids ]; then
    quietly proxmox-boot-tool refresh || say "kernel $kver: proxmox-boot-tool refresh failed; run it before rebooting"
  fi
}

# quietly COMMAND...: its output only when it fails (proxmox-boot-tool and update-grub talk a lot).
quietly() {
  out=$("$@" 2>&1) && return 0
  printf '%s\\n' "$out" >&2
  return 1
}

# unpin_ours: release the guard's own pin, keeping anyone else's next-boot pin.
unpin_ours() {
  if [ "$pin" = grub-default ]; then
    rm -f "$grub_pin" || return 1
  elif [ "$our_kind" = next-boot ]; then
    quietly proxmox-boot-tool kernel unpin --next-boot || return 1
  else
    quietly proxmox-boot-tool kernel unpin || return 1
    if [ -n "$user_next" ]; then quietly proxmox-boot-tool kernel pin "$user_next" --next-boot || return 1; fi
  fi
  our_pin=
  our_kind=
  our_pinned_at=
  refresh_by_hand
}

# pin_good KIND: make the guard's pin select $good.
pin_good() {
  # Recorded first: a guard killed after proxmox-boot-tool wrote the pin still knows it as its own.
  if [ "$our_pin" != "$good" ] || [ "$our_kind" != "$1" ]; then our_pinned_at=$now; fi
  our_pin=$good
  our_kind=$1
  record pinning "$good"
  if [ "$pin" = grub-default ]; then
    id=$(sed -n "s/.*'gnulinux-advanced-\\([^']*\\)'.*/\\1/p" /boot/grub/grub.cfg 2> /dev/null | head -n 1)
    if [ -n "$id" ]; then
      entry="gnulinux-advanced-$id>gnulinux-$good-advanced-$id"
    else
      id=$(sed -n "s/.*'gnulinux-simple-\\([^']*\\)'.*/\\1/p" /boot/grub/grub.cfg 2> /dev/null | head -n 1)
      [ -n "$id" ] || return 1
      entry="gnulinux-$good-advanced-$id"
    fi
    mkdir -p "\${grub_pin%/*}" && printf '# Written by igpu-split kernel guard: boot %s, the newest kernel that keeps the GPU split.\\nGRUB_DEFAULT="%s"\\n' "$good" "$entry" > "$grub_pin" || return 1
  elif [ "$1" = next-boot ]; then
    quietly proxmox-boot-tool kernel pin "$good" --next-boot || return 1
    [ "$(first_line "$next_pin_file")" = "$good" ] || return 1
  else
    quietly proxmox-boot-tool kernel pin "$good" || return 1
    [ "$(first_line "$pin_file")" = "$good" ] || return 1
  fi
  refresh_by_hand
}

pin_failed() {
  record pin-failed "$unguarded"
  banner "kernel $kver would boot WITHOUT the GPU split: $kwhy" \\
    "and the guard could not pin kernel $good (see the lines above; is /boot full? df -h /boot)." \\
    "This stops the kernel's configure step so that $kver does not become the default." \\
    "Fix the cause, then run dpkg --configure -a, or remove kernel $kver."
  exit 1
}

if [ "$phase" = ahead ]; then
  # Before dkms: a kernel that would boot next and is not known to keep the split yet (its
  # module is built after this) is held back by a pin until the check after the build
  # decides. Debian 12's dkms stops the kernel's hooks on a build it skips or fails, and the
  # next update-grub anything runs would make the kernel, with no initramfs, the default.
  if [ "$verdict" = keeps ] || [ "$kver" != "$unguarded" ] || [ -z "$good" ] || [ -n "$user_next" ]; then
    exit 0
  fi
  verdict=pending
  kwhy="not checked yet: its module is built after this"
  kfix="if the kernel's hooks stopped (apt reported an error), fix that, then dpkg --configure -a"
  if [ -n "$user_pin" ] && [ "$pin" != grub-default ]; then kind=next-boot; else kind=persistent; fi
  if pin_good "$kind"; then
    record pinned-ahead "$good"
  else
    say "kernel $kver: could not pin $good ahead of its module build (see above); the check after the build tries again"
  fi
  exit 0
fi

if judge "$unguarded"; then
  # What boots without the guard keeps the split: no pin of ours is needed.
  action=none
  if [ -n "$our_in_force" ]; then
    if unpin_ours; then
      action=unpinned
      say "kernel $unguarded keeps the GPU split: released the guard's pin"
    else
      say "kernel $unguarded keeps the GPU split, but the guard's pin of $our_pin could not be released: proxmox-boot-tool kernel unpin"
    fi
  fi
  [ "$verdict" = keeps ] || action=not-default
  record "$action" "$unguarded"
  if [ "$verdict" = breaks ]; then
    banner "kernel $kver would boot WITHOUT the GPU split: $kwhy" "fix: $kfix" \\
      "It is not what this machine boots next ($unguarded, which keeps the split), so nothing was pinned."
  fi
  exit 0
fi

# What would boot breaks the split.
uwhy=$why
ufix=$fix
if [ -z "$good" ]; then
  record no-good-kernel "$unguarded"
  banner "kernel $unguarded boots next and has no GPU split, and no installed kernel keeps it." \\
    "why: $uwhy" "fix: $ufix" \\
    "Nothing was pinned: a pin cannot help. The machine still boots."
  exit 0
fi
if [ -n "$user_next" ]; then
  # Someone else's next-boot pin selects a breaking kernel: theirs to change.
  record user-pin "$unguarded"
  banner "kernel $kver: the next-boot pin ($next_pin_file) selects $user_next, which has no GPU split." \\
    "It was not set by igpu-split and is left alone: proxmox-boot-tool kernel pin $good --next-boot to boot $good instead."
  exit 0
fi
if [ -n "$user_pin" ] && [ "$pin" != grub-default ]; then
  # Someone else's pin selects a breaking kernel: it stays; the next boot goes to $good.
  pin_good next-boot || pin_failed
  record next-boot-pinned "$good"
  banner "kernel $user_pin, pinned in $pin_file (not by igpu-split), has no GPU split: $uwhy" \\
    "Your pin is left as it is; the NEXT boot only goes to $good (proxmox-boot-tool kernel pin $good --next-boot)." \\
    "fix: $ufix"
  exit 0
fi
pin_good persistent || pin_failed
record pinned "$good"
banner "kernel $kver would boot WITHOUT the GPU split: $kwhy" \\
  "fix: $kfix" \\
  "This machine keeps booting kernel $good (pinned by the igpu-split kernel guard)." \\
  "Once fixed, run $0 $kver: it checks again and releases the pin."
exit 0
`;
