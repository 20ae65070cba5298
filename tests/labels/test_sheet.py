"""Label sheets: one label per serial, Chinese text embedded, every QR code scans to its serial."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zxingcpp
from PIL import Image
from pypdf import PdfReader

from digital_village.labels import qr, sheet

BASE = "https://dv.example.cn"
GTIN = "06901234567892"
LOT = "RS2026-001"
NAME = "天府菜油 压榨一级菜籽油"
IN_CI = os.environ.get("CI", "").lower() == "true"


def make_sheet(count: int, **overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "base_url": BASE,
        "product_name": NAME,
        "gtin": GTIN,
        "lot": LOT,
        "serials": [f"{n:06d}" for n in range(1, count + 1)],
        "harvest_date": dt.date(2026, 5, 12),
    }
    arguments.update(overrides)
    return sheet.label_sheet(**arguments)  # type: ignore[arg-type]


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def render_pages(pdf: bytes, tmp_path: Path, dpi: int = 150) -> list[Image.Image]:
    """Rasterise with poppler's pdftoppm, as a print preview would."""
    if shutil.which("pdftoppm") is None:
        if IN_CI:
            pytest.fail("pdftoppm is missing: CI must install Debian's poppler-utils")
        pytest.skip("pdftoppm not installed (Debian: apt-get install poppler-utils)")
    source = tmp_path / "sheet.pdf"
    source.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-gray", "-png", str(source), str(tmp_path / "page")],
        check=True,
    )
    return [Image.open(path) for path in sorted(tmp_path.glob("page-*.png"))]


def test_one_label_per_serial_with_the_product_name_on_each(tmp_path: Path) -> None:
    pdf = make_sheet(30)
    texts = page_texts(pdf)
    assert len(texts) == 2  # 24 labels on an A4 sheet of 3 x 8, then 6
    flat = [text.replace("\n", "").replace(" ", "") for text in texts]
    assert [text.count("天府菜油") for text in flat] == [24, 6]
    assert [text.count(f"批次{LOT}") for text in flat] == [24, 6]
    assert [text.count("采收2026-05-12") for text in flat] == [24, 6]
    for number in range(1, 31):
        page = 0 if number <= 24 else 1
        assert f"序号{number:06d}" in flat[page]
        assert sheet.short_code(GTIN, LOT, f"{number:06d}") in flat[page]


def test_every_qr_code_on_the_sheet_scans_to_its_serial(tmp_path: Path) -> None:
    pdf = make_sheet(30)
    pages = render_pages(pdf, tmp_path)
    assert len(pages) == 2
    found = [
        sorted(barcode.text for barcode in zxingcpp.read_barcodes(page.convert("L")))
        for page in pages
    ]
    expected = [qr.label_uri(BASE, GTIN, LOT, f"{n:06d}") for n in range(1, 31)]
    assert found == [sorted(expected[:24]), sorted(expected[24:])]


def test_chinese_renders_from_the_embedded_font_alone(tmp_path: Path) -> None:
    reader = PdfReader(io.BytesIO(make_sheet(3)))
    fonts = reader.pages[0]["/Resources"]["/Font"]
    names = []
    for reference in fonts.values():
        font = reference.get_object()
        names.append(font["/BaseFont"])
        # A TrueType subset with its glyphs in the file: no font needed where it is printed.
        descriptor = font["/FontDescriptor"].get_object()
        assert "/FontFile2" in descriptor
        assert "/ToUnicode" in font  # the text stays searchable and copyable
    assert names and all(re.fullmatch(r"/[A-Z]{6}\+WenQuanYiMicroHei-\d+", n) for n in names)
    # Rendered, the name's glyph is really drawn (not a blank or a box): at 300 dpi the name's
    # line on the first label spans 34.5-67.5 mm across and 3-8.5 mm down the page.
    page = render_pages(make_sheet(1, product_name="菜"), tmp_path, dpi=300)[0]
    name_line = page.convert("L").crop((407, 35, 797, 100))
    dark = int((np.asarray(name_line) < 128).sum())
    assert 300 < dark < 1500, dark


def test_a_part_used_sheet_starts_at_the_given_position() -> None:
    texts = page_texts(make_sheet(5, start_position=20))
    assert [text.count("天府菜油") for text in texts] == [4, 1]


def test_long_names_shrink_then_are_cut_on_two_lines() -> None:
    long_name = "旌阳区黄许镇合作社冷榨一级浓香菜籽油礼盒装特别版本" * 2
    text = page_texts(make_sheet(1, product_name=long_name))[0]
    assert "…" in text
    assert long_name not in text.replace("\n", "")


def test_output_is_deterministic() -> None:
    assert make_sheet(3) == make_sheet(3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"serials": []}, "at least one"),
        ({"serials": ["1", "2", "1"]}, "repeat"),
        ({"start_position": 24}, "start position"),
        ({"product_name": "  "}, "empty"),
        ({"product_name": "油\U00020000"}, r"no glyph for .* \(U\+20000\)"),
        ({"gtin": "06901234567893"}, "check digit"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_sheet(3, **overrides)


def test_layouts_that_do_not_fit_are_refused() -> None:
    with pytest.raises(sheet.LabelError, match="do not fit"):
        sheet.SheetLayout(columns=4)
    assert sheet.SheetLayout(columns=2, rows=7, label_width=99.1, label_height=38.1).per_page == 14


def test_short_code_is_crockford_base32_of_the_link_hash() -> None:
    code = sheet.short_code(GTIN, LOT, "000001")
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", code)
    digest = hashlib.sha256(f"/01/{GTIN}/10/{LOT}/21/000001".encode()).digest()
    rfc4648 = base64.b32encode(digest[:5]).decode()  # 40 bits: 8 characters, no padding
    crockford = rfc4648.translate(
        str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    )
    assert code == f"{crockford[:4]}-{crockford[4:]}"
    assert sheet.short_code("6901234567892", LOT, "000001") == code  # GTIN-13 or -14: same unit
    assert sheet.short_code(GTIN, LOT, "000002") != code
