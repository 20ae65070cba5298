"""Prometheus metrics: requests by route and status, latency, and the ledger's size."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from digital_village.db import RequestCost

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_HOLD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """One registry per app, so several apps in one process (tests) never share counters.

    With several worker processes each worker reports its own figures; scrape each worker, or
    sum them in Prometheus (see docs/OPERATIONS.md).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dv_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dv_http_request_duration_seconds",
            "Time to answer, by route template.",
            ["route"],
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "dv_rate_limited",
            "Requests refused with 429, by limit.",
            ["limit"],
            registry=self.registry,
        )
        # Time a request's write transactions waited for, then held, the database's writer
        # (SQLite's write lock; on PostgreSQL, how long they lasted), and its statements.
        self.write_wait = Histogram(
            "dv_db_write_wait_seconds",
            "Time a request waited for the database's write lock, by route template.",
            ["route"],
            buckets=_HOLD_BUCKETS,
            registry=self.registry,
        )
        self.write_hold = Histogram(
            "dv_db_write_hold_seconds",
            "Time a request held a write transaction open, by route template.",
            ["route"],
            buckets=_HOLD_BUCKETS,
            registry=self.registry,
        )
        self.statements = Counter(
            "dv_db_statements",
            "SQL statements run for requests, by route template.",
            ["route"],
            registry=self.registry,
        )
        self.ledger_size = Gauge(
            "dv_ledger_size", "Entries in the ledger at the last scrape.", registry=self.registry
        )

    def observe(
        self,
        *,
        route: str,
        method: str,
        status: int,
        seconds: float,
        cost: RequestCost | None = None,
    ) -> None:
        """Count one answered request (and what it asked of the database)."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if cost is not None:
            if cost.statements:
                self.statements.labels(route).inc(cost.statements)
            if cost.write_wait or cost.write_hold:
                self.write_wait.labels(route).observe(cost.write_wait)
                self.write_hold.labels(route).observe(cost.write_hold)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
