// A recording talosctl for the Talos tests (the Image Factory stand-in lives in
// src/guest/talos/factory-simulator.ts; the demo lab uses it too).

/**
 * A recording talosctl on PATH: logs each call, and answers version (the server's tag from
 * TALOSCTL_SERVER_TAG, default v1.10.9), get extensions / ls /dev/dri from its state (before
 * or after the upgrade). TALOSCTL_FAIL=<verb> fails one.
 */
export const TALOSCTL_STAND_IN = `#!/bin/sh
dir=$(dirname "$0")
echo "talosctl $*" >> "$dir/calls"
[ "$TALOSCTL_FAIL" = "$1" ] && { echo "error: rpc error: code = Unavailable desc = connection refused" >&2; exit 1; }
case "$1" in
  version)
    # The layout of talosctl version (siderolabs/talos cmd/talosctl/cmd/talos/version.go @v1.10.9).
    printf 'Client:\\n\\tTag:         v1.10.9\\nServer:\\n\\tNODE:        %s\\n\\tTag:         %s\\n\\tEnabled:     RBAC\\n' "$3" "\${TALOSCTL_SERVER_TAG:-v1.10.9}" ;;
  upgrade) touch "$dir/upgraded" ;;
  patch) ;;
  get)
    for e in iscsi-tools; do printf 'node: 10.0.0.5\\nmetadata:\\n  type: ExtensionStatuses.runtime.talos.dev\\nspec:\\n  metadata:\\n    name: %s\\n---\\n' "$e"; done
    if [ -e "$dir/upgraded" ]; then for e in i915 intel-ucode; do printf 'node: 10.0.0.5\\nspec:\\n  metadata:\\n    name: %s\\n---\\n' "$e"; done; fi ;;
  ls)
    echo "NODE       NAME"; echo "10.0.0.5   ."
    if [ -e "$dir/upgraded" ]; then echo "10.0.0.5   by-path"; echo "10.0.0.5   card0"; echo "10.0.0.5   renderD128"; fi ;;
esac
exit 0
`;
