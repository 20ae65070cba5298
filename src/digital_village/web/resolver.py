"""The GS1 Digital Link resolver: ``/01/<GTIN>[/10/<lot>][/21/<serial>]`` on the project's host.

What a request gets (GS1-Conformant Resolver standard 1.x, GS1 Digital Link 1.4, RFC 9264):

* a malformed link (check digit, unknown AI, qualifiers out of order, bad characters) → 400
  naming what is wrong; an unknown product, lot or serial → 404 — a page for a browser,
  problem+json for a client;
* a correct but non-canonical spelling (GTIN-13, ``/gtin/`` and ``/lot/`` aliases, attributes
  out of order, a serial without its lot) → 307 to the canonical URI, with the request's other
  query parameters kept; a trailing slash is tolerated: the answer is the same as without it;
* no ``linkType`` → 307 to the default link, the consumer page (``/page/01/…``), so a
  browser lands on the page; ``?linkType=<type>`` → 307 to that link (found at the finest
  level that has it: serial, lot, then product); a link type the item does not have → 404;
* ``?linkType=linkset`` (or ``all``), or an Accept preferring ``application/linkset+json`` or
  ``application/json`` to HTML → the linkset (200);
* every redirect passes the request's query string on as sent;
* every answer about an item carries ``Link: <…?linkType=linkset>; rel="linkset"`` and
  ``Vary: Accept, Accept-Language``; CORS and OPTIONS are answered by the app's CORS
  middleware for every path :func:`is_public_path` names.

The page route (``/page/01/…``) serves the consumer page of a lot or serialised item, or the
product page; a page of a serialised item records the scan (``web/scans.py``). A redirect's
``Location`` is absolute on the public base URL when the request came to that host, and
relative otherwise (behind a proxy that rewrites Host, a relative target still resolves
against the address the client asked for).

Where things are: this module parses the link, sends other spellings to the canonical one and
negotiates the link type; ``web/link_types.py`` is the table of link types (which levels have
each, where its targets are); ``web/items.py`` looks the item up; ``web/resolver_page.py``
builds the pages; ``web/resolver_state.py`` is what is kept between requests and how one
request reads it.

How a request is served. The route is a coroutine: a request whose answer is kept (a redirect
or the linkset of a known item; a consumer page, around its two per-request blocks) is answered
on the event loop, with no thread hand-off and no ORM session. Answers are kept per process
with the ledger chains they rest on (``web/views.py``) and dropped only when an entry touching
one of them is appended. On SQLite, knowing whether anything was appended is one indexed read
on a connection kept for it (microseconds); on PostgreSQL a network round trip, so there every
request runs its reads in the thread pool. Anything else — an answer to build, a lookup that
may be a 404, taking in new entries — runs the same code in the thread pool with a read
session. A bottle's scan goes to the app's ``scan_writer.ScanWriter``; the page waits for its commit
at most ``DV_SCAN_WAIT_MS`` and is served without it otherwise.
"""

from __future__ import annotations

import functools
from typing import Any, Final, Literal
from urllib.parse import quote, unquote, urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from digital_village.api.deps import SessionDep, SettingsDep
from digital_village.config import Settings
from digital_village.errors import DomainError
from digital_village.gs1.digital_link import DigitalLink, DigitalLinkError, parse_digital_link
from digital_village.trace import products
from digital_village.web import link_types, linkset, pages, resolver_page, views
from digital_village.web.items import (
    CORS,
    Facts,
    certificates,
    item_headers,
    lookup,
    with_scope,
)
from digital_village.web.link_types import PAGE_PREFIX
from digital_village.web.resolver_state import Offload, Reads, ResolverState, Unfinished

router = APIRouter(tags=["resolver"])
_PARSE_BASE: Final = "http://resolver.invalid"

Mode = Literal["resolve", "page"]

# The path prefixes the resolver answers (CORS and OPTIONS included, ``is_public_path``).
RESOLVER_PREFIXES: Final = ("/01/", "/gtin/", f"{PAGE_PREFIX}/")
DESCRIPTION_PATH: Final = "/.well-known/gs1resolver"


def is_public_path(path: str) -> bool:
    """Whether a path is the resolver's (answered to any origin, OPTIONS included)."""
    return path.startswith(RESOLVER_PREFIXES) or path == DESCRIPTION_PATH


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


def _location(request: Request, settings: Settings, href: str) -> str:
    """``href`` (absolute, on the public base URL) as this request's redirect target."""
    base = urlsplit(settings.public_base_url)
    if request.headers.get("host", "").lower() == base.netloc.lower():
        return href
    target = urlsplit(href)
    if target.netloc.lower() != base.netloc.lower():
        return href
    return target.path + (f"?{target.query}" if target.query else "")


