#!/usr/bin/env bash
# `make run`: the whole stack in the foreground under honcho; Ctrl-C stops everything.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -f .env ]; then set -a; . ./.env; set +a; fi
# `make run` is local development: say so explicitly, whatever .env says. Dev mode lets
# the token server and scripts/run-livekit-server.sh accept the published dev key/secret
# (token_server/devkeys.py); without it both refuse to start with them.
export KAIWA_DEV=1
host=${KAIWA_TOKEN_HOST:-127.0.0.1}
port=${KAIWA_TOKEN_PORT:-8080}
cat <<EOT

  kaiwa is starting.
    web page:        http://$host:$port/
    token endpoint:  POST http://$host:$port/token
    livekit-server:  ${LIVEKIT_URL:-ws://127.0.0.1:7880}
  Development mode (KAIWA_DEV=1): the published dev API key/secret are accepted.
  Ctrl-C stops everything.

EOT
# -e /dev/null: .env is loaded above; honcho would load it again over this environment
# (undoing KAIWA_DEV=1 when .env says false).
exec .venv/bin/honcho -e /dev/null -f Procfile start
