"""What every human page shares: its language, rendering, errors for browsers, and a view cache.

A page picks its language once (``?lang=``, else ``Accept-Language``, else zh-CN), renders a
template of ``web/templates`` with ``t`` (the messages) and ``lang``, and links to itself in
the other language. An error a browser asked for is a small page in that language; anything
else gets the usual problem+json.

Views are kept per process by the resolver (``web/views.py``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import Response

from digital_village import web
from digital_village.api.problems import problem
from digital_village.web import i18n, linkset

GZIP_MIN_BYTES: Final = 1400  # below one packet, compressing gains nothing
# Level 1: a page comes out ~15 % larger than at level 6, in a quarter of the time.
GZIP_LEVEL: Final = 1
# Parts of a page deflated once and kept (``Deflated``) afford the best compression.
GZIP_CACHED_LEVEL: Final = 9
# A gzip member's header (no name, mtime 0, unknown OS) and an empty final deflate block.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_FINAL_BLOCK: Final = b"\x03\x00"
# Query parameters a link to the same page in another language keeps: the link type and GS1
# attributes (digits). Others (geo, anything made up) are left out, which also keeps the number
# of cached variants of a page bounded.
_CARRIED: Final = frozenset({"linkType"})


def language_of(request: Request) -> str:
    """The page language for this request (zh-CN unless asked otherwise)."""
    return i18n.pick_language(
        request.query_params.get("lang"), request.headers.get("accept-language")
    )


def other_language_url(request: Request, language: str) -> str:
    """This page in the other language (zh-CN ↔ en), keeping its other query parameters."""
    other = "zh-CN" if language == "en" else "en"
    params = [(k, v) for k, v in request.query_params.multi_items() if k in _CARRIED or k.isdigit()]
    params.append(("lang", other))
    # The path as sent, still percent-encoded: a lot such as RS/01 is RS%2F01 in it.
    raw = request.scope.get("raw_path")
    path = raw.decode("ascii", "replace") if raw else quote(request.url.path)
    return f"{path}?{urlencode(params)}"


def render(name: str, **context: Any) -> str:
    """Render a template of web/templates."""
    return web.templates().get_template(name).render(**context)


def page(
    request: Request,
    name: str,
    *,
    language: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **context: Any,
) -> Response:
    """An HTML response of a template in ``language`` (an empty body for HEAD)."""
    all_headers = {"Content-Language": language, **(headers or {})}
    if request.method == "HEAD":
        return Response(
            status_code=status, headers=all_headers, media_type="text/html; charset=utf-8"
        )
    body = render(
        name,
        t=i18n.messages(language),
        lang=language,
        other_lang_url=other_language_url(request, language),
        **context,
    ).encode()
    return compressed(request, body, status=status, headers=all_headers)


def compressed(
    request: Request,
    body: bytes,
    *,
    status: int = 200,
    headers: Mapping[str, str],
    media_type: str = "text/html; charset=utf-8",
) -> Response:
    """A response gzipped when the client accepts it: the pages' inline SVG shrinks ~5×."""
    return compressed_parts(request, [body], status=status, headers=headers, media_type=media_type)


@dataclass(frozen=True)
class Deflated:
    """A part of a response body, with its raw deflate stream made once.

    The stream is byte-aligned and not final (a sync flush), so deflated parts and parts
    deflated per request join into one deflate stream: ``gzip_parts`` wraps them in a single
    gzip member, which every client inflates like any other.
    """

    raw: bytes
    deflated: bytes

    @classmethod
    def of(cls, raw: bytes, level: int = GZIP_CACHED_LEVEL) -> Deflated:
        return cls(raw, _deflate(raw, level))


def _deflate(raw: bytes, level: int) -> bytes:
    if not raw:
        return b""
    deflater = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return deflater.compress(raw) + deflater.flush(zlib.Z_SYNC_FLUSH)


def gzip_parts(parts: Sequence[bytes | Deflated], level: int = GZIP_LEVEL) -> bytes:
    """One gzip member of the parts in order: kept streams as they are, the rest deflated now."""
    out = [_GZIP_HEADER]
    crc = size = 0
    for part in parts:
        raw = part.raw if isinstance(part, Deflated) else part
        out.append(part.deflated if isinstance(part, Deflated) else _deflate(part, level))
        crc = zlib.crc32(raw, crc)
        size += len(raw)
    out += (_FINAL_BLOCK, struct.pack("<II", crc, size & 0xFFFFFFFF))
    return b"".join(out)


def compressed_parts(
    request: Request,
    parts: Sequence[bytes | Deflated],
    *,
    status: int = 200,
    headers: Mapping[str, str],
    media_type: str = "text/html; charset=utf-8",
) -> Response:
    """A response gzipped when the client accepts it, its body given in parts of which some
    were deflated ahead."""
    accepted = request.headers.get("accept-encoding", "")
    size = sum(len(part.raw if isinstance(part, Deflated) else part) for part in parts)
    all_headers = _vary_encoding(headers)
    if size >= GZIP_MIN_BYTES and "gzip" in accepted.lower():
        body = gzip_parts(parts)
        all_headers["Content-Encoding"] = "gzip"
    else:
        body = b"".join(part.raw if isinstance(part, Deflated) else part for part in parts)
    return Response(body, status_code=status, headers=all_headers, media_type=media_type)


def _vary_encoding(headers: Mapping[str, str]) -> dict[str, str]:
    all_headers = dict(headers)
    vary = [part.strip() for part in all_headers.get("Vary", "").split(",") if part.strip()]
    all_headers["Vary"] = ", ".join([*vary, "Accept-Encoding"])
    return all_headers


def error(
    request: Request,
    status: int,
    detail: str,
    *,
    language: str,
    headers: Mapping[str, str] | None = None,
    label: bool = False,
    **extra: Any,
) -> Response:
    """A failed request: a page for a browser, problem+json for everyone else.

    The page is wholly in the reader's language: a Chinese reader gets the Chinese words of
    the failure, an English reader also its detail. ``label``: the link came from a product's
    label, so a link that is malformed or names nothing warns plainly that the item may be
    counterfeit, and offers to type the label's 查询码 instead.
    """
    if linkset.prefers_html(request.headers.get("accept")):
        words = i18n.messages(language)
        return page(
            request,
            "error.html",
            language=language,
            status=status,
            headers=headers,
            headline=words.get(f"error_{status}", words["error_title"]),
            explanation=words.get(f"error_explain_{status}", words["error_explain_other"]),
            reason=detail if language == "en" else None,
            counterfeit=label and status in (400, 404),
        )
    return problem(status, detail, headers=dict(headers or {}), **extra)
