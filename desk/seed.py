"""Demo data: realistic customers and cases in every status, with history.

``seed(desk, customers=30, rng_seed=7)`` is deterministic: the same seed gives the same
customers, devices, statuses, notes, amounts and actors; timestamps are laid out over the
weeks before ``now`` through the Desk's clock, so the history reads like real work. Used
by ``python -m desk seed`` (which refuses outside development, see desk.cli).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from desk.devices import DeviceType
from desk.models import Case
from desk.service import Desk
from desk.status import LIFECYCLE, CaseStatus

# (family, given) in the script people would give them over the phone.
_JA_NAMES = (
    ("田中", "花子"), ("佐藤", "健一"), ("鈴木", "美咲"), ("高橋", "翔太"), ("渡辺", "陽子"),
    ("伊藤", "大輔"), ("山本", "由美"), ("中村", "拓也"), ("小林", "さくら"), ("加藤", "誠"),
    ("吉田", "真由美"), ("山田", "太郎"), ("松本", "亜希子"), ("井上", "直樹"), ("木村", "恵"),
)  # fmt: skip
_JA_KANA = (
    ("タナカ", "ハナコ"), ("サトウ", "ケンイチ"), ("ヤマダ", "タロウ"), ("モリ", "アヤ"),
    ("いしかわ", "ゆうき"), ("おおた", "まり"), ("ハヤシ", "ジュン"), ("シミズ", "ケイコ"),
)  # fmt: skip
_JA_ROMAJI = (
    ("Tanaka", "Hanako"), ("Kobayashi", "Ren"), ("Nakamura", "Yui"), ("Saito", "Haruto"),
    ("Ogawa", "Mei"), ("Fujita", "Sota"), ("Okada", "Rina"), ("Hasegawa", "Kaito"),
)  # fmt: skip
_EN_NAMES = (
    ("Smith", "Emily"), ("Johnson", "Michael"), ("Brown", "Olivia"), ("Taylor", "James"),
    ("Wilson", "Sophie"), ("Clarke", "Daniel"), ("Murphy", "Grace"), ("Walker", "Thomas"),
    ("O'Neill", "Aoife"), ("García", "Lucía"), ("Nguyen", "Linh"), ("Kim", "Minji"),
)  # fmt: skip

_DEVICES: dict[DeviceType, tuple[tuple[str, ...], tuple[int, int]]] = {
    DeviceType.HDD: (
        ("clicking noise, not recognised", "dropped while running; now beeps",
         "external drive shows as RAW", "accidentally formatted the photo drive"),
        (30_000, 150_000),
    ),
    DeviceType.SSD: (
        ("laptop SSD no longer detected in BIOS", "NVMe drive disappeared after an update",
         "files deleted and TRIM may have run"),
        (50_000, 200_000),
    ),
    DeviceType.USB_STICK: (
        ("stick bent in the port", "asks to be formatted when plugged in"),
        (15_000, 60_000),
    ),
    DeviceType.SD_CARD: (
        ("camera says card error; wedding photos on it", "drone footage card unreadable"),
        (15_000, 50_000),
    ),
    DeviceType.PHONE: (
        ("water damage, won't turn on", "screen broken, need the photos",
         "stuck on the boot logo"),
        (40_000, 150_000),
    ),
    DeviceType.RAID_NAS: (
        ("RAID 5 degraded, second disk failed during rebuild", "NAS won't mount the volume"),
        (150_000, 800_000),
    ),
    DeviceType.OTHER: (("old video camera tape drive", "MO disk from the office archive"),
                       (20_000, 100_000)),
}  # fmt: skip
_DEVICE_WEIGHTS = {DeviceType.HDD: 6, DeviceType.SSD: 4, DeviceType.USB_STICK: 2,
                   DeviceType.SD_CARD: 3, DeviceType.PHONE: 3, DeviceType.RAID_NAS: 2,
                   DeviceType.OTHER: 1}  # fmt: skip

_STAFF = ("staff:alice", "staff:kenji", "staff:yuko", "staff:ben")
_NOTES = (
    "Customer called to ask about progress.",
    "Heads replaced in clean room; imaging at 60%.",
    "Customer needs the invoice addressed to the company.",
    "Most important folder: Documents/Accounts.",
    "Customer prefers email updates.",
    "Firmware issue; donor board ordered.",
    "お客様より進捗確認のお電話あり。",
    "写真フォルダを最優先で復旧希望。",
)
_CANCEL_REASONS = ("quote too expensive", "found a backup", "the customer will try elsewhere",
                   "見積もりが予算オーバー")  # fmt: skip

# Each status appears at least once; the rest follow these weights.
_STATUS_WEIGHTS = {
    CaseStatus.RECEIVED: 3, CaseStatus.DIAGNOSING: 3, CaseStatus.QUOTED: 3,
    CaseStatus.APPROVED: 2, CaseStatus.RECOVERING: 3, CaseStatus.READY: 2,
    CaseStatus.RETURNED: 4, CaseStatus.CANCELLED: 2,
}  # fmt: skip


class _Clock:
    """A settable clock for the Desk: the seeder moves it forward step by step."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def _people(rng: random.Random, count: int) -> list[tuple[str, str | None, str | None]]:
    """``count`` distinct customers: (name, phone, email), names in several scripts."""
    pools = (_JA_NAMES, _JA_NAMES, _JA_KANA, _JA_ROMAJI, _EN_NAMES, _EN_NAMES)
    seen: set[tuple[str, str]] = set()
    people: list[tuple[str, str | None, str | None]] = []
    while len(people) < count:
        pool = rng.choice(pools)
        family, given = rng.choice(pool)
        if pool is not _JA_KANA:  # mix names within one pool (kana pairs keep their script)
            given = rng.choice(pool)[1]
        if (family, given) in seen and len(seen) < 400:
            continue
        seen.add((family, given))
        if pool is _JA_NAMES:
            name = f"{family} {given}" if rng.random() < 0.5 else f"{family}{given}"
        elif pool is _JA_ROMAJI:
            name = f"{family} {given}" if rng.random() < 0.5 else f"{given} {family}"
        elif pool is _JA_KANA:
            name = f"{family} {given}"
        else:
            name = f"{given} {family}"
        phone = None
        if rng.random() < 0.85:
            if rng.random() < 0.7:
                phone = (
                    f"0{rng.choice('789')}0-{rng.randrange(10000):04d}-{rng.randrange(10000):04d}"
                )
            else:
                phone = f"03-{rng.randrange(10000):04d}-{rng.randrange(10000):04d}"
        email = None
        if rng.random() < 0.5:
            local = "".join(ch for ch in given.lower() if ch.isascii() and ch.isalpha())
            domain = rng.choice(("jp", "com", "co.jp"))
            email = f"{local or 'customer'}{len(people) + 1}@example.{domain}"
        people.append((name, phone, email))
    return people


