"""Label sheets: a PDF of self-adhesive labels for the serials of one lot (docs/DESIGN.md §7).

Each label carries the serial's QR code (its GS1 Digital Link URI, error correction Q) and, for
people: the product name, the lot, the harvest date, the serial and a short code to type in when
the QR code cannot be read. The default sheet is A4 with 3 × 8 labels of 70 × 37 mm, the common
die-cut stock; ``SheetLayout`` describes any other grid.

Chinese must print on any machine, so the font ships with the package
(``fonts/wqy-microhei.ttc``, Apache-2.0) and reportlab embeds the subset of glyphs used into
the PDF: the file renders the same in every viewer and printer driver, with nothing installed.
The QR codes are drawn as vector rectangles, sharp at any printer resolution.

``label_sheet`` is pure: it takes the data and returns the PDF bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from digital_village.gs1.short_code import short_code
from digital_village.labels import qr

__all__ = [
    "A4_3X8",
    "FONT_NAME",
    "LabelError",
    "SheetLayout",
    "expand_serials",
    "label_sheet",
    "short_code",
]

FONT_NAME: Final = "WenQuanYiMicroHei"
_FONT_FILE: Final = Path(__file__).with_name("fonts") / "wqy-microhei.ttc"
# Crockford's base32: no I, L, O or U, so a code read aloud or typed from a label is unambiguous.
_CAPTIONS: Final = {"lot": "批次", "harvest": "采收", "serial": "序号", "code": "查询码"}


class LabelError(ValueError):
    """Labels cannot be laid out as asked; the message says why."""


@dataclass(frozen=True)
class SheetLayout:
    """A grid of labels on a page; all lengths in millimetres, from the top-left corner."""

    page_width: float = 210.0
    page_height: float = 297.0
    columns: int = 3
    rows: int = 8
    label_width: float = 70.0
    label_height: float = 37.0
    margin_left: float = 0.0
    margin_top: float = 0.5
    gap_x: float = 0.0
    gap_y: float = 0.0
    # Keep ink this far inside each label: die-cutting and printer feed drift by a millimetre or so.
    padding: float = 2.5

    def __post_init__(self) -> None:
        if self.columns < 1 or self.rows < 1:
            raise LabelError(
                f"a sheet needs at least one row and column, got {self.rows}×{self.columns}"
            )
        right = self.margin_left + self.columns * self.label_width + (self.columns - 1) * self.gap_x
        bottom = self.margin_top + self.rows * self.label_height + (self.rows - 1) * self.gap_y
        if right > self.page_width + 1e-6 or bottom > self.page_height + 1e-6:
            raise LabelError(
                f"{self.columns}×{self.rows} labels of {self.label_width}×{self.label_height} mm "
                f"do not fit on a {self.page_width}×{self.page_height} mm page"
            )
        if self.label_height - 2 * self.padding < 15:
            raise LabelError("labels must leave at least 15 mm for the QR code inside the padding")

    @property
    def per_page(self) -> int:
        """Labels on one sheet."""
        return self.columns * self.rows

    def origin(self, position: int) -> tuple[float, float]:
        """Top-left corner (mm from the page's top-left) of the label at ``position`` on a page."""
        row, column = divmod(position, self.columns)
        return (
            self.margin_left + column * (self.label_width + self.gap_x),
            self.margin_top + row * (self.label_height + self.gap_y),
        )


A4_3X8: Final = SheetLayout()


def expand_serials(spec: str, *, limit: int = 10_000) -> list[str]:
    """``"0001-0024,0100,A7"`` → the serials it names, in order.

    A range ``FIRST-LAST`` of two numbers of the same width counts up keeping that width
    (``0008-0011`` → 0008 0009 0010 0011); anything else is one serial as written. Raises
    LabelError for an empty item, a backwards or mixed-width range, a repeat, or more than
    ``limit`` serials.
    """
    serials: list[str] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            raise LabelError(f"empty item in serials {spec!r}")
        first, dash, last = item.partition("-")
        if dash and first.isdigit() and last.isdigit() and first.isascii() and last.isascii():
            if len(first) != len(last):
                raise LabelError(f"range {item!r}: both ends need the same number of digits")
            if int(last) < int(first):
                raise LabelError(f"range {item!r} ends before it starts")
            if len(serials) + int(last) - int(first) + 1 > limit:
                raise LabelError(f"more than {limit} serials in {spec!r}")
            serials.extend(f"{n:0{len(first)}d}" for n in range(int(first), int(last) + 1))
        else:
            serials.append(item)
        if len(serials) > limit:
            raise LabelError(f"more than {limit} serials in {spec!r}")
    seen: set[str] = set()
    for serial in serials:
        if serial in seen:
            raise LabelError(f"serial {serial!r} appears twice in {spec!r}")
        seen.add(serial)
    return serials


@functools.cache
def _font() -> TTFont:
    # Registered on first use, not at import: loading the 5 MB font file costs ~0.1 s.
    font = TTFont(FONT_NAME, str(_FONT_FILE), subfontIndex=0)
    pdfmetrics.registerFont(font)
    return font


def _check_glyphs(text: str, what: str) -> None:
    covered = _font().face.charToGlyph
    missing = sorted({char for char in text if ord(char) not in covered and char.isprintable()})
    if missing:
        shown = " ".join(f"{char} (U+{ord(char):04X})" for char in missing)
        raise LabelError(f"the label font has no glyph for {shown} in the {what} {text!r}")


def _width(text: str, size: float) -> float:
    return pdfmetrics.stringWidth(text, FONT_NAME, size)


def _wrap(text: str, size: float, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` points.

    Chinese may break between any two characters; Latin words break at spaces when they can.
    """
    lines: list[str] = []
    line = ""
    for char in text:
        if _width(line + char, size) <= width or not line:
            line += char
            continue
        cut = line.rfind(" ")
        if char != " " and cut > 0 and line[cut + 1 :].isascii():
            lines.append(line[:cut])
            line = line[cut + 1 :] + char
        else:
            lines.append(line.rstrip())
            line = char.lstrip()
    if line:
        lines.append(line)
    return lines


def _fit_lines(
    text: str, width: float, sizes: Sequence[float], max_lines: int
) -> tuple[float, list[str]]:
    """The largest size at which ``text`` fits in ``max_lines``; else the smallest, cut with …"""
    for size in sizes:
        lines = _wrap(text, size, width)
        if len(lines) <= max_lines:
            return size, lines
    size = sizes[-1]
    lines = _wrap(text, size, width)[:max_lines]
    last = lines[-1]
    while last and _width(last + "…", size) > width:
        last = last[:-1]
    lines[-1] = last + "…"
    return size, lines


def _fit_size(text: str, width: float, sizes: Sequence[float]) -> float:
    """The largest font size at which ``text`` fits on one line (the smallest if none does)."""
    return next((size for size in sizes if _width(text, size) <= width), sizes[-1])


def _draw_qr(canvas: Canvas, symbol: qr.Symbol, x: float, y_top: float, size: float) -> None:
    """Draw the symbol's dark modules as filled rectangles, quiet zone included in ``size``."""
    layout = qr.print_layout(symbol, size_mm=size / mm)
    module = layout.module_mm * mm
    # Work in module units: a coordinate system whose origin is the symbol's top-left module
    # and whose y axis points down, so every rectangle has small integer coordinates. Written
    # as raw operators, this is ~10x faster than reportlab's path API, which formats every
    # number as a float - it matters for sheets of a thousand labels.
    origin_x = x + qr.QUIET_ZONE * module
    origin_y = y_top - qr.QUIET_ZONE * module
    operators = [f"q 0 g {module:.4f} 0 0 {-module:.4f} {origin_x:.3f} {origin_y:.3f} cm"]
    for row_index, row in enumerate(symbol.modules):
        column = 0
        while column < len(row):
            if not row[column]:
                column += 1
                continue
            start = column
            while column < len(row) and row[column]:
                column += 1
            operators.append(f"{start} {row_index} {column - start} 1 re")
    operators.append("f Q")
    canvas.addLiteral("\n".join(operators))


@dataclass(frozen=True)
class _Label:
    product_lines: list[str]
    product_size: float
    lot: str
    harvest: str | None
    serial: str
    code: str
    host: str
    symbol: qr.Symbol


def _draw_label(
    canvas: Canvas, layout: SheetLayout, label: _Label, x_mm: float, y_mm: float
) -> None:
    page_top = layout.page_height * mm
    pad = layout.padding * mm
    left, top = x_mm * mm, page_top - y_mm * mm
    qr_size = layout.label_height * mm - 2 * pad
    # The QR code's own quiet zone separates it from the text, so the text starts right after.
    _draw_qr(canvas, label.symbol, left + pad, top - pad, qr_size)
    text_left = left + pad + qr_size
    text_width = left + layout.label_width * mm - pad - text_left

    y = top - pad
    leading = label.product_size * 1.2
    canvas.setFillGray(0)
    canvas.setFont(FONT_NAME, label.product_size)
    for line in label.product_lines:
        y -= leading
        canvas.drawString(text_left, y, line)
    y -= 1.0 * mm
    details = [f"{_CAPTIONS['lot']} {label.lot}"]
    if label.harvest:
        details.append(f"{_CAPTIONS['harvest']} {label.harvest}")
    details.append(f"{_CAPTIONS['serial']} {label.serial}")
    for detail in details:
        size = _fit_size(detail, text_width, (7.0, 6.5, 6.0, 5.5, 5.0))
        canvas.setFont(FONT_NAME, size)
        y -= size * 1.25
        canvas.drawString(text_left, y, detail)
    # The short code sits at the bottom of the label, large enough to read and type, under a
    # caption saying where to type it.
    bottom = top - layout.label_height * mm + pad + 0.5 * mm
    code_size = _fit_size(label.code, text_width, (11.0, 10.0, 9.0, 8.0))
    canvas.setFont(FONT_NAME, code_size)
    canvas.drawString(text_left, bottom, label.code)
    caption = f"{_CAPTIONS['code']} {label.host}"
    caption_size = _fit_size(caption, text_width, (6.0, 5.5, 5.0, 4.5))
    canvas.setFont(FONT_NAME, caption_size)
    canvas.drawString(text_left, bottom + code_size * 1.05, caption)


def label_sheet(
    *,
    base_url: str,
    product_name: str,
    gtin: str,
    lot: str,
    serials: Sequence[str],
    harvest_date: dt.date | None = None,
    layout: SheetLayout = A4_3X8,
    start_position: int = 0,
    outlines: bool = False,
) -> bytes:
    """Return a PDF with one label per serial, filling sheets row by row.

    ``start_position`` skips that many labels on the first sheet (to reuse a part-used sheet).
    ``outlines`` draws each label's outline, for proofs on plain paper; leave it off for die-cut
    label stock, where a printer's feed tolerance would put the lines beside the cuts.
    """
    if not serials:
        raise LabelError("no serials: a label sheet needs at least one")
    if len(set(serials)) != len(serials):
        raise LabelError("serials repeat: each unit needs its own label")
    if not 0 <= start_position < layout.per_page:
        raise LabelError(f"start position must be 0..{layout.per_page - 1}, got {start_position}")
    name = " ".join(product_name.split())
    if not name:
        raise LabelError("the product name is empty")
    _check_glyphs(name, "product name")
    _font()

    pad = layout.padding * mm
    text_width = (layout.label_width - 2 * layout.padding) * mm - (
        layout.label_height * mm - 2 * pad
    )
    product_size, product_lines = _fit_lines(name, text_width, (10.0, 9.0, 8.0, 7.0), max_lines=2)
    harvest = harvest_date.isoformat() if harvest_date else None
    host = urlsplit(qr.label_uri(base_url, gtin)).netloc

    out = io.BytesIO()
    canvas = Canvas(
        out,
        pagesize=(layout.page_width * mm, layout.page_height * mm),
        invariant=True,  # byte-identical output for the same input
        pageCompression=1,
        # Else every page references an unused, unembedded Helvetica. (types-reportlab has this
        # parameter as a float by mistake.)
        initialFontName=FONT_NAME,  # type: ignore[arg-type]
    )
    canvas.setTitle(f"{name} {lot}")
    canvas.setSubject(f"{len(serials)} labels, GTIN {gtin}, lot {lot}")
    canvas.setCreator("Digital Village")
    position = start_position
    for serial in serials:
        if position == layout.per_page:
            canvas.showPage()
            position = 0
        uri = qr.label_uri(base_url, gtin, lot, serial)
        label = _Label(
            product_lines=product_lines,
            product_size=product_size,
            lot=lot,
            harvest=harvest,
            serial=serial,
            code=short_code(gtin, lot, serial),
            host=host,
            symbol=qr.encode(uri),
        )
        x, y = layout.origin(position)
        if outlines:
            canvas.setStrokeGray(0.75)
            canvas.setLineWidth(0.25)
            top = (layout.page_height - y - layout.label_height) * mm
            canvas.roundRect(x * mm, top, layout.label_width * mm, layout.label_height * mm, 2 * mm)
        _draw_label(canvas, layout, label, x, y)
        position += 1
    canvas.showPage()
    canvas.save()
    return out.getvalue()
