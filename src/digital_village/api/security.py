"""HTTP security headers on every answer, and the Content-Security-Policy of the pages.

Pages load scripts only as files of this site (``script-src 'self'``: no inline script, so a
string that slipped into a page can never run, and the bearer tokens the farmer and label pages
keep in localStorage stay unreadable to anyone else); their one inline stylesheet is allowed by
its SHA-256, which the templates register as they render it (``allow_inline_style``). Nothing
may frame a page (``frame-ancestors 'none'``, and ``X-Frame-Options: DENY`` for old browsers),
a page opened from another site gets no handle on it (``Cross-Origin-Opener-Policy``), and
links leave this site without a referrer. Every answer is ``nosniff``; JSON, text and images
get a policy that allows nothing, SVG images their inline styles and nothing else. PDFs get no
policy (a browser's PDF viewer may not render under one). A route that sets its own policy
keeps it (the API docs do).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REFERRER_POLICY: Final = "same-origin"
NOTHING_POLICY: Final = "default-src 'none'; frame-ancestors 'none'"
SVG_POLICY: Final = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
# The API docs: Swagger UI and ReDoc from this site; both style their widgets inline and ReDoc
# searches in a worker it makes from a blob.
DOCS_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Inline stylesheets allowed at most (the site has one per kind of page; a bound keeps a
# template that put a variable into its stylesheet from growing the header without end).
MAX_STYLES: Final = 32


class _InlineStyles:
    """The SHA-256 hashes of the inline stylesheets the templates rendered, in order seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hashes: dict[str, None] = {}
        self.page_policy = self._policy()

    def add(self, css: str) -> None:
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        source = f"'sha256-{digest}'"
        if source in self._hashes:
            return
        with self._lock:
            if source in self._hashes:
                return
            if len(self._hashes) >= MAX_STYLES:
                raise RuntimeError(
                    f"more than {MAX_STYLES} different inline stylesheets: a template's "
                    "<style> must not depend on the page's data"
                )
            self._hashes[source] = None
            self.page_policy = self._policy()

    def _policy(self) -> str:
        styles = " ".join(["'self'", *self._hashes])
        return (
            "default-src 'none'; script-src 'self'; "
            f"style-src {styles}; img-src 'self' data:; connect-src 'self'; "
            "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )


_STYLES: Final = _InlineStyles()


def allow_inline_style(css: str) -> str:
    """Allow this exact stylesheet inline in pages (by its hash); returns it unchanged."""
    _STYLES.add(css)
    return css


def page_policy() -> str:
    """The pages' Content-Security-Policy as it stands (with every stylesheet seen so far)."""
    return _STYLES.page_policy


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP answer (a header already set is kept).

    ``connect_origin``: one more origin the pages' scripts may fetch from (the ledger's mirror).
    """

    def __init__(self, app: ASGIApp, connect_origin: str | None = None) -> None:
        self.app = app
        self.connect = f"connect-src 'self' {connect_origin}" if connect_origin else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _add_headers(MutableHeaders(scope=message), self.connect)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _add_headers(headers: MutableHeaders, connect: str | None = None) -> None:
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", REFERRER_POLICY)
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "text/html":
        policy = _STYLES.page_policy
        if connect is not None:
            policy = policy.replace("connect-src 'self'", connect)
        headers.setdefault("Content-Security-Policy", policy)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    elif media == "image/svg+xml":
        headers.setdefault("Content-Security-Policy", SVG_POLICY)
    elif media != "application/pdf":
        headers.setdefault("Content-Security-Policy", NOTHING_POLICY)
