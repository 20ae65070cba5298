"""What the console's forms share: the values sent, the mistakes found, and the common checks.

A console form arrives as a JSON object of field names and values (the page's script sends the
form's fields; a field ticked or chosen several times is a list) or, for a check before saving,
as the query of the panel's URL. Each mistake is kept under the field it concerns, in the
manager's language (web/manage_words.py), and shown next to that field; a form with mistakes
stores nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar
from urllib.parse import quote

from digital_village.gs1 import keys
from digital_village.trace import products, tracing
from digital_village.trace.builders import CHINA
from digital_village.trace.capture import CaptureResult
from digital_village.web.manage_context import Console
from digital_village.web.manage_words import words

# AI 10 (lot) values the console accepts: GS1's character set 82 would allow more, but these
# survive every label, URL and spreadsheet a cooperative uses.
LOT_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,19}")
SERIAL_PATTERN: Final = re.compile(r"[A-Za-z0-9]{1,20}")
T = TypeVar("T")


class Form:
    """The fields of a submitted form (or of a check's query), as text."""

    def __init__(self, values: Mapping[str, Any] | Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, list[str]] = {}
        items = values.items() if isinstance(values, Mapping) else values
        for name, value in items:
            given = value if isinstance(value, list) else [value]
            self._values.setdefault(str(name), []).extend(
                "" if item is None else str(item) for item in given if not isinstance(item, dict)
            )

    def text(self, name: str) -> str:
        """The field's value, stripped ('' when not sent)."""
        found = self._values.get(name)
        return found[0].strip() if found else ""

    def many(self, name: str) -> list[str]:
        """Every non-empty value sent under the name, in order, without repeats."""
        return list(dict.fromkeys(v.strip() for v in self._values.get(name, []) if v.strip()))

    def flag(self, name: str) -> bool:
        return self.text(name).lower() in {"1", "on", "true", "yes"}

    def __contains__(self, name: str) -> bool:
        return bool(self.text(name))

    def values(self) -> dict[str, str]:
        """The first value of each field, to fill the form in again."""
        return {name: self.text(name) for name in self._values}


@dataclass
class Mistakes:
    """Mistakes by field, worded in the manager's language."""

    language: str
    by_field: dict[str, str] = field(default_factory=dict)

    def add(self, where: str, key: str, /, **values: Any) -> None:
        """Note the mistake ``key`` (its words filled with ``values``) at the field ``where``."""
        if where not in self.by_field:
            self.by_field[where] = words(self.language)[key].format(**values)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def __contains__(self, name: str) -> bool:
        return name in self.by_field


@dataclass
class Done:
    """What a saved form recorded: the ledger entries that vouch for it, and what to show."""

    seqs: list[int]
    lines: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, href)
    qr_svg: str | None = None  # a data: URI of an SVG image
    secret: str | None = None  # shown once (an invitation's sign-in link)


def checked(
    form: Form, mistakes: Mistakes, check: bool, plan: Callable[[Mistakes], T], *always: str
) -> T:
    """What ``plan`` makes of the form, checked apart from ``mistakes``: for a check before
    saving, its mistakes about the fields filled in so far (and ``always``) are shown."""
    found = Mistakes(mistakes.language)
    made = plan(found)
    if check:
        shown = [name for name in found.by_field if name in form or name in always]
        mistakes.by_field.update({name: found.by_field[name] for name in shown})
    return made


def lot_link(gtin: str, lot: str) -> tuple[str, str]:
    """A lot and the address of its consumer page, for a saved form's answer."""
    return lot, f"/01/{gtin}/10/{quote(lot, safe='')}"


def recorded(captured: CaptureResult, *lines: str, link: tuple[str, str]) -> Done:
    """What a form that captured events answers: their ledger entries, lines and the lot."""
    return Done(
        seqs=[event.ledger_seq for event in captured.events], lines=list(lines), links=[link]
    )


