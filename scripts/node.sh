#!/bin/sh
# Runs a command with Node.js >= 22 first on PATH and the project's npm
# dependencies installed. Machines here ship Node 20, so when the machine's
# node is older we install Node 24 from the npm registry's node-linux-<arch>
# package (it carries the official binary) into the git-ignored .node/ folder.
#   scripts/node.sh <command> [args…]     e.g. scripts/node.sh node --version
set -eu
NODE_VERSION=24.21.0
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

if [ "$(major node)" -lt 22 ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "igpu-split: no Node.js >= 22 here and no node-linux package for $(uname -m); install Node.js 24 and retry" >&2; exit 1 ;;
  esac
  pkg="$root/.node/node_modules/node-linux-$arch"
  if [ ! -x "$root/.node/bin/node" ] || [ "$("$root/.node/bin/node" -v 2>/dev/null)" != "v$NODE_VERSION" ]; then
    echo "igpu-split: set-up: installing Node.js $NODE_VERSION into .node/ (the machine has $(node -v 2>/dev/null || echo none)); about 20 s" >&2
    npm install --prefix "$root/.node" --no-save --no-audit --no-fund --loglevel=error "node-linux-$arch@$NODE_VERSION" >&2
    mkdir -p "$root/.node/bin"
    ln -sf "$pkg/bin/node" "$root/.node/bin/node"
  fi
  PATH="$root/.node/bin:$PATH"
  # Native addons (ssh2's optional crypto binding) must build against the headers of the node that runs them.
  npm_config_nodedir="$pkg"
  export PATH npm_config_nodedir
fi

# Install or refresh dependencies when the lock file changed since the last install.
stamp=node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
  echo "igpu-split: set-up: installing the dependencies (npm ci); about a minute on a first run" >&2
  started=$(date +%s)
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "igpu-split: dependencies installed in $(( $(date +%s) - started )) s" >&2
fi

exec "$@"
