"""CORS for the public read routes: any origin may GET, HEAD and ask OPTIONS.

The resolver, the ledger's checkpoints and proofs and the public trace answers are read by
apps and other sites (GS1-Conformant Resolver: "SHALL support CORS" and OPTIONS). For the paths
``public`` names, an OPTIONS request is answered here (204, a preflight or not) and every other
answer gets ``Access-Control-Allow-Origin: *`` with the methods and the headers a script may
read. A HEAD on a path whose routes answer only GET (``head_as_get``) is served as the GET
without its body. Only GET, HEAD and OPTIONS are allowed, and no credentials, so a page
elsewhere cannot write through a visitor's browser. Other paths are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ALLOWED_METHODS: Final = "GET, HEAD, OPTIONS"
# Request headers a cross-origin script may send (the preflight's answer).
ALLOWED_HEADERS: Final = "Accept, Accept-Language, Accept-Encoding, If-None-Match, Content-Type"
# Response headers a cross-origin script may read besides the CORS-safelisted ones.
EXPOSED_HEADERS: Final = "Link, Location, Content-Language, GS1-EPCIS-Version, GS1-CBV-Version"
MAX_AGE: Final = "86400"


def cors_headers() -> dict[str, str]:
    """What every public answer carries."""
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
    }


class PublicCorsMiddleware:
    """Answers OPTIONS and adds the CORS headers on the paths ``public`` says are public."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        public: Callable[[str], bool],
        head_as_get: Callable[[str], bool] = lambda path: False,
    ) -> None:
        self.app = app
        self.public = public
        self.head_as_get = head_as_get

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.public(scope["path"]):
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await _preflight(send)
            return

        head = scope["method"] == "HEAD" and self.head_as_get(scope["path"])
        if head:
            scope = {**scope, "method": "GET"}

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in cors_headers().items():
                    headers[name] = value
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app(scope, receive, send_with_cors)


async def _preflight(send: Send) -> None:
    headers = {
        **cors_headers(),
        "Allow": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": MAX_AGE,
        "Content-Length": "0",
    }
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": b""})
