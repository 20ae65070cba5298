"""Land-use classes of GB/T 21010-2017 (土地利用现状分类) that farm parcels carry, and crop seasons.

Only the second-level classes a contracted parcel can have are listed: cropland (01), garden
(02), forest (03), grassland (04) and the agricultural water and facility classes (11, 12).
Seasons follow the Sichuan basin's two crops a year: 大春 (summer: rice, maize) sown in May,
小春 (winter: rapeseed, wheat) sown in October.
"""

from __future__ import annotations

import datetime as dt
import re

LAND_USE: dict[str, str] = {
    "0101": "水田",
    "0102": "水浇地",
    "0103": "旱地",
    "0201": "果园",
    "0202": "茶园",
    "0203": "橡胶园",
    "0204": "其他园地",
    "0301": "乔木林地",
    "0302": "竹林地",
    "0305": "灌木林地",
    "0307": "其他林地",
    "0401": "天然牧草地",
    "0403": "人工牧草地",
    "0404": "其他草地",
    "1104": "坑塘水面",
    "1202": "设施农用地",
    "1203": "田坎",
}
# English names for maps printed where no CJK font is installed.
LAND_USE_EN: dict[str, str] = {
    "0101": "paddy",
    "0102": "irrigated",
    "0103": "dry land",
    "0201": "orchard",
    "0202": "tea",
    "0203": "rubber",
    "0204": "other garden",
    "0301": "forest",
    "0302": "bamboo",
    "0305": "shrubland",
    "0307": "other forest",
    "0401": "natural grass",
    "0403": "sown grass",
    "0404": "other grass",
    "1104": "pond",
    "1202": "farm facility",
    "1203": "field ridge",
}
CROPS_EN: dict[str, str] = {
    "水稻": "rice",
    "油菜": "rapeseed",
    "玉米": "maize",
    "小麦": "wheat",
    "大豆": "soybean",
    "蔬菜": "vegetables",
    "休耕": "fallow",
}

SEASONS = ("summer", "winter")
_SEASON = re.compile(r"^(?P<year>\d{4})-(?P<season>summer|winter)$")


def land_use_name(code: str) -> str | None:
    """The Chinese name of a GB/T 21010 class, or None when the code is not one listed here."""
    return LAND_USE.get(code)


def season_period(label: str) -> tuple[dt.date, dt.date]:
    """The dates [from, to) of a season label such as '2026-summer' or '2026-winter'.

    Raises ValueError naming the expected form.
    """
    found = _SEASON.match(label)
    if found is None:
        raise ValueError(f"season {label!r} must look like 2026-summer or 2026-winter")
    year = int(found["year"])
    if found["season"] == "summer":
        return dt.date(year, 5, 1), dt.date(year, 10, 1)
    return dt.date(year, 10, 1), dt.date(year + 1, 5, 1)


def season_of(day: dt.date) -> str:
    """The season label a date falls in (5 May 2026 → '2026-summer', 3 Feb 2026 → '2025-winter')."""
    if 5 <= day.month <= 9:
        return f"{day.year}-summer"
    return f"{day.year if day.month >= 10 else day.year - 1}-winter"
