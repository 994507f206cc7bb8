"""Run the fake standalone: `python -m tests.fakes.gemini_live --port 8765`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from .server import GeminiLiveFake


async def _run(args: argparse.Namespace) -> None:
    fake = GeminiLiveFake(host=args.host, port=args.port, auto=not args.no_auto, ca_dir=args.ca_dir)
    await fake.start()
    print(f"export GOOGLE_GEMINI_BASE_URL={fake.base_url}")
    print(f"export SSL_CERT_FILE={fake.ca_file}")
    print("export GOOGLE_API_KEY=fake-key", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.gemini_live", description="Fake Gemini Live server"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ca-dir", default=".fake-gemini", help="where ca.pem is written")
    parser.add_argument("--no-auto", action="store_true", help="disable the auto script")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    args = parser.parse_args(argv)
    args.ca_dir = Path(args.ca_dir).resolve()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("websockets").setLevel(logging.WARNING)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
