"""kaiwa's worker entry: `python agent/agent.py dev|start|console`.

Run as a script, Python puts `agent/` first on sys.path, where this very file would
shadow the `agent` package; point it at the project root instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if sys.path and Path(sys.path[0] or ".").resolve() == _HERE:
    sys.path[0] = str(_HERE.parent)

from dotenv import load_dotenv  # noqa: E402
from livekit.agents import cli  # noqa: E402

from agent.gemini import private  # noqa: E402
from agent.settings import SettingsError, load_settings  # noqa: E402
from agent.worker import build_server  # noqa: E402

_RUN_COMMANDS = {"start", "dev", "console", "connect"}


def main() -> None:
    # .env values reach the framework too (LIVEKIT_* are also read by livekit-agents).
    load_dotenv()
    try:
        settings = load_settings()
        if _RUN_COMMANDS & set(sys.argv[1:]):
            settings.check_keys()
            settings.require_google_credentials()
        # every private plugin name kaiwa hooks must still be there (agent/gemini/private.py)
        private.check()
    except (SettingsError, private.PrivateNameMissing) as e:
        print(f"kaiwa: {e}", file=sys.stderr)
        sys.exit(2)
    cli.run_app(build_server(settings))


if __name__ == "__main__":
    main()
