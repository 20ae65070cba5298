"""Scans of serialised items, and the signs of a copied label (issue 6, item 6).

Every time a browser opens the page of a serialised item (a bottle), one scan is stored: the
time, the client's network (IPv4 /24 or IPv6 /48 — a coarse place, never the address itself)
and, only if the reader chose to share it, a location rounded to 0.1° (about 10 km). The page
offers that choice with a button; the browser's geolocation is asked for only after a tap, and
the page then reloads itself with ``?geo=<lat>,<lon>``. The same network opening the same item
again within ``REPEAT_WINDOW`` counts once (a reload, the geolocation round trip); the repeat
only adds a location the first one lacked.

A label is flagged as probably copied when many independent networks scanned it over several
days, recently: a bottle of oil is scanned in the shop, at home, by a few relatives — a copied
label printed on a thousand fakes is scanned everywhere, day after day. Precisely: of the
networks that scanned it within ``FLAG_WINDOW``, each China day counts at most
``NETWORKS_PER_DAY`` new ones, and more than ``MAX_PLAUSIBLE_NETWORKS`` must add up. So

* one source is never enough: a reader reloading the page adds no network, and a phone that
  toggles its mobile data (or a script) gets many addresses in an afternoon but counts
  ``NETWORKS_PER_DAY`` a day; forging the warning takes several days of work from many networks;
* it decays: scans older than ``FLAG_WINDOW`` no longer count, so a label that stopped being
  scanned everywhere loses the warning;
* the page says why: how many networks on how many days within the window.

Locations are what the reader's phone claims, so they are hints, never evidence: two scans
more than ``FAR_KM`` apart and closer in time than travel at ``MAX_TRAVEL_KMH`` allows are
mentioned beside a warning the networks already justify, and flag nothing alone (anyone can
open the page with any ``?geo=``). Networks alone cannot place a scan (that would need a GeoIP
database, which this project does not ship).

Scans are written by one background thread per process (``ScanWriter``), as many to a write
transaction as are waiting (group commit), each counted as if stored alone. A page's request
hands its scan over and waits for the commit at most a short while (``DV_SCAN_WAIT_MS``): stored
in time, the page shows the count with its own scan and every scan committed before it; not in
time (the database's one writer busy with a long job, or away), the page is served at once with
the count as last seen and the scan is stored when the writer gets to it. Recording a scan never
fails a page: a scan that cannot be stored, or that finds more than ``MAX_WAITING`` scans
already waiting, is dropped and counted (``dv_scans_dropped_total`` in /metrics).
What the thread saves is the cost of a transaction per scan and, on SQLite, the queue of request
threads fighting for the write lock (whose busy-wait sleeps made the tail latency).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from digital_village.db import Database, failure_of
from digital_village.errors import DomainError
from digital_village.web.models import Scan

log = logging.getLogger(__name__)

REPEAT_WINDOW: Final = dt.timedelta(minutes=10)
MAX_PLAUSIBLE_NETWORKS: Final = 12
NETWORKS_PER_DAY: Final = 5
FLAG_WINDOW: Final = dt.timedelta(days=30)
# Networks of one item read for the rule at most (a copied label past this is flagged anyway).
NETWORKS_READ: Final = 2000
CHINA_TIME: Final = ZoneInfo("Asia/Shanghai")
FAR_KM: Final = 50.0
MAX_TRAVEL_KMH: Final = 250.0
GEO_DECIMALS: Final = 1
# Pairs of located scans compared: the newest this many (a flood of scans needs no more).
LOCATED_COMPARED: Final = 200
EARTH_RADIUS_KM: Final = 6371.0088
# Scans stored in one write transaction at most (a burst larger than this takes several).
MAX_BATCH: Final = 256
# Scans waiting to be stored at most; beyond, a scan is dropped (and counted) rather than kept
# in memory without bound while the database cannot take them.
MAX_WAITING: Final = 10_000
# The item summaries last seen, kept for pages served before their own scan was stored.
SUMMARIES_KEPT: Final = 4096
# How often the writer looks for scans while they keep coming (a few ms of a page's time for
# fewer transactions, and no thread woken per scan), and after how many empty looks it
# blocks until the next one instead (about a second).
GATHER_S: Final = 0.004
IDLE_LOOKS: Final = 250


class BadGeo(DomainError):
    """A ``geo`` parameter that is not ``<lat>,<lon>`` in degrees."""

    status = 400
    title = "Bad request"


def network_of(address: str | None) -> str | None:
    """The client's network, coarse enough not to identify anyone: IPv4 /24, IPv6 /48."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def parse_geo(value: str) -> tuple[float, float]:
    """``"31.13,104.40"`` → (lat, lon) rounded to 0.1°; BadGeo naming what is wrong."""
    parts = value.split(",")
    if len(parts) != 2:
        raise BadGeo(f"geo must be '<lat>,<lon>' in degrees, got {value!r}", field="geo")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise BadGeo(f"geo must be two numbers '<lat>,<lon>', got {value!r}", field="geo") from None
    if not (math.isfinite(lat) and math.isfinite(lon)) or not -90 <= lat <= 90:
        raise BadGeo(f"geo latitude must be within -90..90, got {value!r}", field="geo")
    if not -180 <= lon <= 180:
        raise BadGeo(f"geo longitude must be within -180..180, got {value!r}", field="geo")
    return round(lat, GEO_DECIMALS), round(lon, GEO_DECIMALS)


