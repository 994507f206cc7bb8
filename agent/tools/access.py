"""Who may see and change what: staff have the whole desk, callers only their own cases.

The role comes from the participant's `kaiwa.role` attribute, which the token server signs
into the token (token_server/roles.py); neither the page nor the model can change it. A
caller must verify in the call (the case number and the last 4 digits of the phone on
file, or their name and phone number) before any case is read or changed; the call is then
bound to that customer's cases, contact data is masked in every result, and listing or
searching other customers is refused. Verification allows MAX_ATTEMPTS tries per call and
then locks for the rest of the call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import ToolError

from desk import Case, DeskError

MAX_ATTEMPTS = 3
STAFF_ONLY = (
    "That is done by our staff, not on this line: the customer can ask at the reception "
    "counter or call during office hours, and a staff member will do it."
)


@dataclass
class Access:
    """The call's access state (on CallState): role and, for a caller, who they proved to be."""

    role: str = "caller"
    identity: str = ""
    attempts: int = 0
    verified_digits: str | None = None  # the verified customer's phone, digits only
    cases: set[str] = field(default_factory=set)

    @property
    def staff(self) -> bool:
        return self.role == "staff"

    @property
    def locked(self) -> bool:
        return self.verified_digits is None and self.attempts >= MAX_ATTEMPTS

    def require_staff(self) -> None:
        if not self.staff:
            raise ToolError(STAFF_ONLY)

    def require_case(self, case: Case) -> None:
        """A caller may only touch the cases of the customer verified in this call."""
        if self.staff:
            return
        if self.verified_digits is None:
            raise ToolError(NOT_VERIFIED)
        if case.id not in self.cases and _digits(case.phone) != self.verified_digits:
            # the same sentence whether or not the case exists: no probing for case ids
            raise ToolError(
                "I can only discuss the cases of the customer verified in this call. For "
                "another case, that customer needs to call us themselves."
            )
        self.cases.add(case.id)

    def failed(self) -> ToolError:
        self.attempts += 1
        left = MAX_ATTEMPTS - self.attempts
        if left <= 0:
            return ToolError(LOCKED)
        return ToolError(
            f"That doesn't match our records, so I can't open the case yet. {left} "
            f"attempt{'s' if left != 1 else ''} left in this call."
        )


NOT_VERIFIED = (
    "Before I can look at or change a case, I need to confirm who the caller is: ask for "
    "the case number and the last 4 digits of the phone number on file (or their name and "
    "full phone number), then call verify_caller."
)
LOCKED = (
    "Verification failed too many times, so it is locked for this call to protect the "
    "customer's data. Ask the caller to contact our reception staff, who can check their "
    "identity in person."
)


def _digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


def mask_phone(phone: str | None) -> str | None:
    """`***-****-0101`: enough for the customer to recognise it, useless to anyone else."""
    digits = _digits(phone)
    return f"***-****-{digits[-4:]}" if len(digits) >= 4 else None


def mask_email(email: str | None) -> str | None:
    """`s***@example.com`."""
    if not email or "@" not in email:
        return None
    local, domain = email.split("@", 1)
    return f"{local[:1]}***@{domain}"


def masked(data: dict[str, Any], access: Access) -> dict[str, Any]:
    """A result or a case card with contact data masked for callers (staff see it all)."""
    if access.staff:
        return data
    out = dict(data)
    if "phone" in out:
        out["phone"] = mask_phone(out["phone"])
    if "email" in out:
        out["email"] = mask_email(out["email"])
    return out


def verify(access: Access, case: Case | None, *, phone_last4: str) -> None:
    """Check the last 4 digits against the case's phone; bind the call to that customer."""
    if access.locked:
        raise ToolError(LOCKED)
    given = _digits(phone_last4)
    on_file = _digits(case.phone if case else None)
    if case is None or len(given) != 4 or len(on_file) < 4 or on_file[-4:] != given:
        raise access.failed()
    access.verified_digits = on_file
    access.cases.add(case.id)


def verify_by_name(access: Access, matches: list[Case], *, phone: str) -> Case:
    if access.locked:
        raise ToolError(LOCKED)
    given = _digits(phone)
    same = [c for c in matches if len(given) >= 8 and _digits(c.phone) == given]
    if not same:
        raise access.failed()
    access.verified_digits = given
    access.cases.update(c.id for c in same)
    return same[0]


def lookup_error(e: DeskError) -> bool:
    """A desk refusal that means "no such case" (counts as a failed attempt for callers)."""
    return "no case" in str(e).lower() or "case number" in str(e).lower()
