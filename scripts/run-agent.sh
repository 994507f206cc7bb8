#!/usr/bin/env bash
# The worker under `make run`. If it stops on a configuration error (e.g. no Google
# credential), keep this slot alive so honcho doesn't tear down livekit-server and the
# token server with it: the error line above says what to fix.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
# On a laptop the browser, livekit-server and the worker share the CPU; LiveKit's
# CPU-based load would make livekit-server skip the worker (it dispatches only below
# 0.7). Locally, count sessions instead unless told otherwise.
if [ -f .env ]; then
  # the environment wins over .env: `make run` exports KAIWA_DEV=1 even when .env says false
  environment=$(export -p)
  set -a; . ./.env; set +a
  eval "$environment" 2>/dev/null || true
fi
export KAIWA_MAX_SESSIONS="${KAIWA_MAX_SESSIONS:-4}"
# Keep one job process warm (prewarmed by KAIWA_PREWARM) so the first caller doesn't wait
# for a process to start (up to 11 s in a trial). `dev` only changes the framework's
# DEFAULT to 0 idle processes (ServerEnvOption dev_default=0 in livekit-agents 1.8.9
# worker.py); an explicit num_idle_processes is used as given in dev mode too, and `dev`
# no longer reloads on file changes (it only warns), so `dev` + this setting is enough.
export KAIWA_NUM_IDLE_PROCESSES="${KAIWA_NUM_IDLE_PROCESSES:-1}"
.venv/bin/python agent/agent.py dev
code=$?
[ "$code" -eq 0 ] && exit 0
echo "kaiwa: the agent worker stopped (exit $code); livekit-server and the token server keep running. Fix the setting above, then restart make run."
exec sleep infinity
