"""The staff console's data: JSON under /api/console/..., for staff only.

Routes (`Cache-Control: no-store`):
  /api/console/me                 {"identity", "staff": true, "timezone"}
  /api/console/summary            {"counts": {status: n, ...}, "total": n, "capped": bool}
  /api/console/cases              the queue: ?status=&device=&q=&from=&to=&sort=&dir=&limit=
                                  → {"cases": [row, ...], "total": n, "capped": bool};
                                  from/to (YYYY-MM-DD, both ends included) are the days
                                  the case was opened (created_at) in KAIWA_TIMEZONE
  /api/console/cases/{case_id}    one case with notes and history (desk.Case.to_dict()),
                                  plus "calls": the calls whose tools touched it
  /api/console/calls              call records, most recent first: ?limit=&case=
                                  → {"calls": [summary, ...]}
  /api/console/calls/{call_id}    one call: {"call": summary, "timeline": [item, ...],
                                  "turns": [...]}; the transcript with tool calls and
                                  recoveries inline in time order (desk/calls.py)
  POST /api/console/cases         {"customer_name", "phone"?, "email"?, "device_type",
                                  "symptom"} → 201 and the new case (with calls); a
                                  repeat with the same Idempotency-Key → 200, the same case
  POST /api/console/cases/{case_id}/notes  {"text"} → the case (with calls); recorded
                                  as staff:<identity>
  POST .../cases/{case_id}/contact     {"phone"?, "email"?} (absent: unchanged, "": removed)
  POST .../cases/{case_id}/technician  {"technician"}
  POST .../cases/{case_id}/reopen      {"reason"} (the page asks the clerk to confirm first)
  POST .../cases/{case_id}/payments    {"amount_yen", "method"} (confirmed on the page too)
  POST .../cases/{case_id}/quote       {"amount_yen"} → {"applied": false, "proposal": {...}}
                                  (checked, nothing written); {"amount_yen", "confirm":
                                  true} → the case with the quote set (see quote_route)
  POST .../cases/{case_id}/attachments?name=photo.jpg   the raw bytes as the body (a
                                  photo, at most desk.validate.MAX_ATTACHMENT_BYTES)
  GET  .../cases/{case_id}/attachments/{id}   the bytes, with their sniffed content type
  Each write answers with the case (with calls) and is recorded as staff:<identity>; an
  optional Idempotency-Key header makes a repeated request (a double click, a retry)
  return the first result. A refused input is 400 {"error": "invalid_request", "detail":
  sentence, "field": name} when the desk names the field (customer_name, phone, ...).

Who may read: the request authenticates like a token request (token_server/auth.py) and
must be staff: a bearer key marked `staff`, or an authenticated identity (bearer key
`identity=` or the trusted proxy's user header) listed in KAIWA_STAFF_IDENTITIES. Anyone
else gets 403 `{"error": "forbidden"}` (401 when not authenticated at all; open mode has
no staff, so the console needs bearer or proxy auth).

The data comes from desk.Desk, opened from KAIWA_DESK_DB (the worker's setting, same
default file), in a thread: the desk is synchronous. The desk reads at most 100 cases per
query (desk.validate.limit), so counts and the queue say `capped` when they hit that.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, FastAPI, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.responses import JSONResponse, Response

from desk import (
    Case,
    CaseStatus,
    Desk,
    DeskError,
    InvalidInput,
    WrongState,
    parse_device_type,
    parse_status,
)
from desk import validate as desk_validate
from desk.calls import CallDetail, CallNotFound, CallSummary, RecoveryRecord, Segment, ToolRecord
from desk.service import QUOTABLE
from desk.status import LIFECYCLE
from desk.validate import MAX_ATTACHMENT_BYTES
from token_server.auth import Authenticator
from token_server.errors import NO_STORE, ApiError
from token_server.proxies import TrustedProxies
from token_server.settings import REPO_ROOT, Settings

log = logging.getLogger("token_server")

DESK_LIMIT = 100  # the desk's own cap per query
_TOO_LARGE = f"The file is larger than {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB."
_ORDER = {s.value: i for i, s in enumerate([*LIFECYCLE, CaseStatus.CANCELLED])}
_CASE_ID = re.compile(r"^\s*(?:[Rr]\s*-?\s*)?\d{3,7}\s*$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FieldError(ApiError):
    """A 4xx whose sentence belongs next to one input: the body adds {"field": name}."""

    def __init__(self, status: int, code: str, detail: str, field: str | None) -> None:
        super().__init__(status, code, detail)
        self.field = field


class ConsoleSettings(BaseSettings):
    """The one setting the console shares with the worker (agent/settings.py)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
    desk_db: str = Field(
        default=str(REPO_ROOT / "data" / "desk.sqlite3"), validation_alias="KAIWA_DESK_DB"
    )
    # The business's calendar (the worker's KAIWA_TIMEZONE): the queue's date filter
    # takes days in it.
    timezone: str = Field(default="Asia/Tokyo", validation_alias="KAIWA_TIMEZONE")


