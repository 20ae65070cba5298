"""The GS1 Digital Link resolver: ``/01/<GTIN>[/10/<lot>][/21/<serial>]`` on the project's host.

What a request gets (GS1-Conformant Resolver standard, RFC 9264):

* a malformed link (check digit, unknown AI, qualifiers out of order, bad characters) → 400
  naming what is wrong; an unknown product, lot or serial → 404 — a page for a browser,
  problem+json for a client;
* a correct but non-canonical spelling (GTIN-13, ``/gtin/`` and ``/lot/`` aliases, a trailing
  slash, attributes out of order, a serial without its lot) → 301 to the canonical URI, with
  the request's other query parameters kept;
* ``?linkType=linkset`` (or ``all``), or an Accept preferring ``application/linkset+json`` or
  ``application/json`` to HTML → the linkset;
* ``?linkType=gs1:traceability`` → the backward trace graph (JSON), ``gs1:epcis`` → the lot's
  EPCIS 2.0 document, ``gs1:certificationInfo`` → its 承诺达标合格证 (without the issuer's
  phone), ``gs1:pip`` or a browser → the consumer page; a link type this item does not have →
  307 to the default link (the page), as the standard asks;
* every answer about an item carries ``Link: <…?linkType=linkset>; rel="linkset"``, CORS
  ``Access-Control-Allow-Origin: *`` and ``Vary: Accept, Accept-Language``.

The consumer page of a serialised item also records the scan (``web/scans.py``).

How a request is served. The route is a coroutine: a request whose answer is kept (the
linkset; a consumer page, around its two per-request blocks) is answered on the event loop, with
no thread hand-off and no ORM session. Answers are kept per process with the ledger chains they
rest on (``web/views.py``) and dropped only when an entry touching one of them is appended. On
SQLite, knowing whether anything was appended is one indexed read on a connection kept for it
(microseconds); on PostgreSQL a network round trip, so there every request runs its reads in the
thread pool. Anything else — an answer to build, a lookup that may be a 404, the trace, EPCIS
and certificate answers, taking in new entries — runs the same code in the thread pool with a
read session. A bottle's scan goes to the app's ``scans.ScanWriter``; the page waits for its
commit at most ``DV_SCAN_WAIT_MS`` and is served without it otherwise.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import quote, unquote

import jinja2
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection
from starlette.concurrency import run_in_threadpool

from digital_village import web
from digital_village.api.deps import SettingsDep
from digital_village.config import Settings
from digital_village.db import Database, utcnow
from digital_village.errors import DomainError, NotFound
from digital_village.gs1.digital_link import DigitalLink, DigitalLinkError, parse_digital_link
from digital_village.ledger import log as ledger_log
from digital_village.regions import service as regions
from digital_village.trace import lineage, products, tracing
from digital_village.trace.models import Lot
from digital_village.web import consumer, i18n, linkset, pages, scans, views
from digital_village.web.linkset import LinkContext, Target

router = APIRouter(tags=["resolver"])
V = TypeVar("V")

# Where the two per-request blocks go in the cached page.
_FLAGS_MARK: Final = "\x00flags\x00"
_SCANS_MARK: Final = "\x00scans\x00"


@dataclass(frozen=True)
class _Rendered:
    """A consumer page rendered once per ledger size: its view, and its HTML in three parts
    around the flags and scans blocks, which every request renders anew (each part deflated
    once, so a request compresses only its two small blocks)."""

    view: consumer.ConsumerView
    parts: tuple[pages.Deflated, pages.Deflated, pages.Deflated]


@dataclass(frozen=True)
class _Unfinished:
    """A consumer page but for its per-request blocks: the flags, and the scans once the
    request's own scan (``scan``: GTIN and serial, on a GET of a serialised item) is stored."""

    rendered: _Rendered
    flags: list[consumer.Flag]
    scan: tuple[str, str] | None
    language: str
    headers: dict[str, str]


class _Offload(Exception):
    """The request needs more than the caches hold: answer it in the thread pool."""


_STORES: Final = (
    "resolver_facts",
    "resolver_certificates",
    "resolver_linksets",
    "consumer_lot_views",
    "consumer_pages",
)


