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

Where things are: this module parses the link, sends other spellings to the canonical one and
negotiates the link type; ``web/link_types.py`` is the table of link types (which items have
each, how a linkset lists it, how it is answered); ``web/items.py`` looks the item up;
``web/resolver_page.py`` builds the pages; ``web/resolver_state.py`` is what is kept between
requests and how one request reads it.

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

import functools
from typing import Any, Final
from urllib.parse import quote, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from digital_village.api.deps import SettingsDep
from digital_village.config import Settings
from digital_village.errors import DomainError
from digital_village.gs1.digital_link import DigitalLink, DigitalLinkError, parse_digital_link
from digital_village.web import link_types, linkset, pages, resolver_page
from digital_village.web.items import CORS, item_headers, lookup, with_scope
from digital_village.web.resolver_state import Offload, Reads, ResolverState, Unfinished

router = APIRouter(tags=["resolver"])
_PARSE_BASE: Final = "http://resolver.invalid"
# Non-GS1 query parameters (linkType, lang, geo, context, ...) ride along on redirects.
_DROPPED_ON_DEFAULT: Final = frozenset({"linkType"})


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
    outcome: Response | Unfinished
    if state.inline:
        try:
            outcome = _answer(request, Reads(state, session_allowed=False))
        except Offload:
            outcome = await run_in_threadpool(_answer_in_thread, request, state)
    else:
        outcome = await run_in_threadpool(_answer_in_thread, request, state)
    if isinstance(outcome, Unfinished):
        return await resolver_page.finish(request, state, outcome)
    return outcome


def _answer_in_thread(request: Request, state: ResolverState) -> Response | Unfinished:
    reads = Reads(state, session_allowed=True)
    try:
        return _answer(request, reads)
    finally:
        reads.close()


def _answer(request: Request, reads: Reads) -> Response | Unfinished:
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
            headers=CORS,
        )
    try:
        return _resolve(request, reads, settings, link, path, query, language)
    except DomainError as failure:
        return pages.error(
            request,
            failure.status,
            failure.detail,
            language=language,
            headers=CORS,
            **failure.extra,
        )


def _resolve(
    request: Request,
    reads: Reads,
    settings: Settings,
    link: DigitalLink,
    path: str,
    query: str,
    language: str,
) -> Response | Unfinished:
    """Find the item, send other spellings to the canonical link, negotiate the link type."""
    base = settings.public_base_url
    facts = reads.cached(
        "resolver_facts",
        (link.gtin, link.lot, link.serial),
        lambda: with_scope(lookup(reads.session, link)),
    )
    canonical = DigitalLink(
        link.gtin, lot=facts.lot, serial=link.serial, attributes=link.attributes
    )
    if path != canonical.path or _gs1_query(query) != canonical.query:
        target = _target(canonical.path, canonical.query, link.extra_params)
        return RedirectResponse(
            target, status_code=301, headers=item_headers(canonical.uri(base).split("?")[0])
        )
    anchor = DigitalLink(link.gtin, lot=canonical.lot, serial=canonical.serial).uri(base)
    headers = item_headers(anchor)
    requested = dict(link.extra_params).get("linkType")
    if requested is not None:
        try:
            wanted = linkset.parse_link_type(requested)
        except linkset.LinkTypeError as bad:
            return pages.error(request, 400, str(bad), language=language, headers=headers)
    else:
        accept = request.headers.get("accept")
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
    ask = link_types.Ask(
        request, reads, settings, facts, canonical, anchor, headers, language, requested is not None
    )
    link_type = link_types.LINK_TYPES.get(wanted)
    if link_type is None or not link_type.held_by(ask):
        # GS1: a link type this item does not have → the default link (the page).
        kept = tuple((k, v) for k, v in link.extra_params if k not in _DROPPED_ON_DEFAULT)
        return RedirectResponse(
            _target(canonical.path, canonical.query, kept), status_code=307, headers=headers
        )
    return link_type.answer(ask)
