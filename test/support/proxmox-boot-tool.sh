#!/bin/sh
# igpu-split's test stand-in for Proxmox's proxmox-boot-tool (package proxmox-kernel-helper),
# installed as /usr/sbin/proxmox-boot-tool in the boot-chain roots (test/support/bootchain.ts),
# and, called with no arguments from /etc/kernel/postinst.d/zz-proxmox-boot, as that hook.
#
# Behaviour read from jiangcuo/proxmox-kernel-helper @7007b33 (a mirror of Proxmox's
# proxmox-kernel-helper 8.1.0): src/bin/proxmox-boot-tool (the commands; pin_kernel,
# unpin_kernel, list_kernels), src/proxmox-boot/functions (the state files, get_first_line,
# set_grub_default, set_systemd_boot_default) and src/proxmox-boot/zz-proxmox-boot (what a
# refresh does to each ESP). Written for these tests, not copied. What it leaves out:
#   - the ESPs: the real tool mounts each UUID of /etc/kernel/proxmox-boot-uuids under
#     /var/tmp/espmounts; a chroot on a folder has no block devices, so the one folder
#     /boot/efi stands for every ESP in the list, always as a systemd-boot (UEFI) ESP;
#   - which kernels go to the ESP: the real keep-list (running, newest two -pve from dpkg -l,
#     manual list, pins) becomes every /boot/vmlinuz-* that has an initrd;
#   - format, init, reinit, clean, status, kernel add/remove, the interactive refresh question.
set -e

ESP_LIST=/etc/kernel/proxmox-boot-uuids
PIN=/etc/kernel/proxmox-boot-pin
NEXT_BOOT_PIN=/etc/kernel/next-boot-pin
GRUB_PIN_SNIPPET=/etc/default/grub.d/proxmox-kernel-pin.cfg
ESP=/boot/efi
LOADER_CONF=$ESP/loader/loader.conf

say() { echo "$*" >&2; }

# The first line of a file, or nothing when the file is absent (the real get_first_line).
first_line() {
  line=
  [ -e "$1" ] && { IFS= read -r line <"$1" || true; }
  printf '%s\n' "$line"
}

boot_kernels() {
  for image in /boot/vmlinuz-*; do
    [ -e "$image" ] && printf '%s\n' "${image#/boot/vmlinuz-}"
  done | sort -V -r
}

# GRUB hosts: the pin becomes GRUB_DEFAULT in a grub.d snippet naming the "Advanced options"
# entry of that kernel, whose ids 10_linux builds from the root device's id; that id is read
# back from the current grub.cfg. No kernel: the snippet goes.
grub_pin() {
  if [ -z "$1" ]; then
    rm -f "$GRUB_PIN_SNIPPET"
    return 0
  fi
  devid=$(sed -n "s/^submenu .*'gnulinux-advanced-\(.*\)' {\$/\1/p" /boot/grub/grub.cfg)
  mkdir -p "${GRUB_PIN_SNIPPET%/*}"
  printf 'GRUB_DEFAULT="gnulinux-advanced-%s>gnulinux-%s-advanced-%s"\n' "$devid" "$1" "$devid" >"$GRUB_PIN_SNIPPET"
}

# systemd-boot ESPs: the loader.conf `default` line names the pinned kernel's entry, or the
# glob proxmox-* (newest first) without a pin; replaced where it is, else appended.
sdboot_pin() {
  entry="proxmox-*"
  [ -z "$1" ] || entry="proxmox-$1.conf"
  awk -v entry="$entry" '
    /^default / { if (!done) print "default " entry; done = 1; next }
    { print }
    END { if (!done) print "default " entry }
  ' "$LOADER_CONF" >"$LOADER_CONF.new"
  mv "$LOADER_CONF.new" "$LOADER_CONF"
}