def _redirect(request: Request, settings: Settings, href: str, headers: dict[str, str]) -> Response:
    return Response(
        status_code=307, headers={**headers, "Location": _location(request, settings, href)}
    )


# Labels are scanned again and again: parse each distinct link once (DigitalLink is immutable).
_parse: Final = functools.lru_cache(maxsize=4096)(parse_digital_link)


@router.get(DESCRIPTION_PATH, include_in_schema=False)
def resolver_description(settings: SettingsDep) -> JSONResponse:
    """The resolver description file the GS1-Conformant Resolver standard asks for."""
    return JSONResponse(
        {
            "name": "Digital Village resolver",
            "resolverRoot": settings.public_base_url,
            "supportedPrimaryKeys": ["01"],
            "supportedLinkType": [{"namespace": linkset.GS1_VOC, "prefix": "gs1:"}],
            "linkTypeDefaultCanBeLinkset": False,
            "jsonLdContextLocation": linkset.LINKSET_CONTEXT,
            "supportedContextValuesEnumerated": [],
            "contact": {"fn": "Digital Village"},
        },
        headers={**CORS, "Cache-Control": "max-age=3600"},
    )


_ANY_OBJECT: Final = {"schema": {"type": "object"}}
RESOLVER_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The RFC 9264 linkset (application/linkset+json, or application/json "
        "when asked so), for linkType=linkset or an Accept preferring it",
        "content": {linkset.LINKSET_MEDIA_TYPE: _ANY_OBJECT, "application/json": _ANY_OBJECT},
    },
    307: {
        "description": "To the default link (the consumer page) without linkType, to the link "
        "of the type asked for with it, or to the canonical form of the same link; the query "
        "string is passed on"
    },
    400: {"description": "Not a valid GS1 Digital Link, or not a link type"},
    404: {"description": "No such product, lot or serial, or no link of the type asked for"},
}
PAGE_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {
        "description": "The consumer page of a lot or serialised item, or a product's page",
        "content": {"text/html": {"schema": {"type": "string"}}},
    },
    307: {"description": "The canonical form of the same page"},
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
    """Resolve a GS1 Digital Link: a redirect to the page or the link asked for, or the linkset.

    ``?linkType=`` names a link type (``gs1:pip``, ``gs1:traceability``, ``gs1:epcis``,
    ``gs1:certificationInfo``, ``gs1:defaultLink``, or ``linkset``); without it a client that
    prefers JSON gets the linkset and everyone else is sent to the consumer page. Every answer
    carries a ``Link`` header to the item's linkset.
    """
    del rest  # the whole raw path is parsed, percent-encoding included
    return await _serve(request, "resolve")


@router.get(
    PAGE_PREFIX + "/01/{rest:path}",
    summary="The page of a product, lot or serialised item",
    response_class=Response,
    responses=PAGE_RESPONSES,
)
@router.head(PAGE_PREFIX + "/01/{rest:path}", include_in_schema=False)
async def item_page(rest: str, request: Request) -> Response:
    """The consumer page (``gs1:pip``) of the item a Digital Link names."""
    del rest
    return await _serve(request, "page")


@router.get("/api/v1/lots/{gtin}/{lot:part}/certificates", tags=["trace"])
def lot_certificates(gtin: str, lot: str, session: SessionDep, settings: SettingsDep) -> Any:
    """The 承诺达标合格证 of a lot and of the lots it was made from (public, without the
    issuer's phone): the lot's ``gs1:certificationInfo`` link."""
    row = products.get_lot(session=session, gtin=gtin, lot=lot)
    anchor = DigitalLink(row.gtin, lot=row.lot).uri(settings.public_base_url)
    body = {
        "anchor": anchor,
        "certificates": certificates(session, row.id, settings.public_base_url),
    }
    return JSONResponse(body, headers=CORS)


async def _serve(request: Request, mode: Mode) -> Response:
    state: ResolverState = request.app.state.resolver
    outcome: Response | Unfinished
    if state.inline:
        try:
            outcome = _answer(request, Reads(state, session_allowed=False), mode)
        except Offload:
            outcome = await run_in_threadpool(_answer_in_thread, request, state, mode)
    else:
        outcome = await run_in_threadpool(_answer_in_thread, request, state, mode)
    if isinstance(outcome, Unfinished):
        return await resolver_page.finish(request, state, outcome)
    return outcome


def _answer_in_thread(request: Request, state: ResolverState, mode: Mode) -> Response | Unfinished:
    reads = Reads(state, session_allowed=True)
    try:
        return _answer(request, reads, mode)
    finally:
        reads.close()


