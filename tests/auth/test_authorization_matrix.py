"""Every role against every write route: 2xx, 401 or 403 exactly as the scopes say.

A new write route fails ``test_every_write_route_is_in_the_matrix`` until it gets a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import World
from tests.factories import GROUP, OTHER_VILLAGE

ROLES = ("anonymous", "admin", "manager", "farmer", "device")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Case:
    """One request to a write route and the status each role must get."""

    name: str
    build: Callable[[World, TestClient], tuple[str, Any]]
    expected: dict[str, int]


def _farmer_token_of_a(world: World, client: TestClient) -> tuple[str, Any]:
    made = client.post(
        "/api/v1/tokens",
        json={"role": "farmer", "household": str(world.household_a)},
        headers=world.auth("admin"),
    )
    return f"/api/v1/tokens/{made.json()['public_id']}", None


def _parcel_body(col: int, fbfbm: str = GROUP, **extra: Any) -> dict[str, Any]:
    from shapely.geometry import mapping

    from tests.parcels.conftest import field

    return {
        "fbfbm": fbfbm,
        "geometry": mapping(field(col, 0)),
        "land_use": "0101",
        "valid_from": "2024-01-01",
        **extra,
    }


def _registered(client: TestClient, world: World, *cols: int, **extra: Any) -> list[str]:
    """Parcels registered by the admin (in GROUP unless ``fbfbm`` says otherwise)."""
    made = [
        client.post("/api/v1/parcels", json=_parcel_body(c, **extra), headers=world.auth("admin"))
        for c in cols
    ]
    return [response.json()["properties"]["dkbm"] for response in made]


def _import_body(col: int, **properties: Any) -> dict[str, Any]:
    body = _parcel_body(col)
    feature = {
        "type": "Feature",
        "properties": {"land_use": "0101", **properties},
        "geometry": body["geometry"],
    }
    return {"type": "FeatureCollection", "features": [feature]}


def _cbfbm_of(client: TestClient, world: World, household_id: int) -> str:
    found = client.get(f"/api/v1/households/{household_id}", headers=world.auth("admin"))
    cbfbm: str = found.json()["cbfbm"]
    return cbfbm


def _split_case(
    world: World,
    client: TestClient,
    *,
    harvested: bool = False,
    valid_from: str | None = None,
    **holders: Any,
) -> tuple[str, Any]:
    from shapely.geometry import mapping

    from tests.parcels.conftest import gk_box

    dkbm = (
        _harvested_parcel(client, world)
        if harvested
        else _registered(client, world, 0, **holders)[0]
    )
    parts = [mapping(gk_box(0, 0, 20, 50)), mapping(gk_box(20, 0, 50, 50))]
    body: dict[str, Any] = {"parts": parts}
    if valid_from is not None:
        body["valid_from"] = valid_from
    return f"/api/v1/parcels/{dkbm}/split", body


def _neighbour(client: TestClient, world: World) -> int:
    """A member household of another cooperative of the manager's own village."""
    from tests.factories import VILLAGE

    cooperatives = client.get("/api/v1/cooperatives").json()
    found = [c for c in cooperatives if c["uscc"] == _uscc(3)]
    if found:
        coop = found[0]["id"]
    else:
        made = client.post(
            "/api/v1/cooperatives",
            json={"uscc": _uscc(3), "name": "民安粮油合作社", "region_code": VILLAGE},
            headers=world.auth("admin"),
        )
        coop = made.json()["id"]
    household = client.post(
        "/api/v1/households",
        json={"region_code": GROUP, "name": "陈德明", "cooperative_id": coop},
        headers=world.auth("admin"),
    )
    household_id: int = household.json()["id"]
    return household_id


def _neighbours_parcel(client: TestClient, world: World) -> str:
    """A parcel of the manager's village contracted by another cooperative's member."""
    (dkbm,) = _registered(client, world, 0, contractor_household_id=_neighbour(client, world))
    return dkbm


OTHER_FBFBM = OTHER_VILLAGE + "00"


def _deny_all_but(allowed: dict[str, int]) -> dict[str, int]:
    expected = {role: 403 for role in ROLES}
    expected["anonymous"] = 401
    expected.update(allowed)
    return expected


