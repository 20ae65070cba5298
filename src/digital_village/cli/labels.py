"""``dv labels GTIN [LOT] --out FILE``: QR codes and label sheets for managers to print.

The output's suffix says what is made: ``.pdf`` a sheet of labels for serials of the lot (A4,
3 × 8, with product, lot, harvest date, serial and short code), ``.png`` or ``.svg`` one QR code
of the product, the lot or (with ``--serial``) one item. Codes carry the GS1 Digital Link URI
on ``DV_PUBLIC_BASE_URL``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from digital_village.auth.actor import Actor
from digital_village.cli.common import console, fail, load_settings, transaction
from digital_village.errors import DomainError
from digital_village.labels import qr
from digital_village.trace import products
from digital_village.web import labels as web_labels


def labels_command(
    gtin: Annotated[str, typer.Argument(help="The product's GTIN (8, 12, 13 or 14 digits).")],
    lot: Annotated[str | None, typer.Argument(help="The lot (AI 10); needed for a sheet.")] = None,
    out: Annotated[
        Path, typer.Option("--out", help="labels.pdf (a sheet), or code.png / code.svg")
    ] = Path("labels.pdf"),
    serials: Annotated[
        str | None,
        typer.Option(help="Serials to print, e.g. 0001-0024,0100 (default: the lot's)."),
    ] = None,
    count: Annotated[int | None, typer.Option(help="Print at most this many.", min=1)] = None,
    serial: Annotated[str | None, typer.Option(help="QR code of this one item (AI 21).")] = None,
    start_position: Annotated[
        int, typer.Option(help="Labels already used on the first sheet.", min=0)
    ] = 0,
    outlines: Annotated[bool, typer.Option(help="Draw label outlines (plain paper).")] = False,
    size_mm: Annotated[float, typer.Option(help="QR code width in mm (.png/.svg).")] = 25.0,
    dpi: Annotated[int, typer.Option(help="PNG resolution.")] = 300,
) -> None:
    """Print a label sheet (FILE.pdf) or one QR code (FILE.png, FILE.svg)."""
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".png", ".svg"):
        fail(f"--out must end in .pdf, .png or .svg, not {suffix or 'nothing'}", code=2)
    settings = load_settings()
    if suffix == ".pdf":
        if lot is None:
            fail("a label sheet is for a lot: dv labels GTIN LOT --out labels.pdf", code=2)
        started = time.perf_counter()
        with transaction(settings) as session:
            made = web_labels.make_sheet(
                session=session,
                actor=Actor.operator(),
                base_url=settings.public_base_url,
                gtin=gtin,
                lot=lot,
                serials=serials,
                count=count,
                start_position=start_position,
                outlines=outlines,
            )
        out.write_bytes(made.pdf)
        pages = -(-(len(made.serials) + start_position) // 24)
        console.print(
            f"wrote {len(made.serials)} labels of lot {lot} ({made.serials[0]}…"
            f"{made.serials[-1]}) on {pages} A4 sheet(s) to {out} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        return
    with transaction(settings) as session:
        product = products.get_product(session=session, gtin=gtin)
        if lot is not None:
            products.get_lot(session=session, gtin=product.gtin, lot=lot)
        if serial is not None:
            unit = products.get_unit(session=session, gtin=product.gtin, serial=serial)
            found = products.lots_by_id(session=session, ids=[unit.lot_id])[unit.lot_id]
            if lot is not None and found.lot != lot:
                fail(f"serial {serial!r} is in lot {found.lot!r}, not {lot!r}")
            lot = found.lot
        gtin14 = product.gtin
    try:
        uri = qr.label_uri(settings.public_base_url, gtin14, lot, serial)
        data = (
            qr.png(uri, size_mm=size_mm, dpi=dpi)
            if suffix == ".png"
            else qr.svg(uri, size_mm=size_mm)
        )
    except (qr.QRError, DomainError, ValueError) as error:
        fail(str(error), code=2)
    out.write_bytes(data)
    console.print(f"wrote the QR code of {uri} to {out}", highlight=False)
