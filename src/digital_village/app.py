"""The web application: ``create_app(settings)`` wires routers, errors and start-up checks."""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from digital_village import logs, migrate
from digital_village.api import docs, openapi, problems
from digital_village.api.cors import PublicCorsMiddleware
from digital_village.api.jsonguard import JsonGuardMiddleware
from digital_village.api.metrics import CONTENT_TYPE_LATEST, Metrics
from digital_village.api.middleware import AccessLogMiddleware, BodyLimitMiddleware
from digital_village.api.paths import EncodedSlashMiddleware
from digital_village.api.ratelimit import RateLimitMiddleware
from digital_village.api.security import SecurityHeadersMiddleware
from digital_village.auth.router import router as auth_router
from digital_village.config import Settings
from digital_village.db import Database, Failure, failure_of
from digital_village.errors import NotReady
from digital_village.iot.ingest_router import router as ingest_router
from digital_village.iot.router import router as iot_router
from digital_village.iot.sealer import BackgroundSealer
from digital_village.ledger import tile_router
from digital_village.ledger.cosigner import BackgroundCosigner
from digital_village.ledger.log import Ledger
from digital_village.ledger.publisher import Publisher
from digital_village.ledger.router import router as ledger_router
from digital_village.parcels.router import router as parcels_router
from digital_village.regions.router import router as regions_router
from digital_village.tokens.router import router as tokens_router
from digital_village.trace import lineage
from digital_village.trace.epcis_query_routes import queries_router
from digital_village.trace.epcis_routes import epcis_router
from digital_village.trace.router import router as trace_router
from digital_village.trace.subscriptions.delivery import DeliveryWorker
from digital_village.web import STATIC_DIR
from digital_village.web import resolver as resolver_routes
from digital_village.web.resolver_state import ResolverState
from digital_village.web.routes import router as web_router

log = logging.getLogger("digital_village.app")

API_DESCRIPTION = """
Digital Village: the land-parcel map, the field-sensor net and the product ledger of a county.

Write routes need a bearer token made by `dv tokens create`. Errors are RFC 9457
`application/problem+json`.
"""


# Threads waiting for the GIL (the scan writer after each database call, the thread pool) get it
# within this, not the interpreter's default 5 ms.
SWITCH_INTERVAL = 0.0005


