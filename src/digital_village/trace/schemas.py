"""Wire shapes of products, lots, certificates and capture results.

EPCIS documents and events themselves travel as EPCIS 2.0 JSON (``trace.epcis``); the shapes
of the EPCIS interface (capture jobs) use the binding's camelCase names, the project's own
shapes snake_case like the rest of the API.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from digital_village.trace import products
from digital_village.trace.capture import CapturedEvent
from digital_village.trace.models import Certificate, Lot, Product


class RangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float = Field(ge=0)
    max: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    def pair(self) -> tuple[float, float]:
        return (self.min, self.max)


class ProductIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gtin: str = Field(
        description="GTIN-8, 12, 13 or 14 with its check digit", examples=["06901234500031"]
    )
    name: str = Field(min_length=1, max_length=200, examples=["天府菜油 5 L"])
    category: str = Field(
        description=f"one of: {', '.join(products.CATEGORIES)}", examples=["rapeseed_oil"]
    )
    cooperative_id: int | None = Field(
        default=None, description="owning cooperative; a manager's own by default"
    )
    unit: Literal["KGM", "LTR", "H87"] | None = Field(
        default=None, description="what its lots are counted in (default by category)"
    )
    net_quantity: float | None = Field(default=None, gt=0, description="content of one item")
    net_unit: Literal["KGM", "GRM", "LTR", "MLT"] | None = None
    yield_per_mu: RangeIn | None = Field(
        default=None, description="plausible harvest, kg per 亩 (default by category)"
    )
    ratio: RangeIn | None = Field(
        default=None, description="plausible output per unit of input (default by category)"
    )


class PlausibilityIn(BaseModel):
    """A product's change: its plausible ranges (settings of the flags) and its recorded facts
    (on the ledger); a field left out is kept, ``net_quantity``/``net_unit`` given as null
    remove the net content."""

    model_config = ConfigDict(extra="forbid")

    yield_per_mu: RangeIn | None = None
    ratio: RangeIn | None = None
    name: str | None = Field(default=None, max_length=200, examples=["天府菜油 5 L"])
    category: str | None = Field(
        default=None, description=f"one of: {', '.join(products.CATEGORIES)}"
    )
    unit: Literal["KGM", "LTR", "H87"] | None = Field(
        default=None, description="what its lots are counted in; only while it has no lots"
    )
    net_quantity: float | None = Field(default=None, gt=0, description="content of one item")
    net_unit: Literal["KGM", "GRM", "LTR", "MLT"] | None = None

    def changes_facts(self) -> bool:
        """Whether the change touches what the ledger records of the product."""
        return bool(
            self.model_fields_set & {"name", "category", "unit", "net_quantity", "net_unit"}
        )

    def clears_net_content(self) -> bool:
        """Whether the net content is given as null (removed)."""
        given = self.model_fields_set & {"net_quantity", "net_unit"}
        return bool(given) and self.net_quantity is None and self.net_unit is None


class ProductOut(BaseModel):
    gtin: str
    name: str
    category: str
    unit: str
    net_quantity: float | None
    net_unit: str | None
    cooperative_id: int
    yield_per_mu: RangeIn | None
    ratio: RangeIn | None
    ledger_seq: int
    proof: str

    @classmethod
    def of(cls, product: Product) -> ProductOut:
        yield_range = (
            RangeIn(min=product.yield_min_per_mu, max=product.yield_max_per_mu)
            if product.yield_min_per_mu is not None and product.yield_max_per_mu is not None
            else None
        )
        ratio = (
            RangeIn(min=product.ratio_min, max=product.ratio_max)
            if product.ratio_min is not None and product.ratio_max is not None
            else None
        )
        return cls(
            gtin=product.gtin,
            name=product.name,
            category=product.category,
            unit=product.unit,
            net_quantity=product.net_quantity,
            net_unit=product.net_unit,
            cooperative_id=product.cooperative_id,
            yield_per_mu=yield_range,
            ratio=ratio,
            ledger_seq=product.ledger_seq,
            proof=proof_url(product.ledger_seq),
        )


def proof_url(seq: int) -> str:
    """Where the ledger entry's inclusion proof is served."""
    return f"/api/v1/ledger/entries/{seq}/proof"


