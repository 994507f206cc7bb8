#!/usr/bin/env bash
# `make run`: the whole stack in the foreground under honcho; Ctrl-C stops everything.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -f .env ]; then set -a; . ./.env; set +a; fi
host=${KAIWA_TOKEN_HOST:-127.0.0.1}
port=${KAIWA_TOKEN_PORT:-8080}
cat <<EOT

  kaiwa is starting.
    web page:        http://$host:$port/
    token endpoint:  POST http://$host:$port/token
    livekit-server:  ${LIVEKIT_URL:-ws://127.0.0.1:7880}
  Ctrl-C stops everything.

EOT
exec .venv/bin/honcho -f Procfile start
