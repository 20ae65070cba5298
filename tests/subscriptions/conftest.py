"""Webhook subscribers (a small HTTP server in the test) and databases whose commits are real,
for the delivery worker, the restart drill and WebSocket subscriptions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger import keys
from tests.conftest import World
from tests.factories import build_world

ORIGIN = "test.digital-village.example/ledger"
TOKEN = "13df38d8275b13f05704629e5f1cf3d45d6132d5"


@dataclass
class Received:
    """One POST the subscriber received."""

    delivery_id: str
    body: bytes
    headers: dict[str, str]

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document

    @property
    def event_ids(self) -> list[str]:
        results = self.document["epcisBody"]["queryResults"]
        return [event["eventID"] for event in results["resultsBody"]["eventList"]]

    def signed_with(self, token: str) -> bool:
        """The GS1-Signature header: base64 HMAC-SHA256 of the body under the token."""
        expected = base64.b64encode(hmac.new(token.encode(), self.body, hashlib.sha256).digest())
        return hmac.compare_digest(self.headers.get("gs1-signature", "").encode(), expected)


@dataclass
class Subscriber:
    """An HTTP server standing for a partner's webhook endpoint."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    # Answer 503 to this many more requests.
    fail_next: int = 0
    # When set, requests wait for it before answering (a stalled subscriber).
    hold: threading.Event | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)

    def by_delivery(self) -> dict[str, list[Received]]:
        with self._lock:
            found: dict[str, list[Received]] = {}
            for item in self.received:
                found.setdefault(item.delivery_id, []).append(item)
            return found

    def wait_for(self, condition: Callable[[Subscriber], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"subscriber still waiting; received {len(self.received)}")
            time.sleep(0.05)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        subscriber = self.server.subscriber
        headers = {name.lower(): value for name, value in self.headers.items()}
        subscriber.record(Received(headers.get("idempotency-key", ""), body, headers))
        if subscriber.fail_next > 0:
            subscriber.fail_next -= 1
            self.send_response(503)
            self.end_headers()
            return
        if subscriber.hold is not None:
            subscriber.hold.wait(60)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    subscriber: Subscriber


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.subscriber = Subscriber(url=f"http://127.0.0.1:{server.server_address[1]}/callback")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.subscriber
    if server.subscriber.hold is not None:
        server.subscriber.hold.set()
    server.shutdown()
    server.server_close()


@dataclass
class Committed:
    """A migrated database of the current backend whose commits are real, with a world."""

    url: str
    data_dir: Path
    world: World

    def settings(self, **overrides: Any) -> Settings:
        return Settings(
            data_dir=self.data_dir,
            database_url=self.url,
            ledger_origin=ORIGIN,
            log_format="text",
            log_level="WARNING",
            public_base_url="https://dv.test",
            **overrides,
        )


@pytest.fixture
def committed(committed_database_url: str, tmp_path: Path) -> Iterator[Committed]:
    url = committed_database_url
    keys.ensure_signing_key(tmp_path / "ledger.key", ORIGIN)
    database = Database.from_url(url)
    world = build_world(database)
    database.dispose()
    yield Committed(url=url, data_dir=tmp_path, world=world)