class ResolverState:
    """What the resolver keeps per app: its view stores and the feed that keeps them current,
    the scan writer, and the reader of the ledger's size.

    ``close`` (the app's shutdown) stores the scans handed over and gives the reader's
    connection back; both start again on the next request.
    """

    def __init__(self, database: Database, *, scan_wait: float = 0.05) -> None:
        self.database = database
        self.scans = scans.ScanWriter(database)
        self.scan_wait = scan_wait
        self.stores: dict[str, views.ViewStore[Any]] = {
            name: views.ViewStore(name) for name in _STORES
        }
        self.feed = views.ChangeFeed(list(self.stores.values()))
        # SQLite reads take microseconds: kept answers are served on the event loop.
        self.inline = database.dialect == "sqlite"
        bind = database.bind
        self._engine = bind if isinstance(bind, Engine) and self.inline else None
        self._connection: PoolProxiedConnection | None = None
        self._lock = threading.Lock()

    def head(self) -> int:
        """How many entries the ledger holds, read outside any transaction."""
        if self._engine is None:
            with self.database.session() as session:
                return ledger_log.entry_count(session)
        with self._lock:
            if self._connection is None:
                self._connection = self._engine.raw_connection()
            try:
                cursor = self._connection.cursor()
                try:
                    cursor.execute(ledger_log.ENTRY_COUNT_SQL)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except Exception as error:
                # A connection that failed once is not trusted again: the next read opens anew.
                self._connection.invalidate()
                self._connection = None
                if isinstance(error, sqlite3.Error):
                    # As SQLAlchemy would raise it: a database that is away answers 503.
                    raise DBAPIError.instance(
                        ledger_log.ENTRY_COUNT_SQL,
                        None,
                        error,
                        sqlite3.Error,
                        connection_invalidated=True,
                    ) from error
                raise
        return 0 if not row or row[0] is None else int(row[0]) + 1

    def collect(self) -> Iterator[Metric]:
        """Prometheus metrics of the scan writer and the view stores (read at each scrape)."""
        writer = self.scans
        scanned = CounterMetricFamily(
            "dv_scans",
            "Scans of items' pages by outcome: stored; late (the page was served before its "
            "scan was stored, which was stored later or dropped); dropped (never stored).",
            labels=["outcome"],
        )
        scanned.add_metric(["stored"], writer.stored)
        scanned.add_metric(["late"], writer.late)
        scanned.add_metric(["dropped"], writer.dropped)
        yield scanned
        yield GaugeMetricFamily(
            "dv_scans_waiting", "Scans handed to the writer and not yet stored.", writer.waiting
        )
        yield CounterMetricFamily(
            "dv_scan_batches", "Write transactions of the scan writer.", writer.batches
        )
        yield CounterMetricFamily(
            "dv_scan_store_seconds",
            "Time the scan writer spent in write transactions, waiting for the lock included.",
            writer.store_seconds,
        )
        kept = CounterMetricFamily(
            "dv_views",
            "Views asked of the resolver's stores by outcome: hit, build, dropped (an append "
            "touched what it shows).",
            labels=["store", "outcome"],
        )
        for name, store in self.stores.items():
            kept.add_metric([name, "hit"], store.hits)
            kept.add_metric([name, "build"], store.builds)
            kept.add_metric([name, "dropped"], store.dropped)
        yield kept
        yield CounterMetricFamily(
            "dv_view_feed_looks",
            "Times the resolver took in newly appended ledger entries.",
            self.feed.looks,
        )

    def close(self) -> None:
        self.scans.stop()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class _Reads:
    """A request's reads: the ledger's size, and a read session opened on first use. On the
    event loop (``session_allowed=False``) asking for the session, a view not kept, or a size
    the feed has not taken in yet raises _Offload."""

    def __init__(self, state: ResolverState, *, session_allowed: bool) -> None:
        self._state = state
        self._allowed = session_allowed
        self._session: Session | None = None
        self._head: int | None = None

    def head(self) -> int:
        """The ledger's size this request answers from, taken in by the feed."""
        if self._head is None:
            state = self._state
            if self._allowed:
                # Read in the session the answer is built from (one snapshot).
                head = ledger_log.entry_count(self.session)
                state.feed.advance(self.session, head)
            else:
                head = state.head()
                if not state.feed.current(head):
                    raise _Offload
            self._head = head
        return self._head

    def cached(self, name: str, key: Hashable, build: Callable[[], tuple[V, views.Scope]]) -> V:
        """A view from the state's store ``name`` (``build`` makes it and its scope); on the
        event loop a missing one offloads (building there would hold up every other request)."""
        store: views.ViewStore[V] = self._state.stores[name]
        head = self.head()
        if self._allowed:
            return store.get_or_build(key, build, feed=self._state.feed, head=head)
        found = store.peek(key)
        if found is None:
            raise _Offload
        return found

    @property
    def session(self) -> Session:
        if self._session is None:
            if not self._allowed:
                raise _Offload
            self._session = self._state.database.session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


