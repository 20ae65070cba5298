"""The item a Digital Link names, as the records have it, and what every answer about it carries.

:func:`lookup` finds the product, lot and serialised item of a link (NotFound naming what is
missing); :func:`certificates` gathers the 承诺达标合格证 of a lot and of the lots it was made
from; :func:`item_headers` are the headers of every answer about an item (its linkset in a
``Link`` header, CORS, ``Vary``).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from digital_village.errors import NotFound
from digital_village.gs1.digital_link import DigitalLink
from digital_village.trace import lineage, products, store
from digital_village.trace.models import Lot
from digital_village.web import linkset, views


@dataclass(frozen=True)
class Facts:
    """What a Digital Link names, as the records have it (cached per ledger size)."""

    gtin: str
    product: str
    net_unit: str | None
    cooperative_id: int
    lot: str | None  # the item's lot when the link names a serial without one
    lot_id: int | None
    live: bool
    unit_status: str | None
    # The ledger entry of the event that commissioned the item (it records the item's lot).
    unit_seq: int | None = None

    @property
    def scope(self) -> dict[str, dt.datetime | None]:
        """The chains these facts come from: the product's, and the lot's (its items too)."""
        scope: dict[str, dt.datetime | None] = {f"product:{self.gtin}": None}
        if self.lot is not None:
            scope[f"lot:{self.gtin}/{self.lot}"] = None
        return scope


def lookup(session: Session, link: DigitalLink) -> Facts:
    """The product, lot and item a link names; NotFound naming what is missing."""
    product = products.get_product(session=session, gtin=link.gtin)
    lot_row: Lot | None = None
    status = None
    unit_seq = None
    if link.serial is not None:
        unit = products.get_unit(session=session, gtin=link.gtin, serial=link.serial)
        lot_row = products.lots_by_id(session=session, ids=[unit.lot_id])[unit.lot_id]
        status = unit.status
        unit_seq = store.events_by_pk(session=session, pks=[unit.event_pk])[
            unit.event_pk
        ].ledger_seq
        if link.lot is not None and link.lot != lot_row.lot:
            raise NotFound(
                f"serial {link.serial!r} of GTIN {link.gtin} is not in lot {link.lot!r}; "
                "the label does not match the records"
            )
    elif link.lot is not None:
        lot_row = products.get_lot(session=session, gtin=link.gtin, lot=link.lot)
    return Facts(
        gtin=product.gtin,
        product=product.name,
        net_unit=product.net_unit,
        cooperative_id=product.cooperative_id,
        lot=lot_row.lot if lot_row else None,
        lot_id=lot_row.id if lot_row else None,
        live=products.is_live(lot_row) if lot_row else True,
        unit_status=status,
        unit_seq=unit_seq,
    )


def with_scope(facts: Facts) -> tuple[Facts, views.Scope]:
    return facts, facts.scope


# GS1-Conformant resolvers answer any origin (apps and other sites look links up).
CORS: Final = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Link"}


def item_headers(anchor: str, *, linkset_response: bool = False) -> dict[str, str]:
    return {
        "Link": linkset.link_header(anchor, linkset_response=linkset_response),
        "Vary": "Accept, Accept-Language",
        **CORS,
    }


def json_answer(
    body: Any, *, media_type: str, headers: dict[str, str], request: Request
) -> Response:
    if request.method == "HEAD":
        return Response(headers=headers, media_type=media_type)
    return JSONResponse(body, media_type=media_type, headers=headers)


def certificates(session: Session, lot_id: int, base: str) -> list[dict[str, Any]]:
    """The 合格证 of the lot and of the lots it was made from, as public JSON (no phone)."""
    closure = lineage.lot_closure(session=session, lot_ids=[lot_id], upstream=True)
    upstream = {source for source, _, _ in closure} - {lot_id}
    found_lots = products.lots_by_id(session=session, ids={lot_id} | upstream)
    view_lots = [found_lots[lot_id], *(found_lots[i] for i in sorted(upstream))]
    found: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in view_lots:
        for certificate in products.certificates_of_lot(session=session, lot_id=row.id):
            if certificate.number in seen:
                continue
            seen.add(certificate.number)
            found.append(
                {
                    "number": certificate.number,
                    "type": "承诺达标合格证",
                    "lot": DigitalLink(row.gtin, lot=row.lot).uri(base),
                    "product": certificate.product_name,
                    "quantity": certificate.quantity,
                    "unit": certificate.unit,
                    "origin": certificate.origin,
                    "issuedOn": certificate.issued_on.isoformat(),
                    "issuer": certificate.issuer,
                    "basis": [
                        {"code": code, "label": products.BASIS.get(code, code)}
                        for code in _codes(certificate.basis)
                    ],
                    "commitments": [
                        {"code": code, "label": products.COMMITMENTS.get(code, code)}
                        for code in _codes(certificate.commitments)
                    ],
                    "ledgerSeq": certificate.ledger_seq,
                    "proof": f"/api/v1/ledger/entries/{certificate.ledger_seq}/proof",
                }
            )
    return found


def _codes(text: str) -> list[str]:
    value = json.loads(text)
    return [str(code) for code in value] if isinstance(value, list) else []
