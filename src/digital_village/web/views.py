"""Views kept per process, each dropped only when a ledger entry it rests on is appended.

What a consumer page shows rests on the entries of a few chains: its lot's and those of the
lots it was made from (``lot:<GTIN>/<lot>``, which also carry their certificates), their
products' (``product:<GTIN>``), the parcels they were harvested on (``parcel:<DKBM>``), and the
field work recorded on those parcels up to each harvest. A view is kept with its *scope*: each
subject it rests on, with the last moment of that subject it shows (``None``: all of it).

A :class:`ChangeFeed` follows the log for its process. When entries were appended since it
last looked, it asks its readers what each new entry *touches* — its chain; for an EPCIS event
also every lot it names and each parcel at the event's time; for a correction, what the
corrected event touched — and drops every kept view whose scope one of those touches meets.
So an append elsewhere (another cooperative's lot, a sensor's device, a field event after the
harvest) leaves a page cached, and the page of the lot it changed is rebuilt once, on its next
request.

A view built while the log moves on is kept only when nothing appended since the snapshot it
was built from meets its scope. Everything kept also expires after ``KEEP_SECONDS`` (a backstop
for the little a page shows that is not on the log, such as a cooperative's name).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from sqlalchemy.orm import Session

from digital_village.ledger import log as ledger_log
from digital_village.trace import lineage, products
from digital_village.trace.store import named_between

V = TypeVar("V")
KEEP_SECONDS: Final = 300.0
STORE_SIZE: Final = 512
# Touches remembered for views whose build overlapped an append (see ChangeFeed.keep).
REMEMBERED: Final = 8192

# A view's scope: subject → the last moment of it the view shows (None: all of it).
Scope = Mapping[str, dt.datetime | None]


@dataclass(frozen=True)
class Touch:
    """What one appended entry changes: a subject (a chain key such as ``lot:<GTIN>/<lot>`` or
    ``parcel:<DKBM>``) as of a moment (an event's time; None: the subject as a whole)."""

    seq: int
    subject: str
    when: dt.datetime | None = None


def meets(scope: Scope, touch: Touch) -> bool:
    """Whether a view of this scope may show something the touch changed."""
    if touch.subject not in scope:
        return False
    until = scope[touch.subject]
    return until is None or touch.when is None or touch.when <= until


def merged(*scopes: Scope) -> dict[str, dt.datetime | None]:
    """One scope covering all of them (the later moment of a subject wins; None is latest)."""
    found: dict[str, dt.datetime | None] = {}
    for scope in scopes:
        for subject, until in scope.items():
            if subject in found:
                known = found[subject]
                found[subject] = None if known is None or until is None else max(known, until)
            else:
                found[subject] = until
    return found


# What the entries [start, stop) of the log touch, read in the caller's session.
TouchReader = Callable[[Session, int, int], Iterable[Touch]]


def chain_touches(session: Session, start: int, stop: int) -> list[Touch]:
    """Every entry touches its chain as a whole."""
    return [
        Touch(seq, chain_key)
        for seq, chain_key in ledger_log.chains_between(session, start=start, stop=stop)
    ]


def event_touches(session: Session, start: int, stop: int) -> list[Touch]:
    """An EPCIS event touches every lot it names and each of its parcels at its time; a
    correction, also what the event it corrects touched."""
    named = named_between(session=session, start=start, stop=stop)
    found = [Touch(seq, f"lot:{gtin}/{lot}") for seq, gtin, lot in named.lots]
    found += [Touch(seq, f"parcel:{dkbm}", when) for seq, dkbm, when in named.parcels]
    return found


READERS: Final[tuple[TouchReader, ...]] = (chain_touches, event_touches)


def lot_scope(session: Session, *, lot_id: int) -> dict[str, dt.datetime | None]:
    """What a view of a lot rests on: its chain and those of every lot it was made from, their
    products', and each parcel they were harvested on up to the last harvest from it."""
    closure = lineage.lot_closure(session=session, lot_ids=[lot_id], upstream=True)
    lot_ids = {lot_id} | {source for source, _, _ in closure}
    scope: dict[str, dt.datetime | None] = {}
    for lot in products.lots_by_id(session=session, ids=lot_ids).values():
        scope[f"lot:{lot.gtin}/{lot.lot}"] = None
        scope[f"product:{lot.gtin}"] = None
    for harvest in lineage.lot_parcels_of(session=session, lot_ids=sorted(lot_ids)):
        subject = f"parcel:{harvest.dkbm}"
        known = scope.get(subject)
        if known is None or harvest.harvested_at > known:
            scope[subject] = harvest.harvested_at
        scope[f"parcel-readings:{harvest.dkbm}"] = None
    return scope


@dataclass(frozen=True)
class _Kept(Generic[V]):
    value: V
    scope: Scope
    expires: float


class ViewStore(Generic[V]):
    """A small LRU of views with their scopes; one build per key at a time.

    A thread asking for a view that another thread is building waits for that build rather than
    building it again (after an append that meets a popular page, every request in flight
    misses at once).
    """

    def __init__(self, name: str, size: int = STORE_SIZE, seconds: float = KEEP_SECONDS) -> None:
        self.name = name
        self.size = size
        self.seconds = seconds
        self._items: OrderedDict[Hashable, _Kept[V]] = OrderedDict()
        self._by_subject: dict[str, set[Hashable]] = {}
        self._building: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.builds = 0
        self.dropped = 0  # views dropped because an append met their scope

    def __len__(self) -> int:
        return len(self._items)

    def peek(self, key: Hashable) -> V | None:
        """The kept view for ``key``, or None; never builds nor waits."""
        with self._lock:
            found = self._items.get(key)
            if found is None or found.expires <= time.monotonic():
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return found.value

    def get_or_build(
        self,
        key: Hashable,
        build: Callable[[], tuple[V, Scope]],
        *,
        feed: ChangeFeed,
        head: int,
    ) -> V:
        """The kept view for ``key``, else one from ``build`` (a view and its scope) made from a
        snapshot of the log holding entries below ``head``."""
        while True:
            with self._lock:
                found = self._items.get(key)
                if found is not None and found.expires > time.monotonic():
                    self._items.move_to_end(key)
                    self.hits += 1
                    return found.value
                building = self._building.get(key)
                if building is None:
                    building = self._building[key] = threading.Event()
                    self.builds += 1
                    break
            building.wait()
        try:
            value, scope = build()
            feed.keep(self, key, value, scope, head)
            return value
        finally:
            with self._lock:
                del self._building[key]
            building.set()

    def put(self, key: Hashable, value: V, scope: Scope) -> None:
        """Keep a view (ChangeFeed.keep calls this, under the feed's lock)."""
        with self._lock:
            self._forget(key)
            self._items[key] = _Kept(value, scope, time.monotonic() + self.seconds)
            for subject in scope:
                self._by_subject.setdefault(subject, set()).add(key)
            while len(self._items) > self.size:
                self._forget(next(iter(self._items)))

    def drop(self, touches: Iterable[Touch]) -> int:
        """Drop every view a touch meets; how many were dropped."""
        count = 0
        with self._lock:
            for touch in touches:
                for key in list(self._by_subject.get(touch.subject, ())):
                    kept = self._items.get(key)
                    if kept is not None and meets(kept.scope, touch):
                        self._forget(key)
                        count += 1
            self.dropped += count
        return count

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._by_subject.clear()

    def _forget(self, key: Hashable) -> None:
        kept = self._items.pop(key, None)
        if kept is None:
            return
        for subject in kept.scope:
            keys = self._by_subject.get(subject)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_subject[subject]


class ChangeFeed:
    """Follows the log for one process and drops the views the new entries touch.

    ``seen`` is how many entries it has taken in (-1 before it first looked). Touches of the
    last ``remembered`` entries are kept, so a view built from an older snapshot can be checked
    against what was appended since (``keep``).
    """

    def __init__(
        self,
        stores: Sequence[ViewStore[Any]] = (),
        readers: Sequence[TouchReader] = READERS,
        *,
        remembered: int = REMEMBERED,
    ) -> None:
        self.stores = list(stores)
        self.readers = tuple(readers)
        self.seen = -1
        self.looks = 0  # times entries were taken in
        self._recent: deque[Touch] = deque()
        self._recent_from = 0  # touches of every entry from here on are in _recent
        self._remembered = remembered
        self._lock = threading.Lock()  # seen, the remembered touches, and the stores' contents
        self._advancing = threading.Lock()  # one reader of new entries at a time

    def current(self, head: int) -> bool:
        """Whether the feed has taken in every entry below ``head``."""
        return head <= self.seen

    def advance(self, session: Session, head: int) -> None:
        """Take in the entries below ``head``, read in ``session`` (whose snapshot holds them)."""
        if head <= self.seen:
            return
        with self._advancing:
            start = self.seen
            if head <= start:
                return
            if start < 0:
                # The first look: nothing was kept before it, so nothing to drop.
                with self._lock:
                    self.seen = self._recent_from = head
                return
            touches = [touch for read in self.readers for touch in read(session, start, head)]
            with self._lock:
                for store in self.stores:
                    store.drop(touches)
                self._recent.extend(touches)
                while len(self._recent) > self._remembered:
                    self._recent_from = self._recent.popleft().seq + 1
                self.seen = head
                self.looks += 1

    def keep(self, store: ViewStore[V], key: Hashable, value: V, scope: Scope, head: int) -> bool:
        """Keep a view built from the entries below ``head`` unless an entry taken in since
        meets its scope (it would be stale already); whether it was kept."""
        with self._lock:
            if head < self.seen:
                if head < self._recent_from:
                    return False  # too long ago to tell
                if any(touch.seq >= head and meets(scope, touch) for touch in self._recent):
                    return False
            store.put(key, value, scope)
            return True