# Built once: the statements run on every view of a bottle's page, and composing them anew
# cost more than running them. Executed on the session's connection (Core, no ORM layer).
_RECENT: Final = (
    select(Scan.id, Scan.lat)
    .where(
        Scan.gtin == bindparam("gtin"),
        Scan.serial == bindparam("serial"),
        Scan.network == bindparam("network"),
        Scan.scanned_at > bindparam("since"),
    )
    .order_by(Scan.scanned_at.desc())
    .limit(1)
)
_LOCATE: Final = (
    update(Scan)
    .where(Scan.id == bindparam("scan_id"))
    .values(lat=bindparam("new_lat"), lon=bindparam("new_lon"))
)
_INSERT: Final = insert(Scan)
_COUNTS: Final = select(
    func.count(),
    func.count(func.distinct(Scan.network)),
    func.min(Scan.scanned_at),
    func.count(Scan.lat),
).where(Scan.gtin == bindparam("gtin"), Scan.serial == bindparam("serial"))
_NETWORKS_SINCE: Final = (
    select(Scan.network, func.min(Scan.scanned_at))
    .where(
        Scan.gtin == bindparam("gtin"),
        Scan.serial == bindparam("serial"),
        Scan.scanned_at > bindparam("since"),
        Scan.network.is_not(None),
    )
    .group_by(Scan.network)
    .limit(NETWORKS_READ)
)
_LOCATED: Final = (
    select(Scan.scanned_at, Scan.lat, Scan.lon)
    .where(
        Scan.gtin == bindparam("gtin"),
        Scan.serial == bindparam("serial"),
        Scan.scanned_at > bindparam("since"),
        Scan.lat.is_not(None),
    )
    .order_by(Scan.scanned_at.desc())
    .limit(LOCATED_COMPARED)
)


def record_scan(
    *,
    session: Session,
    gtin: str,
    serial: str,
    network: str | None,
    geo: tuple[float, float] | None,
    now: dt.datetime,
) -> bool:
    """Store one scan, or fold a repeat from the same network into the recent one.

    Returns whether the reader's scan now carries a location. Core statements: this runs on
    every view of a bottle's page.
    """
    connection = session.connection()
    recent = None
    if network is not None:
        recent = connection.execute(
            _RECENT,
            {"gtin": gtin, "serial": serial, "network": network, "since": now - REPEAT_WINDOW},
        ).first()
    if recent is not None:
        if geo is not None and recent.lat is None:
            connection.execute(
                _LOCATE, {"scan_id": recent.id, "new_lat": geo[0], "new_lon": geo[1]}
            )
        return geo is not None or recent.lat is not None
    connection.execute(
        _INSERT,
        {
            "gtin": gtin,
            "serial": serial,
            "scanned_at": now,
            "network": network,
            "lat": geo[0] if geo else None,
            "lon": geo[1] if geo else None,
        },
    )
    return geo is not None


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points (haversine, mean Earth radius)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Impossible:
    """Two located scans too far apart for the time between them."""

    km: float
    hours: float


