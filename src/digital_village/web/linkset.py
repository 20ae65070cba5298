"""What the resolver answers for a Digital Link: link types, RFC 9264 linksets, negotiation.

Pure: no web framework, no ORM. The resolver (``web/resolver.py``) decides what exists; this
module spells it the way the GS1-Conformant Resolver standard and RFC 9264 want it:

* Link types are GS1 Web Vocabulary terms (``gs1:pip`` = ``https://gs1.org/voc/pip``). A
  request names one with ``?linkType=`` as a CURIE (``gs1:pip``) or a full URI; ``linkset``
  (and the older ``all``) asks for the linkset itself.
* A linkset (``application/linkset+json``) holds one link context object per identification
  level of the request, finest first — serial, lot, product — because the standard wants the
  links of every level up to the primary key. Each object has its ``anchor`` (the canonical
  Digital Link URI of that level), an ``itemDescription`` (the member GS1's linkset schema
  names), and per link type a list of targets with ``href``, ``title``, ``type`` and
  ``hreflang``. ``gs1:defaultLink`` names the page a plain request is sent to, with only an
  ``href`` and a ``title`` as the standard asks.
* Every answer carries ``Link: <…?linkType=linkset>; rel="linkset"`` so a client that got a page
  or a redirect can find the machine-readable links.
* :func:`choose` picks one of several targets of a link type by the language (``lang`` in the
  query, then Accept-Language) and media type (``mediaType`` in the query, then Accept) asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import quote

GS1_VOC: Final = "https://gs1.org/voc/"
LINKSET_CONTEXT: Final = "https://ref.gs1.org/standards/resolver/linkset-context"
LINKSET_MEDIA_TYPE: Final = "application/linkset+json"

PIP: Final = "gs1:pip"
TRACEABILITY: Final = "gs1:traceability"
EPCIS: Final = "gs1:epcis"
CERTIFICATION_INFO: Final = "gs1:certificationInfo"
DEFAULT_LINK: Final = "gs1:defaultLink"
LINKSET: Final = "linkset"

Representation = Literal["html", "linkset", "json"]


class LinkTypeError(ValueError):
    """A ``linkType`` value that is neither a CURIE, a URI nor ``linkset``."""


def parse_link_type(value: str) -> str:
    """``gs1:pip``, ``https://gs1.org/voc/pip``, ``linkset`` or ``all`` → a canonical name.

    Names in other namespaces are kept as given (the resolver then has no such link). Raises
    LinkTypeError naming the value when it is not a link type at all.
    """
    text = value.strip()
    if text in (LINKSET, "all"):
        return LINKSET
    for prefix in (GS1_VOC, "http://gs1.org/voc/", "https://ref.gs1.org/voc/"):
        if text.startswith(prefix) and len(text) > len(prefix):
            return "gs1:" + text[len(prefix) :]
    prefix, colon, term = text.partition(":")
    if colon and prefix and term and prefix.isidentifier() and " " not in term:
        return text
    raise LinkTypeError(
        f"linkType {value!r} is not a link type: expected a CURIE such as gs1:pip, a URI "
        "such as https://gs1.org/voc/pip, or linkset"
    )


def link_type_uri(name: str) -> str:
    """The relation type a linkset uses for a link type: the full GS1 vocabulary URI."""
    return GS1_VOC + name[4:] if name.startswith("gs1:") else name


@dataclass(frozen=True)
class Target:
    """One link target: where, what it is called, its media type and languages."""

    href: str
    title: str
    media_type: str | None = None
    hreflang: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"href": self.href, "title": self.title}
        if self.media_type is not None:
            body["type"] = self.media_type
        if self.hreflang:
            body["hreflang"] = list(self.hreflang)
        return body

    def plain(self) -> Target:
        """The same target without its optional attributes (what ``gs1:defaultLink`` lists)."""
        return Target(self.href, self.title)


@dataclass(frozen=True)
class LinkContext:
    """The links of one identification level (a serial, a lot or a product)."""

    anchor: str
    description: str
    links: Mapping[str, Sequence[Target]]  # link type name → targets

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"anchor": self.anchor, "itemDescription": self.description}
        for name, targets in self.links.items():
            body[link_type_uri(name)] = [target.to_json() for target in targets]
        return body


def with_query(uri: str, **params: str) -> str:
    """``uri`` with query parameters appended (values percent-encoded, ':' kept readable)."""
    pairs = "&".join(f"{key}={quote(value, safe=':')}" for key, value in params.items())
    return f"{uri}{'&' if '?' in uri else '?'}{pairs}" if pairs else uri


def linkset_uri(anchor: str) -> str:
    """Where the linkset of an item is: its Digital Link URI with ``linkType=linkset``."""
    return with_query(anchor, linkType=LINKSET)


def with_query_string(uri: str, query: str) -> str:
    """``uri`` with a raw query string appended as sent (how a redirect passes it on)."""
    if not query:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def linkset_document(contexts: Sequence[LinkContext]) -> dict[str, Any]:
    """The RFC 9264 JSON document."""
    return {"linkset": [context.to_json() for context in contexts]}


def link_header(anchor: str, *, linkset_response: bool = False) -> str:
    """The ``Link`` header every resolver answer carries (and, on a linkset, its context)."""
    parts = [
        f'<{linkset_uri(anchor)}>; rel="linkset"; type="{LINKSET_MEDIA_TYPE}"',
        f'<{anchor}>; rel="canonical"',
    ]
    if linkset_response:
        parts.append(
            f'<{LINKSET_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"; '
            'type="application/ld+json"'
        )
    return ", ".join(parts)


# --- content negotiation ------------------------------------------------------------------------


def _accepted(accept: str) -> list[tuple[str, float, int]]:
    ranked: list[tuple[str, float, int]] = []
    for position, item in enumerate(accept.split(",")):
        media, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media.strip():
            ranked.append((media.strip().lower(), quality, position))
    return ranked


def _quality(ranked: list[tuple[str, float, int]], media_type: str) -> tuple[float, int]:
    """How much the client wants ``media_type``: (q of the most specific range, specificity)."""
    kind = media_type.split("/")[0]
    best: tuple[int, float] | None = None
    for media, quality, _ in ranked:
        if media == media_type:
            specificity = 2
        elif media == f"{kind}/*":
            specificity = 1
        elif media == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return (0.0, -1) if best is None else (best[1], best[0])


def negotiate(accept: str | None) -> Representation | None:
    """What a request without ``linkType`` gets: the default link, or the linkset.

    A browser (``text/html`` first) and a client that does not say (no Accept, ``*/*``) are
    sent to the default link, the consumer page. ``application/linkset+json`` or
    ``application/json`` preferred to HTML gets the linkset. None: the client accepts neither
    (the resolver still redirects to the default link, as the standard asks).
    """
    if not accept or not accept.strip():
        return "html"
    ranked = _accepted(accept)
    html = _quality(ranked, "text/html")
    linkset = max(_quality(ranked, LINKSET_MEDIA_TYPE), _quality(ranked, "application/json"))
    if html[0] <= 0 and linkset[0] <= 0:
        return None
    # Only an explicit JSON preference wins over HTML: */* alone means "anything", the page.
    if linkset[0] > html[0] or (linkset[0] == html[0] and linkset[1] > html[1]):
        return "linkset"
    return "html"


def linkset_media_type(accept: str | None) -> str:
    """``application/linkset+json`` unless the client asked only for ``application/json``."""
    ranked = _accepted(accept or "")
    if _quality(ranked, LINKSET_MEDIA_TYPE)[1] == 2:
        return LINKSET_MEDIA_TYPE
    if _quality(ranked, "application/json")[1] == 2:
        return "application/json"
    return LINKSET_MEDIA_TYPE


def _language_matches(wanted: str, offered: Sequence[str]) -> bool:
    wanted = wanted.lower()
    for language in offered:
        language = language.lower()
        if language == wanted or language.split("-")[0] == wanted.split("-")[0]:
            return True
    return False


def _languages(accept_language: str | None) -> list[str]:
    """Accept-Language's ranges, most wanted first (q=0 left out)."""
    if not accept_language:
        return []
    ranked = [
        (media, quality, position)
        for media, quality, position in _accepted(accept_language)
        if quality > 0 and media != "*"
    ]
    return [media for media, _, _ in sorted(ranked, key=lambda r: (-r[1], r[2]))]


def choose(
    targets: Sequence[Target],
    *,
    lang: str | None = None,
    accept_language: str | None = None,
    media_type: str | None = None,
    accept: str | None = None,
) -> Target:
    """The target that best matches what the request asked, else the first.

    Media type first (``mediaType`` in the query, or an Accept naming one exactly), then
    language (``lang`` in the query, then the Accept-Language ranges in order).
    """
    candidates = list(targets)
    wanted_media = media_type or None
    if wanted_media is None and accept:
        exact = [m for m, q, _ in _accepted(accept) if q > 0 and "*" not in m]
        wanted_media = next((m for m in exact if any(t.media_type == m for t in candidates)), None)
    if wanted_media is not None:
        same = [t for t in candidates if t.media_type == wanted_media.lower()]
        candidates = same or candidates
    for language in ([lang] if lang else []) + _languages(accept_language):
        matching = [t for t in candidates if _language_matches(language, t.hreflang)]
        if matching:
            return matching[0]
    return candidates[0]


def prefers_html(accept: str | None) -> bool:
    """Whether an error should be a page (a browser) rather than problem+json (a client)."""
    if not accept:
        return False
    ranked = _accepted(accept)
    html = _quality(ranked, "text/html")
    json = max(_quality(ranked, "application/json"), _quality(ranked, "application/problem+json"))
    return html[1] == 2 and html[0] > 0 and html >= json
