"""No personal data in public answers: every GET route that needs no token, fetched for real.

The routes come from the app itself (its OpenAPI document and the routes outside it: the
resolver's aliases, /metrics, the docs pages, static files). Each public one is filled from a
recorded season whose households have names and phone numbers of their own, and fetched as a
browser (HTML) and as a client (JSON), in Chinese and in English. No answer may carry a
household's name or phone number or the certificate's contact number, in any encoding (JSON
escapes, HTML entities, percent-encoding, PDF text). Masked forms such as 王** are allowed.

A new public GET route that ``FILL`` does not know fails the test, so the scan stays complete.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import Connection, func, select
from starlette.routing import WebSocketRoute

from digital_village.api import docs
from digital_village.demo import oil_season as seasons
from digital_village.gs1.short_code import short_code
from digital_village.iot import shapes
from digital_village.iot.models import Reading
from digital_village.ledger import tiles
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels.models import Parcel
from digital_village.web import STATIC_DIR, manage
from tests.factories import GROUP, OTHER_VILLAGE, VILLAGE
from tests.web.conftest import Pages, client_at

# The households' names and phone numbers (tests.factories.build_world), every way written,
# and the certificate's contact number (0838-6200000): a 承诺达标合格证 carries its issuer's
# contact on paper, but its public ledger entry records it only salted and hashed, and the
# certificate API, the consumer pages and the linkset leave it out
# (tests/trace/test_certificate_entry.py). The demo's own households:
# tests/security/test_demo_privacy.py.
HOUSEHOLDS = (("王建国", "13808380001"), ("李秀英", "13808380002"))
CERTIFICATE_CONTACT = "0838-6200000"
SECRETS = tuple(
    sorted(
        {
            *(name for name, _ in HOUSEHOLDS),
            *(phone for _, phone in HOUSEHOLDS),
            *(f"{p[:3]}-{p[3:7]}-{p[7:]}" for _, p in HOUSEHOLDS),
            *(f"{p[:3]} {p[3:7]} {p[7:]}" for _, p in HOUSEHOLDS),
            CERTIFICATE_CONTACT,
            CERTIFICATE_CONTACT.replace("-", ""),
        }
    )
)
# Routes that answer only with a token: fetched without one, they must say 401 and no more.
LANGUAGES: tuple[dict[str, str], ...] = ({}, {"Accept-Language": "en-GB,en;q=0.9"})
ACCEPTS = ("text/html", "application/json")


@dataclass
class Fill:
    """The concrete paths of a route template, and whether to fetch each in every variant."""

    paths: Callable[[Pages, Connection], list[str]]
    variants: bool = True


def _lots(p: Pages) -> list[tuple[str, str]]:
    s = p.season
    return [
        (seasons.BOTTLE, s.bottle_lot),
        (seasons.OIL, s.oil_lot),
        (seasons.RAPESEED, s.rapeseed_lot),
    ]


def _parcels(p: Pages) -> list[str]:
    return [*p.parcels, p.other_parcel]


def _sealed_reading(c: Connection) -> tuple[int, str, str]:
    row = c.execute(
        select(Reading.device_id, Reading.metric_id, Reading.time_ms)
        .where(Reading.seal_id.is_not(None))
        .order_by(Reading.time_ms)
        .limit(1)
    ).one()
    when = dt.datetime.fromtimestamp(row.time_ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")
    return row.device_id, shapes.METRIC_NAMES[row.metric_id], quote(when)


def _size(c: Connection) -> int:
    return int(c.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def _centre(p: Pages, c: Connection) -> str:
    row = c.execute(
        select(Parcel.min_lon, Parcel.min_lat, Parcel.max_lon, Parcel.max_lat).where(
            Parcel.dkbm == p.parcels[0]
        )
    ).one()
    return f"x={(row[0] + row[2]) / 2}&y={(row[1] + row[3]) / 2}"


def _resolver(p: Pages, prefix: str) -> list[str]:
    s = p.season
    return [
        f"{prefix}/{seasons.BOTTLE}",
        f"{prefix}/{seasons.BOTTLE}/10/{s.bottle_lot}",
        f"{prefix}/{seasons.BOTTLE}/10/{s.bottle_lot}/21/{s.serials[0]}",
        f"{prefix}/{seasons.BOTTLE}/10/{s.bottle_lot}/21/{s.serials[0]}?linkType=linkset",
        f"{prefix}/{seasons.BOTTLE}/10/{s.bottle_lot}/21/{s.serials[0]}?linkType=gs1:epcis",
        f"{prefix}/{seasons.BOTTLE}/10/{s.bottle_lot}?linkType=gs1:certificationInfo",
        f"{prefix}/{seasons.BOTTLE}/10/{s.bottle_lot}?linkType=gs1:traceability",
        f"{prefix}/{seasons.OIL}/10/{s.oil_lot}",
        f"{prefix}/{seasons.RAPESEED}/10/{s.rapeseed_lot}",
    ]


def _per_device(template: str) -> Fill:
    return Fill(lambda p, c: [template.format(device=d) for d in p.season.devices])


FILL: dict[str, Fill] = {
    "/healthz": Fill(lambda p, c: ["/healthz"]),
    "/metrics": Fill(lambda p, c: ["/metrics"]),
    "/openapi.json": Fill(lambda p, c: ["/openapi.json"], variants=False),
    "/docs": Fill(lambda p, c: ["/docs"], variants=False),
    "/redoc": Fill(lambda p, c: ["/redoc"], variants=False),
    "/docs-assets": Fill(
        lambda p, c: [f"/docs-assets/{f.name}" for f in sorted(docs.ASSETS_DIR.iterdir())],
        variants=False,
    ),
    "/static": Fill(
        lambda p, c: [f"/static/{f.name}" for f in sorted(STATIC_DIR.iterdir())], variants=False
    ),
    "/labels": Fill(lambda p, c: ["/labels"]),
    # The front door, its lookups (a bottle's 查询码, a certificate's number) and the icon.
    "/": Fill(lambda p, c: ["/", "/?lang=en"]),
    "/q/{code}": Fill(
        lambda p, c: [
            f"/q/{short_code(seasons.BOTTLE, p.season.bottle_lot, p.season.serials[0])}",
            f"/q/{p.season.certificate}",
        ]
    ),
    "/favicon.ico": Fill(lambda p, c: ["/favicon.ico"], variants=False),
    # The managers' console frame; its panels need a manager's token.
    "/manage": Fill(lambda p, c: ["/manage"]),
    "/manage/{section}": Fill(lambda p, c: [f"/manage/{s}" for s in manage.SECTIONS]),
    "/.well-known/gs1resolver": Fill(lambda p, c: ["/.well-known/gs1resolver"]),
    "/01/{rest}": Fill(lambda p, c: _resolver(p, "/01")),
    "/gtin/{rest}": Fill(lambda p, c: _resolver(p, "/gtin")),
    "/page/01/{rest}": Fill(
        lambda p, c: [u for u in _resolver(p, "/page/01") if "linkType" not in u]
    ),
    "/p/{dkbm}": Fill(lambda p, c: [f"/p/{d}" for d in _parcels(p)]),
    "/api/v1/labels/parcels/{dkbm}.{fmt}": Fill(
        lambda p, c: [f"/api/v1/labels/parcels/{p.parcels[0]}.{f}" for f in ("png", "svg")]
    ),
    "/api/v1/labels/{gtin}.{fmt}": Fill(
        lambda p, c: [f"/api/v1/labels/{seasons.BOTTLE}.{f}" for f in ("png", "svg")]
    ),
    "/api/v1/labels/{gtin}/{lot}.{fmt}": Fill(
        lambda p, c: [f"/api/v1/labels/{g}/{lot}.svg" for g, lot in _lots(p)]
    ),
    "/api/v1/labels/{gtin}/{lot}/{serial}.{fmt}": Fill(
        lambda p, c: [
            f"/api/v1/labels/{seasons.BOTTLE}/{p.season.bottle_lot}/{p.season.serials[0]}.{f}"
            for f in ("png", "svg")
        ]
    ),
    "/api/v1/regions": Fill(lambda p, c: ["/api/v1/regions", f"/api/v1/regions?parent={VILLAGE}"]),
    "/api/v1/regions/{code}": Fill(
        lambda p, c: [f"/api/v1/regions/{code}" for code in (VILLAGE, GROUP, OTHER_VILLAGE)]
    ),
    "/api/v1/cooperatives": Fill(lambda p, c: ["/api/v1/cooperatives"]),
    "/api/v1/ledger": Fill(lambda p, c: ["/api/v1/ledger"]),
    "/api/v1/ledger/checkpoint": Fill(lambda p, c: ["/api/v1/ledger/checkpoint"]),
    "/api/v1/ledger/checkpoints/{size}": Fill(
        lambda p, c: [f"/api/v1/ledger/checkpoints/{_size(c)}"]
    ),
    "/api/v1/ledger/key": Fill(lambda p, c: ["/api/v1/ledger/key"]),
    "/api/v1/ledger/witnesses": Fill(lambda p, c: ["/api/v1/ledger/witnesses"]),
    "/api/v1/ledger/witness-policy": Fill(lambda p, c: ["/api/v1/ledger/witness-policy"]),
    # Every entry the log holds: the bytes anyone may download and keep forever.
    "/api/v1/ledger/entries/{seq}": Fill(
        lambda p, c: [f"/api/v1/ledger/entries/{seq}" for seq in range(_size(c))], variants=False
    ),
    "/api/v1/ledger/entries/{seq}/proof": Fill(
        lambda p, c: [f"/api/v1/ledger/entries/{seq}/proof" for seq in range(0, _size(c), 7)],
        variants=False,
    ),
    "/api/v1/ledger/proofs": Fill(
        lambda p, c: [f"/api/v1/ledger/proofs?indexes=0-{min(_size(c), 2000) - 1}"],
        variants=False,
    ),
    "/api/v1/ledger/consistency": Fill(
        lambda p, c: [f"/api/v1/ledger/consistency?first=3&second={_size(c)}"]
    ),
    "/ledger/checkpoint": Fill(lambda p, c: ["/ledger/checkpoint"]),
    "/ledger/tile/{tile_path}": Fill(
        lambda p, c: [
            f"/ledger/{tile.path}"
            for level in (None, 0, 1)
            for tile in tiles.tiles_for_size(_size(c), level=level)
        ],
        variants=False,
    ),
    "/api/v1/parcels": Fill(lambda p, c: ["/api/v1/parcels", f"/api/v1/parcels?region={GROUP}"]),
    "/api/v1/parcels/locate": Fill(lambda p, c: [f"/api/v1/parcels/locate?{_centre(p, c)}"]),
    "/api/v1/parcels/export": Fill(
        lambda p, c: [
            f"/api/v1/parcels/export?region={VILLAGE}",
            f"/api/v1/parcels/export?region={VILLAGE}&due_diligence=true",
        ]
    ),
    "/api/v1/parcels/{dkbm}": Fill(lambda p, c: [f"/api/v1/parcels/{d}" for d in _parcels(p)]),
    "/api/v1/parcels/{dkbm}/history": Fill(
        lambda p, c: [f"/api/v1/parcels/{d}/history" for d in _parcels(p)]
    ),
    "/api/v1/parcels/{dkbm}/neighbours": Fill(
        lambda p, c: [f"/api/v1/parcels/{p.parcels[0]}/neighbours?within_m=100"]
    ),
    "/api/v1/parcels/{dkbm}/verify": Fill(
        lambda p, c: [f"/api/v1/parcels/{d}/verify" for d in _parcels(p)]
    ),
    "/api/v1/parcels/{dkbm}/sign.{fmt}": Fill(
        lambda p, c: [f"/api/v1/parcels/{d}/sign.{f}" for d in _parcels(p) for f in ("pdf", "svg")]
    ),
    "/api/v1/maps/{name}": Fill(
        lambda p, c: [
            f"/api/v1/maps/{VILLAGE}.svg",
            f"/api/v1/maps/{GROUP}.svg?by=land_use",
            f"/api/v1/maps/{VILLAGE}.png",
        ]
    ),
    "/api/v1/devices/{device_id}": _per_device("/api/v1/devices/{device}"),
    "/api/v1/metrics": Fill(lambda p, c: ["/api/v1/metrics"]),
    "/api/v1/devices/{device_id}/readings": _per_device(
        "/api/v1/devices/{device}/readings?metric=soil_moisture&limit=50"
    ),
    "/api/v1/devices/{device_id}/latest": _per_device("/api/v1/devices/{device}/latest"),
    "/api/v1/devices/{device_id}/readings/proof": Fill(
        lambda p, c: [
            "/api/v1/devices/{}/readings/proof?metric={}&time={}".format(*_sealed_reading(c))
        ]
    ),
    "/api/v1/parcels/{dkbm}/readings": Fill(
        lambda p, c: [f"/api/v1/parcels/{p.parcels[0]}/readings?metric=soil_moisture&limit=50"]
    ),
    "/api/v1/parcels/{dkbm}/conditions": Fill(
        lambda p, c: [f"/api/v1/parcels/{p.parcels[0]}/conditions?from=2026-05-01&to=2026-05-19"]
    ),
    "/api/v1/parcels/{dkbm}/seals": Fill(
        lambda p, c: [f"/api/v1/parcels/{p.parcels[0]}/seals?day=2026-05-10"]
    ),
    "/api/v1/products": Fill(lambda p, c: ["/api/v1/products"]),
    "/api/v1/products/{gtin}": Fill(
        lambda p, c: [f"/api/v1/products/{g}" for g in (seasons.BOTTLE, seasons.RAPESEED)]
    ),
    "/api/v1/lots/{gtin}/{lot}": Fill(
        lambda p, c: [f"/api/v1/lots/{g}/{lot}" for g, lot in _lots(p)]
    ),
    "/api/v1/lots/{gtin}/{lot}/certificates": Fill(
        lambda p, c: [f"/api/v1/lots/{g}/{lot}/certificates" for g, lot in _lots(p)]
    ),
    "/api/v1/lots/{gtin}/{lot}/epcis": Fill(
        lambda p, c: [f"/api/v1/lots/{g}/{lot}/epcis" for g, lot in _lots(p)]
    ),
    "/api/v1/certificates/{number}": Fill(
        lambda p, c: [f"/api/v1/certificates/{p.season.certificate}"]
    ),
    "/api/v1/certificates/{number}/verify": Fill(
        lambda p, c: [f"/api/v1/certificates/{p.season.certificate}/verify"]
    ),
    "/api/v1/lots/{gtin}/{lot}/verify": Fill(
        lambda p, c: [f"/api/v1/lots/{g}/{lot}/verify" for g, lot in _lots(p)]
    ),
    "/api/v1/certificates/{number}/qr.{fmt}": Fill(
        lambda p, c: [f"/api/v1/certificates/{p.season.certificate}/qr.{f}" for f in ("png", "svg")]
    ),
    "/api/v1/trace/parcels/{dkbm}": Fill(
        lambda p, c: [f"/api/v1/trace/parcels/{d}" for d in _parcels(p)]
    ),
    "/api/v1/trace/{gtin}/{lot}": Fill(
        lambda p, c: [
            f"/api/v1/trace/{g}/{lot}?direction={d}"
            for g, lot in _lots(p)
            for d in ("backward", "forward")
        ]
    ),
    "/api/v1/trace/{gtin}/{lot}/{serial}": Fill(
        lambda p, c: [f"/api/v1/trace/{seasons.BOTTLE}/{p.season.bottle_lot}/{p.season.serials[0]}"]
    ),
}


def get_routes(app: FastAPI) -> dict[str, bool]:
    """Every GET route of the app (template → whether its OpenAPI entry asks for a token)."""
    from fastapi.routing import iter_route_contexts

    secured = {
        path
        for path, operations in app.openapi()["paths"].items()
        if operations.get("get", {}).get("security")
    }
    found: dict[str, bool] = {}
    for route in iter_route_contexts(app.routes):
        # Convertors ({rest:path}, {lot:part}) are not part of the OpenAPI template.
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path or "")
        if isinstance(route.original_route, WebSocketRoute):
            continue  # not a GET: a WebSocket checks its own token when it opens
        if route.methods is None:  # a mount: its files are GETs
            found[path] = False
        elif "GET" in route.methods:
            found[path] = path in secured
            if (
                isinstance(route.original_route, APIRoute)
                and route.original_route.include_in_schema
            ):
                assert path in app.openapi()["paths"], path
    return found


def readable(response: Any) -> list[str]:
    """The answer as text, in every form personal data could hide in."""
    content_type = response.headers.get("content-type", "")
    body: bytes = response.content
    forms = [body.decode("utf-8", "replace")]
    if content_type.startswith("application/pdf"):
        reader = PdfReader(io.BytesIO(body))
        forms.append(" ".join(page.extract_text() or "" for page in reader.pages))
        forms.append(json.dumps({k: str(v) for k, v in (reader.metadata or {}).items()}))
    text = forms[0]
    forms += [html.unescape(text), unquote(text)]
    if "json" in content_type:
        forms.append(json.dumps(response.json(), ensure_ascii=False))
    return forms


def leaks(response: Any) -> list[str]:
    return sorted({secret for form in readable(response) for secret in SECRETS if secret in form})


def test_every_public_get_route_is_filled(pages_app: FastAPI) -> None:
    """A new public GET route must be added to FILL, so that the scan below covers it."""
    routes = get_routes(pages_app)
    unknown = sorted(path for path, secured in routes.items() if not secured and path not in FILL)
    assert not unknown, f"public GET routes the privacy scan cannot fill yet: {unknown}"
    stale = sorted(path for path in FILL if path not in routes)
    assert not stale, f"FILL names routes the app no longer has: {stale}"


def test_token_routes_say_401_and_nothing_more(pages_app: FastAPI) -> None:
    routes = get_routes(pages_app)
    secured = sorted(path for path, is_secured in routes.items() if is_secured)
    assert "/api/v1/households" in secured
    for number, template in enumerate(secured):
        path = re.sub(r"\{\w+\}", "1", template)
        # A client of its own per route: one client's run of 401s is refused as token guessing.
        with client_at(pages_app, f"10.77.{number // 200}.{number % 200 + 1}") as client:
            response = client.get(path)
        assert response.status_code == 401, (path, response.status_code)
        assert not leaks(response), path


def test_no_public_answer_carries_personal_data(
    pages_app: FastAPI, pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    # The secrets are really in the database: the scan would find them if they were served.
    households = pages_connection.exec_driver_sql("SELECT name, phone FROM household").all()
    assert {tuple(h) for h in households} == set(HOUSEHOLDS)
    routes = get_routes(pages_app)
    fetched = 0
    found: list[tuple[str, str, list[str]]] = []
    failed: list[tuple[str, int]] = []
    for template, secured in sorted(routes.items()):
        if secured:
            continue
        fill = FILL[template]
        for path in fill.paths(pages_db, pages_connection):
            variants = (
                [(accept, language) for accept in ACCEPTS for language in LANGUAGES]
                if fill.variants
                else [("*/*", {})]
            )
            for accept, language in variants:
                response = pages_client.get(path, headers={"Accept": accept, **language})
                fetched += 1
                if response.status_code >= 400 and response.status_code != 406:
                    failed.append((path, response.status_code))
                leaked = leaks(response)
                if leaked:
                    found.append((path, f"{accept} {language}", leaked))
    assert not failed, f"public routes that did not answer (the scan must see real pages): {failed}"
    assert not found, found
    assert fetched > 500


@pytest.mark.parametrize(
    "secret", ["王建国", "13808380001", "138-0838-0001"], ids=["name", "mobile", "spaced"]
)
def test_the_scan_would_notice(secret: str) -> None:
    """The detector itself: each encoding of a secret is caught."""

    @dataclass
    class Answer:
        content: bytes
        headers: dict[str, str]

        def json(self) -> Any:
            return json.loads(self.content)

    for body, kind in (
        (json.dumps({"who": secret}).encode(), "application/json"),
        (html.escape(secret).encode("ascii", "xmlcharrefreplace"), "text/html"),
        (quote(secret).encode(), "text/html"),
    ):
        assert leaks(Answer(body, {"content-type": kind})) != [], (kind, body)
