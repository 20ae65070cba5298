"""Parcel signs (土地赋码): a QR code holding ``https://<host>/p/<DKBM>`` and a printable sign.

The sign is an A6 landscape card (148 × 105 mm) with the 地块编码, village, group, area in 亩
and land use beside the QR code, as PNG (300 dpi) or PDF with the font embedded. The QR code
comes from ``qrcode`` (error correction M, survives a scuffed stake); the card is laid out
with matplotlib, like the maps, and uses a CJK font when one is installed.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import qrcode
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.parcels import landuse
from digital_village.parcels import service as parcels
from digital_village.regions.models import Region

CARD_MM = (148.0, 105.0)
MM_PER_INCH = 25.4


@dataclass(frozen=True)
class Sign:
    """What a sign says; no personal data (a stake stands in a public field)."""

    dkbm: str
    url: str
    village: str
    group: str
    area_mu: float
    land_use: str


def parcel_url(base_url: str, dkbm: str) -> str:
    """The address a sign's QR code holds."""
    return f"{base_url.rstrip('/')}/p/{dkbm}"


def sign_for(*, session: Session, dkbm: str, base_url: str) -> Sign:
    """The text of an active parcel's sign."""
    parcel = parcels.get_active_parcel(session=session, dkbm=dkbm)
    codes = [parcel.village_code] + ([parcel.group_code] if parcel.group_code else [])
    names = dict(
        session.execute(select(Region.code, Region.name).where(Region.code.in_(codes))).all()
    )
    use = landuse.land_use_name(parcel.land_use) or ""
    return Sign(
        dkbm=parcel.dkbm,
        url=parcel_url(base_url, parcel.dkbm),
        village=names.get(parcel.village_code, parcel.village_code),
        group=names.get(parcel.group_code, "") if parcel.group_code else "",
        area_mu=parcel.area_mu,
        land_use=f"{parcel.land_use} {use}".strip(),
    )


def qr_matrix(url: str) -> list[list[bool]]:
    """The QR code's modules, quiet zone included (True is dark)."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(url)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    return matrix


def qr_svg(url: str, *, module_px: int = 8) -> bytes:
    """The QR code alone as SVG."""
    matrix = qr_matrix(url)
    size = len(matrix) * module_px
    cells = "".join(
        f'<rect x="{x * module_px}" y="{y * module_px}" width="{module_px}" height="{module_px}"/>'
        for y, row in enumerate(matrix)
        for x, dark in enumerate(row)
        if dark
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" '
        f'viewBox="0 0 {size} {size}"><rect width="{size}" height="{size}" fill="#fff"/>'
        f'<g fill="#000">{cells}</g></svg>\n'
    ).encode()


def render_sign(sign: Sign, *, fmt: str = "png", dpi: int = 300) -> bytes:
    """The sign card as PNG or PDF."""
    import matplotlib

    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from digital_village.parcels.render import cjk_font

    font = cjk_font()
    family = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    width_mm, height_mm = CARD_MM
    figure = Figure(figsize=(width_mm / MM_PER_INCH, height_mm / MM_PER_INCH), facecolor="white")
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(height_mm, 0)
    ax.set_axis_off()

    def text(x: float, y: float, value: str, points: float, **kwargs: Any) -> None:
        ax.text(x, y, value, fontsize=points, **{"family": family, **kwargs})

    ax.add_patch(Rectangle((3, 3), width_mm - 6, height_mm - 6, fill=False, linewidth=2.0))
    ax.add_patch(Rectangle((3, 3), width_mm - 6, 16, facecolor="#1f5f3a", edgecolor="none"))
    heading = "承包地块标识 · 土地赋码" if font else "Contracted land parcel"
    text(width_mm / 2, 11, heading, 15, ha="center", va="center", color="white", weight="bold")
    labels = (
        ("地块编码", "村", "组", "面积", "地类")
        if font
        else ("Parcel code", "Village", "Group", "Area", "Land use")
    )
    village = sign.village if font else sign.dkbm[:12]
    group = (sign.group if font else sign.dkbm[12:14]) or "—"
    area = f"{sign.area_mu:.2f} 亩" if font else f"{sign.area_mu:.2f} mu"
    use = sign.land_use if font else sign.land_use.split()[0]
    rows = ((labels[1], village), (labels[2], group), (labels[3], area), (labels[4], use))
    text(8, 29, labels[0], 9, color="#555", va="center")
    text(
        8,
        38,
        f"{sign.dkbm[:14]} {sign.dkbm[14:]}",
        15,
        va="center",
        weight="bold",
        family=["DejaVu Sans Mono"],
    )
    for index, (label, value) in enumerate(rows):
        y = 52 + index * 11
        text(8, y, label, 9, color="#555", va="center")
        text(30, y, value, 13, va="center")
    _sign_qr(
        ax, text, sign.url, width_mm, scan_hint="扫码查看地块与溯源" if font else "Scan to trace"
    )
    buffer = io.BytesIO()
    if fmt == "pdf":
        with matplotlib.rc_context({"pdf.fonttype": 42}):
            figure.savefig(buffer, format="pdf")
    else:
        figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _sign_qr(
    ax: Any, text: Callable[..., None], url: str, width_mm: float, *, scan_hint: str
) -> None:
    """The card's QR code of the parcel's page, with its address and a hint beneath."""
    matrix = qr_matrix(url)
    side = 52.0
    left, top = width_mm - side - 8, 26.0
    ax.imshow(
        [[0.0 if dark else 1.0 for dark in row] for row in matrix],
        cmap="gray",
        vmin=0,
        vmax=1,
        interpolation="nearest",
        aspect="auto",
        extent=(left, left + side, top + side, top),
    )
    text(
        left + side / 2,
        top + side + 6,
        url,
        6.5,
        ha="center",
        va="center",
        family=["DejaVu Sans Mono"],
    )
    text(
        left + side / 2,
        top + side + 12,
        scan_hint,
        8,
        ha="center",
        va="center",
        color="#555",
    )