MATRIX: dict[tuple[str, str], list[Case]] = {
    ("POST", "/api/v1/regions"): [
        Case(
            "add a village",
            lambda w, c: ("/api/v1/regions", {"code": "510603101203", "name": "新村"}),
            _deny_all_but({"admin": 201}),
        )
    ],
    ("POST", "/api/v1/cooperatives"): [
        Case(
            "register a cooperative",
            lambda w, c: (
                "/api/v1/cooperatives",
                {"uscc": _uscc(9), "name": "新合作社", "region_code": "510603101201"},
            ),
            _deny_all_but({"admin": 201}),
        )
    ],
    ("POST", "/api/v1/households"): [
        Case(
            "household in own cooperative",
            lambda w, c: (
                "/api/v1/households",
                {"region_code": GROUP, "name": "赵玉兰", "cooperative_id": w.coop_a},
            ),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "household in another cooperative",
            lambda w, c: (
                "/api/v1/households",
                {"region_code": GROUP, "name": "赵玉兰", "cooperative_id": w.coop_b},
            ),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "household of the manager's cooperative in another village",
            lambda w, c: (
                "/api/v1/households",
                {"region_code": OTHER_VILLAGE, "name": "赵玉兰", "cooperative_id": w.coop_a},
            ),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "household in no cooperative",
            lambda w, c: ("/api/v1/households", {"region_code": GROUP, "name": "赵玉兰"}),
            _deny_all_but({"admin": 201}),
        ),
    ],
    ("PATCH", "/api/v1/households/{household_id}"): [
        Case(
            "own household's phone",
            lambda w, c: (f"/api/v1/households/{w.household_a}", {"phone": "13900000000"}),
            _deny_all_but({"admin": 200, "manager": 200, "farmer": 200}),
        ),
        Case(
            "another cooperative's household",
            lambda w, c: (f"/api/v1/households/{w.household_b}", {"phone": "13900000000"}),
            _deny_all_but({"admin": 200}),
        ),
    ],
    ("POST", "/api/v1/tokens"): [
        Case(
            "farmer token for a member",
            lambda w, c: ("/api/v1/tokens", {"role": "farmer", "household": str(w.household_a)}),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "farmer token for another cooperative's household",
            lambda w, c: ("/api/v1/tokens", {"role": "farmer", "household": str(w.household_b)}),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "admin token",
            lambda w, c: ("/api/v1/tokens", {"role": "admin"}),
            _deny_all_but({"admin": 201}),
        ),
    ],
    ("DELETE", "/api/v1/tokens/{public_id}"): [
        Case(
            "revoke a member's farmer token",
            _farmer_token_of_a,
            _deny_all_but({"admin": 200, "manager": 200}),
        )
    ],
    ("POST", "/api/v1/parcels"): [
        Case(
            "parcel in the manager's village",
            lambda w, c: ("/api/v1/parcels", _parcel_body(0)),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "parcel in another village",
            lambda w, c: ("/api/v1/parcels", _parcel_body(0, fbfbm=OTHER_FBFBM)),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "parcel for a member household, operated by the manager's cooperative",
            lambda w, c: (
                "/api/v1/parcels",
                _parcel_body(
                    0, contractor_household_id=w.household_a, operator_cooperative_id=w.coop_a
                ),
            ),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "parcel in the manager's village for another cooperative's member household",
            lambda w, c: (
                "/api/v1/parcels",
                _parcel_body(0, contractor_household_id=_neighbour(c, w)),
            ),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "parcel in the manager's village operated by another cooperative",
            lambda w, c: ("/api/v1/parcels", _parcel_body(0, operator_cooperative_id=w.coop_b)),
            _deny_all_but({"admin": 201}),
        ),
    ],
    ("POST", "/api/v1/parcels/import"): [
        Case(
            "import into the manager's village",
            lambda w, c: (f"/api/v1/parcels/import?fbfbm={GROUP}", _import_body(0)),
            _deny_all_but({"admin": 200, "manager": 200}),
        ),
        Case(
            "import into another village",
            lambda w, c: (f"/api/v1/parcels/import?fbfbm={OTHER_FBFBM}", _import_body(0)),
            _deny_all_but({"admin": 200}),
        ),
        Case(
            "import of a parcel naming another cooperative's member as its 承包方",
            lambda w, c: (
                f"/api/v1/parcels/import?fbfbm={GROUP}",
                _import_body(0, CBFBM=_cbfbm_of(c, w, _neighbour(c, w))),
            ),
            _deny_all_but({"admin": 200}),
        ),
    ],
    ("POST", "/api/v1/parcels/{dkbm}/changes"): [
        Case(
            "crop of a parcel the farmer's household contracts",
            lambda w, c: (
                f"/api/v1/parcels/{_registered(c, w, 0, contractor_household_id=w.household_a)[0]}"
                "/changes",
                {"crop": {"season": "2026-summer", "crop": "水稻"}},
            ),
            _deny_all_but({"admin": 200, "manager": 200, "farmer": 200}),
        ),
        Case(
            "holders of a parcel another cooperative's member contracts in the same village",
            lambda w, c: (
                f"/api/v1/parcels/{_neighbours_parcel(c, w)}/changes",
                {
                    "valid_from": "2025-01-01",
                    "contractor_household_id": w.household_a,
                    "operator_cooperative_id": w.coop_a,
                },
            ),
            _deny_all_but({"admin": 200}),
        ),
        Case(
            "land use of a parcel another cooperative's member contracts in the same village",
            lambda w, c: (
                f"/api/v1/parcels/{_neighbours_parcel(c, w)}/changes",
                {"valid_from": "2025-01-01", "land_use": "0103"},
            ),
            _deny_all_but({"admin": 200}),
        ),
        Case(
            "hand a member's parcel to another cooperative's household",
            lambda w, c: (
                f"/api/v1/parcels/{_registered(c, w, 0, contractor_household_id=w.household_a)[0]}"
                "/changes",
                {"valid_from": "2025-01-01", "contractor_household_id": _neighbour(c, w)},
            ),
            _deny_all_but({"admin": 200}),
        ),
        Case(
            "holders from a day before a harvest already recorded on the parcel",
            lambda w, c: (
                f"/api/v1/parcels/{_harvested_parcel(c, w)}/changes",
                {"valid_from": "2025-01-01", "operator_cooperative_id": w.coop_a},
            ),
            _deny_all_but({"admin": 409, "manager": 409}),
        ),
        Case(
            "holders from the day of a recorded harvest",
            lambda w, c: (
                f"/api/v1/parcels/{_harvested_parcel(c, w)}/changes",
                {"valid_from": HARVEST_DAY, "operator_cooperative_id": w.coop_a},
            ),
            _deny_all_but({"admin": 409, "manager": 409}),
        ),
        Case(
            "holders from the day after a recorded harvest",
            lambda w, c: (
                f"/api/v1/parcels/{_harvested_parcel(c, w)}/changes",
                {"valid_from": "2025-05-21", "operator_cooperative_id": w.coop_a},
            ),
            _deny_all_but({"admin": 200, "manager": 200}),
        ),
        Case(
            "an explicit correction of holders before a recorded harvest",
            lambda w, c: (
                f"/api/v1/parcels/{_harvested_parcel(c, w)}/changes",
                {
                    "valid_from": "2025-01-01",
                    "operator_cooperative_id": w.coop_a,
                    "correction": "经营权流转合同 signed 2024-12-20, registered late",
                },
            ),
            _deny_all_but({"admin": 200}),
        ),
        Case(
            "holders of a parcel in another village",
            lambda w, c: (
                f"/api/v1/parcels/{_registered(c, w, 0, fbfbm=OTHER_FBFBM)[0]}/changes",
                {"contractor_household_id": w.household_b, "operator_cooperative_id": w.coop_b},
            ),
            _deny_all_but({"admin": 200}),
        ),
    ],
    ("POST", "/api/v1/parcels/{dkbm}/split"): [
        Case(
            "split in the manager's village",
            _split_case,
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "split a parcel another cooperative's member contracts in the same village",
            lambda w, c: _split_case(w, c, contractor_household_id=_neighbour(c, w)),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "split from a day before a harvest recorded on the parcel",
            lambda w, c: _split_case(w, c, harvested=True, valid_from="2025-01-01"),
            _deny_all_but({"admin": 409, "manager": 409}),
        ),
    ],
    ("POST", "/api/v1/parcels/merge"): [
        Case(
            "merge in the manager's village",
            lambda w, c: ("/api/v1/parcels/merge", {"dkbms": _registered(c, w, 0, 1)}),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "merge parcels another cooperative's member contracts in the same village",
            lambda w, c: (
                "/api/v1/parcels/merge",
                {"dkbms": _registered(c, w, 0, 1, contractor_household_id=_neighbour(c, w))},
            ),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "merge from a day before a harvest recorded on one of the parcels",
            lambda w, c: (
                "/api/v1/parcels/merge",
                {
                    "dkbms": [
                        _harvested_parcel(c, w),
                        *_registered(c, w, 1, contractor_household_id=w.household_a),
                    ],
                    "valid_from": "2025-01-01",
                },
            ),
            _deny_all_but({"admin": 409, "manager": 409}),
        ),
    ],
    ("POST", "/api/v1/telemetry"): [
        Case(
            "readings of the device (cooperative A's)",
            lambda w, c: (f"/api/v1/telemetry?device_id={w.device_a}", {"battery": 3.6}),
            _deny_all_but({"admin": 200, "manager": 200, "device": 200}),
        ),
        Case(
            "readings of another cooperative's device",
            lambda w, c: (f"/api/v1/telemetry?device_id={w.device_b}", {"battery": 3.6}),
            _deny_all_but({"admin": 200}),
        ),
    ],
    ("POST", "/api/v1/devices"): [
        Case(
            "device of cooperative A on a parcel",
            lambda w, c: ("/api/v1/devices", _device_body(w, c, w.coop_a)),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "device of another cooperative",
            lambda w, c: ("/api/v1/devices", _device_body(w, c, w.coop_b)),
            _deny_all_but({"admin": 201}),
        ),
    ],
    ("POST", "/api/v1/devices/{device_id}/moves"): [
        Case(
            "move cooperative A's device to another parcel",
            lambda w, c: _move_case(w, c),
            _deny_all_but({"admin": 201, "manager": 201}),
        )
    ],
    ("POST", "/api/v1/devices/{device_id}/token"): [
        Case(
            "rotate the token of cooperative A's device",
            lambda w, c: (f"/api/v1/devices/{w.device_a}/token", None),
            _deny_all_but({"admin": 201, "manager": 201}),
        )
    ],
    ("DELETE", "/api/v1/devices/{device_id}/token"): [
        Case(
            "revoke the tokens of cooperative A's device",
            lambda w, c: (f"/api/v1/devices/{w.device_a}/token", None),
            _deny_all_but({"admin": 200, "manager": 200}),
        ),
        Case(
            "revoke the tokens of another cooperative's device",
            lambda w, c: (f"/api/v1/devices/{w.device_b}/token", None),
            _deny_all_but({"admin": 200}),
        ),
    ],
    ("DELETE", "/api/v1/devices/{device_id}"): [
        Case(
            "retire cooperative A's device",
            lambda w, c: (f"/api/v1/devices/{w.device_a}", None),
            _deny_all_but({"admin": 200, "manager": 200}),
        ),
        Case(
            "retire another cooperative's device",
            lambda w, c: (f"/api/v1/devices/{w.device_b}", None),
            _deny_all_but({"admin": 200}),
        ),
    ],
    ("POST", "/api/v1/alert-rules"): [
        Case(
            "soil moisture threshold for cooperative A",
            lambda w, c: ("/api/v1/alert-rules", _rule_body(w, c, w.coop_a)),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "threshold for another cooperative",
            lambda w, c: ("/api/v1/alert-rules", _rule_body(w, c, w.coop_b)),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "threshold on a parcel another cooperative's member contracts",
            lambda w, c: (
                "/api/v1/alert-rules",
                {
                    "parcel": _neighbours_parcel(c, w),
                    "metric": "soil_moisture",
                    "below": 15,
                    "cooperative": str(w.coop_a),
                },
            ),
            _deny_all_but({"admin": 201}),
        ),
    ],
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): [
        Case(
            "disable cooperative A's rule",
            lambda w, c: (f"/api/v1/alert-rules/{_rule_id(w, c)}", None),
            _deny_all_but({"admin": 200, "manager": 200}),
        )
    ],
    # Network servers authenticate with their integration secret; no bearer token does.
    ("POST", "/api/v1/integrations/chirpstack"): [
        Case(
            "uplink with a bearer token instead of the integration secret",
            lambda w, c: ("/api/v1/integrations/chirpstack?event=up", {}),
            {role: 401 for role in ROLES},
        )
    ],
    ("POST", "/api/v1/integrations/ttn"): [
        Case(
            "uplink with a bearer token instead of the integration secret",
            lambda w, c: ("/api/v1/integrations/ttn", {}),
            {role: 401 for role in ROLES},
        )
    ],
}