def _tune_for_serving() -> None:
    """Interpreter settings for a serving process (not for tests, which build many apps).

    What start-up made (modules, the app, its routes) lives as long as the process: frozen, it
    is left out of the cyclic collector's full passes, which otherwise took 100-350 ms every few
    seconds under load and made the pages' p99. A served page waits for the scan writer's
    commit, a handful of GIL hand-offs: at the default switch interval each could cost 5 ms
    while the event loop is busy, and a page's p99 at 300 requests/s was ~170 ms; at 0.5 ms, 7.
    """
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL))


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the application for these settings (and, in tests, an existing database)."""
    settings = settings or Settings()
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    owns_database = database is None
    db = database or Database.from_url(settings.effective_database_url)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Refuse to serve on an unmigrated database: better a clear message now than a 500 later.
        try:
            migrate.check_current(db.bind)
        except NotReady as error:
            # But a worker started while the database is away (uvicorn replaces a worker that
            # dies or stops answering) serves 503 until it is back: failing its start-up would
            # make uvicorn stop every worker, turning a database restart into an API outage
            # that only a person can end (scripts/drills/pg_restart.py).
            if failure_of(error.__cause__ or error) is not Failure.UNAVAILABLE:
                raise
            log.warning("starting while the database is unavailable: %s", error.detail)
        background = _Background.start(db, settings, publisher) if owns_database else None
        app.state.cosigner = background.cosigner if background else None
        if owns_database:
            _tune_for_serving()
        yield
        # Store the scans handed to the writer before the database goes.
        resolver.close()
        if background is not None:
            background.stop(publisher)
        if owns_database:
            db.dispose()

    app = FastAPI(
        title="Digital Village",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.db = db
    # A serving process appends without signing and its publisher signs one checkpoint for all
    # that was appended in the last 250 ms (ledger/publisher.py; witnesses and other listeners
    # go in publisher.listeners). Tests hand in their own database and sign in each appending
    # transaction, so a checkpoint exists the moment a request is answered.
    publisher: Publisher | None = None
    if owns_database:
        publisher = Publisher(
            db,
            lambda: Ledger.from_key_file(
                settings.effective_ledger_key_path, settings.ledger_origin, sign_on_append=False
            ),
        )
    app.state.publisher = publisher
    # The map's write routes refuse changes dated before events already recorded on a parcel.
    app.state.last_event_on_parcels = lineage.last_event_on_parcels
    # The resolver's views, scan writer (one thread, group commit) and ledger-size reader.
    resolver = app.state.resolver = ResolverState(db, scan_wait=settings.scan_wait_ms / 1000)
    problems.install(app)
    openapi.install(app)
    docs.install(app)
    metrics = _add_middleware(app, settings, resolver)
    _add_operations_routes(app, db, settings, metrics)
    _include_routers(app)
    return app


@dataclass
class _Background:
    """What a serving process runs beside its requests (tests hand in their own database and
    run none of it): sealing finished days of sensor readings, asking the configured witnesses
    to cosign each new checkpoint, sending the EPCIS subscriptions' journaled webhook
    deliveries (those left by a stop too), and the checkpoint publisher."""

    sealer: BackgroundSealer
    cosigner: BackgroundCosigner
    deliveries: DeliveryWorker

    @classmethod
    def start(cls, db: Database, settings: Settings, publisher: Publisher | None) -> _Background:
        started = cls(
            sealer=BackgroundSealer(db, settings).start(),
            cosigner=BackgroundCosigner(db, timeout=settings.witness_timeout_s).start(),
            deliveries=DeliveryWorker(db, timeout=settings.epcis_webhook_timeout_seconds).start(),
        )
        if publisher is not None:
            # Witnesses are asked as soon as a checkpoint is stored, not at their next poll.
            cosigner = started.cosigner
            publisher.listeners.append(lambda _published: cosigner.notify())
            publisher.start()
        return started

    def stop(self, publisher: Publisher | None) -> None:
        self.deliveries.stop()
        self.sealer.stop()
        # Sign what was appended since the last checkpoint, then stop publishing.
        if publisher is not None:
            publisher.stop()
        self.cosigner.stop()


def _add_middleware(app: FastAPI, settings: Settings, resolver: ResolverState) -> Metrics:
    """The middleware stack, and the metrics it records."""
    # Outermost last: access log → security headers → rate limit → body size → JSON guard
    # → routes.
    app.add_middleware(EncodedSlashMiddleware)
    app.add_middleware(JsonGuardMiddleware, max_depth=settings.max_json_depth)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(PublicCorsMiddleware, public=is_public_read, head_as_get=_head_as_get)
    metrics = Metrics()
    metrics.registry.register(resolver)  # scans and views, read at each scrape
    app.state.metrics = metrics
    app.add_middleware(
        RateLimitMiddleware,
        public_per_minute=settings.rate_limit_public_per_minute,
        token_per_minute=settings.rate_limit_token_per_minute,
        failed_auth_per_minute=settings.rate_limit_failed_auth_per_minute,
        metrics=metrics,
    )
    app.add_middleware(SecurityHeadersMiddleware, connect_origin=settings.ledger_mirror_origin)
    app.add_middleware(AccessLogMiddleware, metrics=metrics)
    return metrics


# Public reads that apps and other sites fetch: the ledger (checkpoints, entries, proofs), the
# trace, lot and certificate answers the resolver's links point to. The resolver's own paths
# come from web.resolver.
_PUBLIC_READ_PREFIXES: Final = (
    "/api/v1/ledger",
    "/ledger/",
    "/api/v1/trace/",
    "/api/v1/lots/",
    "/api/v1/certificates/",
)


def is_public_read(path: str) -> bool:
    """Whether a path is answered to any origin (CORS, OPTIONS): see api/cors.py."""
    return path.startswith(_PUBLIC_READ_PREFIXES) or resolver_routes.is_public_path(path)


def _head_as_get(path: str) -> bool:
    # The resolver's routes answer HEAD themselves (without recording a scan).
    return path.startswith(_PUBLIC_READ_PREFIXES) or path == resolver_routes.DESCRIPTION_PATH


def _add_operations_routes(
    app: FastAPI, db: Database, settings: Settings, metrics: Metrics
) -> None:
    """/healthz and /metrics."""

    @app.get("/healthz", tags=["operations"])
    def healthz() -> JSONResponse:
        """Whether the database is reachable and migrated and the ledger key is present."""
        checks: dict[str, Any] = {"database": db.dialect}
        problems_found: list[str] = []
        try:
            checks["migration"] = migrate.check_current(db.bind)
        except NotReady as error:
            problems_found.append(error.detail)
        checks["ledger_key"] = settings.effective_ledger_key_path.is_file()
        if not checks["ledger_key"]:
            problems_found.append(
                f"ledger signing key missing at {settings.effective_ledger_key_path}; run `dv init`"
            )
        body = {"status": "ok" if not problems_found else "unavailable", **checks}
        if problems_found:
            body["problems"] = problems_found
        return JSONResponse(body, status_code=200 if not problems_found else 503)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus text format: requests, latency, rate limiting, ledger size."""
        with db.session() as session:
            size = session.scalar(text("SELECT max(size) FROM ledger_checkpoint"))
        metrics.ledger_size.set(size or 0)
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _include_routers(app: FastAPI) -> None:
    """Every package's routes, and the static files."""
    # The resolver and pages first: a scanned label is the most frequent request, and routes
    # are matched in order (their paths, /01/…, /p/… and /api/v1/labels/…, overlap no other).
    app.include_router(web_router)
    app.include_router(auth_router)
    app.include_router(tokens_router)
    app.include_router(regions_router)
    app.include_router(ledger_router)
    # The log as tlog-tiles (/ledger/…), with the fast path for cached full tiles outermost.
    tile_router.install(app)
    app.include_router(parcels_router)
    app.include_router(ingest_router)
    app.include_router(iot_router)
    app.include_router(trace_router)
    app.include_router(queries_router)  # before the EPCIS catch-all for unknown resources
    app.include_router(epcis_router)
    # The browser-side verifier and page assets (ships in the package: web/static/*).
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
