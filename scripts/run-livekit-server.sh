#!/usr/bin/env bash
# Starts livekit-server with livekit.yaml and the API key/secret from the environment / .env.
# Outside dev mode (KAIWA_DEV=1, which `make run` sets) it refuses kaiwa's published
# development credentials and secrets under 32 characters, like the token server
# (token_server/devkeys.py holds the same literals; a unit test keeps them in step).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -f .env ]; then
  # The environment wins over .env, as in the token server: `make run` exports KAIWA_DEV=1
  # even when .env (copied from .env.example) says false.
  environment=$(export -p)
  set -a; . ./.env; set +a
  eval "$environment" 2>/dev/null || true  # (a readonly variable: nothing to restore)
fi

refuse() { echo "run-livekit-server.sh: $*" >&2; exit 2; }

case "$(printf '%s' "${KAIWA_DEV:-}" | tr '[:upper:]' '[:lower:]')" in
  1 | true | yes | on) dev=1 ;;
  *) dev=0 ;;
esac
if [ "$dev" = 1 ]; then
  : "${LIVEKIT_API_KEY:=devkey}"
  : "${LIVEKIT_API_SECRET:=kaiwa-dev-secret-change-me-0123456789abcdef}"
else
  key=${LIVEKIT_API_KEY:-devkey}
  secret=${LIVEKIT_API_SECRET:-kaiwa-dev-secret-change-me-0123456789abcdef}
  case "$key:$secret" in
    devkey:* | *:kaiwa-dev-secret-change-me-0123456789abcdef | *:secret)
      refuse "LIVEKIT_API_KEY/LIVEKIT_API_SECRET are kaiwa's published development" \
        "credentials; generate your own (livekit-server generate-keys) or set KAIWA_DEV=1" \
        "for local use" ;;
  esac
  if [ "${#secret}" -lt 32 ]; then
    refuse "LIVEKIT_API_SECRET is shorter than 32 characters; use a generated secret" \
      "(livekit-server generate-keys) or set KAIWA_DEV=1 for local use"
  fi
fi
BIN=$(scripts/ensure-livekit-server.sh)
# Keys go through the environment, not argv, so they don't show up in `ps`.
export LIVEKIT_KEYS="$LIVEKIT_API_KEY: $LIVEKIT_API_SECRET"
# livekit.yaml's webhooks are signed with this key (the env var overrides `webhook.api_key`).
export LIVEKIT_WEBHOOK_API_KEY="$LIVEKIT_API_KEY"
config="$ROOT/livekit.yaml"
token_port=${KAIWA_TOKEN_PORT:-8080}
if [ "$token_port" != 8080 ]; then  # the webhook goes to the token server's port
  config="${TMPDIR:-/tmp}/kaiwa-livekit-$token_port.yaml"
  sed "s#http://127.0.0.1:8080/livekit/webhook#http://127.0.0.1:$token_port/livekit/webhook#" \
    "$ROOT/livekit.yaml" >"$config"
fi
exec "$BIN" --config "$config" "$@"
