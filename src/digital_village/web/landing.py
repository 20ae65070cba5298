"""The site's front door: ``/`` is one box for the 查询码 printed under a label's QR code, or a
承诺达标合格证's number, and ``/q/<code>`` opens what it names.

A reader whose QR code will not scan types the code: a serial's 查询码 (``gs1/short_code.py``;
any case, with or without the dash, I/L read as 1 and O as 0) opens the bottle's page, a
certificate's number the page of its lot. A code that names nothing is answered 404 on the same
page, in the reader's language, with a plain word that the item may be counterfeit.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from digital_village.api.deps import SessionDep
from digital_village.errors import NotFound
from digital_village.gs1 import short_code
from digital_village.gs1.digital_link import DigitalLink
from digital_village.trace import products
from digital_village.trace.models import Unit
from digital_village.web import STATIC_DIR, pages

router = APIRouter(tags=["pages"])

MAX_TYPED: Final = 64  # longer than any code or certificate number


@router.get("/", include_in_schema=False)
def landing(request: Request, code: str | None = None) -> Response:
    """The landing page; ``?code=`` (the form's submission) goes on to ``/q/<code>``."""
    if code is not None and code.strip():
        return RedirectResponse(
            f"/q/{quote(code.strip()[:MAX_TYPED], safe='')}{_lang_query(request)}", 303
        )
    message = "landing_empty" if code is not None else None
    return _page(request, status=400 if message else 200, message=message, typed="")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """The site's icon, where browsers look for it (the pages also link it)."""
    return FileResponse(
        STATIC_DIR / "favicon.ico",
        media_type="image/vnd.microsoft.icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/q/{code}", include_in_schema=False)
def lookup(request: Request, code: str, session: SessionDep) -> Response:
    """Open the page of the item a 查询码 or certificate number names."""
    typed = code.strip()[:MAX_TYPED]
    printed = short_code.normalise(typed)
    if printed is not None:
        found = products.units_by_short_code(session=session, code=printed)
        if len(found) == 1:
            unit, lot, _ = found[0]
            return _open(request, _path(unit, lot.lot))
        if found:
            choices = [
                (
                    f"{product.name} · {lot.lot} · {unit.serial}",
                    _path(unit, lot.lot),
                )
                for unit, lot, product in found
            ]
            return _page(request, status=200, message=None, typed=printed, choices=choices)
    try:
        certificate = products.get_certificate(session=session, number=typed)
    except NotFound:
        pass
    else:
        lot = products.lots_by_id(session=session, ids=[certificate.lot_id])[certificate.lot_id]
        return _open(request, DigitalLink(lot.gtin, lot=lot.lot).path)
    looks_like_one = printed is not None or "-" in typed
    return _page(
        request,
        status=404,
        message="landing_not_found" if looks_like_one else "landing_malformed",
        typed=typed,
    )


def _path(unit: Unit, lot: str) -> str:
    return DigitalLink(unit.gtin, lot=lot, serial=unit.serial).path


def _lang_query(request: Request) -> str:
    lang = request.query_params.get("lang")
    return f"?lang={quote(lang)}" if lang in ("en", "zh-CN") else ""


def _open(request: Request, path: str) -> Response:
    return RedirectResponse(f"{path}{_lang_query(request)}", 303)


def _page(
    request: Request,
    *,
    status: int,
    message: str | None,
    typed: str,
    choices: list[tuple[str, str]] | None = None,
) -> Response:
    language = pages.language_of(request)
    return pages.page(
        request,
        "landing.html",
        language=language,
        status=status,
        headers={"Vary": "Accept-Language", "Cache-Control": "no-store"},
        message=message,
        typed=typed,
        choices=choices or [],
    )