EPCIS_HEADERS: Final = {"GS1-EPCIS-Version": "2.0", "GS1-CBV-Version": "2.0"}
_PARSE_BASE: Final = "http://resolver.invalid"
# Non-GS1 query parameters (linkType, lang, geo, context, ...) ride along on redirects.
_DROPPED_ON_DEFAULT: Final = frozenset({"linkType"})


@dataclass(frozen=True)
class _Facts:
    """What a Digital Link names, as the records have it (cached per ledger size)."""

    gtin: str
    product: str
    net_unit: str | None
    cooperative_id: int
    lot: str | None  # the item's lot when the link names a serial without one
    lot_id: int | None
    live: bool
    unit_status: str | None

    @property
    def scope(self) -> dict[str, dt.datetime | None]:
        """The chains these facts come from: the product's, and the lot's (its items too)."""
        scope: dict[str, dt.datetime | None] = {f"product:{self.gtin}": None}
        if self.lot is not None:
            scope[f"lot:{self.gtin}/{self.lot}"] = None
        return scope


def _lookup(session: Session, link: DigitalLink) -> _Facts:
    """The product, lot and item a link names; NotFound naming what is missing."""
    product = products.get_product(session=session, gtin=link.gtin)
    lot_row: Lot | None = None
    status = None
    if link.serial is not None:
        unit = products.get_unit(session=session, gtin=link.gtin, serial=link.serial)
        lot_row = products.lots_by_id(session=session, ids=[unit.lot_id])[unit.lot_id]
        status = unit.status
        if link.lot is not None and link.lot != lot_row.lot:
            raise NotFound(
                f"serial {link.serial!r} of GTIN {link.gtin} is not in lot {link.lot!r}; "
                "the label does not match the records"
            )
    elif link.lot is not None:
        lot_row = products.get_lot(session=session, gtin=link.gtin, lot=link.lot)
    return _Facts(
        gtin=product.gtin,
        product=product.name,
        net_unit=product.net_unit,
        cooperative_id=product.cooperative_id,
        lot=lot_row.lot if lot_row else None,
        lot_id=lot_row.id if lot_row else None,
        live=products.is_live(lot_row) if lot_row else True,
        unit_status=status,
    )


def _with_scope(facts: _Facts) -> tuple[_Facts, views.Scope]:
    return facts, facts.scope


