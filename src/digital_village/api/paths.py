"""Path segments that hold a percent-encoded "/" (%2F): lot numbers (GS1 AI 10 and 21 allow
"/"), matched as one segment.

ASGI servers decode the path before routing, so ``/lots/<GTIN>/RS%2F01`` would arrive as
``/lots/<GTIN>/RS/01`` and match nothing, or the wrong route (a serial). The middleware
decodes the raw path segment by segment instead, keeping an encoded "/" as a private-use
character inside its segment; route parameters declared ``{lot:part}`` turn it back into "/".
"""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

# A character no identifier of the project holds (Unicode private use), standing for an
# encoded "/" inside one path segment between the middleware and the route's convertor.
ENCODED_SLASH: Final = "\ue000"


class PartConvertor(Convertor[str]):
    """One path segment, whose encoded "/" (%2F) is part of the value."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value.replace(ENCODED_SLASH, "/")

    def to_string(self, value: str) -> str:
        return value.replace("/", ENCODED_SLASH)


register_url_convertor("part", PartConvertor())


class EncodedSlashMiddleware:
    """Decode a path holding %2F segment by segment, so the slash stays inside its segment."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw and b"%2f" in raw.lower():
            segments = raw.decode("ascii", "replace").split("/")
            path = "/".join(
                unquote(segment, errors="replace").replace("/", ENCODED_SLASH)
                for segment in segments
            )
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)
