"""A throwaway PostgreSQL for tests, and a desk fixture that runs on both backends.

``postgres`` (session): initdb into a temp dir, start on a free port (TCP on 127.0.0.1
and a unix socket in the temp dir), stop and delete at session end. Uses the newest
/usr/lib/postgresql/*/bin (Debian's layout) or initdb/pg_ctl on PATH. PostgreSQL refuses
to run as root, so as root initdb and pg_ctl run as the ``postgres`` user (or ``nobody``),
which owns the temp dir.

Missing PostgreSQL (or psycopg) skips the PostgreSQL half of the tests; with ``CI=true``
it fails them instead, so CI can't silently test one backend only.

``desk_target`` (per test, parametrized ``sqlite`` / ``postgresql``): a SQLite path in
tmp_path, or a URL for a fresh schema of the shared server (search_path set in the URL).
Test modules use it by importing it: ``from tests.support.postgres import desk_target,
postgres  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

DBNAME = "desk_test"
_counter = itertools.count(1)


def _binaries() -> Path | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required in CI: {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@dataclass
class PostgresServer:
    root: Path
    port: int
    socket_dir: Path
    user: tuple[int, int] | None  # (uid, gid) to run the server as; None: as ourselves
    bindir: Path

    def run(self, *args: str, timeout: float = 90, check: bool = True) -> None:
        kwargs: dict[str, Any] = {}
        if self.user is not None:
            kwargs = {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        subprocess.run(
            args, capture_output=True, text=True, timeout=timeout, check=check, cwd="/",
            **kwargs,
        )  # fmt: skip

    def url(self, schema: str | None = None) -> str:
        base = (
            f"postgresql://postgres@/{DBNAME}?host={quote(str(self.socket_dir), safe='')}"
            f"&port={self.port}"
        )
        if schema is None:
            return base
        return base + "&options=" + quote(f"-csearch_path={schema}", safe="")

    def fresh_schema(self) -> str:
        """A new empty schema; a URL for it is ``url(schema)``."""
        import psycopg

        schema = f"t{os.getpid()}_{next(_counter)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return schema

    def discard(self) -> None:
        """Stop the server and delete its files."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def stop(self) -> None:
        data = str(self.root / "data")
        self.run(str(self.bindir / "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop",
                 timeout=60, check=False)  # fmt: skip


def _server_user() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root and neither 'postgres' nor 'nobody' exists")


def start_postgres() -> PostgresServer:
    bindir = _binaries()
    if bindir is None:
        raise FileNotFoundError("no initdb/pg_ctl (apt-get install postgresql)")
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="kaiwa-pg-"))
    if user is not None:
        os.chown(root, *user)
    os.chmod(root, 0o700)
    server = PostgresServer(root, _free_port(), root, user, bindir)
    data = str(root / "data")
    try:
        server.run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", timeout=120)  # fmt: skip
        options = (
            f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        server.run(str(bindir / "pg_ctl"), "-D", data, "-o", options,
                   "-l", str(root / "server.log"), "-w", "-t", "60", "start")  # fmt: skip
        import psycopg

        with psycopg.connect(server.url().replace(f"/{DBNAME}?", "/postgres?"),
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f"CREATE DATABASE {DBNAME}")
    except BaseException as err:
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        if isinstance(err, subprocess.CalledProcessError):
            raise RuntimeError(f"{err.cmd[-1]} failed: {err.stderr}\n{detail}") from err
        raise
    return server


def require_psycopg() -> None:
    """At the top of a module that imports psycopg: skip it (fail in CI) without it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        reason = "psycopg is not installed (pip install 'psycopg[binary]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI: {reason}", pytrace=False)
        pytest.skip(f"PostgreSQL not available: {reason}", allow_module_level=True)


_SERVER = pytest.StashKey["PostgresServer | str"]()


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> PostgresServer:
    """One server per test session. Each module that imports this fixture gets its own
    fixture definition, so the server lives on the session's config (stopped when the
    session ends) rather than in the fixture."""
    config = request.config
    if _SERVER not in config.stash:
        try:
            import psycopg  # noqa: F401

            server: PostgresServer | str = start_postgres()
        except ImportError:
            server = "psycopg is not installed (pip install 'psycopg[binary]')"
        except FileNotFoundError as err:
            server = str(err)
        config.stash[_SERVER] = server
        if isinstance(server, PostgresServer):
            config.add_cleanup(server.discard)
    found = config.stash[_SERVER]
    if isinstance(found, str):
        _unavailable(found)
        raise AssertionError("unreachable")  # _unavailable raises
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def desk_target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's Desk lives: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "desk.sqlite3")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.url(server.fresh_schema())
