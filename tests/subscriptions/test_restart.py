"""The restart drill: the server is killed (SIGKILL) while a webhook delivery is in flight, more
events are captured while it is down, and after a new start the subscriber has every matching
event, each delivery id always with the same signed document, no event under two ids."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import select

from digital_village.auth import service as auth
from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.trace import jobs
from digital_village.trace.models import Event
from digital_village.trace.subscriptions.models import Delivery
from tests.subscriptions.conftest import ORIGIN, TOKEN, Committed, Subscriber
from tests.trace import partner_documents

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(committed: Committed) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The API in its own process (uvicorn), as deployed; yields its URL and process."""
    port = _free_port()
    env = {
        **os.environ,
        "DV_DATABASE_URL": committed.url,
        "DV_DATA_DIR": str(committed.data_dir),
        "DV_LEDGER_ORIGIN": ORIGIN,
        "DV_LOG_LEVEL": "WARNING",
        "DV_PUBLIC_BASE_URL": "https://dv.test",
        # A delivery claimed by a killed process is due again after 1 + 5 s.
        "DV_EPCIS_WEBHOOK_TIMEOUT_SECONDS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "digital_village.app:create_app", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=REPO,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert process.poll() is None, "the server did not start"
        assert time.monotonic() < deadline, "the server did not answer /healthz"
        time.sleep(0.2)
    try:
        yield url, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _capture_directly(committed: Committed, document: dict[str, object]) -> list[str]:
    """Capture as another API process would, while the one under test is down."""
    database = Database.from_url(committed.url)
    ledger = Ledger.from_key_file(committed.data_dir / "ledger.key", ORIGIN)
    try:
        with database.transaction(write=True) as session:
            actor = auth.authenticate(session=session, token=committed.world.tokens["manager"])
            job = jobs.capture_document(
                session=session,
                ledger=ledger,
                actor=actor,
                media_type="application/json",
                body=json.dumps(document).encode(),
                base_url="https://dv.test",
            )
            assert job.result is not None, job.errors
            return [event.event_id for event in job.result.events]
    finally:
        database.dispose()


def test_a_subscriber_gets_every_event_once_per_delivery_id_across_a_kill(
    committed: Committed, subscriber: Subscriber
) -> None:
    headers = {"Authorization": f"Bearer {committed.world.tokens['manager']}"}
    subscriber.hold = threading.Event()  # the first delivery stalls at the subscriber
    with serving(committed) as (url, process):
        made = httpx.post(f"{url}/api/v1/epcis/queries", headers=headers,
                          json={"name": "everything", "query": {}})  # fmt: skip
        assert made.status_code == 201, made.text
        made = httpx.post(
            f"{url}/api/v1/epcis/queries/everything/subscriptions",
            headers=headers,
            json={"dest": subscriber.url, "signatureToken": TOKEN, "stream": True},
        )
        assert made.status_code == 201, made.text
        captured = httpx.post(f"{url}/api/v1/epcis/capture", headers=headers,
                              json=partner_documents.document(), timeout=60)  # fmt: skip
        assert captured.status_code == 202, captured.text
        first_ids = [event["eventID"] for event in captured.json()["events"]]
        subscriber.wait_for(lambda s: len(s.received) >= 1)
        # Killed in the middle of the delivery: the subscriber has the body, the server never
        # learnt that it arrived.
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    held, subscriber.hold = subscriber.hold, None
    held.set()
    later_ids = _capture_directly(committed, partner_documents.declaration_of_unknown_event())
    expected = set(first_ids) | set(later_ids)
    assert len(expected) == len(first_ids) + len(later_ids)

    def has_everything(s: Subscriber) -> bool:
        deliveries = s.by_delivery()
        got = {i for tries in deliveries.values() for i in tries[0].event_ids}
        first = subscriber.received[0].delivery_id
        return got == expected and len(deliveries[first]) >= 2

    with serving(committed):
        subscriber.wait_for(has_everything, timeout=60)
    deliveries = subscriber.by_delivery()
    seen: dict[str, str] = {}
    for delivery_id, tries in deliveries.items():
        assert all(t.signed_with(TOKEN) for t in tries)
        assert len({t.body for t in tries}) == 1, "one delivery id, one document"
        assert tries[0].document["id"] == f"urn:uuid:{delivery_id}"
        for event_id in tries[0].event_ids:
            assert event_id not in seen, f"{event_id} under {seen.get(event_id)} and {delivery_id}"
            seen[event_id] = delivery_id
    assert set(seen) == expected
    # The first delivery went out again after the restart; the journal records every one sent.
    assert len(deliveries[subscriber.received[0].delivery_id]) >= 2
    database = Database.from_url(committed.url)
    try:
        with database.session() as session:
            journal = session.scalars(select(Delivery)).all()
            assert {d.id for d in journal} == set(deliveries)
            assert all(d.delivered_at is not None for d in journal)
            stored = set(session.scalars(select(Event.event_id)))
            assert stored == expected
    finally:
        database.dispose()
