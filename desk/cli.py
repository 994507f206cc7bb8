"""Operator CLI: ``python -m desk [--db PATH|URL] list [--status S] | show ID | history ID
| seed [--customers N] [--dev] [--force] | calls list [--case R-1042] | calls show CALL
| calls purge [--days N]``.

``calls purge`` deletes the transcripts (and tool arguments) of calls older than
$KAIWA_CALL_RETENTION_DAYS days (or --days) and keeps their aggregates.

``seed`` loads demo data (desk.seed); it refuses unless KAIWA_DEV=1 or --dev, and refuses
a desk that already has cases unless --force (which adds to them)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import unicodedata
from collections.abc import Sequence

from desk.calls import CallDetail, CallSummary, RecoveryRecord, Segment, ToolRecord
from desk.db import ENV_VAR, default_db_target, sqlite_path
from desk.errors import DeskError
from desk.models import Case
from desk.service import Desk

_EMPTY = "-"
DEV_ENV = "KAIWA_DEV"
RETENTION_ENV = "KAIWA_CALL_RETENTION_DAYS"


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


def _money(cost: float, currency: str | None) -> str:
    return f"{cost:,.4f} {currency or ''}".rstrip()


def _seconds(value: float | None) -> str:
    return _EMPTY if value is None else f"{value:,.0f}s"


def _ms(value: int | None) -> str:
    return _EMPTY if value is None else f"{value:,} ms"


def _format_calls(calls: Sequence[CallSummary]) -> str:
    if not calls:
        return "No calls."
    rows = [
        [
            f"C-{c.id}",
            _time(c.started_at),
            _seconds(c.duration_s),
            c.end_reason or ("(open)" if c.ended_at is None else _EMPTY),
            f"{c.role or _EMPTY}:{c.identity or _EMPTY}",
            str(c.segments),
            str(c.tool_calls),
            str(c.recoveries),
            _ms(c.latency_p50_ms),
            _money(c.cost, c.currency),
        ]
        for c in calls
    ]
    headers = ["CALL", "STARTED", "LENGTH", "ENDED BY", "WHO", "SAID", "TOOLS", "RECOV",
               "P50", "COST"]  # fmt: skip
    return _table(headers, rows, 32)


def _format_call(detail: CallDetail) -> str:
    c, u = detail.call, detail.call.usage
    fields = [
        ("Room", c.room),
        ("Scope", c.scope),
        ("Jobs", ", ".join(c.jobs) or _EMPTY),
        ("Who", f"{c.role or _EMPTY} {c.identity or ''}".strip()),
        ("Channel", c.channel or _EMPTY),
        ("Model", c.model or _EMPTY),
        ("Started", c.started_at.isoformat()),
        ("Ended", f"{c.ended_at.isoformat()} ({c.end_reason})" if c.ended_at else "(open)"),
        ("Tokens in", f"{u.input_total:,} (audio {u.input_audio:,}, text {u.input_text:,}, "
                      f"image {u.input_image:,}, cached {u.input_cached:,})"),
        ("Tokens out", f"{u.output_total:,} (audio {u.output_audio:,}, text {u.output_text:,})"),
        ("Cost", f"{_money(c.cost, c.currency)} (estimated)"),
        ("Latency", f"p50 {_ms(c.latency_p50_ms)}, p95 {_ms(c.latency_p95_ms)} over "
                    f"{c.turns} turn(s), tool time apart"),
    ]  # fmt: skip
    if c.purged_at:
        fields.append(("Purged", f"{c.purged_at.isoformat()} (transcript removed)"))
    lines = [f"C-{c.id}"]
    lines += [f"  {label + ':':<11}{value}" for label, value in fields]
    lines.append("Timeline:")
    for item in detail.timeline():
        at = item.at.strftime("%H:%M:%S")
        if isinstance(item, Segment):
            cut = " [interrupted]" if item.interrupted else ""
            lines.append(f"  {at}  {item.speaker:<6}  {item.text}{cut}")
        elif isinstance(item, ToolRecord):
            what = item.outcome + (f": {item.error}" if item.error else "")
            case = f" -> {item.case_id}" if item.case_id else ""
            lines.append(
                f"  {at}  tool    {item.name}({item.arguments or '…'}) {what}{case} "
                f"[{item.duration_ms} ms, {item.call_key}]"
            )
        elif isinstance(item, RecoveryRecord):
            lines.append(f"  {at}  recov.  {item.kind} {item.duration_s:.2f}s {item.detail}")
    return "\n".join(lines)


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
    calls = sub.add_parser("calls", help="call records: list, show, purge")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True)
    calls_list = calls_sub.add_parser("list", help="recent calls")
    calls_list.add_argument("--case", help="only calls whose tools touched this case")
    calls_list.add_argument("--limit", type=int, default=50)
    calls_sub.add_parser("show", help="one call: transcript, tools, usage").add_argument(
        "call_id", help="e.g. C-12 (or the call's scope)"
    )
    purge = calls_sub.add_parser("purge", help="delete old transcripts, keep aggregates")
    purge.add_argument(
        "--days", type=float, default=None, help=f"older than this (default: ${RETENTION_ENV})"
    )
    return parser


def _calls(desk: Desk, args: argparse.Namespace) -> tuple[int, str]:
    if args.calls_command == "list":
        return 0, _format_calls(desk.calls.list_calls(limit=args.limit, case_id=args.case))
    if args.calls_command == "show":
        return 0, _format_call(desk.calls.get_call(args.call_id))
    days = args.days
    if days is None:
        raw = os.environ.get(RETENTION_ENV, "").strip()
        if not raw:
            return 2, f"error: give --days or set {RETENTION_ENV}"
        try:
            days = float(raw)
        except ValueError:
            return 2, f"error: {RETENTION_ENV}={raw} is not a number of days"
    if days < 0:
        return 2, "error: --days must be 0 or more"
    n = desk.calls.purge_transcripts(days)
    return 0, f"Purged the transcripts of {n} call(s) older than {days:g} days."


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
        elif args.command == "calls":
            code, out = _calls(desk, args)
            if code:
                print(out, file=sys.stderr)
                return code
        else:
            out = _format_history(desk.get_case(args.case_id))
    except DeskError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(out)
    return 0