def gtin(form: Form, mistakes: Mistakes, name: str = "gtin") -> str | None:
    """The field as a GTIN-14; a mistake naming its fault (digits, length, check digit)."""
    value = form.text(name).replace(" ", "")
    if not value:
        mistakes.add(name, "err_required")
        return None
    if not keys.is_digits(value):
        mistakes.add(name, "err_gtin_digits", value=value)
        return None
    if len(value) not in keys.GTIN_LENGTHS:
        mistakes.add(name, "err_gtin_length", count=len(value))
        return None
    expected = keys.check_digit(value[:-1])
    if value[-1] != expected:
        mistakes.add(name, "err_gtin_check", value=value, digit=expected, given=value[-1])
        return None
    return value.zfill(14)


def number(
    form: Form,
    mistakes: Mistakes,
    name: str,
    *,
    required: bool = True,
    positive: bool = True,
    maximum: float | None = None,
) -> float | None:
    """The field as a finite number (above 0 when ``positive``, at most ``maximum``)."""
    text = form.text(name).replace(",", "")
    if not text:
        if required:
            mistakes.add(name, "err_required")
        return None
    try:
        value = float(text)
    except ValueError:
        mistakes.add(name, "err_number")
        return None
    if not math.isfinite(value):
        mistakes.add(name, "err_number")
        return None
    if positive and value <= 0:
        mistakes.add(name, "err_positive")
        return None
    if maximum is not None and value > maximum:
        mistakes.add(name, "err_too_many", max=f"{maximum:g}")
        return None
    return value


def whole(form: Form, mistakes: Mistakes, name: str, *, low: int, high: int, key: str) -> int:
    """The field as a whole number in [low, high]; a mistake worded by ``key`` otherwise."""
    text = form.text(name)
    if not text.isdigit() or not low <= int(text) <= high:
        mistakes.add(name, key, max=high)
        return low
    return int(text)


def lot_code(form: Form, mistakes: Mistakes, name: str = "lot") -> str | None:
    value = form.text(name)
    if not value:
        mistakes.add(name, "err_required")
        return None
    if LOT_PATTERN.fullmatch(value) is None:
        mistakes.add(name, "err_lot_format")
        return None
    return value


def day(form: Form, mistakes: Mistakes, name: str = "day") -> dt.date:
    """The field as a day no later than today in China (today when empty)."""
    today = tracing.china_today()
    text = form.text(name)
    if not text:
        return today
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        mistakes.add(name, "err_day")
        return today
    if value > today:
        mistakes.add(name, "err_future")
        return today
    return value


def event_time(on: dt.date) -> dt.datetime:
    """When an event recorded for a day happened: now if the day is today, else noon (China)."""
    now = dt.datetime.now(CHINA).replace(microsecond=0)
    if on == now.date():
        return now
    return dt.datetime.combine(on, dt.time(12), tzinfo=CHINA)


def suggested_lot(console: Console, prefix: str, on: dt.date | None = None) -> str:
    """A lot number the cooperative's latest lots do not use: prefix, day (yymmdd), a count.

    Only a suggestion: the form checks the lot number given against every lot of its product.
    """
    when = on or tracing.china_today()
    taken = {
        lot.lot
        for lot in products.lots_of_cooperative(
            session=console.session, cooperative_id=console.cooperative_id, limit=60
        )
    }
    for n in range(1, 1000):
        code = f"{prefix}{when:%y%m%d}-{n:02d}"
        if code not in taken:
            return code
    return f"{prefix}{when:%y%m%d}-{len(taken) + 1}"


def quantity(language: str, value: float, unit: str) -> str:
    """A quantity with its unit in the manager's words (2,000 千克)."""
    return f"{amount(value)} {words(language).get(f'unit_{unit}', unit)}"


def amount(value: float) -> str:
    """A quantity as people write it: at most three decimals, no trailing zeros."""
    return f"{value:,.3f}".rstrip("0").rstrip(".")
