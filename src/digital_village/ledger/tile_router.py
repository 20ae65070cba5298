"""The log served as C2SP tlog-tiles under ``/ledger/``: checkpoint, hash tiles, entry bundles.

Public like every ledger read (CORS, HEAD). Full tiles and bundles never change and are cached
by anyone for a year (``immutable``); a partial tile only for a minute (a log may drop it once
the full one exists), the checkpoint not at all. Full tiles are kept in memory once read
(:class:`~digital_village.ledger.tile_reads.TileCache`) and :class:`TileFastPath`, the outermost
layer of the app, answers them before any other middleware or the database: they are what a
client fetches most, and each is the same bytes forever, as a static file or a CDN would serve
it (and, like those, not logged per request).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, FastAPI, Path, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from digital_village.api.cors import cors_headers
from digital_village.api.deps import SessionDep
from digital_village.api.security import NOTHING_POLICY, REFERRER_POLICY
from digital_village.errors import NotFound
from digital_village.ledger import tile_reads, tiles
from digital_village.ledger.tile_reads import Cached, TileCache

PREFIX: Final = "/ledger/"
TEXT: Final = "text/plain; charset=utf-8"
OCTETS: Final = "application/octet-stream"
IMMUTABLE: Final = "public, max-age=31536000, immutable"
PARTIAL: Final = "public, max-age=60"
# Bundles smaller than this are sent as they are: gzip would not pay for itself.
GZIP_MIN_BYTES: Final = 1400

router = APIRouter(prefix="/ledger", tags=["ledger tiles"])


@router.get("/checkpoint", response_class=Response, responses={200: {"content": {TEXT: {}}}})
def checkpoint(session: SessionDep) -> Response:
    """The log's latest signed checkpoint (C2SP tlog-checkpoint in a signed note)."""
    return Response(
        tile_reads.served_checkpoint(session),
        media_type=TEXT,
        headers={"Cache-Control": "no-cache"},
    )


@router.get(
    "/tile/{tile_path:path}",
    response_class=Response,
    responses={200: {"content": {OCTETS: {}}}},
)
def tile(
    request: Request,
    session: SessionDep,
    tile_path: str = Path(
        description="<L>/<N>[.p/<W>] (hashes) or entries/<N>[.p/<W>] (an entry bundle)"
    ),
) -> Response:
    """A tile of tree hashes, or an entry bundle (C2SP tlog-tiles)."""
    try:
        wanted = tiles.parse_path("tile/" + tile_path)
    except tiles.TileError as error:
        raise NotFound(str(error)) from error
    bundle = wanted.level is None
    if bundle:
        body = tile_reads.read_bundle(session, wanted)
    else:
        body = tile_reads.read_tile(session, wanted)
    item = tile_reads.cached(body, compress=bundle and len(body) >= GZIP_MIN_BYTES)
    if wanted.full:
        cache: TileCache = request.app.state.tile_cache
        cache.put(wanted.path, item)
    gzipped = item.gzipped is not None and _accepts_gzip(request.headers.get("accept-encoding"))
    return Response(
        item.gzipped if gzipped and item.gzipped is not None else item.body,
        media_type=OCTETS,
        headers=_headers(full=wanted.full, bundle=bundle, gzipped=gzipped),
    )


def _accepts_gzip(accept_encoding: str | None) -> bool:
    return accept_encoding is not None and "gzip" in accept_encoding.lower()


def _headers(*, full: bool, bundle: bool, gzipped: bool) -> dict[str, str]:
    headers = {"Cache-Control": IMMUTABLE if full else PARTIAL}
    if bundle:
        headers["Vary"] = "Accept-Encoding"
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return headers


class TileFastPath:
    """Answers GET and HEAD of a cached full tile with its bytes, before the rest of the app.

    The headers are those the route and the middleware would give (CORS, the security headers).
    Anything else goes on to the app.
    """

    def __init__(self, app: ASGIApp, *, cache: TileCache) -> None:
        self.app = app
        self.cache = cache
        common = {
            "content-type": OCTETS,
            **{name.lower(): value for name, value in cors_headers().items()},
            "x-content-type-options": "nosniff",
            "referrer-policy": REFERRER_POLICY,
            "content-security-policy": NOTHING_POLICY,
        }
        self._headers = {
            (bundle, gzipped): [
                (name.encode(), value.encode())
                for name, value in {
                    **common,
                    **{
                        name.lower(): value
                        for name, value in _headers(
                            full=True, bundle=bundle, gzipped=gzipped
                        ).items()
                    },
                }.items()
            ]
            for bundle in (False, True)
            for gzipped in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] in ("GET", "HEAD")
            and path.startswith("/ledger/tile/")
        ):
            item = self.cache.get(path[len(PREFIX) :])
            if item is not None:
                await self._answer(scope, send, item, bundle=path.startswith("/ledger/tile/e"))
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send, item: Cached, *, bundle: bool) -> None:
        gzipped = False
        if item.gzipped is not None:
            for name, value in scope["headers"]:
                if name == b"accept-encoding":
                    gzipped = _accepts_gzip(value.decode("latin-1"))
                    break
        body = item.gzipped if gzipped and item.gzipped is not None else item.body
        headers = [
            *self._headers[(bundle, gzipped)],
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )


def install(app: FastAPI, cache: TileCache | None = None) -> None:
    """Add the tile routes and, outermost, the fast path for cached full tiles."""
    app.state.tile_cache = cache if cache is not None else TileCache()
    app.include_router(router)
    app.add_middleware(TileFastPath, cache=app.state.tile_cache)
