"""Load for the fault drills that remembers what the server acknowledged.

Recorders post EPCIS field events (each marked with a ``dv:drillMark`` of its own, so an event
whose answer was lost can still be looked for); ingesters post batches of readings and, like a
device, send a batch again until it is acknowledged; readers fetch pages and the checkpoint.
Every request is kept as a `Sample` (when, how long, what status, whether an error was
problem+json), so a drill can judge any stretch of time afterwards. `check_stored` then compares
what was acknowledged with what the database holds.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _harness import PUBLIC_BASE_URL, Deployment
from sqlalchemy import create_engine, func, select

from digital_village.iot.models import Reading, ReadingDay
from digital_village.iot.readings import CHINA_TIME, local_day
from digital_village.iot.shapes import METRIC_CODES
from digital_village.ledger.models import LedgerEntry
from digital_village.trace import builders
from digital_village.trace.models import Event
from digital_village.trace.store import EVENT_KIND

BATCH = 200  # readings per ingest request
METRICS = ("soil_moisture", "soil_temperature")


@dataclass(frozen=True)
class Sample:
    """One request: its kind (event, ingest, read), start (monotonic), duration and answer."""

    kind: str
    started: float
    seconds: float
    status: int | None  # None: no HTTP answer (connection refused or reset, timeout)
    problem_json: bool = False
    lost: bool = False  # sent but never answered: whether it was processed is unknown
    detail: str = ""

    @property
    def ended(self) -> float:
        return self.started + self.seconds


class _Lost(Exception):
    """A request was sent and never answered."""


@dataclass
class Load:
    """Writer and reader threads against one deployment, until `stop`."""

    deployment: Deployment
    recorders: int = 2
    ingesters: int = 2
    readers: int = 1
    timeout: float = 30.0
    pause_after_error: float = 0.2
    samples: list[Sample] = field(default_factory=list)
    events_acknowledged: dict[str, int] = field(default_factory=dict)  # eventID → ledger index
    # Marks of events sent but never answered, or answered 5xx: stored or not, never half.
    events_unanswered: list[str] = field(default_factory=list)
    readings_acknowledged: dict[tuple[int, int, int], float] = field(default_factory=dict)
    readings_unacknowledged: set[tuple[int, int, int]] = field(default_factory=set)
    readings_accepted: int = 0  # the sum of "accepted" over acknowledged batches
    resends: int = 0
    resend_duplicates: int = 0  # readings a resend found stored by an unanswered attempt
    first_send_duplicates: int = 0
    stored_before_answer_lost: int = 0  # batches stored whose answer the crash swallowed
    partial_batches: int = 0  # a resend that found part of its batch stored: a torn commit
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        targets: list[tuple[Any, tuple[Any, ...]]] = []
        targets += [(self._record, (n,)) for n in range(self.recorders)]
        targets += [(self._ingest, (n,)) for n in range(self.ingesters)]
        targets += [(self._read, (n,)) for n in range(self.readers)]
        for target, args in targets:
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 60)

    # -- requests ------------------------------------------------------------------------------

    def _send(
        self, client: httpx.Client, kind: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = client.request(method, path, **kwargs)
        except httpx.ConnectError as error:
            # Never reached the server (nothing listens): certainly not processed.
            self._note(Sample(kind, started, time.monotonic() - started, None, detail=repr(error)))
            return None
        except httpx.HTTPError as error:
            # Sent, but no answer (the server died under it, or it took too long): unknown.
            self._note(
                Sample(
                    kind, started, time.monotonic() - started, None, lost=True, detail=repr(error)
                )
            )
            raise _Lost from error
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        detail = ""
        if response.status_code >= 400:
            detail = media_type + " " + response.text[:300]
            if media_type == "application/problem+json":
                detail = str(response.json().get("detail", ""))[:300]
        self._note(
            Sample(
                kind,
                started,
                time.monotonic() - started,
                response.status_code,
                problem_json=media_type == "application/problem+json",
                detail=detail,
            )
        )
        return response

    def _note(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def _client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.deployment.base, headers=headers, timeout=self.timeout)

    # -- the threads ---------------------------------------------------------------------------

    def _record(self, worker: int) -> None:
        parcels = self.deployment.parcels
        with self._client(self.deployment.manager_token) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                mark = uuid.uuid4().hex
                when = dt.datetime.now(CHINA_TIME) - dt.timedelta(minutes=worker * 100_000 + n)
                event = builders.field_work(
                    "irrigating",
                    dkbm=parcels[n % len(parcels)],
                    when=when,
                    base_url=PUBLIC_BASE_URL,
                    extensions={"dv:drillMark": mark},
                )
                try:
                    response = self._send(client, "event", "POST", "/api/v1/events", json=event)
                except _Lost:
                    with self._lock:
                        self.events_unanswered.append(mark)
                    response = None
                if response is not None and response.status_code == 201:
                    body = response.json()
                    with self._lock:
                        self.events_acknowledged[body["eventID"]] = body["ledgerSeq"]
                    continue
                if response is not None and response.status_code >= 500:
                    with self._lock:
                        self.events_unanswered.append(mark)
                self._stop.wait(self.pause_after_error)

    def _ingest(self, worker: int) -> None:
        devices = self.deployment.devices
        device_id, token = devices[worker % len(devices)]
        # Each ingester has a device of its own where there are enough (else a stretch of time
        # of its own), a millisecond apart, starting 50 minutes ago (after the installation).
        base_ms = int(time.time() * 1000) - 50 * 60_000 + (worker // len(devices)) * 20 * 60_000
        with self._client(token) as client:
            batch_no = 0
            while not self._stop.is_set():
                first = base_ms + batch_no * BATCH
                batch_no += 1
                readings = [
                    {"metric": METRICS[i % 2], "time": first + i, "value": float(i % 40)}
                    for i in range(BATCH)
                ]
                attempt = 0
                while True:  # a device sends a batch again until it is acknowledged
                    attempt += 1
                    try:
                        response = self._send(
                            client,
                            "ingest",
                            "POST",
                            "/api/v1/telemetry",
                            json={"readings": readings},
                        )
                    except _Lost:
                        response = None
                    if response is not None and response.status_code == 200:
                        body = response.json()
                        with self._lock:
                            self.readings_accepted += body["accepted"]
                            if attempt == 1:
                                # every batch is new: a duplicate can only come from a resend
                                self.first_send_duplicates += body["duplicates"]
                            else:
                                self.resends += 1
                                self.resend_duplicates += body["duplicates"]
                                if body["duplicates"] == len(readings):
                                    self.stored_before_answer_lost += 1
                                elif body["duplicates"]:
                                    self.partial_batches += 1
                            for reading in readings:
                                key = (device_id, METRIC_CODES[reading["metric"]], reading["time"])
                                self.readings_acknowledged[key] = reading["value"]
                                self.readings_unacknowledged.discard(key)
                        break
                    with self._lock:
                        for reading in readings:
                            key = (device_id, METRIC_CODES[reading["metric"]], reading["time"])
                            self.readings_unacknowledged.add(key)
                    if self._stop.wait(self.pause_after_error):
                        return

    def _read(self, worker: int) -> None:
        parcels = self.deployment.parcels
        with self._client() as client:
            n = worker
            while not self._stop.is_set():
                n += 1
                for path in (
                    "/api/v1/ledger/checkpoint",
                    f"/api/v1/parcels/{parcels[n % len(parcels)]}",
                    f"/p/{parcels[n % len(parcels)]}",
                ):
                    try:
                        response = self._send(client, "read", "GET", path)
                    except _Lost:
                        response = None
                    if response is None or response.status_code >= 500:
                        self._stop.wait(self.pause_after_error)

    # -- figures -------------------------------------------------------------------------------

    def dump(self, path: Path, marks: dict[str, float]) -> None:
        """Every request as a JSON line, times relative to the drill's first request, and the
        drill's marks (named moments, monotonic) on the first line."""
        zero = min((s.started for s in self.samples), default=0.0)
        with path.open("w", encoding="utf-8") as out:
            out.write(json.dumps({name: round(t - zero, 3) for name, t in marks.items()}) + "\n")
            for s in sorted(self.samples, key=lambda s: s.started):
                row = {**asdict(s), "started": round(s.started - zero, 3)}
                out.write(json.dumps(row) + "\n")

    def status_counts(self, kind: str | None = None) -> dict[str, int]:
        counts = Counter(
            str(s.status) if s.status is not None else "lost" if s.lost else "refused"
            for s in self.samples
            if kind is None or s.kind == kind
        )
        return dict(sorted(counts.items()))


