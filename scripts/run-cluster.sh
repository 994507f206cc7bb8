#!/usr/bin/env bash
# `make cluster`: a local two-node LiveKit cluster in the foreground under honcho
# (Procfile.cluster); Ctrl-C stops everything.
#
#   redis-server    127.0.0.1:$KAIWA_CLUSTER_REDIS_PORT (6380), in a temp dir, no persistence
#   livekit node A  ws://127.0.0.1:7880 (ICE/TCP 7881, UDP 7882)  } livekit.cluster.yaml,
#   livekit node B  ws://127.0.0.1:7890 (ICE/TCP 7891, UDP 7892)  } sharing that Redis
#   worker A        registered with node A  } KAIWA_STATE_URL = that Redis: handles, leases,
#   worker B        registered with node B  } re-dispatch locks (docs/deploy.md)
#   token server    http://127.0.0.1:8080, hands out node A's URL
#
# `scripts/run-cluster.sh ROLE [a|b]` runs one of them (what Procfile.cluster calls).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

REDIS_PORT=${KAIWA_CLUSTER_REDIS_PORT:-6380}

which=${2:-}
case "${1:-}:$which" in
  node:a | agent:a) http=7880 tcp=7881 udp=7882 ;;
  node:b | agent:b) http=7890 tcp=7891 udp=7892 ;;
  node:* | agent:*) echo "run-cluster.sh: $1 must be a or b" >&2; exit 2 ;;
esac

wait_for_redis() {
  for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "run-cluster.sh: redis-server on port $REDIS_PORT did not answer within 10 s" >&2
  exit 1
}

role=${1:-}
case "$role" in
  "")
    if [ -f .env ]; then set -a; . ./.env; set +a; fi
    # local development, like `make run` (the published dev key/secret are accepted)
    export KAIWA_DEV=1
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
      echo "kaiwa: make cluster needs redis-server and redis-cli on PATH" \
        "(Debian/Ubuntu: apt-get install redis-server)"
      exit 1
    }
    if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
      echo "kaiwa: something already answers on 127.0.0.1:$REDIS_PORT;" \
        "set KAIWA_CLUSTER_REDIS_PORT to a free port"
      exit 1
    fi
    export KAIWA_CLUSTER_REDIS_PORT=$REDIS_PORT
    export KAIWA_STATE_URL="redis://127.0.0.1:$REDIS_PORT/0"
    export LIVEKIT_URL=ws://127.0.0.1:7880
    # a bad setting (e.g. no Google credential) stops here, before anything starts
    .venv/bin/python - <<'PY' || exit 2
import sys
from agent.settings import SettingsError, load_settings
try:
    load_settings().require_google_credentials()
except SettingsError as e:
    sys.exit(f"kaiwa: {e}")
PY
    host=${KAIWA_TOKEN_HOST:-127.0.0.1}
    port=${KAIWA_TOKEN_PORT:-8080}
    cat <<EOT

  kaiwa cluster is starting (two livekit-server nodes, two workers, one Redis).
    web page:        http://$host:$port/   (callers get node A: ws://127.0.0.1:7880)
    node B:          ws://127.0.0.1:7890   (same rooms; connect there with any token)
    redis:           redis://127.0.0.1:$REDIS_PORT/0 (throwaway, not persisted)
  Development mode (KAIWA_DEV=1): the published dev API key/secret are accepted.
  Try it: kill -9 the worker carrying a call; the other one takes it over.
  Ctrl-C stops everything.

EOT
    exec .venv/bin/honcho -e /dev/null -f Procfile.cluster start
    ;;
  redis)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/kaiwa-cluster-redis.XXXXXX")
    exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" \
      --save "" --appendonly no
    ;;
  node)
    wait_for_redis
    # run-livekit-server.sh checks the keys and passes them by environment; its own
    # --config livekit.yaml is overridden by the later --config (the last one wins).
    exec scripts/run-livekit-server.sh --config "$ROOT/livekit.cluster.yaml" \
      --port "$http" --rtc.tcp_port "$tcp" --udp-port "$udp" \
      --redis-host "127.0.0.1:$REDIS_PORT"
    ;;
  agent)
    export LIVEKIT_URL="ws://127.0.0.1:$http"
    base=${KAIWA_WORKER_HTTP_PORT:-8081}
    if [ "$which" = b ]; then
      export KAIWA_WORKER_HTTP_PORT=$((base + 1))
      if [ -n "${KAIWA_METRICS_PORT:-}" ]; then export KAIWA_METRICS_PORT=$((KAIWA_METRICS_PORT + 1)); fi
    else
      export KAIWA_WORKER_HTTP_PORT=$base
    fi
    # count sessions, not machine CPU (shared by everything here); see run-agent.sh
    export KAIWA_MAX_SESSIONS="${KAIWA_MAX_SESSIONS:-4}"
    # honcho gives everything 5 s after Ctrl-C; don't start a 5-minute drain
    export KAIWA_DRAIN_TIMEOUT_S="${KAIWA_DRAIN_TIMEOUT_S:-3}"
    # Restart a worker that dies, as a supervisor (systemd, Kubernetes) would: honcho
    # would otherwise stop the whole cluster when one worker is killed, and killing one
    # is the point (its calls move to the other worker). Ctrl-C (SIGTERM to this process
    # group, so the worker has it too) stops the worker and then this loop.
    stopping=
    trap 'stopping=1' TERM INT
    while :; do
      .venv/bin/python agent/agent.py start &
      child=$!
      code=0
      wait "$child" || code=$?
      if [ -n "$stopping" ]; then wait "$child" 2>/dev/null; exit 0; fi
      if [ "$code" -eq 2 ]; then exit 2; fi  # a configuration error: restarting won't help
      echo "kaiwa: worker $which exited ($code); restarting it in 2 s"
      sleep 2
    done
    ;;
  token)
    exec .venv/bin/python -m token_server
    ;;
  *)
    echo "usage: scripts/run-cluster.sh [redis | node a|b | agent a|b | token]" >&2
    exit 2
    ;;
esac
