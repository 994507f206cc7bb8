"""Operator CLI: ``python -m desk [--db PATH|URL] list [--status S] | show ID | history ID
| seed [--customers N] [--dev] [--force]``.

``seed`` loads demo data (desk.seed); it refuses unless KAIWA_DEV=1 or --dev, and refuses
a desk that already has cases unless --force (which adds to them)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import unicodedata
from collections.abc import Sequence

from desk.db import ENV_VAR, default_db_target, sqlite_path
from desk.errors import DeskError
from desk.models import Case
from desk.service import Desk

_EMPTY = "-"
DEV_ENV = "KAIWA_DEV"


def _width(text: str) -> int:
    """Terminal cells: East Asian wide/full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, cells: int) -> str:
    """Truncate to ``cells`` display cells, then pad (str.ljust miscounts CJK)."""
    out = ""
    for ch in text:
        if _width(out + ch) > cells - (1 if _width(text) > cells else 0):
            out += "…"
            break
        out += ch
    return out + " " * (cells - _width(out))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], max_cell: int = 24) -> str:
    widths = [
        min(max_cell, max(_width(str(r[i])) for r in [headers, *rows])) for i in range(len(headers))
    ]
    lines = [
        "  ".join(_fit(str(c), w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def _time(at: dt.datetime, *, seconds: bool = False) -> str:
    """Compact UTC time; the full ISO form is in ``show`` and the JSON."""
    return at.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


def _format_list(cases: Sequence[Case]) -> str:
    if not cases:
        return "No cases."
    rows = [
        [
            c.id,
            c.status.value,
            c.device_type.value,
            c.customer_name,
            c.phone or _EMPTY,
            f"{c.quote_yen:,}" if c.quote_yen is not None else _EMPTY,
            f"{c.return_kind} {c.return_date}" if c.return_date else _EMPTY,
            _time(c.updated_at),
        ]
        for c in cases
    ]
    headers = ["ID", "STATUS", "DEVICE", "CUSTOMER", "PHONE", "QUOTE ¥", "DATE", "UPDATED"]
    return _table(headers, rows)


def _format_case(case: Case) -> str:
    fields = [
        ("Customer", case.customer_name),
        ("Phone", case.phone or _EMPTY),
        ("Email", case.email or _EMPTY),
        ("Device", case.device_type.value),
        ("Symptom", case.symptom),
        ("Quote", f"{case.quote_yen:,} yen" if case.quote_yen is not None else _EMPTY),
        ("Date", f"{case.return_kind} on {case.return_date}" if case.return_date else _EMPTY),
        ("Created", case.created_at.isoformat()),
        ("Updated", case.updated_at.isoformat()),
    ]
    if case.history:
        last = case.history[-1]
        fields.append(("Changed", f"{last.at.isoformat()} by {last.changed_by}"))
    lines = [f"{case.id}  [{case.status.value}]"]
    lines += [f"  {label + ':':<10}{value}" for label, value in fields]
    lines.append(f"Notes ({len(case.notes)}):")
    lines += [f"  {_time(n.at)}  {n.author}: {n.text}" for n in case.notes]
    return "\n".join(lines)


def _format_history(case: Case) -> str:
    rows = [
        [_time(h.at, seconds=True), h.changed_by, h.action, h.old or _EMPTY, h.new or _EMPTY]
        for h in case.history
    ]
    return f"{case.id} history\n" + _table(["AT", "CHANGED BY", "ACTION", "OLD", "NEW"], rows, 40)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m desk", description=__doc__)
    parser.add_argument(
        "--db",
        default=None,
        help=f"SQLite file, sqlite:///path or postgresql://... (default: ${ENV_VAR} or "
        f"{default_db_target()})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lst = sub.add_parser("list", help="recent cases as a table")
    lst.add_argument("--status", help="only cases in this status")
    lst.add_argument("--limit", type=int, default=50)
    for name, text in (("show", "one case in detail"), ("history", "every change to a case")):
        sub.add_parser(name, help=text).add_argument("case_id", help="e.g. R-1042")
    seed = sub.add_parser("seed", help="load demo customers and cases (development only)")
    seed.add_argument("--customers", type=int, default=30, help="how many (default 30)")
    seed.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    seed.add_argument("--dev", action="store_true", help=f"same as {DEV_ENV}=1")
    seed.add_argument("--force", action="store_true", help="add to a desk that has cases")
    return parser


def _seed(desk_target: str, args: argparse.Namespace) -> int:
    from desk.seed import seed

    if not (args.dev or os.environ.get(DEV_ENV) == "1"):
        print(f"error: seed loads demo data; set {DEV_ENV}=1 or pass --dev", file=sys.stderr)
        return 2
    if args.customers < 1:
        print("error: --customers must be at least 1", file=sys.stderr)
        return 2
    desk = Desk.open(desk_target)
    try:
        if desk.list_cases(limit=1) and not args.force:
            print(
                f"error: {desk.store.describe()} already has cases; pass --force to add "
                "demo data to them",
                file=sys.stderr,
            )
            return 2
        cases = seed(desk, customers=args.customers, rng_seed=args.seed)
    finally:
        desk.close()
    statuses = sorted({c.status.value for c in cases})
    print(f"Added {len(cases)} cases for {args.customers} customers to "
          f"{desk.store.describe()} ({', '.join(statuses)}).")  # fmt: skip
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    target: str = args.db or default_db_target()
    if args.command == "seed":
        try:
            return _seed(target, args)
        except DeskError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    path = sqlite_path(target)
    if path is not None and not path.exists():  # a typo should not create an empty database
        print(f"error: no case database at {path} (use --db or ${ENV_VAR})", file=sys.stderr)
        return 2
    try:
        desk = Desk.open(target)
        if args.command == "list":
            if args.status:
                out = _format_list(desk.find_cases(status=args.status, limit=args.limit))
            else:
                out = _format_list(desk.list_cases(limit=args.limit))
        elif args.command == "show":
            out = _format_case(desk.get_case(args.case_id))
        else:
            out = _format_history(desk.get_case(args.case_id))
    except DeskError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
