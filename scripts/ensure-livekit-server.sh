#!/usr/bin/env bash
# Prints the path of a livekit-server >= 1.13.3, installing v1.13.5 into .bin/ if needed.
#   1. livekit-server on PATH, if new enough;
#   2. <project>/.bin/livekit-server from an earlier install;
#   3. `go install github.com/livekit/livekit-server/cmd/server@v1.13.5` into .bin/.
set -euo pipefail

MIN_VERSION=1.13.3
INSTALL_VERSION=v1.13.5
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR="$ROOT/.bin"

version_of() {  # "livekit-server version 1.13.5" -> 1.13.5
  "$1" --version 2>/dev/null | awk '{print $NF}'
}

new_enough() {
  local v
  v=$(version_of "$1") || return 1
  [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$v" | sort -V | head -n1)" = "$MIN_VERSION" ]
}

for candidate in "$(command -v livekit-server || true)" "$BIN_DIR/livekit-server"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && new_enough "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

if [ -z "${KAIWA_NO_INSTALL:-}" ] && command -v go >/dev/null 2>&1; then
  echo "livekit-server not found: building $INSTALL_VERSION with go install (a few minutes, once)..." >&2
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" go install "github.com/livekit/livekit-server/cmd/server@$INSTALL_VERSION" >&2
  mv -f "$BIN_DIR/server" "$BIN_DIR/livekit-server"
  if new_enough "$BIN_DIR/livekit-server"; then
    echo "$BIN_DIR/livekit-server"
    exit 0
  fi
fi

echo "kaiwa: no livekit-server >= $MIN_VERSION: install Go >= 1.26 (then re-run) or put a livekit-server binary on PATH (https://docs.livekit.io/transport/self-hosting/local/)" >&2
exit 1