class CapturedEventOut(BaseModel):
    """One stored event: its eventID, its ledger entry and the lots it made."""

    model_config = ConfigDict(populate_by_name=True)

    event_id: str = Field(alias="eventID")
    event_type: str = Field(alias="eventType")
    biz_step: str | None = Field(alias="bizStep")
    ledger_seq: int = Field(alias="ledgerSeq")
    proof: str
    lots: list[str] = Field(description="Digital Link URIs of the lots it made")
    computed_event_id: str | None = Field(
        default=None,
        alias="computedEventID",
        description="The event's CBV 2.0 hash, when its declared hash-style eventID (kept as "
        "sent) differs from it",
    )

    @classmethod
    def of(cls, event: CapturedEvent) -> CapturedEventOut:
        return cls(
            event_id=event.event_id,
            event_type=event.event_type,
            biz_step=event.biz_step,
            ledger_seq=event.ledger_seq,
            proof=proof_url(event.ledger_seq),
            lots=list(event.lots),
            computed_event_id=event.computed_event_id,
        )


class CaptureAccepted(BaseModel):
    """The answer to a capture: 202, with the job's id and where to read its result."""

    model_config = ConfigDict(populate_by_name=True)

    capture_id: str = Field(alias="captureID")
    location: str
    event_count: int = Field(alias="eventCount")
    events: list[CapturedEventOut]


class CaptureJobOut(BaseModel):
    """A capture job as the EPCIS 2.0 REST binding describes it (never running: captures are
    checked and stored within the request)."""

    model_config = ConfigDict(populate_by_name=True)

    capture_id: str = Field(alias="captureID")
    created_at: dt.datetime = Field(alias="createdAt")
    finished_at: dt.datetime = Field(alias="finishedAt")
    running: bool = False
    success: bool
    capture_error_behaviour: Literal["rollback"] = Field(
        default="rollback", alias="captureErrorBehaviour"
    )
    errors: list[dict[str, Any]]
    event_count: int = Field(alias="eventCount")
    events: list[CapturedEventOut]


class LotOut(BaseModel):
    gtin: str
    lot: str
    uri: str
    product: str
    category: str
    origin: str
    quantity: float
    remaining: float
    unit: str
    produced_at: dt.datetime
    cooperative_id: int
    items: int = Field(description="serialised items (AI 21) of the lot")
    certificates: list[str] = Field(description="numbers of its 承诺达标合格证, newest first")
    trace: str
    epcis: str


class CertificateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact: str = Field(min_length=1, max_length=40, description="the issuer's phone")
    basis: list[str] = Field(
        min_length=1, description=f"承诺依据, any of: {', '.join(products.BASIS)}"
    )
    origin: str | None = Field(
        default=None, max_length=200, description="产地; by default from the lot's parcels"
    )
    quantity: float | None = Field(default=None, gt=0, description="default: what is left")
    issued_on: dt.date | None = Field(default=None, description="开具日期; default today")
    issuer: str | None = Field(default=None, max_length=200, description="default: cooperative")


class Labelled(BaseModel):
    code: str
    label: str


class CertificateOut(BaseModel):
    """A 承诺达标合格证 as anyone may read it (what its QR code opens): the fields printed on
    it but the issuer's phone number, which public answers never carry."""

    number: str
    gtin: str
    lot: str
    product: str
    quantity: float
    unit: str
    origin: str
    issued_on: dt.date
    issuer: str
    basis: list[Labelled]
    commitments: list[Labelled]
    qr_uri: str = Field(description="what its QR code carries")
    qr_code: str = Field(description="its QR code as a PNG image (.svg for the SVG)")
    lot_uri: str
    ledger_seq: int
    proof: str

    @classmethod
    def of(cls, certificate: Certificate, lot: Lot, *, base_url: str, lot_uri: str) -> Self:
        basis = json.loads(certificate.basis)
        commitments = json.loads(certificate.commitments)
        return cls(
            number=certificate.number,
            gtin=lot.gtin,
            lot=lot.lot,
            product=certificate.product_name,
            quantity=certificate.quantity,
            unit=certificate.unit,
            origin=certificate.origin,
            issued_on=certificate.issued_on,
            issuer=certificate.issuer,
            basis=[Labelled(code=code, label=products.BASIS[code]) for code in basis],
            commitments=[
                Labelled(code=code, label=products.COMMITMENTS[code]) for code in commitments
            ],
            qr_uri=products.certificate_uri(base_url, certificate.number),
            qr_code=f"/api/v1/certificates/{certificate.number}/qr.png",
            lot_uri=lot_uri,
            ledger_seq=certificate.ledger_seq,
            proof=proof_url(certificate.ledger_seq),
        )


class IssuedCertificateOut(CertificateOut):
    """The certificate as answered to its issuer, with the contact it gave."""

    contact: str