def business_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        log.warning("KAIWA_TIMEZONE=%s is not a known time zone; the console uses UTC", name)
        return ZoneInfo("UTC")


def parse_day(value: str | None, name: str) -> dt.date | None:
    """A ?from= / ?to= day (YYYY-MM-DD; blank = no bound), or a FieldError sentence."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        if not _DAY.match(text):
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FieldError(
            400,
            "invalid_request",
            f"'{text[:40]}' is not a date; give the {name} date as year-month-day, "
            "for example 2026-03-01.",
            name,
        ) from None


Window = tuple[dt.datetime | None, dt.datetime | None]


def created_window(day_from: dt.date | None, day_to: dt.date | None, zone: dt.tzinfo) -> Window:
    """Days [from, to] in the business's zone as the desk's (created_since, created_before)."""
    if day_from and day_to and day_from > day_to:
        raise FieldError(
            400,
            "invalid_request",
            f"The 'from' date ({day_from.isoformat()}) is after the 'to' date "
            f"({day_to.isoformat()}); swap them or widen the range.",
            "from",
        )
    since = dt.datetime.combine(day_from, dt.time.min, zone) if day_from else None
    before = (
        dt.datetime.combine(day_to + dt.timedelta(days=1), dt.time.min, zone) if day_to else None
    )
    return since, before


class DeskHandle:
    """Opens the desk on first use (migrations run once), shared by the routes."""

    def __init__(self, target: str | Callable[[], str]) -> None:
        self._target = target
        self._desk: Desk | None = None
        self._lock = threading.Lock()

    def get(self) -> Desk:
        with self._lock:
            if self._desk is None:
                target = self._target() if callable(self._target) else self._target
                self._desk = Desk.open(target)
            return self._desk

    def close(self) -> None:
        if self._desk is not None:
            self._desk.close()


def row(case: Case) -> dict[str, Any]:
    """One queue row: what the list shows and sorts by."""
    return {
        "id": case.id,
        "customer_name": case.customer_name,
        "device_type": case.device_type.value,
        "status": case.status.value,
        "quote_yen": case.quote_yen,
        "return_date": case.return_date.isoformat() if case.return_date else None,
        "return_kind": case.return_kind,
        "created_at": case.created_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "changed_by": case.changed_by,
        "symptom": case.symptom[:120],
    }


SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id": lambda r: int(re.sub(r"\D", "", r["id"]) or 0),
    "updated_at": lambda r: r["updated_at"],
    "created_at": lambda r: r["created_at"],
    "status": lambda r: _ORDER.get(r["status"], 99),
    "customer_name": lambda r: r["customer_name"].casefold(),
    "device_type": lambda r: r["device_type"],
    "quote_yen": lambda r: (r["quote_yen"] is None, r["quote_yen"] or 0),
    "return_date": lambda r: (r["return_date"] is None, r["return_date"] or ""),
}


def queue(
    desk: Desk,
    *,
    status: str | None = None,
    device: str | None = None,
    q: str | None = None,
    sort: str = "updated_at",
    direction: str = "desc",
    limit: int = DESK_LIMIT,
    created: Window = (None, None),
) -> dict[str, Any]:
    """The filtered, sorted queue (synchronous: run it in a thread). ``created`` is
    created_window()'s answer: the days the cases were opened."""
    if sort not in SORT_KEYS:
        raise ApiError(400, "invalid_request", f"sort must be one of {', '.join(SORT_KEYS)}")
    if direction not in ("asc", "desc"):
        raise ApiError(400, "invalid_request", "dir must be asc or desc")
    try:
        status_v = parse_status(status).value if status else None
        device_v = parse_device_type(device).value if device else None
    except DeskError as e:
        raise ApiError(400, "invalid_request", str(e)) from None
    # The window goes to the database: the 100 most recent cases opened in those days,
    # not the days' share of the 100 most recent cases.
    since, before = created
    cases = desk.find_cases(
        status=status_v, created_since=since, created_before=before, limit=DESK_LIMIT
    )
    capped = len(cases) >= DESK_LIMIT
    text = (q or "").strip()
    if text:
        cases = _search(desk, cases, text, status_v, created)
    if device_v:
        cases = [c for c in cases if c.device_type.value == device_v]
    rows = [row(c) for c in cases]
    rows.sort(key=SORT_KEYS[sort], reverse=direction == "desc")
    return {"cases": rows[: max(1, min(limit, DESK_LIMIT))], "total": len(rows), "capped": capped}


