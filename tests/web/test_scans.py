"""Copied labels: scans of serialised items are counted, and a label scanned by far more
independent networks over several days than one item plausibly is gets a warning on its page
that says why; locations readers' phones claim are only a hint beside it."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from digital_village.demo import oil_season as seasons
from digital_village.web import scans
from digital_village.web.models import Scan
from tests.web.conftest import Pages, client_at

HTML = {"Accept": "text/html"}
DEYANG = "31.1,104.4"
GUANGZHOU = "23.1,113.3"


def scan_count(html: str) -> int:
    found = re.search(r'data-scans="(\d+)"', html)
    assert found, "the page shows no scan count"
    return int(found.group(1))


def flags(html: str) -> list[str]:
    return re.findall(r'data-flag="(flag_\w+)"', html)


def stored(connection: Connection, serial: str) -> list[Scan]:
    with Session(connection) as session:
        return list(
            session.scalars(select(Scan).where(Scan.gtin == seasons.BOTTLE, Scan.serial == serial))
        )


def test_a_scan_is_stored_with_the_network_only(
    pages_app: FastAPI, pages_db: Pages, pages_connection: Connection
) -> None:
    with client_at(pages_app, "203.0.113.77") as client:
        html = client.get(pages_db.bottle, headers=HTML).text
    assert scan_count(html) == 1
    assert "这个标签已被扫描 1 次" in html
    (row,) = stored(pages_connection, "0001")
    assert row.network == "203.0.113.0/24"
    assert (row.lat, row.lon) == (None, None)
    assert "203.0.113.77" not in repr(vars(row))


def test_a_reload_from_the_same_network_counts_once_and_adds_the_shared_location(
    pages_app: FastAPI, pages_db: Pages, pages_connection: Connection
) -> None:
    with client_at(pages_app, "198.51.100.20") as client:
        assert scan_count(client.get(pages_db.bottle, headers=HTML).text) == 1
        again = client.get(pages_db.bottle + f"?geo={DEYANG}", headers=HTML).text
    assert scan_count(again) == 1
    assert "data-geo-recorded" in again and "data-geo-button" not in again
    (row,) = stored(pages_connection, "0001")
    assert (row.lat, row.lon) == (31.1, 104.4)


def test_only_pages_of_serialised_items_count_scans(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    html = pages_client.get(pages_db.bottle_lot, headers=HTML).text
    assert "data-scans" not in html
    pages_client.get(pages_db.bottle + "?linkType=linkset")
    pages_client.get(pages_db.bottle + "?linkType=gs1:traceability")
    assert stored(pages_connection, "0001") == []


def _scan_from(
    session: Session,
    serial: str,
    network: int,
    at: dt.datetime,
    geo: tuple[float, float] | None = None,
) -> None:
    scans.record_scan(
        session=session,
        gtin=seasons.BOTTLE,
        serial=serial,
        network=f"10.{network // 250}.{network % 250}.0/24",
        geo=geo,
        now=at,
    )


def _over_days(session: Session, serial: str, end: dt.datetime, days: int, per_day: int) -> int:
    """``per_day`` new networks scan the label around noon (China) of each of the ``days``
    days before ``end``'s day."""
    today = end.astimezone(scans.CHINA_TIME).date()
    network = 0
    for day in range(days, 0, -1):
        noon = dt.datetime.combine(
            today - dt.timedelta(days=day), dt.time(12), tzinfo=scans.CHINA_TIME
        )
        for _ in range(per_day):
            _scan_from(session, serial, network, noon + dt.timedelta(minutes=network))
            network += 1
    return network


NOW = dt.datetime(2026, 7, 20, 12, tzinfo=dt.UTC)


def test_a_label_scanned_by_many_networks_over_days_is_flagged_saying_why(
    pages_app: FastAPI, pages_db: Pages, pages_connection: Connection
) -> None:
    now = dt.datetime.now(dt.UTC)
    with Session(pages_connection) as session:
        _over_days(session, "0002", now, days=3, per_day=5)
        session.flush()
    serial = pages_db.bottle.replace("/21/0001", "/21/0002")
    with client_at(pages_app, "203.0.113.9") as client:
        html = client.get(serial, headers=HTML).text
    assert flags(html) == ["flag_scans_many"]
    assert "可能是被复制的标签" in html
    assert f"最近 {scans.FLAG_WINDOW.days} 天内" in html and "4 天里被 16 个不同网络扫描" in html
    # Another bottle of the same lot is not affected.
    with client_at(pages_app, "10.201.7.1") as client:
        assert flags(client.get(pages_db.bottle, headers=HTML).text) == []