def _device_body(world: World, client: TestClient, cooperative: int) -> dict[str, Any]:
    (dkbm,) = _registered(client, world, 0)
    return {"model": "DL-5TM", "parcel": dkbm, "cooperative": str(cooperative)}


def _move_case(world: World, client: TestClient) -> tuple[str, Any]:
    first, second = _registered(client, world, 0, 1)
    body = {"model": "generic", "parcel": first, "cooperative": str(world.coop_a)}
    made = client.post("/api/v1/devices", json=body, headers=world.auth("admin"))
    return f"/api/v1/devices/{made.json()['device_id']}/moves", {"parcel": second}


def _rule_body(world: World, client: TestClient, cooperative: int) -> dict[str, Any]:
    (dkbm,) = _registered(client, world, 0)
    return {"parcel": dkbm, "metric": "soil_moisture", "below": 15, "cooperative": str(cooperative)}


def _rule_id(world: World, client: TestClient) -> int:
    made = client.post(
        "/api/v1/alert-rules",
        json=_rule_body(world, client, world.coop_a),
        headers=world.auth("admin"),
    )
    rule_id: int = made.json()["id"]
    return rule_id


# --- the chain (trace) ------------------------------------------------------------------------

RAPESEED_GTIN = "06901234500011"
OIL_GTIN = "06901234500028"