@dataclass(frozen=True)
class NetworkEvidence:
    """The independent networks that scanned an item within ``FLAG_WINDOW``."""

    networks: int  # distinct networks
    days: int  # China days on which they first scanned it
    counted: int  # networks counted, at most NETWORKS_PER_DAY a day

    @property
    def copied(self) -> bool:
        return self.counted > MAX_PLAUSIBLE_NETWORKS


def network_evidence(first_seen: Sequence[dt.datetime]) -> NetworkEvidence:
    """What the first scan of each network within the window says (pure)."""
    per_day: dict[dt.date, int] = {}
    for moment in first_seen:
        day = _aware(moment).astimezone(CHINA_TIME).date()
        per_day[day] = per_day.get(day, 0) + 1
    return NetworkEvidence(
        networks=len(first_seen),
        days=len(per_day),
        counted=sum(min(n, NETWORKS_PER_DAY) for n in per_day.values()),
    )


@dataclass(frozen=True)
class ScanSummary:
    """What the item's page says about its scans."""

    count: int
    networks: int
    first: dt.datetime
    evidence: NetworkEvidence | None  # None when too few networks ever scanned it
    impossible: Impossible | None  # a hint from claimed locations, not evidence
    has_geo: bool  # the reader's own scan carries a location

    @property
    def copied(self) -> bool:
        return self.evidence is not None and self.evidence.copied

    def flags(self) -> list[tuple[str, dict[str, str]]]:
        """(message key, values) of the copied-label warning and what it rests on."""
        if self.evidence is None or not self.evidence.copied:
            return []
        found = [
            (
                "flag_scans_many",
                {
                    "networks": str(self.evidence.networks),
                    "days": str(self.evidence.days),
                    "window": str(FLAG_WINDOW.days),
                },
            )
        ]
        if self.impossible is not None:
            found.append(
                (
                    "flag_scans_far",
                    {
                        "km": f"{self.impossible.km:.0f}",
                        "hours": f"{self.impossible.hours:.1f}",
                    },
                )
            )
        return found


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def impossible_travel(located: list[tuple[dt.datetime, float, float]]) -> Impossible | None:
    """The farthest pair of located scans that no traveller could have made, if any."""
    worst: Impossible | None = None
    ordered = sorted(located)[-LOCATED_COMPARED:]
    for i, (time_a, lat_a, lon_a) in enumerate(ordered):
        for time_b, lat_b, lon_b in ordered[i + 1 :]:
            km = distance_km((lat_a, lon_a), (lat_b, lon_b))
            if km <= FAR_KM:
                continue
            hours = (time_b - time_a).total_seconds() / 3600
            if km > MAX_TRAVEL_KMH * hours and (worst is None or km > worst.km):
                worst = Impossible(km=km, hours=hours)
    return worst


def summary(
    *,
    session: Session,
    gtin: str,
    serial: str,
    has_geo: bool = False,
    now: dt.datetime | None = None,
) -> ScanSummary | None:
    """Counts and the copied-label evidence of an item's scans as of ``now`` (default: the
    present); None when it was never scanned."""
    connection = session.connection()
    item = {"gtin": gtin, "serial": serial}
    count, networks, first, with_geo = connection.execute(_COUNTS, item).one()
    if not count:
        return None
    since = {**item, "since": (now or dt.datetime.now(dt.UTC)) - FLAG_WINDOW}
    evidence = None
    if networks > MAX_PLAUSIBLE_NETWORKS:  # fewer can never add up to a warning
        evidence = network_evidence([row[1] for row in connection.execute(_NETWORKS_SINCE, since)])
    located: Sequence[Any] = []
    if with_geo >= 2:  # a distance needs a pair
        located = connection.execute(_LOCATED, since).all()
    impossible = impossible_travel(
        [(_aware(row[0]), row[1], row[2]) for row in located if row[2] is not None]
    )
    return ScanSummary(
        count=int(count),
        networks=int(networks),
        first=_aware(first),
        evidence=evidence,
        impossible=impossible,
        has_geo=has_geo,
    )


