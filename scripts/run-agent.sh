#!/usr/bin/env bash
# The worker under `make run`. If it stops on a configuration error (e.g. no Google
# credential), keep this slot alive so honcho doesn't tear down livekit-server and the
# token server with it: the error line above says what to fix.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
.venv/bin/python agent/agent.py dev
code=$?
[ "$code" -eq 0 ] && exit 0
echo "kaiwa: the agent worker stopped (exit $code); livekit-server and the token server keep running. Fix the setting above, then restart make run."
exec sleep infinity