def _product(client: TestClient, world: World, gtin: str, category: str, coop: int) -> str:
    body = {"gtin": gtin, "name": category, "category": category, "cooperative_id": coop}
    client.post("/api/v1/products", json=body, headers=world.auth("admin"))
    return gtin


def _field_event(client: TestClient, world: World, fbfbm: str, household: int) -> dict[str, Any]:
    import datetime as dt

    from digital_village.trace import builders

    (dkbm,) = _registered(client, world, 0, fbfbm=fbfbm, contractor_household_id=household)
    when = dt.datetime(2025, 3, 1, 9, tzinfo=builders.CHINA)
    return builders.field_work("planting", dkbm=dkbm, when=when, base_url="https://dv.test")


HARVEST_DAY = "2025-05-20"


def _harvested_parcel(client: TestClient, world: World) -> str:
    """A parcel of a member of cooperative A with a harvest recorded on it on HARVEST_DAY."""
    _harvested(client, world)
    return f"{GROUP}00001"


def _harvested(client: TestClient, world: World) -> str:
    """A rapeseed lot of cooperative A harvested by the admin; returns its lot number."""
    import datetime as dt

    from digital_village.trace import builders

    _product(client, world, RAPESEED_GTIN, "rapeseed", world.coop_a)
    (dkbm,) = _registered(client, world, 0, contractor_household_id=world.household_a)
    when = dt.datetime.combine(
        dt.date.fromisoformat(HARVEST_DAY), dt.time(9), tzinfo=builders.CHINA
    )
    event = builders.harvest(
        gtin=RAPESEED_GTIN,
        lot="RS-1",
        kilograms=900.0,
        dkbms=[dkbm],
        when=when,
        base_url="https://dv.test",
    )
    harvested = client.post("/api/v1/events", json=event, headers=world.auth("admin"))
    assert harvested.status_code == 201, harvested.text
    return "RS-1"


