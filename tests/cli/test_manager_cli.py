"""The `dv` commands a cooperative's manager uses, on the demo's database: cooperatives and
households by the codes people use (统一社会信用代码, 承包方编码; names masked), products
with their cooperative, traces in China Standard Time, tables that fit 80 columns, an
example season that captures as it is, and errors that never name internal row ids."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.cells import cell_len
from sqlalchemy import create_engine, text

from digital_village.config import Settings
from digital_village.gs1.short_code import short_code
from tests.cli.demo_db import DemoDatabase, demo_database

DEMO_COOP = "93510603MA6DX0001T"
DEMO_COOP_NAME = "德阳市旌阳区孝泉镇民安油菜专业合作社"
OIL_5L = "06923456000131"
INTERNAL_ID = re.compile(r"\b(cooperative|household)s? (id )?\d{1,6}\b")


@pytest.fixture(scope="module")
def demo(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DemoDatabase]:
    yield from demo_database(backend, tmp_path_factory, request)


def fits(output: str, columns: int = 80) -> None:
    wide = [line for line in output.splitlines() if cell_len(line) > columns]
    assert not wide, "\n".join(wide)
    assert "…" not in output, output


def people(demo: DemoDatabase) -> list[tuple[str, str, str, str | None]]:
    url = Settings(**{"data_dir": demo.env["DV_DATA_DIR"]}).effective_database_url
    url = demo.env.get("DV_DATABASE_URL", url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = text(
                "SELECT h.cbfbm, h.name, h.phone, c.uscc FROM household h "
                "LEFT JOIN cooperative c ON c.id = h.cooperative_id ORDER BY h.cbfbm"
            )
            return [tuple(row) for row in connection.execute(query)]  # type: ignore[misc]
    finally:
        engine.dispose()


def test_demo_names_the_page_to_type_a_labels_check_code(demo: DemoDatabase) -> None:
    code, output = demo.dv("demo", "--no-serve", columns=200)
    assert code == 0 and "already loaded" in output
    typed = re.search(r"/   \(type the label's 查询码 ([0-9A-Z]{4}-[0-9A-Z]{4})\)", output)
    bottle = re.search(r"bottle +(http\S+/21/\S+)", output)
    assert typed and bottle
    gtin, lot, serial = re.search(r"/01/(\d+)/10/([^/]+)/21/(\S+)", bottle.group(1)).groups()  # type: ignore[union-attr]
    assert short_code(gtin, lot, serial) == typed.group(1)


def test_coops_add_and_list_by_their_codes(demo: DemoDatabase) -> None:
    code, output = demo.dv(
        "coops", "add", "93510603MA6DX0002X", "清平水稻专业合作社", "--region", "510603101202"
    )
    assert code == 0, output
    assert "清平水稻专业合作社 (93510603MA6DX0002X)" in output and "清平村" in output
    code, output = demo.dv(
        "coops", "add", "93510603MA6DX0002Y", "错码合作社", "--region", "510603101202"
    )
    assert code == 1 and "93510603MA6DX0002Y" in output and "not valid" in output
    code, output = demo.dv("coops", "add", "93510603MA6DX0002X", "重复", "--region", "510603101202")
    assert code == 1 and "already registered" in output
    listed = {row["uscc"]: row for row in json.loads(demo.dv("coops", "list", "--json")[1])}
    assert listed[DEMO_COOP]["name"] == DEMO_COOP_NAME
    members = sum(1 for *_, uscc in people(demo) if uscc == DEMO_COOP)
    assert listed[DEMO_COOP]["members"] == members > 0
    assert listed["93510603MA6DX0002X"]["members"] == 0
    assert all("id" not in row for row in listed.values())
    code, output = demo.dv("coops", "list")
    assert code == 0 and DEMO_COOP in output
    fits(output)
    # The whole name is there, folded over lines rather than cut.
    assert "".join(re.findall(r"[\u4e00-\u9fff]+", output)).find(DEMO_COOP_NAME) >= 0


def test_households_list_masks_names_and_filters_by_cooperative_and_village(
    demo: DemoDatabase,
) -> None:
    everyone = people(demo)
    code, output = demo.dv("households", "list", "--json")
    assert code == 0, output
    rows = json.loads(output)
    assert [row["cbfbm"] for row in rows] == sorted(cbfbm for cbfbm, *_ in everyone)
    for name, phone in ((name, phone) for _, name, phone, _ in everyone):
        assert name not in output and phone not in output
    assert all(re.fullmatch(r".\*+", row["name"]) for row in rows)
    assert sum(len(row["parcels"]) for row in rows) > 40
    members = {cbfbm for cbfbm, *_, uscc in everyone if uscc == DEMO_COOP}
    only = json.loads(demo.dv("households", "list", "--coop", DEMO_COOP, "--json")[1])
    assert {row["cbfbm"] for row in only} == members and len(members) < len(everyone)
    village = json.loads(
        demo.dv("households", "list", "--coop", DEMO_COOP, "--village", "510603101202", "--json")[1]
    )
    assert village and {row["cbfbm"] for row in village} == {
        cbfbm for cbfbm in members if cbfbm.startswith("510603101202")
    }
    code, output = demo.dv("households", "list", "--coop", DEMO_COOP)
    assert code == 0 and f"{len(members)} households" in output
    fits(output)
    code, output = demo.dv("households", "list", "--village", "510603999999")
    assert code == 1 and "510603999999" in output


def test_products_name_their_cooperative_never_its_row_id(demo: DemoDatabase) -> None:
    rows = json.loads(demo.dv("trace", "products", "list", "--json")[1])
    assert rows and all(row["cooperative_uscc"] == DEMO_COOP for row in rows)
    assert all(row["cooperative"] == DEMO_COOP_NAME for row in rows)
    assert not any("cooperative_id" in row for row in rows)
    code, output = demo.dv("trace", "products", "list")
    assert code == 0 and DEMO_COOP in output
    fits(output)
    code, output = demo.dv("tokens", "list")
    assert code == 0 and DEMO_COOP in output and not INTERNAL_ID.search(output)
    fits(output)


def test_trace_show_prints_china_standard_time_with_its_offset(demo: DemoDatabase) -> None:
    lot = f"TF{demo.year}-0601"
    code, output = demo.dv("trace", "show", OIL_5L, lot)
    assert code == 0, output
    fits(output)
    # The demo bottles on 10 June at 09:00 in China (01:00 UTC).
    assert f"{demo.year}-06-10 09:00 +08:00  commissioning" in output
    assert "T01:00" not in output and f"{demo.year}-06-10 01:00" not in output
    code, output = demo.dv("trace", "recall", "5106031012010100010")
    assert code == 0 and "+08:00" in output
    fits(output)


def test_the_example_season_captures_as_it_is_and_again(demo: DemoDatabase, tmp_path: Path) -> None:
    first, second = tmp_path / "season.json", tmp_path / "season2.json"
    code, output = demo.dv("trace", "example-season", "--out", str(first))
    assert code == 0, output
    assert f"{DEMO_COOP_NAME} ({DEMO_COOP})" in output
    code, output = demo.dv("trace", "capture", str(first), "--json")
    assert code == 0, output
    captured = json.loads(output)
    assert len(captured["events"]) == 19  # 5 kinds of field work on 3 fields, and 4 steps
    document = json.loads(first.read_text("utf-8"))
    harvest = next(e for e in document["epcisBody"]["eventList"] if e.get("action") == "ADD")
    lot = harvest["quantityList"][0]["epcClass"].rsplit("/", 1)[-1]
    code, output = demo.dv("trace", "show", "06923456000117", lot, "--json")
    assert code == 0 and json.loads(output)["flags"] == []
    # A second example takes other fields and lot numbers, and captures too.
    assert demo.dv("trace", "example-season", "--out", str(second))[0] == 0
    code, output = demo.dv("trace", "capture", str(second))
    assert code == 0 and "captured 19 events" in output
    # The same file twice: its lots exist; refused, naming what, not any row id.
    code, output = demo.dv("trace", "capture", str(first))
    assert code == 1 and not INTERNAL_ID.search(output)


def test_capture_errors_name_the_cooperative_by_name_and_code(
    demo: DemoDatabase, tmp_path: Path
) -> None:
    path = tmp_path / "season.json"
    assert demo.dv("trace", "example-season", "--out", str(path))[0] == 0
    document = json.loads(path.read_text("utf-8"))
    held = {cbfbm for cbfbm, *_, uscc in people(demo) if uscc == DEMO_COOP}
    rows = json.loads(demo.dv("households", "list", "--json")[1])
    outsider = next(row for row in rows if row["cbfbm"] not in held and row["parcels"])
    harvest = next(e for e in document["epcisBody"]["eventList"] if e.get("action") == "ADD")
    base = harvest["readPoint"]["id"].rsplit("/p/", 1)[0]
    harvest["ilmd"]["dv:parcels"] = [f"{base}/p/{outsider['parcels'][0]}"]
    harvest["readPoint"]["id"] = harvest["ilmd"]["dv:parcels"][0]
    path.write_text(json.dumps(document, ensure_ascii=False), "utf-8")
    code, output = demo.dv("trace", "capture", str(path), columns=400)
    assert code == 1, output
    assert f"by neither {DEMO_COOP_NAME} ({DEMO_COOP})" in output
    assert not INTERNAL_ID.search(output), output