def _answer(request: Request, reads: Reads, mode: Mode) -> Response | Unfinished:
    settings: Settings = request.app.state.settings
    language = pages.language_of(request)
    path, query = _raw_target(request)
    # GS1: tolerate a trailing slash — the answer is the one without it.
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
            label=True,
        )
    try:
        return _resolve(request, reads, settings, link, trimmed, query, language, mode)
    except DomainError as failure:
        return pages.error(
            request,
            failure.status,
            failure.detail,
            language=language,
            headers=CORS,
            label=True,
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
    mode: Mode,
) -> Response | Unfinished:
    """Find the item, send other spellings to the canonical link, then redirect or answer."""
    base = settings.public_base_url
    facts = reads.cached(
        "resolver_facts",
        (link.gtin, link.lot, link.serial),
        lambda: with_scope(lookup(reads.session, link)),
    )
    canonical = DigitalLink(
        link.gtin, lot=facts.lot, serial=link.serial, attributes=link.attributes
    )
    prefix = PAGE_PREFIX if mode == "page" else ""
    anchor = DigitalLink(link.gtin, lot=canonical.lot, serial=canonical.serial).uri(base)
    headers = item_headers(anchor)
    if path != prefix + canonical.path or _gs1_query(query) != canonical.query:
        target = _target(prefix + canonical.path, canonical.query, link.extra_params)
        return _redirect(request, settings, base + target, headers)
    if mode == "page":
        return resolver_page.page(request, reads, settings, facts, canonical, language, headers)
    return _negotiate(request, reads, settings, facts, link, canonical, anchor, headers, query)


def _negotiate(
    request: Request,
    reads: Reads,
    settings: Settings,
    facts: Facts,
    link: DigitalLink,
    canonical: DigitalLink,
    anchor: str,
    headers: dict[str, str],
    query: str,
) -> Response | Unfinished:
    """The linkset, or a redirect to the default link or to the link type asked for."""
    base = settings.public_base_url
    params = dict(link.extra_params)
    requested = params.get("linkType")
    if requested is None:
        if linkset.negotiate(request.headers.get("accept")) == "linkset":
            return _linkset(request, reads, facts, canonical, anchor, base, named=False)
        default = link_types.default_target(facts, canonical, base)
        return _redirect(request, settings, linkset.with_query_string(default.href, query), headers)
    try:
        wanted = linkset.parse_link_type(requested)
    except linkset.LinkTypeError as bad:
        return pages.error(
            request, 400, str(bad), language=pages.language_of(request), headers=headers
        )
    if wanted == linkset.LINKSET:
        return _linkset(request, reads, facts, canonical, anchor, base, named=True)
    certified = wanted == linkset.CERTIFICATION_INFO and bool(_certificates(reads, facts, base))
    targets = link_types.targets_of(wanted, facts, canonical, base, certified=certified)
    if not targets:
        # GS1: a link type that is not available is 404, not a redirect to the default.
        return pages.error(
            request,
            404,
            f"{link_types.titles(facts, canonical.lot, canonical.serial)} has no link of type "
            f"{requested!r}; its linkset lists the types it has",
            language=pages.language_of(request),
            headers=headers,
            linkset=linkset.linkset_uri(anchor),
        )
    target = linkset.choose(
        targets,
        lang=params.get("lang"),
        accept_language=request.headers.get("accept-language"),
        media_type=params.get("mediaType"),
        accept=request.headers.get("accept"),
    )
    return _redirect(request, settings, linkset.with_query_string(target.href, query), headers)


def _certificates(reads: Reads, facts: Facts, base: str) -> list[dict[str, Any]]:
    """The lot's 合格证 and those of the lots it was made from (kept per lot)."""
    lot_id = facts.lot_id
    if lot_id is None:
        return []
    return reads.cached(
        "resolver_certificates",
        lot_id,
        lambda: (
            certificates(reads.session, lot_id, base),
            views.lot_scope(reads.session, lot_id=lot_id),
        ),
    )


def _linkset(
    request: Request,
    reads: Reads,
    facts: Facts,
    canonical: DigitalLink,
    anchor: str,
    base: str,
    *,
    named: bool,
) -> Response:
    certified = bool(_certificates(reads, facts, base))
    document = reads.cached(
        "resolver_linksets",
        (anchor, certified),
        lambda: (
            pages.Deflated.of(
                orjson.dumps(
                    linkset.linkset_document(
                        link_types.link_contexts(facts, canonical, base, certified=certified)
                    )
                )
            ),
            facts.scope,
        ),
    )
    accept = request.headers.get("accept")
    media_type = linkset.LINKSET_MEDIA_TYPE if named else linkset.linkset_media_type(accept)
    headers = item_headers(anchor, linkset_response=True)
    if request.method == "HEAD":
        return Response(headers=headers, media_type=media_type)
    return pages.compressed_parts(request, [document], headers=headers, media_type=media_type)
