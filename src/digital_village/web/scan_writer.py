"""Storing scans off the request path: one background writer per process.

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
import logging
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from typing import Final

from digital_village.db import Database, failure_of
from digital_village.web import scans
from digital_village.web.scans import ScanIn, ScanSummary

log = logging.getLogger(__name__)

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
                found = [scans.store(session, scan) for scan, _ in batch]
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