def _pressing(world: World, client: TestClient) -> tuple[str, Any]:
    import datetime as dt

    from digital_village.trace import builders

    lot = _harvested(client, world)
    _product(client, world, OIL_GTIN, "rapeseed_oil", world.coop_a)
    event = builders.transformation(
        step="pressing",
        inputs=[(RAPESEED_GTIN, lot, 500.0, "KGM")],
        outputs=[(OIL_GTIN, "OIL-1", 190.0, "LTR")],
        when=dt.datetime(2025, 6, 1, 9, tzinfo=builders.CHINA),
        base_url="https://dv.test",
    )
    return "/api/v1/events", event


def _capture_field_work(world: World, client: TestClient) -> tuple[str, Any]:
    import datetime as dt

    from digital_village.trace import builders

    event = _field_event(client, world, GROUP, world.household_a)
    created = dt.datetime(2025, 3, 2, tzinfo=builders.CHINA)
    return "/api/v1/epcis/capture", builders.document([event], created=created)


TRACE_MATRIX: dict[tuple[str, str], list[Case]] = {
    ("POST", "/api/v1/products"): [
        Case(
            "product of the manager's cooperative",
            lambda w, c: (
                "/api/v1/products",
                {
                    "gtin": OIL_GTIN,
                    "name": "天府菜油",
                    "category": "rapeseed_oil",
                    "cooperative_id": w.coop_a,
                },
            ),
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
        Case(
            "product of another cooperative",
            lambda w, c: (
                "/api/v1/products",
                {
                    "gtin": OIL_GTIN,
                    "name": "菜油",
                    "category": "rapeseed_oil",
                    "cooperative_id": w.coop_b,
                },
            ),
            _deny_all_but({"admin": 201}),
        ),
    ],
    ("PATCH", "/api/v1/products/{gtin}"): [
        Case(
            "plausible yields of the cooperative's product",
            lambda w, c: (
                f"/api/v1/products/{_product(c, w, RAPESEED_GTIN, 'rapeseed', w.coop_a)}",
                {"yield_per_mu": {"min": 100, "max": 260}},
            ),
            _deny_all_but({"admin": 200, "manager": 200}),
        ),
        Case(
            "plausible yields of another cooperative's product",
            lambda w, c: (
                f"/api/v1/products/{_product(c, w, RAPESEED_GTIN, 'rapeseed', w.coop_b)}",
                {"yield_per_mu": {"min": 100, "max": 260}},
            ),
            _deny_all_but({"admin": 200}),
        ),
    ],
    ("POST", "/api/v1/events"): [
        Case(
            "field work on a parcel of the farmer's household",
            lambda w, c: ("/api/v1/events", _field_event(c, w, GROUP, w.household_a)),
            _deny_all_but({"admin": 201, "manager": 201, "farmer": 201}),
        ),
        Case(
            "field work on another cooperative's parcel",
            lambda w, c: ("/api/v1/events", _field_event(c, w, OTHER_FBFBM, w.household_b)),
            _deny_all_but({"admin": 201}),
        ),
        Case(
            "pressing the cooperative's rapeseed",
            _pressing,
            _deny_all_but({"admin": 201, "manager": 201}),
        ),
    ],
    ("POST", "/api/v1/epcis/capture"): [
        Case(
            "a document of field work on the farmer's parcel",
            _capture_field_work,
            _deny_all_but({"admin": 202, "manager": 202, "farmer": 202}),
        )
    ],
    ("POST", "/api/v1/lots/{gtin}/{lot}/certificates"): [
        Case(
            "合格证 for the cooperative's lot",
            lambda w, c: (
                f"/api/v1/lots/{RAPESEED_GTIN}/{_harvested(c, w)}/certificates",
                {"contact": "0838-6200000", "basis": ["self_testing"]},
            ),
            _deny_all_but({"admin": 201, "manager": 201}),
        )
    ],
}
MATRIX.update(TRACE_MATRIX)

EPCIS_QUERIES = "/api/v1/epcis/queries"
WEBHOOK = {"dest": "https://partner.example/epcis/callback", "stream": True}


def _cooperative_query(world: World, client: TestClient) -> str:
    made = client.post(EPCIS_QUERIES, json={"name": "shared", "query": {}},
                       headers=world.auth("manager"))  # fmt: skip
    assert made.status_code == 201, made.text
    return f"{EPCIS_QUERIES}/shared"


def _cooperative_subscription(world: World, client: TestClient) -> str:
    query = _cooperative_query(world, client)
    made = client.post(f"{query}/subscriptions", json=WEBHOOK, headers=world.auth("manager"))
    assert made.status_code == 201, made.text
    return f"{query}/subscriptions/{made.json()['subscriptionID']}"


# Another reader's named query or subscription is not found (404), not revealed.
EPCIS_QUERY_MATRIX: dict[tuple[str, str], list[Case]] = {
    ("POST", EPCIS_QUERIES): [
        Case(
            "a named query",
            lambda w, c: (EPCIS_QUERIES, {"name": "mine", "query": {"EQ_bizStep": "shipping"}}),
            _deny_all_but({"admin": 201, "manager": 201, "farmer": 201}),
        )
    ],
    ("DELETE", f"{EPCIS_QUERIES}/{{name}}"): [
        Case(
            "the cooperative's named query",
            lambda w, c: (_cooperative_query(w, c), None),
            _deny_all_but({"admin": 204, "manager": 204, "farmer": 404}),
        )
    ],
    ("POST", f"{EPCIS_QUERIES}/{{name}}/subscriptions"): [
        Case(
            "a webhook on the cooperative's named query",
            lambda w, c: (f"{_cooperative_query(w, c)}/subscriptions", WEBHOOK),
            _deny_all_but({"admin": 201, "manager": 201, "farmer": 404}),
        )
    ],
    ("DELETE", f"{EPCIS_QUERIES}/{{name}}/subscriptions/{{subscription_id}}"): [
        Case(
            "the cooperative's webhook",
            lambda w, c: (_cooperative_subscription(w, c), None),
            _deny_all_but({"admin": 204, "manager": 204, "farmer": 404}),
        )
    ],
}
MATRIX.update(EPCIS_QUERY_MATRIX)


# --- the managers' console (web/manage.py): forms sent as JSON, answered with the panel ---------


def _bag(client: TestClient, world: World) -> str:
    """A packed product of cooperative A: 5 kg bags of rapeseed."""
    from digital_village.gs1.keys import gtin_check_digit

    gtin = "0690123450003" + gtin_check_digit("0690123450003")
    body = {
        "gtin": gtin,
        "name": "菜籽 5 千克袋",
        "category": "packaged",
        "cooperative_id": world.coop_a,
        "net_quantity": 5,
        "net_unit": "KGM",
    }
    client.post("/api/v1/products", json=body, headers=world.auth("admin"))
    return gtin


def _console_harvest(world: World, client: TestClient) -> tuple[str, Any]:
    _product(client, world, RAPESEED_GTIN, "rapeseed", world.coop_a)
    (dkbm,) = _registered(client, world, 0, contractor_household_id=world.household_a)
    body = {"gtin": RAPESEED_GTIN, "parcel": [dkbm], "kg": "900", "lot": "RS-9"}
    return "/manage/harvest", body


def _console_pressing(world: World, client: TestClient) -> tuple[str, Any]:
    lot = _harvested(client, world)
    _product(client, world, OIL_GTIN, "rapeseed_oil", world.coop_a)
    body = {
        "step": "pressing",
        "in_lot_1": f"{RAPESEED_GTIN} {lot}",
        "in_amount_1": "500",
        "out_gtin": OIL_GTIN,
        "out_amount": "190",
        "lot": "OIL-1",
    }
    return "/manage/processing", body


def _console_packing(world: World, client: TestClient) -> tuple[str, Any]:
    lot = _harvested(client, world)
    body = {
        "source": f"{RAPESEED_GTIN} {lot}",
        "gtin": _bag(client, world),
        "count": "10",
        "first_serial": "0001",
        "case_size": "5",
        "lot": "BAG-1",
    }
    return "/manage/packing", body


CONSOLE_ONLY = _deny_all_but({"admin": 403, "manager": 200})
CONSOLE_MATRIX: dict[tuple[str, str], list[Case]] = {
    ("POST", "/manage/products"): [
        Case(
            "a product of the manager's cooperative",
            lambda w, c: (
                "/manage/products",
                {"gtin": OIL_GTIN, "name": "天府菜油", "category": "rapeseed_oil"},
            ),
            CONSOLE_ONLY,
        )
    ],
    ("POST", "/manage/products/ranges"): [
        Case(
            "plausible yields of the cooperative's product",
            lambda w, c: (
                "/manage/products/ranges",
                {
                    "gtin": _product(c, w, RAPESEED_GTIN, "rapeseed", w.coop_a),
                    "low": "100",
                    "high": "260",
                },
            ),
            CONSOLE_ONLY,
        ),
        Case(
            "plausible yields of another cooperative's product",
            lambda w, c: (
                "/manage/products/ranges",
                {
                    "gtin": _product(c, w, RAPESEED_GTIN, "rapeseed", w.coop_b),
                    "low": "100",
                    "high": "260",
                },
            ),
            _deny_all_but({}),
        ),
    ],
    ("POST", "/manage/products/edit"): [
        Case(
            "renaming the cooperative's product",
            lambda w, c: (
                "/manage/products/edit",
                {
                    "gtin": _product(c, w, RAPESEED_GTIN, "rapeseed", w.coop_a),
                    "new_name": "油菜籽（新收）",
                    "new_category": "rapeseed",
                },
            ),
            CONSOLE_ONLY,
        ),
        Case(
            "renaming another cooperative's product",
            lambda w, c: (
                "/manage/products/edit",
                {
                    "gtin": _product(c, w, RAPESEED_GTIN, "rapeseed", w.coop_b),
                    "new_name": "油菜籽（新收）",
                    "new_category": "rapeseed",
                },
            ),
            _deny_all_but({}),
        ),
    ],
    ("POST", "/manage/harvest"): [
        Case("a harvest of a member's parcel", _console_harvest, CONSOLE_ONLY)
    ],
    ("POST", "/manage/processing"): [
        Case("pressing the cooperative's rapeseed", _console_pressing, CONSOLE_ONLY)
    ],
    ("POST", "/manage/packing"): [
        Case("bagging the cooperative's rapeseed", _console_packing, CONSOLE_ONLY)
    ],
    ("POST", "/manage/certificates"): [
        Case(
            "合格证 for the cooperative's lot",
            lambda w, c: (
                "/manage/certificates",
                {
                    "lot": f"{RAPESEED_GTIN} {_harvested(c, w)}",
                    "contact": "0838-6200000",
                    "basis": ["self_testing"],
                },
            ),
            CONSOLE_ONLY,
        )
    ],
    ("POST", "/manage/invitations"): [
        Case(
            "a member of the manager's cooperative",
            lambda w, c: ("/manage/invitations", {"household": str(w.household_a)}),
            CONSOLE_ONLY,
        )
    ],
}
MATRIX.update(CONSOLE_MATRIX)


def _uscc(serial: int) -> str:
    from tests.factories import make_uscc

    return make_uscc(serial)


def test_every_write_route_is_in_the_matrix(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method.upper() in WRITE_METHODS
    }
    assert routes == set(MATRIX), "add the new write routes to MATRIX"


CASES = [
    pytest.param(route, case, role, id=f"{route[0]} {route[1]} | {case.name} | {role}")
    for route, cases in MATRIX.items()
    for case in cases
    for role in ROLES
]


@pytest.mark.parametrize(("route", "case", "role"), CASES)
def test_role_gets_exactly_the_expected_status(
    client: TestClient, world: World, route: tuple[str, str], case: Case, role: str
) -> None:
    path, body = case.build(world, client)
    response = client.request(route[0], path, json=body, headers=world.auth(role))
    assert response.status_code == case.expected[role], response.text
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/problem+json")