def _search(
    desk: Desk,
    cases: list[Case],
    text: str,
    status: str | None,
    created: Window,
) -> list[Case]:
    folded = text.casefold()
    digits = re.sub(r"\D", "", text)
    since, before = created
    hits = {
        c.id: c
        for c in cases
        if folded in c.customer_name.casefold()
        or folded in c.symptom.casefold()
        or folded in c.id.casefold()
        or (len(digits) >= 4 and digits in re.sub(r"\D", "", c.phone or ""))
    }
    try:  # the desk's own name matching (kana, romaji, word order)
        matches = desk.find_cases(
            name=text, status=status, created_since=since, created_before=before,
            limit=DESK_LIMIT,
        )  # fmt: skip
        for c in matches:
            hits.setdefault(c.id, c)
    except DeskError:
        pass
    if _CASE_ID.match(text):
        try:
            c = desk.get_case(text)
            if (
                (status is None or c.status.value == status)
                and (since is None or c.created_at >= since)
                and (before is None or c.created_at < before)
            ):
                hits.setdefault(c.id, c)
        except DeskError:
            pass
    return list(hits.values())


CALLS_LIMIT = 200


def call_row(call: CallSummary) -> dict[str, Any]:
    """A call in a list: the desk's summary plus its duration and a display id."""
    return {**call.to_dict(), "ref": f"C-{call.id}", "duration_s": call.duration_s}


def _detail_json(detail: str) -> Any:
    try:
        return json.loads(detail) if detail else {}
    except ValueError:
        return {"text": detail}


def timeline_item(item: Segment | ToolRecord | RecoveryRecord) -> dict[str, Any]:
    at = item.at.isoformat()
    if isinstance(item, Segment):
        return {
            "kind": "segment",
            "at": at,
            "speaker": item.speaker,
            "text": item.text,
            "interrupted": item.interrupted,
        }
    if isinstance(item, ToolRecord):
        return {
            "kind": "tool",
            "at": at,
            "call_key": item.call_key,
            "name": item.name,
            "arguments": item.arguments,  # redacted by the worker before it was stored
            "outcome": item.outcome,
            "duration_ms": item.duration_ms,
            "error": item.error,
            "case_id": item.case_id,
        }
    return {
        "kind": "recovery",
        "at": at,
        "recovery": item.kind,
        "duration_s": item.duration_s,
        "detail": _detail_json(item.detail),
    }


def call_detail(detail: CallDetail) -> dict[str, Any]:
    return {
        "call": call_row(detail.call),
        "timeline": [timeline_item(i) for i in detail.timeline()],
        "turns": [
            {"at": t.at.isoformat(), "latency_ms": t.latency_ms, "tool_ms": t.tool_ms}
            for t in detail.turns
        ],
    }


def case_with_calls(desk: Desk, case_id: str) -> dict[str, Any]:
    case = desk.get_case(case_id)
    calls = desk.calls.list_calls(limit=CALLS_LIMIT, case_id=case.id)
    return {**case.to_dict(), "calls": [call_row(c) for c in calls]}