def check_stored(load: Load) -> dict[str, Any]:
    """Compare what was acknowledged with what the database holds; figures, with ``ok``."""
    deployment = load.deployment
    device_ids = [device_id for device_id, _ in deployment.devices]
    engine = create_engine(deployment.database_url)
    with engine.connect() as connection:
        entries = connection.scalar(select(func.count()).select_from(LedgerEntry)) or 0
        last = connection.scalar(select(func.max(LedgerEntry.seq)))
        acknowledged_seqs = list(load.events_acknowledged.values())
        bodies: dict[int, bytes] = {}
        for start in range(0, len(acknowledged_seqs), 500):
            chunk = acknowledged_seqs[start : start + 500]
            bodies.update(
                connection.execute(
                    select(LedgerEntry.seq, LedgerEntry.body).where(LedgerEntry.seq.in_(chunk))
                ).all()
            )
        # Half-written events: a ledger entry of an event without its row, or the reverse.
        event_entries = set(
            connection.scalars(select(LedgerEntry.seq).where(LedgerEntry.kind == EVENT_KIND))
        )
        event_rows = list(connection.scalars(select(Event.ledger_seq)))
        drill_bodies = list(
            connection.scalars(
                select(LedgerEntry.body).where(
                    LedgerEntry.kind == EVENT_KIND, LedgerEntry.body.like(b"%dv:drillMark%")
                )
            )
        )
        stored: dict[tuple[int, int, int], float] = {}
        for device_id in device_ids:
            for metric_id, time_ms, value in connection.execute(
                select(Reading.metric_id, Reading.time_ms, Reading.value).where(
                    Reading.device_id == device_id
                )
            ):
                stored[(device_id, int(metric_id), int(time_ms))] = float(value)
        # Half-written ingest: readings of a (device, day) without the day's mark for the sealer.
        days = {
            (int(device_id), _as_date(day))
            for device_id, day in connection.execute(
                select(ReadingDay.device_id, ReadingDay.day).where(
                    ReadingDay.device_id.in_(device_ids)
                )
            )
        }
    engine.dispose()
    marks_found = sum(
        1 for mark in load.events_unanswered if any(mark.encode() in body for body in drill_bodies)
    )
    missing_events = [
        event_id
        for event_id, seq in load.events_acknowledged.items()
        if event_id.encode() not in bodies.get(seq, b"")
    ]
    missing_readings = [
        key for key, value in load.readings_acknowledged.items() if stored.get(key) != value
    ]
    sent = set(load.readings_acknowledged) | load.readings_unacknowledged
    strays = [key for key in stored if key not in sent]
    days_missing = {(device_id, local_day(time_ms)) for device_id, _, time_ms in stored} - days
    figures: dict[str, Any] = {
        "events_acknowledged": len(load.events_acknowledged),
        "events_acknowledged_missing": len(missing_events),
        "events_unanswered": len(load.events_unanswered),
        "events_unanswered_found_committed": marks_found,
        "event_entries_without_row": len(event_entries - set(event_rows)),
        "event_rows_without_entry": len(set(event_rows) - event_entries),
        "ledger_entries": entries,
        "ledger_gapless": last is not None and last + 1 == entries,
        "readings_acknowledged": len(load.readings_acknowledged),
        "readings_never_acknowledged": len(load.readings_unacknowledged),
        "readings_stored": len(stored),
        "readings_acknowledged_missing": len(missing_readings),
        "readings_accepted_sum": load.readings_accepted,
        "readings_stray": len(strays),
        "resends": load.resends,
        "batches_stored_before_their_answer_was_lost": load.stored_before_answer_lost,
        "partial_batches": load.partial_batches,
        "reading_days_unmarked": len(days_missing),
    }
    # Exactly once: each stored reading was accepted by one answer, or was found already stored
    # by the resend of a batch whose earlier attempt was stored but never answered; only the
    # readings of a batch still unanswered at the end may be stored without either.
    once = load.readings_accepted + load.resend_duplicates
    exactly_once = load.first_send_duplicates == 0 and once <= len(stored) <= once + len(
        load.readings_unacknowledged
    )
    figures["readings_exactly_once"] = exactly_once
    figures["stored_ok"] = (
        not missing_events
        and not missing_readings
        and not strays
        and exactly_once
        and load.partial_batches == 0
        and not days_missing
        and figures["event_entries_without_row"] == 0
        and figures["event_rows_without_entry"] == 0
        and figures["ledger_gapless"]
    )
    return figures


def _as_date(day: Any) -> dt.date:
    return day if isinstance(day, dt.date) else dt.date.fromisoformat(str(day))