refresh() {
  if [ ! -f "$ESP_LIST" ]; then
    say "No $ESP_LIST found, skipping ESP sync."
    return 0
  fi
  if [ -f /etc/kernel/cmdline ]; then
    cmdline=$(first_line /etc/kernel/cmdline)
    case "$cmdline" in
      *root=*) ;;
      *)
        say "No root= parameter in /etc/kernel/cmdline found!"
        exit 1
        ;;
    esac
  else
    say "No /etc/kernel/cmdline found - falling back to /proc/cmdline"
    cmdline=$(sed 's/\binitrd=[^ ]*//g' /proc/cmdline)
  fi
  mkdir -p "$ESP/loader/entries" "$ESP/EFI/proxmox"
  # What `init` leaves on a systemd-boot ESP.
  [ -f "$LOADER_CONF" ] || printf 'timeout 3\ndefault proxmox-*\n' >"$LOADER_CONF"
  say "Copying and configuring kernels on $ESP"
  kernels=$(boot_kernels)
  for kver in $kernels; do
    if [ ! -f "/boot/initrd.img-$kver" ]; then
      say "No initrd-image /boot/initrd.img-$kver found - skipping"
      continue
    fi
    say "	Copying kernel and creating boot-entry for $kver"
    mkdir -p "$ESP/EFI/proxmox/$kver"
    cp --preserve=timestamps "/boot/vmlinuz-$kver" "/boot/initrd.img-$kver" "$ESP/EFI/proxmox/$kver/"
    printf 'title    Proxmox Virtual Environment\nversion  %s\noptions  %s\nlinux    /EFI/proxmox/%s/vmlinuz-%s\ninitrd   /EFI/proxmox/%s/initrd.img-%s\n' \
      "$kver" "$cmdline" "$kver" "$kver" "$kver" "$kver" >"$ESP/loader/entries/proxmox-$kver.conf"
  done
  # Kernels gone from /boot leave the ESP too.
  for dir in "$ESP"/EFI/proxmox/*; do
    [ -d "$dir" ] || continue
    kver=${dir##*/}
    if ! printf '%s\n' "$kernels" | grep -qxF -- "$kver"; then
      say "	Removing old version $kver"
      rm -rf "$dir" "$ESP/loader/entries/proxmox-$kver.conf"
    fi
  done
  # The next-boot pin wins over the pin.
  pinned=$(first_line "$PIN")
  [ ! -e "$NEXT_BOOT_PIN" ] || pinned=$(first_line "$NEXT_BOOT_PIN")
  sdboot_pin "$pinned"
}

pin() {
  kver=$1
  file=${2:-$PIN}
  if [ -z "$kver" ] || [ ! -e "/boot/vmlinuz-$kver" ]; then
    say "E: no kernel image found in /boot for '$kver', not setting default."
    say ""
    say "Possible Proxmox kernel versions are:"
    boot_kernels >&2
    exit 1
  fi
  if [ -e "$file" ]; then
    old=$(first_line "$file")
    [ "$old" = "$kver" ] || echo "Overriding previously pinned version '$old' with '$kver'"
  fi
  printf '%s\n' "$kver" >"$file"
  if [ -f "$ESP_LIST" ]; then
    echo "Set kernel '$kver' in $file. Use the 'refresh' command to update the ESPs."
  else
    next=$(first_line "$NEXT_BOOT_PIN")
    echo "Setting '${next:-$kver}' as grub default entry and running update-grub."
    grub_pin "${next:-$kver}"
    update-grub
  fi
}

unpin() {
  last=$(first_line "$NEXT_BOOT_PIN")
  rm -f "$NEXT_BOOT_PIN"
  echo "Removed $NEXT_BOOT_PIN."
  if [ "$1" != --next-boot ]; then
    old=$(first_line "$PIN")
    last=${old:-$last}
    rm -f "$PIN"
    echo "Removed $PIN."
  fi
  if [ -f "$ESP_LIST" ]; then
    [ -z "$last" ] || echo "Unpinned kernel '$last'. Use the 'refresh' command to update the ESPs."
  else
    echo "Reset default grub entry and running update-grub."
    grub_pin "$(first_line "$PIN")"
    update-grub
  fi
}

list() {
  echo "Manually selected kernels:"
  echo "None."
  echo ""
  echo "Automatically selected kernels:"
  boot_kernels
  pinned=$(first_line "$PIN")
  next=$(first_line "$NEXT_BOOT_PIN")
  [ -z "$pinned" ] || printf '\nPinned kernel:\n%s\n' "$pinned"
  [ -z "$next" ] || printf '\nKernel pinned on next-boot:\n%s\n' "$next"
}

usage() {
  say "USAGE: proxmox-boot-tool refresh | kernel pin <kernel-version> [--next-boot] | kernel unpin [--next-boot] | kernel list"
  say "(igpu-split test stand-in: no other command)"
  exit 1
}

# As /etc/kernel/postinst.d/zz-proxmox-boot: run on a kernel's configure (or without
# DEB_MAINT_PARAMS, as from the Proxmox kernel postinst, which sets none).
case "$0" in
  */postinst.d/*)
    # shellcheck disable=SC2086 # split as the real hook does
    set -- $DEB_MAINT_PARAMS
    mode=${1#\'}
    mode=${mode%\'}
    case "$mode" in '' | configure) refresh ;; esac
    exit 0
    ;;
esac

case "$1 $# ${2:-} ${4:-}" in
  'refresh 1 '*) refresh ;;
  'kernel 2 list '*) list ;;
  'kernel 2 unpin '*) unpin ;;
  'kernel 3 unpin '*) if [ "$3" = --next-boot ]; then unpin --next-boot; else usage; fi ;;
  'kernel 3 pin '*) pin "$3" ;;
  'kernel 4 pin --next-boot')
    pin "$3" "$NEXT_BOOT_PIN"
    echo "Pinned for next boot only."
    ;;
  *) usage ;;
esac
