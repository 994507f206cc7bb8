"""The web pages: the caller page at `/` and the staff console at `/console` (the built
bundle when present, else a hint to build it)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles

NOT_BUILT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kaiwa</title></head>
<body><h1>kaiwa</h1>
<p>The web page is not built. Run <code>make web</code> and restart the token server.</p>
<p>The token endpoint is <code>POST /token</code>.</p>
</body></html>
"""


def mount_web(app: FastAPI, web_dir: Path) -> bool:
    """Serve `web_dir` at `/`. Call after the API routes so they take precedence."""
    console = web_dir / "console.html"

    @app.get("/console", include_in_schema=False)
    async def console_page() -> Response:
        # the page itself is public (like `/`); its data needs staff (/api/console)
        if not console.is_file():
            return HTMLResponse(NOT_BUILT_HTML)
        return FileResponse(console, headers={"Cache-Control": "no-cache"})

    if (web_dir / "index.html").is_file():
        app.mount("/", StaticFiles(directory=web_dir, html=True), name="web")
        return True

    @app.get("/", include_in_schema=False)
    async def not_built() -> HTMLResponse:
        return HTMLResponse(NOT_BUILT_HTML)

    return False
