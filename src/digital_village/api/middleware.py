"""ASGI middleware: request body limit and one structured log line per request."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digital_village.api.metrics import Metrics
from digital_village.api.problems import problem
from digital_village.db import track_cost

log = logging.getLogger("digital_village.access")


class _BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse request bodies above a limit with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"request body is larger than the limit of {self.max_bytes} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    announced = -1
                if announced > self.max_bytes:
                    await problem(413, detail, limit_bytes=self.max_bytes)(scope, receive, send)
                    return
        received = 0
        too_large = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may catch the error raised while reading the body and answer 400;
            # whatever it answers, the client gets the 413 it deserves.
            nonlocal replaced
            if not too_large:
                await send(message)
                return
            if not replaced:
                replaced = True
                response = problem(413, detail, limit_bytes=self.max_bytes)
                await response(scope, receive, send)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _BodyTooLarge:
            if not replaced:
                await problem(413, detail, limit_bytes=self.max_bytes)(scope, receive, send)


class AccessLogMiddleware:
    """Log method, path, status and duration of every request, with a request id, and count it
    in the metrics under its route template (never the raw path: DKBMs would explode labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        status = 500
        cost = track_cost()

        async def capture_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, capture_send)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if self.metrics is not None:
                self.metrics.observe(
                    route=template,
                    method=scope.get("method", ""),
                    status=status,
                    seconds=elapsed,
                    cost=cost,
                )
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "db_statements": cost.statements,
                    "db_write_wait_ms": round(cost.write_wait * 1000, 2),
                    "db_write_hold_ms": round(cost.write_hold * 1000, 2),
                    "db_stale_reads": cost.stale_reads,
                },
            )
