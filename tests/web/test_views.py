"""Views kept per process with the chains they rest on: an append that touches none of them
leaves a page kept (no rebuild), one that does makes the next request rebuild it once."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from digital_village.trace import builders
from digital_village.web import resolver, views
from tests.web.conftest import BASE, Pages, client_at, html_of

T0 = dt.datetime(2026, 5, 18, 2, tzinfo=dt.UTC)


def test_a_touch_meets_a_scope_up_to_the_moment_it_shows() -> None:
    scope = {"lot:1/A": None, "parcel:P": T0}
    assert views.meets(scope, views.Touch(1, "lot:1/A"))
    assert views.meets(scope, views.Touch(1, "lot:1/A", T0 + dt.timedelta(days=400)))
    assert views.meets(scope, views.Touch(1, "parcel:P"))  # the parcel itself changed
    assert views.meets(scope, views.Touch(1, "parcel:P", T0))  # work up to the harvest
    assert not views.meets(scope, views.Touch(1, "parcel:P", T0 + dt.timedelta(seconds=1)))
    assert not views.meets(scope, views.Touch(1, "lot:1/B"))
    assert views.merged({"parcel:P": T0}, {"parcel:P": None, "lot:1/A": None}) == {
        "parcel:P": None,
        "lot:1/A": None,
    }
    later = T0 + dt.timedelta(days=1)
    assert views.merged({"parcel:P": T0}, {"parcel:P": later}) == {"parcel:P": later}


def _touches(*found: views.Touch) -> views.TouchReader:
    """A reader answering the given touches for the entries asked about."""

    def read(_: Session, start: int, stop: int) -> list[views.Touch]:
        return [touch for touch in found if start <= touch.seq < stop]

    return read


SESSION: Any = None  # the readers above need none


def test_an_append_drops_only_the_views_it_touches() -> None:
    store: views.ViewStore[str] = views.ViewStore("test")
    feed = views.ChangeFeed(
        [store], [_touches(views.Touch(10, "lot:1/A"), views.Touch(11, "parcel:P", T0))]
    )
    feed.advance(SESSION, 10)
    for key, scope in {
        "a": {"lot:1/A": None},
        "b": {"lot:1/B": None},
        "p-before": {"parcel:P": T0 - dt.timedelta(days=1)},
        "p-after": {"parcel:P": T0 + dt.timedelta(days=1)},
    }.items():
        assert store.get_or_build(key, lambda k=key, s=scope: (k, s), feed=feed, head=10) == key
    assert not feed.current(12)
    feed.advance(SESSION, 12)
    assert feed.current(12)
    assert store.peek("a") is None  # its lot's chain was extended
    assert store.peek("b") == "b"  # another lot: kept
    assert store.peek("p-before") == "p-before"  # work recorded after the moment it shows
    assert store.peek("p-after") is None
    assert store.dropped == 2 and store.builds == 4


def test_a_view_built_from_an_older_snapshot_is_not_kept_if_an_append_since_touched_it() -> None:
    store: views.ViewStore[str] = views.ViewStore("test")
    feed = views.ChangeFeed([store], [_touches(views.Touch(5, "lot:1/A"))])
    feed.advance(SESSION, 5)
    feed.advance(SESSION, 6)  # another request took in entry 5 while the builds below ran
    # Built from the snapshot of entries below 5: entry 5 touched the first, not the second.
    assert store.get_or_build("a", lambda: ("a", {"lot:1/A": None}), feed=feed, head=5) == "a"
    assert store.get_or_build("b", lambda: ("b", {"lot:1/B": None}), feed=feed, head=5) == "b"
    assert store.peek("a") is None and store.peek("b") == "b"


def test_touches_too_old_to_remember_keep_nothing_built_before_them() -> None:
    store: views.ViewStore[str] = views.ViewStore("test")
    feed = views.ChangeFeed(
        [store],
        [_touches(*(views.Touch(seq, f"lot:1/{seq}") for seq in range(10)))],
        remembered=3,
    )
    feed.advance(SESSION, 0)
    feed.advance(SESSION, 10)
    assert store.get_or_build("x", lambda: ("x", {"lot:1/B": None}), feed=feed, head=2) == "x"
    assert store.peek("x") is None  # entries 2..6 are forgotten: it cannot be vouched for
    assert store.get_or_build("y", lambda: ("y", {"lot:1/B": None}), feed=feed, head=8) == "y"
    assert store.peek("y") == "y"


def test_one_build_per_view_while_many_ask() -> None:
    store: views.ViewStore[int] = views.ViewStore("test")
    feed = views.ChangeFeed([store], [])
    builds: list[int] = []

    def build() -> tuple[int, views.Scope]:
        builds.append(1)
        time.sleep(0.2)
        return 42, {}

    found: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: found.append(store.get_or_build("k", build, feed=feed, head=0))
        )
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [42] * 8 and len(builds) == 1
    assert store.peek("k") == 42


def test_a_failed_build_lets_the_next_one_try() -> None:
    store: views.ViewStore[int] = views.ViewStore("test")
    feed = views.ChangeFeed([store], [])

    def fail() -> tuple[int, views.Scope]:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.get_or_build("k", fail, feed=feed, head=0)
    assert store.get_or_build("k", lambda: (5, {}), feed=feed, head=0) == 5


def test_the_store_keeps_at_most_its_size_and_forgets_the_least_used() -> None:
    store: views.ViewStore[int] = views.ViewStore("test", size=2)
    feed = views.ChangeFeed([store], [])
    for key in range(3):
        store.get_or_build(key, lambda k=key: (k, {f"lot:1/{k}": None}), feed=feed, head=0)
    assert store.peek(0) is None and store.peek(2) == 2 and len(store) == 2


# --- the pages --------------------------------------------------------------------------------


def _post(client: TestClient, pages_db: Pages, event: dict[str, Any]) -> int:
    response = client.post("/api/v1/events", json=event, headers=pages_db.world.auth("manager"))
    assert response.status_code == 201, response.text
    seq: int = response.json()["ledgerSeq"]
    return seq


def _builds(app: FastAPI) -> dict[str, int]:
    state: resolver.ResolverState = app.state.resolver
    return {name: store.builds for name, store in state.stores.items()}


def _irrigating(dkbm: str, when: dt.datetime) -> dict[str, Any]:
    return builders.field_work("irrigating", dkbm=dkbm, when=when, base_url=BASE)


def test_a_page_stays_kept_through_appends_that_touch_nothing_it_shows(
    pages_app: FastAPI, pages_db: Pages, monkeypatch: pytest.MonkeyPatch
) -> None:
    offloaded: list[str] = []
    real = resolver.run_in_threadpool

    async def counting(function: Any, *args: Any) -> Any:
        offloaded.append(function.__name__)
        return await real(function, *args)

    monkeypatch.setattr(resolver, "run_in_threadpool", counting)
    harvested_on = pages_db.season.parcels[0]
    with client_at(pages_app, "203.0.113.30") as client:
        first = html_of(client, pages_db.bottle)
        built = _builds(pages_app)
        # Work on a field the lot did not come from, and on its own field after the harvest.
        _post(client, pages_db, _irrigating(pages_db.parcels[2], T0 - dt.timedelta(days=30)))
        _post(client, pages_db, _irrigating(harvested_on, T0 + dt.timedelta(days=40)))
        offloaded.clear()
        again = html_of(client, pages_db.bottle)
        once_more = html_of(client, pages_db.bottle)
    assert _builds(pages_app) == built  # nothing was rebuilt
    assert again == once_more == first
    if pages_db.engine.dialect.name == "sqlite":
        # The first request after the appends takes them in (in a thread, without building);
        # the next is answered on the event loop again.
        assert offloaded == ["_answer_in_thread"]
    state: resolver.ResolverState = pages_app.state.resolver
    assert sum(store.dropped for store in state.stores.values()) == 0


def test_work_recorded_late_on_the_lots_field_rebuilds_its_page(
    pages_app: FastAPI, pages_db: Pages
) -> None:
    spray = builders.spraying(
        dkbm=pages_db.season.parcels[0],
        when=dt.datetime(2026, 5, 12, 7, tzinfo=builders.CHINA),
        base_url=BASE,
        pesticide="毒死蜱 40% 乳油",
        dose=50.0,
        dose_unit="MLT",
        interval_days=21,
    )
    with client_at(pages_app, "203.0.113.31") as client:
        before = html_of(client, pages_db.bottle)
        linkset = client.get(pages_db.bottle, headers={"Accept": "application/linkset+json"})
        built = _builds(pages_app)
        seq = _post(client, pages_db, spray)
        after = html_of(client, pages_db.bottle)
        client.get(pages_db.bottle, headers={"Accept": "application/linkset+json"})
    assert "6 ✗" not in before and linkset.status_code == 200
    assert '<dd class="bad">6 ✗</dd>' in after and f"/api/v1/ledger/entries/{seq}/proof" in after
    rebuilt = _builds(pages_app)
    assert rebuilt["consumer_lot_views"] == built["consumer_lot_views"] + 1
    assert rebuilt["consumer_pages"] == built["consumer_pages"] + 1
    # The facts and linkset rest on the product's and lot's chains, which the spraying left.
    assert rebuilt["resolver_facts"] == built["resolver_facts"]
    assert rebuilt["resolver_linksets"] == built["resolver_linksets"]


def test_the_scope_of_a_lot_reaches_its_inputs_and_their_fields(
    pages_db: Pages, pages_connection: Any
) -> None:
    from digital_village.demo import oil_season as seasons
    from digital_village.trace import products

    with Session(pages_connection) as session:
        lot = products.get_lot(session=session, gtin=seasons.BOTTLE, lot=pages_db.season.bottle_lot)
        scope = views.lot_scope(session, lot_id=lot.id)
    assert f"lot:{seasons.BOTTLE}/{pages_db.season.bottle_lot}" in scope
    assert f"product:{seasons.BOTTLE}" in scope
    harvested = {s.removeprefix("parcel:"): t for s, t in scope.items() if s.startswith("parcel:")}
    assert set(harvested) == set(pages_db.season.parcels)
    assert all(t is not None and t.date() == dt.date(2026, 5, 18) for t in harvested.values())
    lots = [s for s in scope if s.startswith("lot:")]
    assert len(lots) >= 3  # the bottles, the oil pressed for them, the rapeseed harvested
