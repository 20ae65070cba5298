"""Webhook deliveries: the document, its signature, and the worker that sends the journal.

Each API process runs one :class:`DeliveryWorker` (a daemon thread started in the app's
lifespan). Every ``poll`` seconds it looks (a cheap read) for new events behind a subscription's
cursor, due schedules and due deliveries; when there is work it plans and claims in one write
transaction (PostgreSQL: under an advisory lock, so processes take turns), sends the claimed
deliveries in parallel, and records the outcomes. A delivery is retried with back-off until the
subscriber answers 2xx, so each is delivered at least once; the subscriber de-duplicates on the
delivery id (the document's ``id``, ``urn:uuid:<delivery id>``, and the ``Idempotency-Key``
header). Deliveries journaled before a stop are sent after the next start.

The body is an EPCISQueryDocument; ``GS1-Signature`` carries the base64 HMAC-SHA256 of the exact
body bytes under the subscription's ``signatureToken`` (as the EPCIS 2.0 REST binding suggests).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from typing import Any, Final

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from digital_village.db import Database, utcnow
from digital_village.trace import epcis_query_run
from digital_village.trace.epcis import default_context
from digital_village.trace.subscriptions import service
from digital_village.trace.subscriptions.service import Outgoing

log = logging.getLogger("digital_village.trace.subscriptions")

SIGNATURE_HEADER: Final = "GS1-Signature"
DELIVERY_ID_HEADER: Final = "Idempotency-Key"
# pg_advisory_xact_lock key of the delivery planner ("dvsubs").
_PLANNER_LOCK: Final = 0x6476_7375_6273
CLAIM_BATCH: Final = 200


def signature(token: str, body: bytes) -> str:
    """The GS1-Signature value: base64 of HMAC-SHA256(body) keyed by the signatureToken."""
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def query_document(
    *,
    events: Sequence[dict[str, Any]],
    query_name: str,
    subscription_id: str | None,
    document_id: str | None,
    created: dt.datetime,
) -> dict[str, Any]:
    """An EPCISQueryDocument of a named query's results."""
    results: dict[str, Any] = {"queryName": query_name}
    if subscription_id is not None:
        results["subscriptionID"] = subscription_id
    results["resultsBody"] = {"eventList": list(events)}
    document: dict[str, Any] = {"@context": default_context()}
    if document_id is not None:
        document["id"] = document_id
    document.update(
        {
            "type": "EPCISQueryDocument",
            "schemaVersion": "2.0",
            "creationDate": created.astimezone(dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "epcisBody": {"queryResults": results},
        }
    )
    return document


def delivery_bodies(session: Session, claimed: Sequence[Outgoing]) -> list[bytes]:
    """The documents of claimed deliveries, each the same bytes at every attempt; an event
    several subscriptions receive is read once."""
    events = epcis_query_run.bodies_of(session, [pk for o in claimed for pk in o.event_pks])
    documents = []
    for outgoing in claimed:
        document = query_document(
            events=[events[pk] for pk in outgoing.event_pks],
            query_name=outgoing.query_name,
            subscription_id=outgoing.subscription_id,
            document_id=f"urn:uuid:{outgoing.delivery_id}",
            created=outgoing.created_at,
        )
        documents.append(orjson.dumps(document))
    return documents


def post(outgoing: Outgoing, body: bytes, *, timeout: float) -> str | None:
    """POST one delivery; None when the subscriber answered 2xx, else what went wrong."""
    headers = {
        "Content-Type": "application/ld+json",
        "GS1-EPCIS-Version": "2.0",
        "GS1-CBV-Version": "2.0",
        DELIVERY_ID_HEADER: outgoing.delivery_id,
        "User-Agent": "digital-village-epcis",
    }
    if outgoing.signature_token:
        headers[SIGNATURE_HEADER] = signature(outgoing.signature_token, body)
    # dest is an http(s) URL: subscribe() refuses any other scheme.
    request = urllib.request.Request(outgoing.dest, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read()
            return None if 200 <= response.status < 300 else f"HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return f"{type(error).__name__}: {error}"


class DeliveryWorker:
    """A daemon thread planning and sending webhook deliveries (see the module docstring)."""

    def __init__(
        self,
        database: Database,
        *,
        timeout: float = 10.0,
        poll: float = 0.1,
        senders: int = 8,
        send: Callable[[Outgoing, bytes], str | None] | None = None,
    ) -> None:
        self.database = database
        self.timeout = timeout
        self.poll = poll
        # A claimed delivery is due again after this if its worker died while sending it.
        self.lease = timeout + 5.0
        self._send = send or (lambda outgoing, body: post(outgoing, body, timeout=timeout))
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=senders, thread_name_prefix="dv-webhook")
        self._thread = threading.Thread(target=self._run, name="dv-deliveries", daemon=True)

    def start(self) -> DeliveryWorker:
        self._thread.start()
        return self

    def wake(self) -> None:
        """Look for work now (a capture just committed)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.timeout + 5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception:
                log.exception("webhook deliveries: a round failed; trying again")
                self._stop.wait(1.0)
                continue
            if not sent:  # after a round that sent, look again at once: more may be waiting
                self._wake.wait(self.poll)
                self._wake.clear()

    def run_once(self) -> int:
        """One round: plan, claim, send, record. Returns how many deliveries were sent."""
        now = utcnow()
        with self.database.session() as session:
            if not service.has_work(session, now):
                return 0
        with self.database.transaction(write=True) as session:
            if not self._lock(session):
                return 0
            service.plan(session, now)
            claimed = service.claim_due(session, now, limit=CLAIM_BATCH, lease=self.lease)
        if not claimed:
            return 0
        with self.database.session() as session:
            bodies = delivery_bodies(session, claimed)
        results = self._send_all(claimed, bodies)
        with self.database.transaction(write=True) as session:
            service.record_results(session, utcnow(), results)
            attempted = {outgoing.delivery_id for outgoing, _ in results}
            unsent = [o.delivery_id for o in claimed if o.delivery_id not in attempted]
            service.release(session, utcnow(), unsent)
        delivered = sum(1 for _, error in results if error is None)
        for outgoing, error in results:
            if error is not None:
                log.warning(
                    "webhook delivery %s to %s failed (attempt %d): %s",
                    outgoing.delivery_id,
                    outgoing.dest,
                    outgoing.attempt,
                    error,
                )
        return delivered

    def _lock(self, session: Session) -> bool:
        if self.database.dialect != "postgresql":
            return True  # the write transaction (BEGIN IMMEDIATE) is the lock
        taken = session.execute(
            text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _PLANNER_LOCK}
        ).scalar()
        return bool(taken)

    def _send_all(
        self, claimed: Sequence[Outgoing], bodies: Sequence[bytes]
    ) -> list[tuple[Outgoing, str | None]]:
        """Send in parallel; a stop in the middle leaves the unsent ones out of the results."""
        futures = [
            (outgoing, self._pool.submit(self._send_unless_stopped, outgoing, body))
            for outgoing, body in zip(claimed, bodies, strict=True)
        ]
        results: list[tuple[Outgoing, str | None]] = []
        for outgoing, future in futures:
            try:
                outcome = future.result()
            except CancelledError:
                continue  # never started: released below, due again at once
            except Exception as failure:  # a bug in sending is a failed attempt, retried
                outcome = (True, f"{type(failure).__name__}: {failure}")
            sent, problem = outcome
            if sent:
                results.append((outgoing, problem))
        return results

    def _send_unless_stopped(self, outgoing: Outgoing, body: bytes) -> tuple[bool, str | None]:
        if self._stop.is_set():
            return False, None
        return True, self._send(outgoing, body)
