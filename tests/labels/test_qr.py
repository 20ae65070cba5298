"""QR codes: decoded back to the exact URI, printed at the asked size, and as qrcode makes them."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import qrcode
import qrcode.util
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from digital_village.gs1.keys import GTINError
from digital_village.labels import qr
from digital_village.parcels.codes import CodeError

BASE = "https://dv.example.cn"
GTIN = "06901234567892"
DKBM = "5106031010010100001"


def decode(image: Image.Image) -> list[zxingcpp.Barcode]:
    return list(zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode))


def decode_png(data: bytes) -> zxingcpp.Barcode:
    found = decode(Image.open(io.BytesIO(data)))
    assert len(found) == 1, f"expected one QR code, found {len(found)}"
    return found[0]


def svg_to_image(data: bytes, scale: int = 8) -> Image.Image:
    """Rasterise our SVG by reading its run rectangles back: an independent check of the drawing."""
    text = data.decode()
    side = int(re.search(r'viewBox="0 0 (\d+) \1"', text).group(1))  # type: ignore[union-attr]
    image = Image.new("L", (side * scale, side * scale), 255)
    draw = ImageDraw.Draw(image)
    path = re.search(r'<path fill="#000" d="([^"]*)"', text).group(1)  # type: ignore[union-attr]
    for x, y, width in re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path):
        left, top = int(x) * scale, int(y) * scale
        draw.rectangle((left, top, left + int(width) * scale - 1, top + scale - 1), fill=0)
    assert len(re.findall(r"M", path)) == len(re.findall(r"M(\d+) (\d+)h(\d+)v1h-\3z", path))
    return image


@pytest.mark.parametrize(
    ("lot", "serial"),
    [(None, None), ("RS2026-001", None), ("RS2026-001", "000123"), ("A/B-1", "x%y")],
)
def test_label_png_decodes_to_the_exact_digital_link(lot: str | None, serial: str | None) -> None:
    uri = qr.label_uri(BASE, GTIN, lot, serial)
    assert uri.startswith(f"{BASE}/01/{GTIN}")
    barcode = decode_png(qr.label_png(BASE, GTIN, lot, serial))
    assert barcode.text == uri
    assert barcode.ec_level == "Q"


def test_label_uris_are_canonical_gs1_digital_links() -> None:
    assert qr.label_uri(BASE + "/", "6901234567892") == f"{BASE}/01/{GTIN}"
    assert qr.label_uri(BASE, GTIN, "RS2026-001") == f"{BASE}/01/{GTIN}/10/RS2026-001"
    assert qr.label_uri(BASE, GTIN, "L1", "S/1") == f"{BASE}/01/{GTIN}/10/L1/21/S%2F1"
    with pytest.raises(GTINError, match="check digit"):
        qr.label_uri(BASE, "06901234567893")


def test_parcel_sign_decodes_to_its_uri_with_high_error_correction() -> None:
    barcode = decode_png(qr.parcel_png(BASE, DKBM))
    assert barcode.text == f"{BASE}/p/{DKBM}"
    assert barcode.ec_level == "H"
    assert svg_to_image(qr.parcel_svg(BASE, DKBM)).size[0] > 0
    assert decode(svg_to_image(qr.parcel_svg(BASE, DKBM)))[0].text == f"{BASE}/p/{DKBM}"


@pytest.mark.parametrize(
    ("base", "dkbm", "message"),
    [
        (BASE, "510603101001010000", "19 digits"),
        (BASE, "5106031010010100000", "sequence 00000"),
        ("ftp://dv.example.cn", DKBM, "http"),
        ("https://dv.example.cn?x=1", DKBM, "query"),
    ],
)
def test_parcel_uri_rejects_bad_input(base: str, dkbm: str, message: str) -> None:
    with pytest.raises((qr.QRError, CodeError), match=message):
        qr.parcel_uri(base, dkbm)


def test_svg_is_the_same_symbol_at_the_exact_size() -> None:
    uri = qr.label_uri(BASE, GTIN, "RS2026-001", "000123")
    data = qr.label_svg(BASE, GTIN, "RS2026-001", "000123", size_mm=30)
    assert b'width="30mm" height="30mm"' in data
    symbol = qr.encode(uri)
    image = svg_to_image(data, scale=1)
    side = symbol.width + 2 * qr.QUIET_ZONE
    assert image.size == (side, side)
    pixels = np.asarray(image) == 0
    assert not pixels[: qr.QUIET_ZONE].any() and not pixels[-qr.QUIET_ZONE :].any()
    assert not pixels[:, : qr.QUIET_ZONE].any() and not pixels[:, -qr.QUIET_ZONE :].any()
    inner = pixels[qr.QUIET_ZONE : -qr.QUIET_ZONE, qr.QUIET_ZONE : -qr.QUIET_ZONE]
    assert inner.tolist() == [list(row) for row in symbol.modules]
    assert decode(svg_to_image(data))[0].text == uri


def test_png_prints_at_the_asked_size_with_whole_dots_and_a_quiet_zone() -> None:
    uri = qr.label_uri(BASE, GTIN, "RS2026-001", "000123")
    symbol = qr.encode(uri)
    data = qr.png(symbol, size_mm=25, dpi=300)
    image = Image.open(io.BytesIO(data))
    assert image.mode == "1"
    assert round(image.info["dpi"][0]) == 300
    modules = symbol.width + 2 * qr.QUIET_ZONE
    layout = qr.print_layout(symbol, size_mm=25, dpi=300)
    assert layout.modules == modules
    assert image.size == (modules * layout.dots_per_module,) * 2  # type: ignore[operator]
    # Whole dots per module: at most one dot per module short of the asked size, never over.
    assert 25 - modules * 25.4 / 300 < layout.size_mm <= 25
    dots = layout.dots_per_module
    assert dots is not None
    pixels = np.asarray(image.convert("L")) == 0
    border = qr.QUIET_ZONE * dots
    assert not pixels[:border].any() and not pixels[:, :border].any()
    # Each module is a solid square of dots that matches the symbol.
    sampled = pixels[border + dots // 2 :: dots, border + dots // 2 :: dots][: symbol.width]
    assert sampled[:, : symbol.width].tolist() == [list(row) for row in symbol.modules]


def test_modules_too_small_to_scan_are_refused_with_the_size_needed() -> None:
    symbol = qr.encode(qr.label_uri(BASE, GTIN, "RS2026-001", "000123"))
    with pytest.raises(qr.QRError, match=r"below the 0.4 mm minimum: print it at least [\d.]+ mm"):
        qr.print_layout(symbol, size_mm=12)
    with pytest.raises(qr.QRError, match="smaller than one dot"):
        qr.print_layout(symbol, size_mm=25, dpi=40, min_module_mm=0)
    with pytest.raises(qr.QRError, match="positive"):
        qr.print_layout(symbol, size_mm=0)
    with pytest.raises(qr.QRError, match="empty"):
        qr.encode("")
    with pytest.raises(qr.QRError, match="too many"):
        qr.encode("x" * 3000, error_correction="H")


@pytest.mark.parametrize(("level", "scans"), [("L", False), ("M", False), ("Q", True), ("H", True)])
def test_a_scratched_and_smudged_label_scans_from_level_q_up(
    level: qr.ErrorCorrection, scans: bool
) -> None:
    """Why labels use Q: the same scratch and smudge on a 60 mm print defeat L and M."""
    uri = qr.label_uri(BASE, GTIN, "RS2026-001", "000123")
    data = qr.png(qr.encode(uri, error_correction=level), size_mm=60, dpi=150)
    image = Image.open(io.BytesIO(data)).convert("L")
    side = image.size[0]
    draw = ImageDraw.Draw(image)
    # A white scratch across the middle, and a dark smudge over a quarter of the data area.
    draw.line((side * 0.15, side * 0.55, side * 0.85, side * 0.45), fill=255, width=side // 25)
    draw.ellipse((side * 0.55, side * 0.55, side * 0.8, side * 0.8), fill=0)
    assert [barcode.text for barcode in decode(image)] == ([uri] if scans else [])
    # The undamaged print scans at every level.
    assert decode_png(data).text == uri


@settings(max_examples=60, deadline=None)
@given(
    data=st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    level=st.sampled_from(["L", "M", "Q", "H"]),
)
def test_encode_makes_exactly_the_symbol_qrcode_makes(data: str, level: qr.ErrorCorrection) -> None:
    symbol = qr.encode(data, error_correction=level)
    reference = qrcode.QRCode(error_correction=qr._LEVELS[level], border=0)
    reference.add_data(data)
    reference.make(fit=True)
    assert symbol.version == reference.version
    assert symbol.modules == tuple(tuple(bool(m) for m in row) for row in reference.get_matrix())


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.sampled_from([21, 25, 33, 45, 57]))
def test_mask_penalty_matches_qrcode(seed: int, size: int) -> None:
    matrices = np.random.default_rng(seed).random((3, size, size)) < 0.5
    expected = [qrcode.util.lost_point(matrix.tolist()) for matrix in matrices]
    assert qr._penalties(matrices) == expected
