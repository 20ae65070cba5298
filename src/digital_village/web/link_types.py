"""The link types the resolver serves: one row each in :data:`LINK_TYPES`.

A row says when an item has the link type (every item, or only a lot or serial, or only one
with certificates), how it is listed in the item's linkset (its targets: where, title, media
type, languages) and how a request for it is answered. The resolver (``web/resolver.py``)
negotiates which link type a request wants — ``?linkType=`` or the Accept header — and looks
it up here; one the item does not have is redirected (307) to the default link, the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
from fastapi import Request
from fastapi.responses import Response

from digital_village.config import Settings
from digital_village.gs1.digital_link import DigitalLink
from digital_village.trace import tracing
from digital_village.trace.epcis_routes import EPCIS_HEADERS
from digital_village.web import linkset, pages, resolver_page, views
from digital_village.web.items import Facts, certificates, item_headers, json_answer
from digital_village.web.linkset import LinkContext, Target
from digital_village.web.resolver_state import Reads, Unfinished


@dataclass(frozen=True)
class Ask:
    """A request for one link type of an item: what answering it needs."""

    request: Request
    reads: Reads
    settings: Settings
    facts: Facts
    canonical: DigitalLink  # the canonical link (a serial's lot filled in)
    anchor: str  # the item's canonical URI without attributes
    headers: dict[str, str]  # what every answer about the item carries
    language: str
    named: bool  # asked for by ?linkType= rather than by the Accept header

    @property
    def base(self) -> str:
        return self.settings.public_base_url

    def certificates(self) -> list[dict[str, Any]]:
        """The lot's 合格证 and those of the lots it was made from (kept per lot)."""
        lot_id = self.facts.lot_id
        if lot_id is None:
            return []
        reads = self.reads
        return reads.cached(
            "resolver_certificates",
            lot_id,
            lambda: (
                certificates(reads.session, lot_id, self.base),
                views.lot_scope(reads.session, lot_id=lot_id),
            ),
        )


Answer = Response | Unfinished


@dataclass(frozen=True)
class LinkType:
    """One link type: which items have it, how their linksets list it, how it is answered."""

    name: str
    answer: Callable[[Ask], Answer]
    lots_only: bool = False  # a product has none: only a lot or a serialised item
    certified_only: bool = False  # only a lot with a 合格证 (its own or its inputs')
    # The targets the linkset lists at an anchor (none: the link type is the linkset itself).
    targets: Callable[[str], list[Target]] | None = None

    def held_by(self, ask: Ask) -> bool:
        """Whether the requested item has this link type."""
        if self.lots_only and ask.facts.lot is None:
            return False
        return not self.certified_only or bool(ask.certificates())

    def listed(self, *, lot: str | None, certified: bool) -> bool:
        """Whether a linkset lists this link type at a level (a lot or serial, or the product)."""
        if self.targets is None:
            return False
        return (not self.lots_only or lot is not None) and (not self.certified_only or certified)


def _linkset(ask: Ask) -> Answer:
    facts = ask.facts
    certified = bool(ask.certificates())
    document = ask.reads.cached(
        "resolver_linksets",
        (ask.anchor, certified),
        lambda: (
            pages.Deflated.of(
                orjson.dumps(
                    linkset.linkset_document(
                        link_contexts(facts, ask.canonical, ask.base, certified=certified)
                    )
                )
            ),
            facts.scope,
        ),
    )
    accept = ask.request.headers.get("accept")
    media_type = linkset.LINKSET_MEDIA_TYPE if ask.named else linkset.linkset_media_type(accept)
    headers = item_headers(ask.anchor, linkset_response=True)
    if ask.request.method == "HEAD":
        return Response(headers=headers, media_type=media_type)
    return pages.compressed_parts(ask.request, [document], headers=headers, media_type=media_type)


def _page(ask: Ask) -> Answer:
    return resolver_page.page(
        ask.request, ask.reads, ask.settings, ask.facts, ask.canonical, ask.language, ask.headers
    )