@dataclass(frozen=True)
class ScanIn:
    """One scan to store: the item, when, from which network, and the location if shared."""

    gtin: str
    serial: str
    network: str | None
    geo: tuple[float, float] | None
    at: dt.datetime


def store(session: Session, scan: ScanIn) -> ScanSummary:
    """Record one scan and return the item's summary as it now stands (in one transaction)."""
    located = record_scan(
        session=session,
        gtin=scan.gtin,
        serial=scan.serial,
        network=scan.network,
        geo=scan.geo,
        now=scan.at,
    )
    found = summary(
        session=session, gtin=scan.gtin, serial=scan.serial, has_geo=located, now=scan.at
    )
    assert found is not None  # this scan was just stored
    return found


@dataclass(frozen=True)
class _Waiter:
    """A page's request waiting on its event loop for its scan's summary."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[ScanSummary]


_Item = tuple[ScanIn, "Future[ScanSummary] | _Waiter"]


class ScanWriter:
    """Stores scans on one background thread, all that are waiting in one write transaction.

    ``await writer.record(scan, wait=...)`` returns the item's summary once the transaction
    holding the scan has committed, or None when that took longer than ``wait`` seconds (the
    scan is stored later) or the scan was dropped; ``submit`` hands a scan over from a thread.
    Scans are stored in the order they were handed over, each seeing the ones before it,
    exactly as one transaction per scan would. If a batch fails, its scans are tried again one
    per transaction, so one bad scan fails only itself; a scan that cannot be stored is dropped
    and counted. The thread starts on the first scan; ``stop`` stores every scan handed over
    before it and ends the thread (the app calls it at shutdown; a later scan starts a new one).

    Waking a thread costs a page more than storing its scan: while scans keep coming the thread
    looks for them every ``GATHER_S`` instead of waiting to be woken, and it tells each event
    loop about all of its pages of a batch at once.
    """

    def __init__(
        self, database: Database, *, max_batch: int = MAX_BATCH, max_waiting: int = MAX_WAITING
    ) -> None:
        self._database = database
        self._max_batch = max_batch
        self._max_waiting = max_waiting
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last: OrderedDict[tuple[str, str], ScanSummary] = OrderedDict()
        self.batches = 0  # write transactions committed
        self.stored = 0  # scans stored
        self.late = 0  # pages served before their scan was stored (it was stored later)
        self.dropped = 0  # scans never stored: the queue was full, or storing failed
        self.store_seconds = 0.0  # time spent in write transactions (lock wait included)

    @property
    def waiting(self) -> int:
        """Scans handed over and not yet stored (nor dropped)."""
        return self._queue.qsize()

    def submit(self, scan: ScanIn) -> Future[ScanSummary] | None:
        """Hand a scan over: a future of the item's summary once the scan is committed, or None
        when too many scans wait already (the scan is dropped and counted)."""
        future: Future[ScanSummary] = Future()
        return future if self._hand_over(scan, future) else None

    def _hand_over(self, scan: ScanIn, settle: Future[ScanSummary] | _Waiter) -> bool:
        with self._lock:
            if self._queue.qsize() >= self._max_waiting:
                self.dropped += 1
                return False
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="dv-scan-writer", daemon=True
                )
                self._thread.start()
            self._queue.put((scan, settle))
        return True

    def last_summary(self, gtin: str, serial: str) -> ScanSummary | None:
        """The item's summary as this process last stored a scan of it, if it did lately."""
        with self._lock:
            return self._last.get((gtin, serial))

    async def record(self, scan: ScanIn, *, wait: float) -> ScanSummary | None:
        """Store a scan from the event loop: the item's summary once it is committed, or None
        when that takes longer than ``wait`` seconds (it is stored later) or it is dropped."""
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[ScanSummary] = loop.create_future()
        if not self._hand_over(scan, _Waiter(loop, stored)):
            return None
        done, _ = await asyncio.wait((stored,), timeout=wait)
        if not done:
            # Served before its scan was stored: the writer stores it later (or drops and
            # logs it), so what it ends with is of no more interest here.
            stored.add_done_callback(_outcome_seen)
            with self._lock:
                self.late += 1
            return None
        if stored.cancelled() or stored.exception() is not None:
            return None  # dropped: counted and logged by the writer
        return stored.result()

    def stop(self, timeout: float | None = 60.0) -> None:
        """Store every scan handed over so far, then end the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is None:
                return
            self._queue.put(None)
        thread.join(timeout)
        if thread.is_alive():
            log.error("the scan writer did not finish within %s s", timeout)

    def _run(self) -> None:
        idle = 0  # consecutive looks that found nothing
        while True:
            if idle >= IDLE_LOOKS:
                # Quiet: block until a scan comes (a hand-over then wakes this thread).
                first = self._queue.get()
                time.sleep(GATHER_S)
            else:
                # Busy: look every GATHER_S. A hand-over to a thread that is not blocked on the
                # queue costs the page nothing but an append; waking one cost it a system call
                # made while holding the GIL.
                time.sleep(GATHER_S)
                try:
                    first = self._queue.get_nowait()
                except queue.Empty:
                    idle += 1
                    continue
            idle = 0
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._store(batch)
            if stopping:
                return

    def _store(self, batch: list[_Item]) -> None:
        started = time.monotonic()
        try:
            with self._database.transaction(write=True) as session:
                found = [store(session, scan) for scan, _ in batch]
        except Exception as error:
            self.store_seconds += time.monotonic() - started
            # One bad scan must not fail its batch: store the others one by one. Not when the
            # database itself is full or away, which every retry would wait on again.
            if len(batch) > 1 and failure_of(error) is None:
                for item in batch:
                    self._store([item])
                return
            log.exception("%d scan(s) could not be stored and were dropped", len(batch))
            with self._lock:
                self.dropped += len(batch)
            _settle_all([(settle, None, error) for _, settle in batch])
            return
        self.store_seconds += time.monotonic() - started
        with self._lock:
            self.batches += 1
            self.stored += len(batch)
            for (scan, _), result in zip(batch, found, strict=True):
                key = (scan.gtin, scan.serial)
                self._last[key] = result
                self._last.move_to_end(key)
            while len(self._last) > SUMMARIES_KEPT:
                self._last.popitem(last=False)
        _settle_all(
            [(settle, result, None) for (_, settle), result in zip(batch, found, strict=True)]
        )


_Outcome = tuple["Future[ScanSummary] | _Waiter", ScanSummary | None, BaseException | None]


def _settle_all(outcomes: list[_Outcome]) -> None:
    """Give each waiting request its outcome: a thread's future at once, and each event
    loop's requests all together (one wake-up of the loop, not one per page)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        settle = outcome[0]
        if isinstance(settle, _Waiter):
            by_loop.setdefault(settle.loop, []).append(outcome)
        else:
            _settle(settle, result=outcome[1], error=outcome[2])
    for loop, waiting in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle_waiters, waiting)


def _settle_waiters(outcomes: list[_Outcome]) -> None:
    for settle, result, error in outcomes:
        assert isinstance(settle, _Waiter)
        if settle.future.done():
            continue  # the request went away (cancelled); the scan counts all the same
        if error is not None:
            settle.future.set_exception(error)
        else:
            assert result is not None
            settle.future.set_result(result)


def _outcome_seen(stored: asyncio.Future[ScanSummary]) -> None:
    if not stored.cancelled():
        stored.exception()  # marks it retrieved: asyncio would log it otherwise


def _settle(
    future: Future[ScanSummary],
    *,
    result: ScanSummary | None = None,
    error: BaseException | None = None,
) -> None:
    # A request that went away (client disconnected) cancelled its future; the scan counts.
    try:
        if error is not None:
            future.set_exception(error)
        else:
            assert result is not None
            future.set_result(result)
    except InvalidStateError:
        pass
