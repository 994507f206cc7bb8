#!/usr/bin/env bash
# Starts livekit-server with livekit.yaml and the API key/secret from the environment / .env.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -f .env ]; then set -a; . ./.env; set +a; fi
: "${LIVEKIT_API_KEY:=devkey}"
: "${LIVEKIT_API_SECRET:=kaiwa-dev-secret-change-me-0123456789abcdef}"
BIN=$(scripts/ensure-livekit-server.sh)
# Keys go through the environment, not argv, so they don't show up in `ps`.
export LIVEKIT_KEYS="$LIVEKIT_API_KEY: $LIVEKIT_API_SECRET"
exec "$BIN" --config "$ROOT/livekit.yaml" "$@"
