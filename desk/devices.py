"""Device types and tolerant parsing of how callers name them."""

from __future__ import annotations

from enum import StrEnum

from desk.errors import InvalidInput, join_or
from desk.names import fold


class DeviceType(StrEnum):
    HDD = "HDD"
    SSD = "SSD"
    USB_STICK = "USB stick"
    SD_CARD = "SD card"
    PHONE = "phone"
    RAID_NAS = "RAID/NAS"
    OTHER = "other"


# Whole-word forms that are too short to search for inside longer text.
_EXACT: dict[str, DeviceType] = {
    "hd": DeviceType.HDD,
    "sd": DeviceType.SD_CARD,
    "エスディー": DeviceType.SD_CARD,
    "ナス": DeviceType.RAID_NAS,
}

# Checked in this order, by substring: more specific kinds first, so "USB hard disk" is an
# HDD, "USB SSD" an SSD, and "SSD" is not mistaken for "SD".
_KEYWORDS: tuple[tuple[DeviceType, tuple[str, ...]], ...] = (
    (DeviceType.RAID_NAS, ("raid", "nas", "レイド", "server", "サーバ")),
    (DeviceType.SSD, ("ssd", "solidstate", "エスエスディー", "nvme")),
    (DeviceType.HDD, ("hdd", "harddisk", "harddrive", "ハードディスク", "ハードドライブ",
                      "エイチディーディー")),
    (DeviceType.SD_CARD, ("sdcard", "microsd", "sdhc", "sdxc", "sdカード", "memorycard",
                          "メモリーカード", "メモリカード")),
    (DeviceType.USB_STICK, ("usb", "flash", "thumbdrive", "pendrive", "memorystick",
                            "ユーエスビー", "フラッシュ")),
    (DeviceType.PHONE, ("phone", "android", "スマホ", "スマートフォン", "携帯", "ケータイ",
                        "アイフォン", "アンドロイド", "mobile")),
    (DeviceType.OTHER, ("other", "その他", "unknown", "不明")),
)  # fmt: skip

_FOLDED_EXACT = {fold(k): v for k, v in _EXACT.items()} | {fold(d.value): d for d in DeviceType}
_FOLDED_KEYWORDS = tuple((d, tuple(fold(w) for w in words)) for d, words in _KEYWORDS)


def parse_device_type(value: DeviceType | str) -> DeviceType:
    if isinstance(value, DeviceType):
        return value
    key = fold(str(value))
    if key in _FOLDED_EXACT:
        return _FOLDED_EXACT[key]
    for device, words in _FOLDED_KEYWORDS:
        if key and any(w in key for w in words):
            return device
    raise InvalidInput(
        f"I don't know the device type '{value}'; it should be one of: "
        f"{join_or(list(DeviceType))}.",
        field="device_type",
    )