def test_many_networks_in_one_burst_are_not_enough(session: Session) -> None:
    # Forty addresses in an afternoon (a phone toggling its mobile data, a script): one source.
    for network in range(40):
        _scan_from(session, "B1", network, NOW - dt.timedelta(minutes=network))
    burst = scans.summary(session=session, gtin=seasons.BOTTLE, serial="B1", now=NOW)
    assert burst is not None and burst.networks == 40 and burst.flags() == []
    # The same networks spread over three days are many independent readers.
    assert _over_days(session, "B2", NOW, days=3, per_day=5) == 15
    spread = scans.summary(session=session, gtin=seasons.BOTTLE, serial="B2", now=NOW)
    assert spread is not None and [key for key, _ in spread.flags()] == ["flag_scans_many"]
    assert spread.flags()[0][1] == {"networks": "15", "days": "3", "window": "30"}


def test_the_copied_label_warning_decays(session: Session) -> None:
    _over_days(session, "D1", NOW, days=4, per_day=5)
    assert scans.summary(session=session, gtin=seasons.BOTTLE, serial="D1", now=NOW).flags()
    later = NOW + scans.FLAG_WINDOW
    faded = scans.summary(session=session, gtin=seasons.BOTTLE, serial="D1", now=later)
    assert faded is not None and faded.flags() == [] and faded.count == 20


def test_locations_phones_claim_never_flag_a_label_alone(
    pages_app: FastAPI, pages_db: Pages
) -> None:
    # The forgery: two anonymous views of a genuine bottle from two networks, claiming places
    # 1,300 km apart within minutes. Every later reader must not be told it is copied.
    serial = pages_db.bottle.replace("/21/0001", "/21/0003")
    with client_at(pages_app, "192.0.2.10") as client:
        client.get(serial + f"?geo={DEYANG}&lang=en", headers=HTML)
    with client_at(pages_app, "100.64.9.10") as client:
        client.get(serial + f"?geo={GUANGZHOU}&lang=en", headers=HTML)
    with client_at(pages_app, "198.51.100.1") as client:
        html = client.get(serial + "?lang=en", headers=HTML).text
    assert flags(html) == []
    assert "may be a copied label" not in html


def test_claimed_places_are_a_hint_beside_the_network_evidence(session: Session) -> None:
    _over_days(session, "H1", NOW, days=3, per_day=5)
    _scan_from(session, "H1", 900, NOW - dt.timedelta(hours=2), geo=(31.1, 104.4))
    _scan_from(session, "H1", 901, NOW - dt.timedelta(hours=1), geo=(23.1, 113.3))
    found = scans.summary(session=session, gtin=seasons.BOTTLE, serial="H1", now=NOW)
    assert found is not None
    keys = [key for key, _ in found.flags()]
    assert keys == ["flag_scans_many", "flag_scans_far"]
    assert found.flags()[1][1] == {"km": "1251", "hours": "1.0"}


def test_travel_that_is_possible_is_not_flagged(session: Session) -> None:
    start = dt.datetime(2026, 7, 1, 9, tzinfo=dt.UTC)

    def scan(hours: float, geo: tuple[float, float], serial: str) -> None:
        _scan_from(session, serial, int(hours * 10), start + dt.timedelta(hours=hours), geo)

    # Deyang to Chengdu (~60 km) in two hours, then to Chongqing (~270 km) by the evening.
    for hours, geo in ((0, (31.1, 104.4)), (2, (30.7, 104.1)), (9, (29.6, 106.5))):
        scan(hours, geo, "T1")
    calm = scans.summary(session=session, gtin=seasons.BOTTLE, serial="T1", now=start)
    assert calm is not None and calm.impossible is None and calm.flags() == []
    # Deyang, then Chongqing an hour later: 270 km/h is faster than any road or train there.
    scan(0, (31.1, 104.4), "T2")
    scan(1, (29.6, 106.5), "T2")
    fast = scans.summary(session=session, gtin=seasons.BOTTLE, serial="T2", now=start)
    assert fast is not None and fast.impossible is not None
    assert 260 < fast.impossible.km < 290 and fast.impossible.hours == 1.0
    # Only a hint: two claimed places flag nothing without the networks' evidence.
    assert fast.flags() == []


@pytest.mark.parametrize(
    ("geo", "reason"),
    [
        ("31.1", "'<lat>,<lon>'"),
        ("north,east", "two numbers"),
        ("91,104", "latitude"),
        ("31,181", "longitude"),
        ("nan,1", "latitude"),
    ],
)
def test_a_malformed_geo_is_400(
    pages_client: TestClient, pages_db: Pages, geo: str, reason: str
) -> None:
    response = pages_client.get(pages_db.bottle + f"?geo={geo}")
    assert response.status_code == 400
    assert reason in response.json()["detail"]


def test_networks_are_cut_to_a_prefix() -> None:
    assert scans.network_of("203.0.113.77") == "203.0.113.0/24"
    assert scans.network_of("2001:db8:1234:5678::1") == "2001:db8:1234::/48"
    assert scans.network_of("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert scans.network_of("testclient") is None
    assert scans.network_of(None) is None
    assert scans.parse_geo("31.1345,104.3987") == (31.1, 104.4)
    assert round(scans.distance_km((31.13, 104.40), (23.13, 113.26))) in range(1230, 1260)