def _raw_target(request: Request) -> tuple[str, str]:
    """The request's path and query exactly as sent (still percent-encoded)."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(request.url.path)
    path = path.split("?", 1)[0]
    query = request.scope.get("query_string", b"").decode("latin-1")
    return path, query


def _gs1_query(query: str) -> str:
    """The GS1 attributes of a raw query string, in the order and spelling they came."""
    kept = []
    for piece in query.split("&"):
        key = unquote(piece.partition("=")[0])
        if key.isdigit() or key == "exp":
            kept.append(piece)
    return "&".join(kept)


def _target(path: str, gs1_query: str, extra: tuple[tuple[str, str], ...]) -> str:
    params = [gs1_query] if gs1_query else []
    params += [f"{quote(key, safe='')}={quote(value, safe=':,')}" for key, value in extra]
    return f"{path}?{'&'.join(params)}" if params else path


# Labels are scanned again and again: parse each distinct link once (DigitalLink is immutable).
_parse: Final = functools.lru_cache(maxsize=4096)(parse_digital_link)


# GS1-Conformant resolvers answer any origin (apps and other sites look links up).
_CORS: Final = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Link"}


def _item_headers(anchor: str, *, linkset_response: bool = False) -> dict[str, str]:
    return {
        "Link": linkset.link_header(anchor, linkset_response=linkset_response),
        "Vary": "Accept, Accept-Language",
        **_CORS,
    }


def _json(body: Any, *, media_type: str, headers: dict[str, str], request: Request) -> Response:
    if request.method == "HEAD":
        return Response(headers=headers, media_type=media_type)
    return JSONResponse(body, media_type=media_type, headers=headers)


@router.get("/.well-known/gs1resolver", include_in_schema=False)
def resolver_description(settings: SettingsDep) -> JSONResponse:
    """The resolver description file the GS1-Conformant Resolver standard asks for."""
    return JSONResponse(
        {
            "name": "Digital Village resolver",
            "resolverRoot": settings.public_base_url,
            "supportedPrimaryKeys": ["01"],
            "supportedLinkType": [{"namespace": linkset.GS1_VOC, "prefix": "gs1:"}],
            "linkTypeDefaultCanBeLinkset": False,
            "supportedContextValuesEnumerated": [],
        },
        headers={"Access-Control-Allow-Origin": "*"},
    )


_ANY_OBJECT: Final = {"schema": {"type": "object"}}
RESOLVER_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The consumer page (text/html) for a browser or with linkType=gs1:pip; "
        "the RFC 9264 linkset (application/linkset+json, or application/json when asked so); "
        "the trace graph (gs1:traceability), EPCIS document (gs1:epcis) or certificates "
        "(gs1:certificationInfo)",
        "content": {
            "text/html": {"schema": {"type": "string"}},
            linkset.LINKSET_MEDIA_TYPE: _ANY_OBJECT,
            "application/json": _ANY_OBJECT,
            "application/ld+json": _ANY_OBJECT,
        },
    },
    301: {"description": "The canonical form of the same link"},
    307: {"description": "The default link (the page): the item has no such link type"},
}


@router.get(
    "/01/{rest:path}",
    summary="GS1 Digital Link",
    response_class=Response,
    responses=RESOLVER_RESPONSES,
)
@router.head("/01/{rest:path}", include_in_schema=False)
@router.get("/gtin/{rest:path}", include_in_schema=False)
@router.head("/gtin/{rest:path}", include_in_schema=False)
async def resolve(rest: str, request: Request) -> Response:
    """Resolve a GS1 Digital Link: the consumer page, the linkset, or a linked resource.

    Content negotiation by ``?linkType=`` (``linkset``, ``gs1:pip``, ``gs1:traceability``,
    ``gs1:epcis``, ``gs1:certificationInfo``) or the Accept header; every answer carries a
    ``Link`` header to the item's linkset.
    """
    del rest  # the whole raw path is parsed, percent-encoding included
    state: ResolverState = request.app.state.resolver
    outcome: Response | _Unfinished
    if state.inline:
        try:
            outcome = _answer(request, _Reads(state, session_allowed=False))
        except _Offload:
            outcome = await run_in_threadpool(_answer_in_thread, request, state)
    else:
        outcome = await run_in_threadpool(_answer_in_thread, request, state)
    if isinstance(outcome, _Unfinished):
        return await _finish(request, state, outcome)
    return outcome


def _answer_in_thread(request: Request, state: ResolverState) -> Response | _Unfinished:
    reads = _Reads(state, session_allowed=True)
    try:
        return _answer(request, reads)
    finally:
        reads.close()


def _answer(request: Request, reads: _Reads) -> Response | _Unfinished:
    settings: Settings = request.app.state.settings
    language = pages.language_of(request)
    path, query = _raw_target(request)
    # GS1: tolerate a trailing slash (the canonical redirect then drops it).
    trimmed = path.rstrip("/") if path.endswith("/") and len(path) > 1 else path
    try:
        link = _parse(f"{_PARSE_BASE}{trimmed}" + (f"?{query}" if query else ""))
    except DigitalLinkError as problem:
        return pages.error(
            request,
            400,
            f"not a valid GS1 Digital Link: {problem}",
            language=language,
            headers=_CORS,
        )
    try:
        return _resolve(request, reads, settings, link, path, query, language)
    except DomainError as failure:
        return pages.error(
            request,
            failure.status,
            failure.detail,
            language=language,
            headers=_CORS,
            **failure.extra,
        )


def _resolve(
    request: Request,
    reads: _Reads,
    settings: Settings,
    link: DigitalLink,
    path: str,
    query: str,
    language: str,
) -> Response | _Unfinished:
    base = settings.public_base_url
    facts = reads.cached(
        "resolver_facts",
        (link.gtin, link.lot, link.serial),
        lambda: _with_scope(_lookup(reads.session, link)),
    )
    canonical = DigitalLink(
        link.gtin, lot=facts.lot, serial=link.serial, attributes=link.attributes
    )
    if path != canonical.path or _gs1_query(query) != canonical.query:
        target = _target(canonical.path, canonical.query, link.extra_params)
        return RedirectResponse(
            target, status_code=301, headers=_item_headers(canonical.uri(base).split("?")[0])
        )
    anchor = DigitalLink(link.gtin, lot=canonical.lot, serial=canonical.serial).uri(base)
    headers = _item_headers(anchor)
    params = dict(link.extra_params)
    requested = params.get("linkType")
    accept = request.headers.get("accept")
    if requested is not None:
        try:
            wanted = linkset.parse_link_type(requested)
        except linkset.LinkTypeError as bad:
            return pages.error(request, 400, str(bad), language=language, headers=headers)
    else:
        representation = linkset.negotiate(accept)
        if representation is None:
            return pages.error(
                request,
                406,
                f"this resolver answers text/html (the consumer page) or "
                f"{linkset.LINKSET_MEDIA_TYPE} / application/json (the linkset), not {accept!r}",
                language=language,
                headers=headers,
            )
        wanted = linkset.PIP if representation == "html" else linkset.LINKSET
    available = {linkset.PIP, linkset.LINKSET}
    if facts.lot is not None:
        available |= {linkset.TRACEABILITY, linkset.EPCIS, linkset.CERTIFICATION_INFO}
    certificates: list[dict[str, Any]] = []
    if facts.lot_id is not None and wanted in (linkset.LINKSET, linkset.CERTIFICATION_INFO):
        lot_id = facts.lot_id
        certificates = reads.cached(
            "resolver_certificates",
            lot_id,
            lambda: (
                _certificates(reads.session, lot_id, base),
                views.lot_scope(reads.session, lot_id=lot_id),
            ),
        )
        if not certificates:
            available.discard(linkset.CERTIFICATION_INFO)
    if wanted not in available:
        # GS1: a link type this item does not have → the default link (the page).
        kept = tuple((k, v) for k, v in link.extra_params if k not in _DROPPED_ON_DEFAULT)
        return RedirectResponse(
            _target(canonical.path, canonical.query, kept), status_code=307, headers=headers
        )
    if wanted == linkset.LINKSET:
        document = reads.cached(
            "resolver_linksets",
            (anchor, bool(certificates)),
            lambda: (
                pages.Deflated.of(
                    orjson.dumps(
                        linkset.linkset_document(
                            _link_contexts(facts, canonical, base, certified=bool(certificates))
                        )
                    )
                ),
                facts.scope,
            ),
        )
        media_type = (
            linkset.linkset_media_type(accept) if requested is None else linkset.LINKSET_MEDIA_TYPE
        )
        headers = _item_headers(anchor, linkset_response=True)
        if request.method == "HEAD":
            return Response(headers=headers, media_type=media_type)
        return pages.compressed_parts(request, [document], headers=headers, media_type=media_type)
    if wanted == linkset.PIP:
        return _page(request, reads, settings, facts, canonical, language, headers)
    assert facts.lot is not None
    lot = facts.lot
    if wanted == linkset.TRACEABILITY:
        if canonical.serial is not None:
            body = tracing.trace_unit(
                session=reads.session,
                gtin=link.gtin,
                serial=canonical.serial,
                lot=lot,
                direction="backward",
                base_url=base,
            )
        else:
            body = tracing.trace_lot(
                session=reads.session,
                gtin=link.gtin,
                lot=lot,
                direction="backward",
                base_url=base,
            )
        return _json(body, media_type="application/json", headers=headers, request=request)
    if wanted == linkset.EPCIS:
        epcis = tracing.lot_document(session=reads.session, gtin=link.gtin, lot=lot, base_url=base)
        return _json(
            epcis,
            media_type="application/ld+json",
            headers={**headers, **EPCIS_HEADERS},
            request=request,
        )
    body = {"anchor": anchor, "certificates": certificates}
    return _json(body, media_type="application/json", headers=headers, request=request)


def _titles(facts: _Facts, lot: str | None, serial: str | None) -> str:
    text = facts.product
    if lot is not None:
        text += f", lot {lot}"
    if serial is not None:
        text += f", serial {serial}"
    return text


def _item_links(anchor: str, *, traced: bool, certified: bool) -> dict[str, list[Target]]:
    with_type = linkset.with_query
    pip = [
        Target(with_type(anchor, linkType=linkset.PIP), "产品溯源信息", "text/html", ("zh-CN",)),
        Target(
            with_type(anchor, linkType=linkset.PIP, lang="en"),
            "Where this product comes from",
            "text/html",
            ("en",),
        ),
    ]
    links: dict[str, list[Target]] = {linkset.PIP: pip}
    if traced:
        links[linkset.TRACEABILITY] = [
            Target(
                with_type(anchor, linkType=linkset.TRACEABILITY),
                "Trace graph: parcels, lots, events",
                "application/json",
            )
        ]
        links[linkset.EPCIS] = [
            Target(
                with_type(anchor, linkType=linkset.EPCIS),
                "EPCIS 2.0 events of the lot",
                "application/ld+json",
            )
        ]
    if certified:
        links[linkset.CERTIFICATION_INFO] = [
            Target(
                with_type(anchor, linkType=linkset.CERTIFICATION_INFO),
                "承诺达标合格证",
                "application/json",
            )
        ]
    links[linkset.DEFAULT_LINK] = [pip[0]]
    return links


def _link_contexts(
    facts: _Facts, canonical: DigitalLink, base: str, *, certified: bool
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
                description=_titles(facts, lot, serial),
                links=_item_links(
                    anchor, traced=lot is not None, certified=certified and lot is not None
                ),
            )
        )
    return contexts


def _certificates(session: Session, lot_id: int, base: str) -> list[dict[str, Any]]:
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


def _page(
    request: Request,
    reads: _Reads,
    settings: Settings,
    facts: _Facts,
    canonical: DigitalLink,
    language: str,
    headers: dict[str, str],
) -> Response | _Unfinished:
    headers = {**headers, "Cache-Control": "no-cache"}
    t = i18n.messages(language)
    if facts.lot is None:
        session = reads.session
        product = products.get_product(session=session, gtin=facts.gtin)
        cooperative = regions.get_cooperative(session=session, cooperative_id=facts.cooperative_id)
        suffix = "?lang=en" if language == "en" else ""
        lots = [
            {
                "lot": row.lot,
                "produced_at": row.produced_at.astimezone(consumer.CHINA),
                "href": DigitalLink(product.gtin, lot=row.lot).path + suffix,
            }
            for row in consumer.lots_of_product(session=session, product=product)
        ]
        anchor = DigitalLink(product.gtin).uri(settings.public_base_url)
        return pages.page(
            request,
            "product.html",
            language=language,
            headers=headers,
            product=product,
            cooperative=cooperative.name,
            lots=lots,
            links={"linkset": linkset.linkset_uri(anchor)},
        )
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

    def build() -> tuple[_Rendered, views.Scope]:
        # Every bottle of a lot shares the lot's view; only its serial and status differ.
        view, lot_scope = reads.cached("consumer_lot_views", (facts.gtin, lot, language), build_lot)
        if canonical.serial is not None:
            uri = DigitalLink(facts.gtin, lot=lot, serial=canonical.serial).uri(base)
            view = consumer.for_unit(
                view, serial=canonical.serial, status=facts.unit_status or "active", uri=uri
            )
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
        )
        head, rest = html.split(_FLAGS_MARK)
        middle, tail = rest.split(_SCANS_MARK)
        rendered = _Rendered(
            view,
            (
                pages.Deflated.of(head.encode()),
                pages.Deflated.of(middle.encode()),
                pages.Deflated.of(tail.encode()),
            ),
        )
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
    return _Unfinished(rendered, flags, scan, language, headers)


async def _finish(request: Request, state: ResolverState, page: _Unfinished) -> Response:
    """Store the request's scan (waiting for its commit), then render the two blocks."""
    t = i18n.messages(page.language)
    flags = page.flags
    summary = None
    if page.scan is not None:
        try:
            scan = _scan_of(request, *page.scan)
        except DomainError as failure:
            return pages.error(
                request,
                failure.status,
                failure.detail,
                language=page.language,
                headers=_CORS,
                **failure.extra,
            )
        # The page waits for its scan's commit only briefly: stored later, or dropped and
        # counted, the page shows the count as this process last saw it.
        stored = await state.scans.record(scan, wait=state.scan_wait)
        if stored is None:
            stored = state.scans.last_summary(scan.gtin, scan.serial)
        if stored is not None:
            summary = dataclasses.replace(stored, first=stored.first.astimezone(consumer.CHINA))
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


def _scan_of(request: Request, gtin: str, serial: str) -> scans.ScanIn:
    """The scan this request makes (BadGeo for a malformed ``geo``)."""
    geo_text = request.query_params.get("geo")
    geo = scans.parse_geo(geo_text) if geo_text else None
    client = request.client.host if request.client else None
    return scans.ScanIn(gtin, serial, scans.network_of(client), geo, utcnow())
