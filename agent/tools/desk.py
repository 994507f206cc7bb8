"""Service-desk tools: thin adapters over `desk.Desk`.

Each tool takes plain strings (so a bad value reaches the domain, whose refusal is a
sentence written for the caller, instead of a schema error), runs the Desk off the event
loop, and returns a short dict that reads well aloud. Consequential actions (cancel_case,
set_quote) only propose; confirm_action performs them (see confirm.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from livekit.agents import RunContext, ToolError

from desk import Case, CaseStatus, DeskError, next_states, parse_status, validate
from desk.service import QUOTABLE
from desk.status import reopen_target

from . import access
from .access import masked
from .context import checked, compact, desk_call, services, state
from .runtime import kaiwa_tool
from .ui_sync import show_case_later, status_changed_later

BOTH = ("staff", "caller")


def brief(case: Case) -> dict[str, Any]:
    """What a caller wants to hear about a case, without empty fields."""
    return compact(case.summary())


async def case_for(ctx: RunContext, case_id: str) -> Case:
    """The case, if this call may see it: staff always; a caller once verified, and only
    that customer's cases (the same refusal whether or not the case exists)."""
    acc = state(ctx).access
    if not acc.staff and acc.verified_digits is None:
        raise ToolError(access.NOT_VERIFIED)
    try:
        case = await desk_call(services(ctx).desk.get_case, case_id)
    except ToolError:
        if acc.staff:
            raise
        case = None
    if case is None:
        raise ToolError(
            "I can only discuss the cases of the customer verified in this call, and that "
            "isn't one of them. Ask the caller to check the case number."
        )
    acc.require_case(case)
    return case


def detail(case: Case) -> dict[str, Any]:
    out = brief(case) | {"symptom": case.symptom, "phone": case.phone, "email": case.email}
    if case.notes:
        out["notes"] = len(case.notes)
        out["latest_note"] = case.notes[-1].text
    if case.status.is_open:
        out["next_status"] = [s.value for s in next_states(case.status)]
    return compact(out)


