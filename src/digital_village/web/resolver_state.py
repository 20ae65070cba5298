"""What the resolver keeps per app, and what one request reads through it.

:class:`ResolverState` holds the view stores (``web/views.py``) with the feed that keeps them
current, the scan writer and the reader of the ledger's size; :class:`Reads` is one request's
access to them and to a read session. On the event loop a request may use only what is kept:
anything else raises :class:`Offload`, and the request is answered in the thread pool.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection

from digital_village.db import Database
from digital_village.ledger import log as ledger_log
from digital_village.web import consumer, pages, scan_writer, views

V = TypeVar("V")


@dataclass(frozen=True)
class Rendered:
    """A consumer page rendered once per ledger size: its view, and its HTML in three parts
    around the flags and scans blocks, which every request renders anew (each part deflated
    once, so a request compresses only its two small blocks)."""

    view: consumer.ConsumerView
    parts: tuple[pages.Deflated, pages.Deflated, pages.Deflated]


@dataclass(frozen=True)
class Unfinished:
    """A consumer page but for its per-request blocks: the flags, and the scans once the
    request's own scan (``scan``: GTIN and serial, on a GET of a serialised item) is stored."""

    rendered: Rendered
    flags: list[consumer.Flag]
    scan: tuple[str, str] | None
    language: str
    headers: dict[str, str]


class Offload(Exception):
    """The request needs more than the caches hold: answer it in the thread pool."""


_STORES: Final = (
    "resolver_facts",
    "resolver_certificates",
    "resolver_linksets",
    "consumer_lot_views",
    "consumer_pages",
)


class ResolverState:
    """What the resolver keeps per app: its view stores and the feed that keeps them current,
    the scan writer, and the reader of the ledger's size.

    ``close`` (the app's shutdown) stores the scans handed over and gives the reader's
    connection back; both start again on the next request.
    """

    def __init__(self, database: Database, *, scan_wait: float = 0.05) -> None:
        self.database = database
        self.scans = scan_writer.ScanWriter(database)
        self.scan_wait = scan_wait
        self.stores: dict[str, views.ViewStore[Any]] = {
            name: views.ViewStore(name) for name in _STORES
        }
        self.feed = views.ChangeFeed(list(self.stores.values()))
        # SQLite reads take microseconds: kept answers are served on the event loop.
        self.inline = database.dialect == "sqlite"
        bind = database.bind
        self._engine = bind if isinstance(bind, Engine) and self.inline else None
        self._connection: PoolProxiedConnection | None = None
        self._lock = threading.Lock()

    def head(self) -> int:
        """How many entries the ledger holds, read outside any transaction."""
        if self._engine is None:
            with self.database.session() as session:
                return ledger_log.entry_count(session)
        with self._lock:
            if self._connection is None:
                self._connection = self._engine.raw_connection()
            try:
                cursor = self._connection.cursor()
                try:
                    cursor.execute(ledger_log.ENTRY_COUNT_SQL)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except Exception as error:
                # A connection that failed once is not trusted again: the next read opens anew.
                self._connection.invalidate()
                self._connection = None
                if isinstance(error, sqlite3.Error):
                    # As SQLAlchemy would raise it: a database that is away answers 503.
                    raise DBAPIError.instance(
                        ledger_log.ENTRY_COUNT_SQL,
                        None,
                        error,
                        sqlite3.Error,
                        connection_invalidated=True,
                    ) from error
                raise
        return 0 if not row or row[0] is None else int(row[0]) + 1

    def collect(self) -> Iterator[Metric]:
        """Prometheus metrics of the scan writer and the view stores (read at each scrape)."""
        writer = self.scans
        worker = GaugeMetricFamily(
            "dv_worker",
            "The worker process that answered this scrape (its id): with several workers on one "
            "port, each scrape reports one worker's figures.",
            labels=["pid"],
        )
        worker.add_metric([str(os.getpid())], 1)
        yield worker
        scanned = CounterMetricFamily(
            "dv_scans",
            "Scans of items' pages by outcome: stored; late (the page was served before its "
            "scan was stored, which was stored later or dropped); dropped (never stored).",
            labels=["outcome"],
        )
        scanned.add_metric(["stored"], writer.stored)
        scanned.add_metric(["late"], writer.late)
        scanned.add_metric(["dropped"], writer.dropped)
        yield scanned
        yield GaugeMetricFamily(
            "dv_scans_waiting", "Scans handed to the writer and not yet stored.", writer.waiting
        )
        yield CounterMetricFamily(
            "dv_scan_batches", "Write transactions of the scan writer.", writer.batches
        )
        yield CounterMetricFamily(
            "dv_scan_store_seconds",
            "Time the scan writer spent in write transactions, waiting for the lock included.",
            writer.store_seconds,
        )
        kept = CounterMetricFamily(
            "dv_views",
            "Views asked of the resolver's stores by outcome: hit, build, dropped (an append "
            "touched what it shows).",
            labels=["store", "outcome"],
        )
        for name, store in self.stores.items():
            kept.add_metric([name, "hit"], store.hits)
            kept.add_metric([name, "build"], store.builds)
            kept.add_metric([name, "dropped"], store.dropped)
        yield kept
        yield CounterMetricFamily(
            "dv_view_feed_looks",
            "Times the resolver took in newly appended ledger entries.",
            self.feed.looks,
        )

    def close(self) -> None:
        self.scans.stop()
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None


class Reads:
    """A request's reads: the ledger's size, and a read session opened on first use. On the
    event loop (``session_allowed=False``) asking for the session, a view not kept, or a size
    the feed has not taken in yet raises Offload."""

    def __init__(self, state: ResolverState, *, session_allowed: bool) -> None:
        self._state = state
        self._allowed = session_allowed
        self._session: Session | None = None
        self._head: int | None = None

    def head(self) -> int:
        """The ledger's size this request answers from, taken in by the feed."""
        if self._head is None:
            state = self._state
            if self._allowed:
                # Read in the session the answer is built from (one snapshot).
                head = ledger_log.entry_count(self.session)
                state.feed.advance(self.session, head)
            else:
                head = state.head()
                if not state.feed.current(head):
                    raise Offload
            self._head = head
        return self._head

    def cached(self, name: str, key: Hashable, build: Callable[[], tuple[V, views.Scope]]) -> V:
        """A view from the state's store ``name`` (``build`` makes it and its scope); on the
        event loop a missing one offloads (building there would hold up every other request)."""
        store: views.ViewStore[V] = self._state.stores[name]
        head = self.head()
        if self._allowed:
            return store.get_or_build(key, build, feed=self._state.feed, head=head)
        found = store.peek(key)
        if found is None:
            raise Offload
        return found

    @property
    def session(self) -> Session:
        if self._session is None:
            if not self._allowed:
                raise Offload
            self._session = self._state.database.session()
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
