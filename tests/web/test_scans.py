"""Copied labels: scans of serialised items are counted, and a label scanned far more than one
item plausibly is, or in two distant places within hours, is flagged on its page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from digital_village.web import scans
from digital_village.web import season as seasons
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


def test_a_label_scanned_from_too_many_networks_is_flagged(
    pages_app: FastAPI, pages_db: Pages
) -> None:
    serial = pages_db.bottle.replace("/21/0001", "/21/0002")
    for network in range(scans.MAX_PLAUSIBLE_NETWORKS):
        with client_at(pages_app, f"10.{network}.7.1") as client:
            html = client.get(serial, headers=HTML).text
    assert scan_count(html) == scans.MAX_PLAUSIBLE_NETWORKS
    assert flags(html) == []
    with client_at(pages_app, "10.200.7.1") as client:
        html = client.get(serial, headers=HTML).text
    assert flags(html) == ["flag_scans_many"]
    assert "可能是被复制的标签" in html
    assert f"来自 {scans.MAX_PLAUSIBLE_NETWORKS + 1} 个不同网络" in html
    # Another bottle of the same lot is not affected.
    with client_at(pages_app, "10.201.7.1") as client:
        assert flags(client.get(pages_db.bottle, headers=HTML).text) == []


def test_a_label_scanned_in_two_distant_places_within_hours_is_flagged(
    pages_app: FastAPI, pages_db: Pages
) -> None:
    serial = pages_db.bottle.replace("/21/0001", "/21/0003")
    with client_at(pages_app, "192.0.2.10") as client:
        html = client.get(serial + f"?geo={DEYANG}&lang=en", headers=HTML).text
    assert flags(html) == []
    with client_at(pages_app, "100.64.9.10") as client:
        html = client.get(serial + f"?geo={GUANGZHOU}&lang=en", headers=HTML).text
    assert flags(html) == ["flag_scans_far"]
    assert re.search(r"scanned in two places about 1\d{3} km apart within 0\.\d hours", html)


def test_travel_that_is_possible_is_not_flagged(session: Session) -> None:
    start = dt.datetime(2026, 7, 1, 9, tzinfo=dt.UTC)

    def scan(hours: float, geo: tuple[float, float], serial: str) -> None:
        scans.record_scan(
            session=session,
            gtin=seasons.BOTTLE,
            serial=serial,
            network=f"10.0.{int(hours * 10)}.0/24",
            geo=geo,
            now=start + dt.timedelta(hours=hours),
        )

    # Deyang to Chengdu (~60 km) in two hours, then to Chongqing (~270 km) by the evening.
    for hours, geo in ((0, (31.1, 104.4)), (2, (30.7, 104.1)), (9, (29.6, 106.5))):
        scan(hours, geo, "T1")
    calm = scans.summary(session=session, gtin=seasons.BOTTLE, serial="T1")
    assert calm is not None and calm.impossible is None and calm.flags() == []
    # Deyang, then Chongqing an hour later: 270 km/h is faster than any road or train there.
    scan(0, (31.1, 104.4), "T2")
    scan(1, (29.6, 106.5), "T2")
    fast = scans.summary(session=session, gtin=seasons.BOTTLE, serial="T2")
    assert fast is not None and fast.impossible is not None
    assert 260 < fast.impossible.km < 290 and fast.impossible.hours == 1.0


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
