"""The consumer and product pages the resolver serves for a Digital Link (``gs1:pip``).

A lot's or a bottle's page is rendered once per ledger size around its two per-request blocks
(the flags, and the scans once the request's own scan is stored), which :func:`finish` renders
for each request; a product without a lot gets the product page with its lots.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Final

import jinja2
from fastapi import Request
from fastapi.responses import Response

from digital_village import web
from digital_village.config import Settings
from digital_village.db import utcnow
from digital_village.errors import DomainError
from digital_village.gs1.digital_link import DigitalLink
from digital_village.trace import products
from digital_village.web import consumer, history, i18n, linkset, pages, scans, views
from digital_village.web.items import CORS, Facts
from digital_village.web.resolver_state import Reads, Rendered, ResolverState, Unfinished

# Where the two per-request blocks go in the cached page.
_FLAGS_MARK: Final = "\x00flags\x00"
_SCANS_MARK: Final = "\x00scans\x00"


def page(
    request: Request,
    reads: Reads,
    settings: Settings,
    facts: Facts,
    canonical: DigitalLink,
    language: str,
    headers: dict[str, str],
) -> Response | Unfinished:
    """The consumer page of a lot or serialised item (to be finished per request), or the
    product page of a product."""
    headers = {**headers, "Cache-Control": "no-cache"}
    t = i18n.messages(language)
    if facts.lot is None:
        return _product_page(request, reads, settings, facts, language, headers)
    lot = facts.lot
    pieces = t["pieces_bottle"] if facts.net_unit in ("LTR", "MLT") else t["pieces_item"]
    other_url = pages.other_language_url(request, language)
    base = settings.public_base_url

    lot_id = facts.lot_id
    assert lot_id is not None

    def build_lot() -> tuple[tuple[consumer.ConsumerView, views.Scope], views.Scope]:
        view = consumer.consumer_view(
            session=reads.session,
            gtin=facts.gtin,
            lot=lot,
            base_url=base,
            language=language,
            pieces=pieces,
        )
        scope = views.lot_scope(reads.session, lot_id=lot_id)
        return (view, scope), scope

    def build() -> tuple[Rendered, views.Scope]:
        # Every bottle of a lot shares the lot's view; only its serial and status differ.
        view, lot_scope = reads.cached("consumer_lot_views", (facts.gtin, lot, language), build_lot)
        if canonical.serial is not None:
            uri = DigitalLink(facts.gtin, lot=lot, serial=canonical.serial).uri(base)
            serial_fact = consumer.unit_fact(
                session=reads.session,
                seq=facts.unit_seq,
                gtin=facts.gtin,
                serial=canonical.serial,
                lot=lot,
            )
            view = consumer.for_unit(
                view,
                serial=canonical.serial,
                status=facts.unit_status or "active",
                uri=uri,
                serial_fact=serial_fact,
            )
        rendered = _render(view, t, language, other_url, settings.operator_name)
        return rendered, views.merged(lot_scope, facts.scope)

    key = (facts.gtin, lot, canonical.serial, language, other_url)
    rendered = reads.cached("consumer_pages", key, build)
    flags = list(rendered.view.flags)
    if not facts.live:
        flags.insert(0, consumer.Flag("flag_unit_voided", {}))
    headers = {**headers, "Content-Language": language}
    if request.method == "HEAD":
        return Response(headers=headers, media_type="text/html; charset=utf-8")
    scan = (facts.gtin, canonical.serial) if canonical.serial is not None else None
    return Unfinished(rendered, flags, scan, language, headers)


def _render(
    view: consumer.ConsumerView, t: Mapping[str, str], language: str, other_url: str, signer: str
) -> Rendered:
    """The consumer page's HTML in three parts around its two per-request blocks."""
    anchor = view.uri
    links = {
        "linkset": linkset.linkset_uri(anchor),
        "traceability": linkset.with_query(anchor, linkType=linkset.TRACEABILITY),
        "epcis": linkset.with_query(anchor, linkType=linkset.EPCIS),
        "certification": linkset.with_query(anchor, linkType=linkset.CERTIFICATION_INFO),
    }
    html = pages.render(
        "consumer.html",
        t=t,
        lang=language,
        other_lang_url=other_url,
        view=view,
        links=links,
        flags_block=_FLAGS_MARK,
        scans_block=_SCANS_MARK,
        signer=signer,
    )
    head, rest = html.split(_FLAGS_MARK)
    middle, tail = rest.split(_SCANS_MARK)
    return Rendered(
        view,
        (
            pages.Deflated.of(head.encode()),
            pages.Deflated.of(middle.encode()),
            pages.Deflated.of(tail.encode()),
        ),
    )


def _product_page(
    request: Request,
    reads: Reads,
    settings: Settings,
    facts: Facts,
    language: str,
    headers: dict[str, str],
) -> Response:
    """A product's page: its cooperative and its lots, each linking to its own page."""
    session = reads.session
    product = products.get_product(session=session, gtin=facts.gtin)
    view = consumer.product_view(session=session, product=product)
    suffix = "?lang=en" if language == "en" else ""
    hrefs = {lot.lot: DigitalLink(product.gtin, lot=lot.lot).path + suffix for lot in view.lots}
    anchor = DigitalLink(product.gtin).uri(settings.public_base_url)
    return pages.page(
        request,
        "product.html",
        language=language,
        headers=headers,
        view=view,
        hrefs=hrefs,
        links={"linkset": linkset.linkset_uri(anchor)},
        signer=settings.operator_name,
    )


async def finish(request: Request, state: ResolverState, page: Unfinished) -> Response:
    """Store the request's scan (waiting for its commit), then render the two blocks."""
    t = i18n.messages(page.language)
    flags = page.flags
    summary = None
    if page.scan is not None:
        try:
            scan = scan_of(request, *page.scan)
        except DomainError as failure:
            return pages.error(
                request,
                failure.status,
                failure.detail,
                language=page.language,
                headers=CORS,
                **failure.extra,
            )
        # The page waits for its scan's commit only briefly: stored later, or dropped and
        # counted, the page shows the count as this process last saw it.
        stored = await state.scans.record(scan, wait=state.scan_wait)
        if stored is None:
            stored = state.scans.last_summary(scan.gtin, scan.serial)
        if stored is not None:
            summary = dataclasses.replace(stored, first=stored.first.astimezone(history.CHINA))
            flags = [*flags, *(consumer.Flag(key, params) for key, params in summary.flags())]
    head, middle, tail = page.rendered.parts
    flags_html = _block("_consumer_flags.html").render(t=t, flags=flags).encode()
    scans_html = _block("_consumer_scans.html").render(t=t, scans=summary).encode()
    return pages.compressed_parts(
        request, (head, flags_html, middle, scans_html, tail), headers=page.headers
    )


@functools.cache
def _block(name: str) -> jinja2.Template:
    """A per-request block's template, loaded once (no file check on every request)."""
    return web.templates().get_template(name)


def scan_of(request: Request, gtin: str, serial: str) -> scans.ScanIn:
    """The scan this request makes (BadGeo for a malformed ``geo``)."""
    geo_text = request.query_params.get("geo")
    geo = scans.parse_geo(geo_text) if geo_text else None
    client = request.client.host if request.client else None
    return scans.ScanIn(gtin, serial, scans.network_of(client), geo, utcnow())