@kaiwa_tool()
async def create_case(
    ctx: RunContext,
    customer_name: str,
    device_type: str,
    symptom: str,
    phone: str | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    """Open a new recovery case at intake. Ask for the name, the device and what happened
    first; phone and email are optional but help find the case later.

    Args:
        customer_name: The customer's name as they said it (any script).
        device_type: The device: HDD, SSD, USB stick, SD card, phone, RAID/NAS or other.
        symptom: What happened to the device, in a sentence.
        phone: The customer's phone number, digits as spoken.
        email: The customer's email address.
    """
    case = await desk_call(
        services(ctx).desk.create_case,
        customer_name=customer_name,
        device_type=device_type,
        symptom=symptom,
        phone=phone,
        email=email,
        # the same customer and device asked twice in one call: one case, not two
        call_scope=state(ctx).scope,
    )
    show_case_later(case, state(ctx).access)
    if case.existing:
        return brief(case) | {
            "already_open": True,
            "say": f"A case for this customer and device was already opened in this call: "
            f"{case.id}. Tell the caller that number; no second case was made.",
        }
    return brief(case) | {"say": f"Tell the caller their case number is {case.id}."}


@kaiwa_tool()
async def find_cases(
    ctx: RunContext,
    name: str | None = None,
    phone: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Find cases by customer name (partial, any script or romaji), phone number (the
    last 4 digits are enough) and/or status. Most recently updated first, at most 5.

    Args:
        name: All or part of the customer's name.
        phone: The phone number or its last digits.
        status: received, diagnosing, quoted, approved, recovering, ready, returned or cancelled.
    """
    cases = await desk_call(services(ctx).desk.find_cases, name=name, phone=phone, status=status)
    if not cases:
        return {"count": 0, "say": "No case matches; ask for another detail or the case number."}
    return {"count": len(cases), "cases": [brief(c) for c in cases]}


@kaiwa_tool(roles=BOTH)
async def get_case(ctx: RunContext, case_id: str) -> dict[str, Any]:
    """Look up one case by its number and show it on the caller's screen.

    Args:
        case_id: The case number, e.g. R-1042 (spoken forms like "1042" work too).
    """
    case = await case_for(ctx, case_id)
    acc = state(ctx).access
    show_case_later(case, acc)
    return masked(detail(case), acc)


@kaiwa_tool()
async def update_status(ctx: RunContext, case_id: str, status: str) -> dict[str, Any]:
    """Move a case to its next status (one step along received → diagnosing → quoted →
    approved → recovering → ready → returned). Use cancel_case to cancel, set_quote to quote.

    Args:
        case_id: The case number, e.g. R-1042.
        status: The new status.
    """
    desk = services(ctx).desk
    before = await desk_call(desk.get_case, case_id)
    if validate_status(status) is CaseStatus.CANCELLED:
        raise ToolError("To cancel a case use cancel_case, which asks the caller to confirm.")
    case = await desk_call(desk.update_status, case_id, status)
    if case.status != before.status:
        status_changed_later(case.id, before.status.value, case.status.value)
    return {"id": case.id, "status": case.status.value, "previous": before.status.value}


def validate_status(status: str) -> CaseStatus | None:
    try:
        return parse_status(status)
    except DeskError:
        return None  # the Desk call reports it with its own sentence


@kaiwa_tool()
async def add_note(ctx: RunContext, case_id: str, text: str) -> dict[str, Any]:
    """Add a note to a case (allowed in every status), e.g. what the caller asked for.

    Args:
        case_id: The case number, e.g. R-1042.
        text: The note, in a sentence or two.
    """
    case = await desk_call(services(ctx).desk.add_note, case_id, text)
    return {"id": case.id, "notes": len(case.notes), "saved": True}


@kaiwa_tool(roles=BOTH)
async def schedule_return(
    ctx: RunContext, case_id: str, date: str, kind: str = "return"
) -> dict[str, Any]:
    """Set or move the date the device goes back: "return" (we ship it) or "pickup" (the
    customer collects it). Use get_current_time first to resolve words like "next Friday".

    Args:
        case_id: The case number, e.g. R-1042.
        date: The day as YYYY-MM-DD; today or later.
        kind: "return" or "pickup".
    """
    svc = services(ctx)
    case = await case_for(ctx, case_id)
    case = await desk_call(svc.desk.schedule_return, case.id, date, kind=kind, today=svc.today())
    return brief(case)


@kaiwa_tool()
async def cancel_case(ctx: RunContext, case_id: str, reason: str) -> dict[str, Any]:
    """Propose cancelling a case. Changes nothing by itself: returns a summary and a
    confirmation_id; after the caller says yes, call confirm_action with that id.

    Args:
        case_id: The case number, e.g. R-1042.
        reason: Why the caller wants to cancel, in a few words.
    """
    desk = services(ctx).desk
    clean_reason = checked(validate.text, reason, what="cancellation reason", field="reason")
    case = await desk_call(desk.get_case, case_id)
    if CaseStatus.CANCELLED not in next_states(case.status):
        raise ToolError(f"{case.id} is '{case.status}', so it can't be cancelled any more.")

    async def perform() -> dict[str, Any]:
        before = case.status.value
        done = await desk_call(desk.cancel_case, case.id, reason=clean_reason)
        status_changed_later(done.id, before, done.status.value)
        return {"id": done.id, "status": done.status.value, "done": True}

    summary = (
        f"Cancel case {case.id} ({case.device_type.value} of {case.customer_name}, now "
        f"'{case.status}') because: {clean_reason}. Work stops and this can't be undone."
    )
    return state(ctx).confirmations.propose("cancel_case", case.id, summary, perform)


@kaiwa_tool()
async def set_quote(ctx: RunContext, case_id: str, amount_yen: str) -> dict[str, Any]:
    """Propose the price quote for a diagnosed case. Changes nothing by itself: returns a
    summary and a confirmation_id; after the caller agrees, call confirm_action with it.

    Args:
        case_id: The case number, e.g. R-1042.
        amount_yen: The price in yen as the caller or clerk said it, e.g. 55000, "55,000
            yen" or "¥50000".
    """
    desk = services(ctx).desk
    amount = checked(validate.quote_yen, amount_yen)
    case = await desk_call(desk.get_case, case_id)
    if case.status not in QUOTABLE:
        raise ToolError(
            f"{case.id} is '{case.status}'; a quote can only be set while it is diagnosing "
            "or quoted."
        )

    async def perform() -> dict[str, Any]:
        before = case.status.value
        done = await desk_call(desk.set_quote, case.id, amount)
        if done.status.value != before:
            status_changed_later(done.id, before, done.status.value)
        return {"id": done.id, "quote": f"{amount:,} yen", "status": done.status.value}

    previous = f" (replacing {case.quote_yen:,} yen)" if case.quote_yen is not None else ""
    summary = f"Set the quote for case {case.id} to {amount:,} yen{previous}."
    return state(ctx).confirmations.propose("set_quote", case.id, summary, perform)


@kaiwa_tool(roles=BOTH)
async def confirm_action(ctx: RunContext, confirmation_id: str) -> dict[str, Any]:
    """Carry out an action the caller has just confirmed (from cancel_case or set_quote).
    Only call it after the caller said yes to the summary.

    Args:
        confirmation_id: The confirmation_id returned with the summary.
    """
    action = await state(ctx).confirmations.take(confirmation_id)
    return await action.perform()


@kaiwa_tool(behavior="non_blocking", scheduling="when_idle", roles=BOTH)
async def check_lab_progress(ctx: RunContext, case_id: str) -> dict[str, Any]:
    """Ask the recovery lab how work on a case is going. Takes a few seconds; keep talking
    with the caller meanwhile, the answer comes when it's ready.

    Args:
        case_id: The case number, e.g. R-1042.
    """
    svc = services(ctx)
    case = await case_for(ctx, case_id)
    await asyncio.sleep(svc.lab_delay_s)  # stands in for a slow lab system
    return {"id": case.id, "status": case.status.value, "lab": _LAB_REPORT[case.status]}


@kaiwa_tool(roles=BOTH)
async def verify_caller(
    ctx: RunContext,
    case_id: str | None = None,
    phone_last4: str | None = None,
    name: str | None = None,
    phone: str | None = None,
) -> dict[str, Any]:
    """Confirm who the caller is before any of their cases is read or changed: their case
    number and the last 4 digits of the phone number on file, or their name and full phone
    number. A few attempts per call, then it locks.

    Args:
        case_id: The case number the caller gives, e.g. R-1042.
        phone_last4: The last 4 digits of the phone number on file for that case.
        name: The caller's name (with phone, when they don't know the case number).
        phone: The caller's full phone number (with name).
    """
    acc = state(ctx).access
    if acc.staff:
        return {"verified": True, "say": "Staff calls need no verification."}
    desk = services(ctx).desk
    if acc.verified_digits is None:
        if acc.locked:
            raise ToolError(access.LOCKED)
        if case_id and phone_last4:
            try:
                case: Case | None = await desk_call(desk.get_case, case_id)
            except ToolError:
                case = None  # counts as a failed attempt, said the same way
            access.verify(acc, case, phone_last4=phone_last4)
        elif name and phone:
            try:
                matches = await desk_call(desk.find_cases, name=name, phone=phone)
            except ToolError:
                matches = []
            access.verify_by_name(acc, matches, phone=phone)
        else:
            raise ToolError(
                "To verify, I need the case number and the last 4 digits of the phone number "
                "on file, or the caller's name and full phone number."
            )
    theirs = await desk_call(desk.find_cases, phone=acc.verified_digits)
    acc.cases.update(c.id for c in theirs)
    return {
        "verified": True,
        "cases": [masked(brief(c), acc) for c in theirs],
        "say": "The caller is verified; you may now discuss these cases with them only.",
    }


@kaiwa_tool(roles=BOTH)
async def respond_to_quote(ctx: RunContext, case_id: str, decision: str) -> dict[str, Any]:
    """The customer's answer to a quote: approve it (recovery starts, they pay the quoted
    price) or decline it (the case is cancelled and the device returned). Changes nothing by
    itself: returns a summary and a confirmation_id; call confirm_action after their yes.

    Args:
        case_id: The case number, e.g. R-1042.
        decision: "approve" or "decline".
    """
    choice = decision.strip().lower()
    if choice not in ("approve", "decline"):
        raise ToolError('The decision must be "approve" or "decline". Nothing was changed.')
    case = await case_for(ctx, case_id)
    if case.status is not CaseStatus.QUOTED or case.quote_yen is None:
        raise ToolError(f"{case.id} has no quote waiting for an answer (it is '{case.status}').")
    desk = services(ctx).desk

    async def perform() -> dict[str, Any]:
        if choice == "approve":
            done = await desk_call(desk.update_status, case.id, CaseStatus.APPROVED.value)
        else:
            done = await desk_call(desk.cancel_case, case.id, reason="quote declined")
        status_changed_later(done.id, case.status.value, done.status.value)
        return {"id": done.id, "status": done.status.value, "done": True}

    if choice == "approve":
        summary = (
            f"Approve the quote of {case.quote_yen:,} yen for case {case.id}; recovery starts."
        )
    else:
        summary = (
            f"Decline the quote for case {case.id}; the case is cancelled and the device returned."
        )
    return state(ctx).confirmations.propose("respond_to_quote", case.id, summary, perform)


# ---------------------------------------------------------------- case operations
# Attaching a file: by hand in the staff console, or by voice as a photo from the caller's
# camera (camera.py).


def _blank_to_none(value: str | None) -> str | None:
    return value if value and value.strip() else None


@kaiwa_tool()
async def update_contact(
    ctx: RunContext, case_id: str, phone: str | None = None, email: str | None = None
) -> dict[str, Any]:
    """Change the customer's phone number and/or email address on a case (checked as at
    intake). Give only what changes; read the saved value back to the clerk.

    Args:
        case_id: The case number, e.g. R-1042.
        phone: The new phone number, digits as spoken.
        email: The new email address.
    """
    phone, email = _blank_to_none(phone), _blank_to_none(email)
    if phone is None and email is None:
        raise ToolError("Give the new phone number or email address; nothing was changed.")
    case = await desk_call(services(ctx).desk.update_contact, case_id, phone=phone, email=email)
    return compact({"id": case.id, "phone": case.phone, "email": case.email, "saved": True})


@kaiwa_tool()
async def assign_technician(ctx: RunContext, case_id: str, technician: str) -> dict[str, Any]:
    """Assign an open case to a technician (replaces whoever had it).

    Args:
        case_id: The case number, e.g. R-1042.
        technician: The technician's name as the clerk said it.
    """
    case = await desk_call(services(ctx).desk.assign_technician, case_id, technician)
    return {"id": case.id, "technician": case.technician, "saved": True}


def _reopen_to(case: Case) -> CaseStatus:
    before = next(
        (
            h.old
            for h in reversed(case.history)
            if h.action == "status" and h.new == CaseStatus.CANCELLED.value
        ),
        None,
    )
    previous = CaseStatus(before) if before in set(CaseStatus) else None
    return reopen_target(case.status, previous)


@kaiwa_tool()
async def reopen_case(ctx: RunContext, case_id: str, reason: str) -> dict[str, Any]:
    """Propose reopening a closed case: a returned case goes back to 'ready', a cancelled
    one to the status it had when it was cancelled. Changes nothing by itself: returns a
    summary and a confirmation_id; after the clerk says yes, call confirm_action with it.

    Args:
        case_id: The case number, e.g. R-1042.
        reason: Why it is reopened, in a few words.
    """
    desk = services(ctx).desk
    clean_reason = checked(validate.text, reason, what="reason for reopening", field="reason")
    case = await desk_call(desk.get_case, case_id)
    if case.status.is_open:
        raise ToolError(
            f"{case.id} is '{case.status}', which is still open; only a returned or "
            "cancelled case can be reopened."
        )
    target = _reopen_to(case)

    async def perform() -> dict[str, Any]:
        before = case.status.value
        done = await desk_call(desk.reopen_case, case.id, reason=clean_reason)
        status_changed_later(done.id, before, done.status.value)
        return {"id": done.id, "status": done.status.value, "previous": before, "done": True}

    summary = (
        f"Reopen case {case.id} ({case.device_type.value} of {case.customer_name}, now "
        f"'{case.status}'); it goes back to '{target}'. Reason: {clean_reason}."
    )
    return state(ctx).confirmations.propose("reopen_case", case.id, summary, perform)


@kaiwa_tool()
async def record_payment(
    ctx: RunContext, case_id: str, amount_yen: str, method: str
) -> dict[str, Any]:
    """Propose recording a payment against a case's quote. Changes nothing by itself:
    returns a summary (with the balance left) and a confirmation_id; after the clerk says
    yes, call confirm_action with it.

    Args:
        case_id: The case number, e.g. R-1042.
        amount_yen: The amount received in yen as said, e.g. 20000 or "20,000 yen".
        method: cash, card, bank transfer or other.
    """
    desk = services(ctx).desk
    amount = checked(validate.payment_yen, amount_yen)
    how = checked(validate.payment_method, method)
    case = await desk_call(desk.get_case, case_id)
    if case.status is CaseStatus.CANCELLED:
        raise ToolError(f"{case.id} was cancelled, so no payment can be recorded.")
    if case.quote_yen is None or case.balance_yen is None:
        raise ToolError(f"{case.id} has no quote yet, so there is nothing to pay against.")
    if case.balance_yen <= 0:
        raise ToolError(f"{case.id} is already paid in full ({case.quote_yen:,} yen).")
    if amount > case.balance_yen:
        raise ToolError(
            f"{amount:,} yen is more than what is left to pay on {case.id}: "
            f"{case.balance_yen:,} yen of the {case.quote_yen:,} yen quote. Nothing was recorded."
        )

    async def perform() -> dict[str, Any]:
        done = await desk_call(desk.record_payment, case.id, amount, method=how)
        return {
            "id": done.id,
            "paid": f"{amount:,} yen",
            "method": how,
            "balance": f"{done.balance_yen or 0:,} yen",
            "done": True,
        }

    left = case.balance_yen - amount
    summary = (
        f"Record a payment of {amount:,} yen by {how.replace('_', ' ')} on case {case.id} "
        f"(quote {case.quote_yen:,} yen, paid so far {case.paid_yen:,} yen); "
        f"{left:,} yen will be left to pay."
    )
    return state(ctx).confirmations.propose("record_payment", case.id, summary, perform)


_LAB_REPORT: dict[CaseStatus, str] = {
    CaseStatus.RECEIVED: "The device is in the queue for diagnosis.",
    CaseStatus.DIAGNOSING: "An engineer is diagnosing the device.",
    CaseStatus.QUOTED: "Diagnosis is done; the lab is waiting for the customer's approval.",
    CaseStatus.APPROVED: "Approved; recovery will start shortly.",
    CaseStatus.RECOVERING: "Recovery is in progress.",
    CaseStatus.READY: "The recovered data is ready.",
    CaseStatus.RETURNED: "The case is finished and the device went back.",
    CaseStatus.CANCELLED: "The case was cancelled; the lab stopped work.",
}

TOOLS = [
    create_case,
    find_cases,
    get_case,
    update_status,
    add_note,
    set_quote,
    schedule_return,
    cancel_case,
    confirm_action,
    check_lab_progress,
    verify_caller,
    respond_to_quote,
    update_contact,
    assign_technician,
    reopen_case,
    record_payment,
    # attaching a photo by voice: camera.py (one frame of the caller's camera)
]
