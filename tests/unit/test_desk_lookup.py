"""Tolerant lookup: spoken ids, names across kana/romaji/width, phone suffixes, status."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desk import CaseNotFound, CaseStatus, Desk, DeviceType, InvalidInput, parse_device_type
from desk.ids import format_case_id, parse_case_id
from desk.kana import to_romaji
from desk.names import name_key
from tests.support.postgres import desk_target, postgres  # noqa: F401


@pytest.fixture
def desk(desk_target: str) -> Iterator[Desk]:  # noqa: F811 (a fixture)
    """Every test here runs on SQLite and on PostgreSQL."""
    desk = Desk.open(desk_target)
    yield desk
    desk.close()


@pytest.mark.parametrize(
    "spoken",
    ["R-1001", "R 1001", "r-1001", "R1001", "1001", "アール1001", "あーる 1001",
     "Ｒ－１００１", "ｒ１００１", "R-10０1", " case R 1001 ", "1001番"],
)  # fmt: skip
def test_get_case_by_spoken_id(desk: Desk, spoken: str) -> None:
    desk.create_case(customer_name="Sato", device_type="SSD", symptom="not detected")
    assert desk.get_case(spoken).id == "R-1001"


def test_unknown_and_malformed_ids(desk: Desk) -> None:
    with pytest.raises(CaseNotFound, match=r"There is no case R-9999"):
        desk.get_case("r 9999")
    with pytest.raises(CaseNotFound, match="case numbers look like R-1042"):
        desk.get_case("the broken one")
    with pytest.raises(CaseNotFound):
        desk.add_note("R-1234", "hello")


@given(st.integers(min_value=1, max_value=10**9 - 1))
def test_case_id_round_trip(number: int) -> None:
    case_id = format_case_id(number)
    assert parse_case_id(case_id) == number
    full_width = case_id.translate({ord(c): ord(c) + 0xFEE0 for c in "R-0123456789"})
    assert parse_case_id(full_width) == number


def test_ids_are_sequential_from_1001(desk: Desk) -> None:
    ids = [desk.create_case(customer_name=f"C{i}", device_type="other", symptom="x").id
           for i in range(3)]  # fmt: skip
    assert ids == ["R-1001", "R-1002", "R-1003"]


@pytest.fixture
def people(desk: Desk) -> dict[str, str]:
    stored = ["タナカ ハナコ", "さとう たろう", "Hanako Suzuki", "田中 一郎", "ﾔﾏﾀﾞ ｹﾝｲﾁ",
              "服部 はっとり", "Ｊｏｈｎ Ｓｍｉｔｈ", "オオノ ユウキ"]  # fmt: skip
    return {n: desk.create_case(customer_name=n, device_type="HDD", symptom="x").id for n in stored}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Tanaka", ["タナカ ハナコ"]),  # romaji finds katakana
        ("たなか", ["タナカ ハナコ"]),  # hiragana finds katakana
        ("tanaka hanako", ["タナカ ハナコ"]),
        ("Hanako Tanaka", ["タナカ ハナコ"]),  # word order doesn't matter
        ("Tanaka-san", ["タナカ ハナコ"]),  # honorific dropped
        ("タナカサン", ["タナカ ハナコ"]),
        ("Satoh", ["さとう たろう"]),  # long-vowel spellings
        ("Satō", ["さとう たろう"]),
        ("SATOU taro", ["さとう たろう"]),
        ("サトウ", ["さとう たろう"]),
        ("suzuki", ["Hanako Suzuki"]),
        ("すずき", ["Hanako Suzuki"]),  # kana query finds romaji-stored name
        ("HANAKO", ["Hanako Suzuki", "タナカ ハナコ"]),  # partial, newest first
        ("田中", ["田中 一郎"]),  # kanji match kanji
        ("田中様", ["田中 一郎"]),
        ("yamada", ["ﾔﾏﾀﾞ ｹﾝｲﾁ"]),  # half-width katakana
        ("Kenichi", ["ﾔﾏﾀﾞ ｹﾝｲﾁ"]),
        ("ken'ichi", ["ﾔﾏﾀﾞ ｹﾝｲﾁ"]),
        ("Hatori", ["服部 はっとり"]),  # small っ missed by speech-to-text
        ("john smith", ["Ｊｏｈｎ Ｓｍｉｔｈ"]),  # full-width Latin
        ("Ohno Yuki", ["オオノ ユウキ"]),
        ("Ono", ["オオノ ユウキ"]),
        ("ichiro tanaka", []),  # limit: kanji names have no reading
    ],
)
def test_find_by_name(desk: Desk, people: dict[str, str], query: str, expected: list[str]) -> None:
    found = desk.find_cases(name=query)
    assert [c.customer_name for c in found] == [
        desk.get_case(people[n]).customer_name for n in expected
    ]


def test_name_query_needs_a_word(desk: Desk) -> None:
    with pytest.raises(InvalidInput, match="part of the customer's name"):
        desk.find_cases(name=" さん ")


@given(st.text(alphabet=st.characters(min_codepoint=0x3041, max_codepoint=0x3093), min_size=1))
def test_katakana_and_hiragana_share_a_key(hiragana: str) -> None:
    katakana = hiragana.translate({cp: cp + 0x60 for cp in range(0x3041, 0x3097)})
    assert name_key(katakana) == name_key(hiragana)


def test_romaji_transliteration() -> None:
    assert to_romaji("きょうと") == "kyouto"
    assert to_romaji("ハットリ") == "hattori"
    assert to_romaji("マッチャ") == "matcha"
    assert to_romaji("シンイチ") == "shinichi"
    assert to_romaji("サトー") == "satoo"
    assert to_romaji("ジェシカ") == "jeshika"


def test_find_by_phone(desk: Desk) -> None:
    a = desk.create_case(customer_name="A", phone="090-1234-5678", device_type="phone", symptom="x")
    b = desk.create_case(customer_name="B", phone="+81 3 9876 5678", device_type="SSD", symptom="x")
    c = desk.create_case(
        customer_name="C", phone="０６（１１１１）２２２２", device_type="usb", symptom="x"
    )
    assert [x.id for x in desk.find_cases(phone="5678")] == [b.id, a.id]
    assert [x.id for x in desk.find_cases(phone="+81 90 1234 5678")] == [a.id]
    assert [x.id for x in desk.find_cases(phone="09012345678")] == [a.id]
    assert [x.id for x in desk.find_cases(phone="03-9876-5678")] == [b.id]
    assert [x.id for x in desk.find_cases(phone="1111 2222")] == [c.id]
    assert desk.find_cases(phone="0000") == []
    with pytest.raises(InvalidInput, match="last 4 digits"):
        desk.find_cases(phone="78")


def test_find_by_status_combined_and_limited(desk: Desk) -> None:
    ids = [desk.create_case(customer_name="Kato", device_type="sd", symptom="x").id
           for _ in range(4)]  # fmt: skip
    desk.update_status(ids[0], "diagnosing")
    desk.update_status(ids[2], "Diagnosing")
    desk.create_case(customer_name="Ito", device_type="sd", symptom="x")
    assert [c.id for c in desk.find_cases(status="diagnosing")] == [ids[2], ids[0]]
    assert [c.id for c in desk.find_cases(status=CaseStatus.RECEIVED, name="kato")] == [
        ids[3],
        ids[1],
    ]
    assert len(desk.find_cases(name="kato", limit=2)) == 2
    assert [c.id for c in desk.list_cases()][:2] == ["R-1005", ids[2]]  # by last update
    assert len(desk.list_cases(limit=3)) == 3
    with pytest.raises(InvalidInput, match="not a case status"):
        desk.find_cases(status="lost")


@pytest.mark.parametrize(
    ("spoken", "device"),
    [
        ("HDD", DeviceType.HDD), ("hard disk", DeviceType.HDD), ("ハードディスク", DeviceType.HDD),
        ("external USB hard drive", DeviceType.HDD), ("ssd", DeviceType.SSD),
        ("USB SSD", DeviceType.SSD), ("usb", DeviceType.USB_STICK),
        ("USBメモリ", DeviceType.USB_STICK), ("flash drive", DeviceType.USB_STICK),
        ("sd", DeviceType.SD_CARD), ("micro SD", DeviceType.SD_CARD),
        ("ＳＤカード", DeviceType.SD_CARD), ("スマホ", DeviceType.PHONE),
        ("iPhone", DeviceType.PHONE), ("携帯", DeviceType.PHONE), ("nas", DeviceType.RAID_NAS),
        ("RAID 5", DeviceType.RAID_NAS), ("RAID/NAS", DeviceType.RAID_NAS),
        ("その他", DeviceType.OTHER), ("Other", DeviceType.OTHER),
    ],
)  # fmt: skip
def test_device_type_parsing(spoken: str, device: DeviceType) -> None:
    assert parse_device_type(spoken) is device


def test_unknown_device_lists_choices() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_device_type("toaster")
    assert str(err.value) == (
        "I don't know the device type 'toaster'; it should be one of: "
        "HDD, SSD, USB stick, SD card, phone, RAID/NAS or other."
    )


def test_blank_criteria_mean_not_given(desk: Desk) -> None:
    case = desk.create_case(customer_name="Abe", device_type="ssd", symptom="x")
    assert [c.id for c in desk.find_cases(name="", phone=" ", status="")] == [case.id]


def test_cases_by_the_time_they_were_opened(desk: Desk) -> None:
    import datetime as dt

    t0 = dt.datetime(2026, 3, 1, 14, 59, 59, 999_999, tzinfo=dt.UTC)
    opened = {}
    for i, at in enumerate([t0, t0 + dt.timedelta(microseconds=1), t0 + dt.timedelta(days=2)]):
        backdated = Desk(desk.store, clock=lambda at=at: at)
        opened[i] = backdated.create_case(
            customer_name=f"Ito {i}", device_type="HDD", symptom="clicks"
        ).id
    # an untouched case: the window is on created_at, not updated_at
    later = Desk(desk.store, clock=lambda: t0 + dt.timedelta(days=5))
    later.add_note(opened[0], "called back")
    tokyo = dt.timezone(dt.timedelta(hours=9))
    march_2 = dt.datetime(2026, 3, 2, tzinfo=tokyo)  # = t0 + 1 µs
    day = dt.timedelta(days=1)
    ids = lambda **w: sorted(c.id for c in desk.find_cases(limit=100, **w))  # noqa: E731
    assert ids(created_since=march_2, created_before=march_2 + day) == [opened[1]]
    assert ids(created_before=march_2) == [opened[0]]
    assert ids(created_since=march_2) == [opened[1], opened[2]]
    assert ids(created_since=march_2, created_before=march_2) == []
    assert ids(created_since=march_2, name="ito 2") == [opened[2]]
    with pytest.raises(InvalidInput, match="time zone"):
        desk.find_cases(created_since=dt.datetime(2026, 3, 2))
