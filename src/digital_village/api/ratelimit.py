"""Rate limits: per client address on public routes, per token on authenticated ones, and on
failed authentication (token guessing).

Token buckets kept in the process: with several workers each enforces its own share, which is
enough to blunt scraping and guessing; a county that needs exact global limits puts them in its
reverse proxy as well (docs/OPERATIONS.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digital_village.api.metrics import Metrics
from digital_village.api.problems import problem

_MAX_KEYS = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Buckets of ``per_minute`` requests with a burst of the same size, per key."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one request; return 0 if allowed, else the seconds until one is."""
        now = time.monotonic() if now is None else now
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = _Bucket(self.capacity, now)
                self._buckets[key] = bucket
                if len(self._buckets) > _MAX_KEYS:
                    self._buckets.popitem(last=False)
            else:
                bucket.tokens = min(
                    self.capacity, bucket.tokens + (now - bucket.updated) * self.rate
                )
                bucket.updated = now
                self._buckets.move_to_end(key)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate

    def exhausted(self, key: str) -> bool:
        """Whether ``key`` has no request left right now (without taking one)."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return False
            refill = (time.monotonic() - bucket.updated) * self.rate
            return bucket.tokens + refill < 1


class RateLimitMiddleware:
    """429 with Retry-After when a client, a token or a token guesser goes over its limit."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        public_per_minute: int,
        token_per_minute: int,
        failed_auth_per_minute: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.public = TokenBuckets(public_per_minute)
        self.token = TokenBuckets(token_per_minute)
        self.failed_auth = TokenBuckets(failed_auth_per_minute)
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in ("/healthz", "/metrics"):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown", 0))[0]
        # A client whose requests failed authentication too often is refused for a while.
        if self.failed_auth.exhausted(client):
            await self._refuse("failed_auth", 60 / self.failed_auth.capacity, scope, receive, send)
            return
        authorization = dict(scope.get("headers", [])).get(b"authorization", b"")
        if authorization.lower().startswith(b"bearer "):
            # The token's public id names the bucket; the secret never becomes a dict key.
            parts = authorization[7:].split(b"_")
            key = parts[1].decode("ascii", "replace") if len(parts) > 2 else client
            limit, wait = "token", self.token.take(key)
        else:
            limit, wait = "public", self.public.take(client)
        if wait > 0:
            await self._refuse(limit, wait, scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 401:
            self.failed_auth.take(client)

    async def _refuse(
        self, limit: str, wait: float, scope: Scope, receive: Receive, send: Send
    ) -> None:
        if self.metrics is not None:
            self.metrics.rate_limited.labels(limit).inc()
        response = problem(
            429,
            f"too many requests ({limit} limit); retry in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
            limit=limit,
        )
        await response(scope, receive, send)