def _traceability(ask: Ask) -> Answer:
    session, facts, serial = ask.reads.session, ask.facts, ask.canonical.serial
    assert facts.lot is not None
    if serial is not None:
        body = tracing.trace_unit(
            session=session,
            gtin=facts.gtin,
            serial=serial,
            lot=facts.lot,
            direction="backward",
            base_url=ask.base,
        )
    else:
        body = tracing.trace_lot(
            session=session, gtin=facts.gtin, lot=facts.lot, direction="backward", base_url=ask.base
        )
    return json_answer(
        body, media_type="application/json", headers=ask.headers, request=ask.request
    )


def _epcis(ask: Ask) -> Answer:
    facts = ask.facts
    assert facts.lot is not None
    document = tracing.lot_document(
        session=ask.reads.session, gtin=facts.gtin, lot=facts.lot, base_url=ask.base
    )
    return json_answer(
        document,
        media_type="application/ld+json",
        headers={**ask.headers, **EPCIS_HEADERS},
        request=ask.request,
    )


def _certification_info(ask: Ask) -> Answer:
    body = {"anchor": ask.anchor, "certificates": ask.certificates()}
    return json_answer(
        body, media_type="application/json", headers=ask.headers, request=ask.request
    )


def _target(title: str, media_type: str, link_type: str, **query: str) -> Callable[[str], Target]:
    return lambda anchor: Target(
        linkset.with_query(anchor, linkType=link_type, **query), title, media_type
    )


def _pip_targets(anchor: str) -> list[Target]:
    with_type = linkset.with_query
    return [
        Target(with_type(anchor, linkType=linkset.PIP), "产品溯源信息", "text/html", ("zh-CN",)),
        Target(
            with_type(anchor, linkType=linkset.PIP, lang="en"),
            "Where this product comes from",
            "text/html",
            ("en",),
        ),
    ]


def _one(make: Callable[[str], Target]) -> Callable[[str], list[Target]]:
    return lambda anchor: [make(anchor)]


# In the order a linkset lists them; gs1:defaultLink (the page) comes last.
LINK_TYPES: Final[Mapping[str, LinkType]] = {
    row.name: row
    for row in (
        LinkType(linkset.PIP, _page, targets=_pip_targets),
        LinkType(
            linkset.TRACEABILITY,
            _traceability,
            lots_only=True,
            targets=_one(
                _target(
                    "Trace graph: parcels, lots, events", "application/json", linkset.TRACEABILITY
                )
            ),
        ),
        LinkType(
            linkset.EPCIS,
            _epcis,
            lots_only=True,
            targets=_one(
                _target("EPCIS 2.0 events of the lot", "application/ld+json", linkset.EPCIS)
            ),
        ),
        LinkType(
            linkset.CERTIFICATION_INFO,
            _certification_info,
            lots_only=True,
            certified_only=True,
            targets=_one(_target("承诺达标合格证", "application/json", linkset.CERTIFICATION_INFO)),
        ),
        LinkType(linkset.LINKSET, _linkset),
    )
}


def titles(facts: Facts, lot: str | None, serial: str | None) -> str:
    text = facts.product
    if lot is not None:
        text += f", lot {lot}"
    if serial is not None:
        text += f", serial {serial}"
    return text


def item_links(anchor: str, *, lot: str | None, certified: bool) -> dict[str, list[Target]]:
    """The links a linkset lists at one level, by link type."""
    links: dict[str, list[Target]] = {}
    for row in LINK_TYPES.values():
        if row.targets is not None and row.listed(lot=lot, certified=certified):
            links[row.name] = row.targets(anchor)
    links[linkset.DEFAULT_LINK] = [links[linkset.PIP][0]]
    return links


def link_contexts(
    facts: Facts, canonical: DigitalLink, base: str, *, certified: bool
) -> list[LinkContext]:
    """One link context per level of the request, finest first (serial, lot, product)."""
    contexts: list[LinkContext] = []
    levels: list[tuple[str | None, str | None]] = []
    if canonical.serial is not None:
        levels.append((canonical.lot, canonical.serial))
    if facts.lot is not None:
        levels.append((facts.lot, None))
    levels.append((None, None))
    for lot, serial in levels:
        anchor = DigitalLink(facts.gtin, lot=lot, serial=serial).uri(base)
        contexts.append(
            LinkContext(
                anchor=anchor,
                description=titles(facts, lot, serial),
                links=item_links(anchor, lot=lot, certified=certified),
            )
        )
    return contexts