def summary(desk: Desk) -> dict[str, Any]:
    counts: dict[str, int] = {}
    capped = False
    for status in _ORDER:
        n = len(desk.find_cases(status=status, limit=DESK_LIMIT))
        counts[status] = n
        capped = capped or n >= DESK_LIMIT
    return {"counts": counts, "total": sum(counts.values()), "capped": capped}


def mount_console(
    app: FastAPI,
    settings: Settings,
    *,
    auth: Authenticator,
    proxies: TrustedProxies,
    desk_target: str | None = None,
) -> DeskHandle:
    """Add the /api/console routes; returns the desk handle (closed by the caller)."""
    handle = DeskHandle(desk_target or (lambda: ConsoleSettings().desk_db))
    staff_ids = frozenset(settings.staff_identities)
    router = APIRouter(prefix="/api/console", include_in_schema=False)
    zones: list[ZoneInfo] = []

    def zone() -> ZoneInfo:
        if not zones:  # read on first use, like the desk (tests set the environment late)
            zones.append(business_zone(ConsoleSettings().timezone))
        return zones[0]

    async def field_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, FieldError)
        metrics = getattr(app.state, "metrics", None)
        if metrics is not None:
            metrics.refusal(exc.code)
        body = {"error": exc.code, "detail": exc.detail, "field": exc.field}
        return JSONResponse(body, status_code=exc.status, headers=NO_STORE)

    app.add_exception_handler(FieldError, field_error)

    def require_staff(request: Request) -> str:
        peer = request.client.host if request.client else None
        client_ip = proxies.client_ip(peer, request.headers.getlist("x-forwarded-for"))
        principal = auth.authenticate(
            request.headers, client_ip, from_trusted_proxy=proxies.is_trusted(peer)
        )
        if principal.staff or (principal.identity is not None and principal.identity in staff_ids):
            return principal.identity or "staff"
        raise ApiError(403, "forbidden", "the console is for staff only")

    async def run(fn: Callable[[], Any], status_code: int = 200) -> JSONResponse:
        try:
            body = await asyncio.to_thread(fn)
        except CallNotFound as e:
            raise ApiError(404, "not_found", str(e)) from None
        except InvalidInput as e:
            raise FieldError(400, "invalid_request", str(e), e.field) from None
        except DeskError as e:
            status = 404 if "no case" in str(e).lower() or "case number" in str(e).lower() else 400
            code = "not_found" if status == 404 else "invalid_request"
            raise ApiError(status, code, str(e)) from None
        return JSONResponse(body, status_code=status_code, headers=NO_STORE)

    @router.get("/me")
    async def me(request: Request) -> JSONResponse:
        body = {"identity": require_staff(request), "staff": True, "timezone": zone().key}
        return JSONResponse(body, headers=NO_STORE)

    @router.get("/summary")
    async def summary_route(request: Request) -> JSONResponse:
        require_staff(request)
        return await run(lambda: summary(handle.get()))

    @router.get("/cases")
    async def cases_route(
        request: Request,
        status: str | None = None,
        device: str | None = None,
        q: str | None = None,
        sort: str = "updated_at",
        dir: str = "desc",
        limit: int = DESK_LIMIT,
    ) -> JSONResponse:
        require_staff(request)
        # `from` is a keyword, so both days are read from the query string itself
        day_from = parse_day(request.query_params.get("from"), "from")
        day_to = parse_day(request.query_params.get("to"), "to")
        created = created_window(day_from, day_to, zone())
        return await run(
            lambda: queue(
                handle.get(),
                status=status,
                device=device,
                q=q,
                sort=sort,
                direction=dir,
                limit=limit,
                created=created,
            )
        )

    @router.get("/cases/{case_id}")
    async def case_route(request: Request, case_id: str) -> JSONResponse:
        require_staff(request)
        return await run(lambda: case_with_calls(handle.get(), case_id))

    @router.get("/calls")
    async def calls_route(
        request: Request, limit: int = 50, case: str | None = None
    ) -> JSONResponse:
        require_staff(request)
        n = max(1, min(limit, CALLS_LIMIT))
        return await run(
            lambda: {
                "calls": [call_row(c) for c in handle.get().calls.list_calls(limit=n, case_id=case)]
            }
        )

    @router.get("/calls/{call_id}")
    async def call_route(request: Request, call_id: str) -> JSONResponse:
        require_staff(request)
        return await run(lambda: call_detail(handle.get().calls.get_call(call_id)))

    @router.post("/cases/{case_id}/notes")
    async def add_note(request: Request, case_id: str) -> JSONResponse:
        identity = require_staff(request)
        try:
            body = json.loads(await request.body() or b"{}")
            text = body["text"]
        except (ValueError, KeyError, TypeError):
            raise ApiError(400, "invalid_request", 'expected {"text": "..."}') from None
        if not isinstance(text, str):
            raise ApiError(400, "invalid_request", "text must be a string")
        actor = f"staff:{identity}"

        def note() -> dict[str, Any]:
            desk = handle.get()
            case = desk.add_note(case_id, text, actor=actor)
            return case_with_calls(desk, case.id)

        return await run(note)

    async def json_body(request: Request, shape: str) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise ApiError(400, "invalid_request", f"expected {shape}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_request", f"expected {shape}")
        return body

    def text_field(body: dict[str, Any], name: str, shape: str, *, required: bool = True) -> Any:
        value = body.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ApiError(400, "invalid_request", f"expected {shape}")
        return value

    def key_of(request: Request, identity: str) -> str | None:
        key = request.headers.get("idempotency-key")
        return f"console:{identity}:{key}"[:400] if key else None

    def write(case_id: str, op: Callable[[Desk], Case]) -> Callable[[], dict[str, Any]]:
        def go() -> dict[str, Any]:
            desk = handle.get()
            return case_with_calls(desk, op(desk).id)

        return go

    @router.post("/cases")
    async def create_case(request: Request) -> JSONResponse:
        """Open a case by hand. The page sends one Idempotency-Key per form it shows, so a
        double submit (two clicks, a retry after a lost answer) opens one case: the second
        request gets the first one's case back, with 200 instead of 201."""
        identity = require_staff(request)
        shape = (
            '{"customer_name": "...", "phone": "...", "email": "...", '
            '"device_type": "HDD", "symptom": "..."}'
        )
        body = await json_body(request, shape)
        given: dict[str, str | None] = {}
        for name in ("customer_name", "phone", "email", "device_type", "symptom"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise FieldError(400, "invalid_request", f"{name} must be text", name)
            given[name] = value
        if not (given["device_type"] or "").strip():
            raise FieldError(400, "invalid_request", "Please choose the device type.",
                             "device_type")  # fmt: skip
        key = key_of(request, identity)
        created: list[Case] = []

        def go() -> dict[str, Any]:
            desk = handle.get()
            case = desk.create_case(
                customer_name=given["customer_name"] or "",
                phone=given["phone"],
                email=given["email"],
                device_type=given["device_type"] or "",
                symptom=given["symptom"] or "",
                actor=f"staff:{identity}",
                idempotency_key=key,
            )
            created.append(case)
            return case_with_calls(desk, case.id)

        response = await run(go, status_code=201)
        if created and created[0].replayed:
            response.status_code = 200
        return response

    @router.post("/cases/{case_id}/quote")
    async def quote_route(request: Request, case_id: str) -> JSONResponse:
        """Set the quote, in two requests: without "confirm" the amount and the case are
        checked and nothing is written (the page shows the review step from this answer);
        only {"amount_yen", "confirm": true} writes. Why a flag and not a server-issued
        token: the person confirming is the same staff member who could send either
        request, so a token would add state (storage, expiry) without adding safety; what
        must hold is that no request writes a price unless it says, explicitly, that the
        amount was reviewed, which the flag makes testable. The Idempotency-Key the page
        sends with the confirmation keeps a double click to one change."""
        identity = require_staff(request)
        shape = '{"amount_yen": 55000, "confirm": true}'
        body = await json_body(request, shape)
        amount = body.get("amount_yen")
        confirm = body.get("confirm", False)
        if not isinstance(confirm, bool):
            raise ApiError(400, "invalid_request", "confirm must be true or false")
        if not confirm:

            def propose() -> dict[str, Any]:
                yen = desk_validate.quote_yen(amount)
                case = handle.get().get_case(case_id)
                if case.status not in QUOTABLE:
                    raise WrongState(
                        case.id,
                        case.status,
                        f"{case.id} is '{case.status}'; a quote can only be set while it is "
                        "diagnosing or quoted.",
                    )
                return {
                    "applied": False,
                    "proposal": {
                        "case_id": case.id,
                        "amount_yen": yen,
                        "current_quote_yen": case.quote_yen,
                        "status": case.status.value,
                    },
                }

            return await run(propose)
        key = key_of(request, identity)
        return await run(
            write(case_id, lambda d: d.set_quote(
                case_id, desk_validate.quote_yen(amount), actor=f"staff:{identity}",
                idempotency_key=key))
        )  # fmt: skip

    @router.post("/cases/{case_id}/contact")
    async def update_contact(request: Request, case_id: str) -> JSONResponse:
        identity = require_staff(request)
        shape = '{"phone": "...", "email": "..."}'
        body = await json_body(request, shape)
        phone = text_field(body, "phone", shape, required=False)
        email = text_field(body, "email", shape, required=False)
        key = key_of(request, identity)
        return await run(
            write(case_id, lambda d: d.update_contact(
                case_id, phone=None if phone is None else str(phone),
                email=None if email is None else str(email),
                actor=f"staff:{identity}", idempotency_key=key))
        )  # fmt: skip

    @router.post("/cases/{case_id}/technician")
    async def assign_technician(request: Request, case_id: str) -> JSONResponse:
        identity = require_staff(request)
        shape = '{"technician": "..."}'
        name = str(text_field(await json_body(request, shape), "technician", shape))
        key = key_of(request, identity)
        return await run(
            write(case_id, lambda d: d.assign_technician(
                case_id, name, actor=f"staff:{identity}", idempotency_key=key))
        )  # fmt: skip

    @router.post("/cases/{case_id}/reopen")
    async def reopen_case(request: Request, case_id: str) -> JSONResponse:
        identity = require_staff(request)
        shape = '{"reason": "..."}'
        reason = str(text_field(await json_body(request, shape), "reason", shape))
        key = key_of(request, identity)
        return await run(
            write(case_id, lambda d: d.reopen_case(
                case_id, reason=reason, actor=f"staff:{identity}", idempotency_key=key))
        )  # fmt: skip

    @router.post("/cases/{case_id}/payments")
    async def record_payment(request: Request, case_id: str) -> JSONResponse:
        identity = require_staff(request)
        shape = '{"amount_yen": 20000, "method": "cash"}'
        body = await json_body(request, shape)
        amount = text_field(body, "amount_yen", shape)
        method = str(text_field(body, "method", shape))
        key = key_of(request, identity)
        return await run(
            write(case_id, lambda d: d.record_payment(
                case_id, amount, method=method, actor=f"staff:{identity}",
                idempotency_key=key))
        )  # fmt: skip

    @router.post("/cases/{case_id}/attachments")
    async def attach_file(request: Request, case_id: str, name: str = "") -> JSONResponse:
        identity = require_staff(request)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_ATTACHMENT_BYTES:
            raise ApiError(413, "too_large", _TOO_LARGE)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_ATTACHMENT_BYTES:
                raise ApiError(413, "too_large", _TOO_LARGE)
            chunks.append(chunk)
        data = b"".join(chunks)
        key = key_of(request, identity)
        return await run(
            write(case_id, lambda d: d.attach_file(
                case_id, name=name, data=data, actor=f"staff:{identity}",
                idempotency_key=key))
        )  # fmt: skip

    @router.get("/cases/{case_id}/attachments/{attachment_id}")
    async def get_attachment(request: Request, case_id: str, attachment_id: str) -> Response:
        require_staff(request)
        try:
            meta, data = await asyncio.to_thread(
                handle.get().get_attachment, case_id, attachment_id
            )
        except DeskError as e:
            raise ApiError(404, "not_found", str(e)) from None
        return Response(
            data,
            media_type=meta.content_type,
            headers={
                **NO_STORE,
                "X-Content-Type-Options": "nosniff",
                "Content-Disposition": f"inline; filename*=UTF-8''{quote(meta.name)}",
                "Content-Security-Policy": "default-src 'none'",
            },
        )

    app.include_router(router)
    return handle
