"""`python -m token_server [--host H] [--port P]`: run the token server (one worker)."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn
from pydantic import ValidationError

from token_server.app import create_app
from token_server.settings import Settings
from token_server.startup import StartupError, check_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m token_server", description=__doc__)
    parser.add_argument("--host", help="listen address (default: KAIWA_TOKEN_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default: KAIWA_TOKEN_PORT)")
    parser.add_argument("--log-level", default="info", help="debug|info|warning|error")
    args = parser.parse_args(argv)

    try:
        settings = Settings()
        overrides = {k: v for k, v in (("token_host", args.host), ("token_port", args.port)) if v}
        if overrides:
            settings = settings.model_copy(update=overrides)
        check_settings(settings)
        app = create_app(settings)
    except StartupError as exc:
        print(f"token_server: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        print(f"token_server: invalid setting {where}: {first.get('msg')}", file=sys.stderr)
        return 2

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    host, port = settings.token_host, settings.token_port
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    print(f"kaiwa token server: open http://{shown}:{port}/", flush=True)
    print(f"  token endpoint: POST http://{shown}:{port}/token", flush=True)
    print(f"  clients connect to LiveKit at {settings.client_livekit_url}", flush=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=1,
        access_log=False,  # our AccessMiddleware logs one structured line per request
        log_level=args.log_level.lower(),
        # X-Forwarded-For is ours to judge (KAIWA_TRUSTED_PROXIES, token_server/proxies.py):
        # the app needs the real TCP peer to decide whether to believe it.
        proxy_headers=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