def seed(
    desk: Desk,
    *,
    customers: int = 30,
    rng_seed: int = 7,
    now: dt.datetime | None = None,
) -> list[Case]:
    """Add ``customers`` customers with one or two cases each; returns the cases."""
    if customers < 1:
        raise ValueError("customers must be at least 1")
    rng = random.Random(rng_seed)
    end = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    clock = _Clock(end)
    work = Desk(desk.store, clock=clock)  # same database, backdated timestamps

    owners = [i for i in range(customers) for _ in range(1 if rng.random() < 0.75 else 2)]
    statuses = list(_STATUS_WEIGHTS)  # every status at least once (given enough cases)
    statuses += rng.choices(statuses, list(_STATUS_WEIGHTS.values()), k=len(owners))
    statuses = statuses[: len(owners)]
    rng.shuffle(statuses)
    plans = list(zip(owners, statuses, strict=True))
    rng.shuffle(plans)  # returning customers come back later

    people = _people(rng, customers)
    # Oldest first, so case numbers follow the order cases came in.
    starts = sorted(rng.uniform(3, 60) for _ in plans)[::-1]
    cases: list[Case] = []
    for (who, target), days_ago in zip(plans, starts, strict=True):
        clock.at = end - dt.timedelta(days=days_ago)

        def step(hours: tuple[float, float] = (1, 30)) -> None:
            clock.at = min(clock.at + dt.timedelta(hours=rng.uniform(*hours)),
                           end - dt.timedelta(minutes=1))  # fmt: skip

        cases.append(_one_case(work, rng, people[who], target, step, clock))
    return cases


def _one_case(
    desk: Desk,
    rng: random.Random,
    person: tuple[str, str | None, str | None],
    target: CaseStatus,
    step: Callable[..., None],
    clock: _Clock,
) -> Case:
    name, phone, email = person
    device = rng.choices(list(_DEVICE_WEIGHTS), list(_DEVICE_WEIGHTS.values()))[0]
    symptoms, (low, high) = _DEVICES[device]
    case = desk.create_case(
        customer_name=name,
        phone=phone,
        email=email,
        device_type=device,
        symptom=rng.choice(symptoms),
        actor=rng.choice(("agent", "agent", "staff:reception")),
    )
    tech = rng.choice(_STAFF)
    # Cancelled cases stop somewhere along the way (often at the quote).
    goal = target
    if target is CaseStatus.CANCELLED:
        goal = rng.choice((CaseStatus.RECEIVED, CaseStatus.DIAGNOSING, CaseStatus.QUOTED,
                           CaseStatus.QUOTED, CaseStatus.RECOVERING))  # fmt: skip
    for status in LIFECYCLE[1 : LIFECYCLE.index(goal) + 1]:
        step()
        if status is CaseStatus.QUOTED:
            amount = rng.randrange(low, high, 1_000)
            case = desk.set_quote(case.id, amount, actor=tech)
            if rng.random() < 0.3:  # revised after a closer look
                step((0.5, 4))
                case = desk.set_quote(case.id, amount + rng.randrange(5, 30) * 1_000, actor=tech)
            continue
        if status is CaseStatus.RETURNED or (status is CaseStatus.READY and rng.random() < 0.8):
            if case.return_date is None:
                today = clock.at.date()
                day = today + dt.timedelta(days=rng.randrange(0, 4))
                kind = rng.choice(("return", "pickup"))
                who = rng.choice(("agent", tech))
                case = desk.schedule_return(case.id, day, kind=kind, actor=who, today=today)
                step((0.5, 3))
        actor = "agent" if status is CaseStatus.APPROVED else tech  # approvals come by phone
        case = desk.update_status(case.id, status, actor=actor)
        if rng.random() < 0.35:
            step((0.2, 6))
            case = desk.add_note(case.id, rng.choice(_NOTES), actor=rng.choice((tech, "agent")))
    if target is CaseStatus.CANCELLED:
        step()
        case = desk.cancel_case(case.id, reason=rng.choice(_CANCEL_REASONS),
                                actor=rng.choice(("agent", tech)))  # fmt: skip
    return case
