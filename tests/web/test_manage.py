"""The managers' console (/manage): who may open it, and products and harvests recorded from it.

Against the recorded season of the page tests (tests/web/conftest.py): cooperative A's manager
signs in with its token. A form with a mistake answers 422 with the mistake in Chinese next to
its field and stores nothing; a saved form answers with the ledger index of what it recorded,
the same entry the API shows.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import Connection, text

from digital_village import audit
from digital_village.auth.actor import Actor
from digital_village.db import Database
from digital_village.demo import oil_season as seasons
from digital_village.gs1.keys import gtin_check_digit
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from digital_village.trace import products
from tests.web.conftest import PERSONAL, Pages, html_of
from tests.web.facts_check import PageFact, check_page, failed

SECTIONS = ("products", "harvest", "processing", "packing", "certificates", "members", "devices")
GOOD_GTIN = "690123400104" + gtin_check_digit("690123400104")
BAD_GTIN = GOOD_GTIN[:-1] + str((int(GOOD_GTIN[-1]) + 1) % 10)


def panel(
    client: TestClient, pages: Pages, section: str, role: str = "manager", **query: Any
) -> Response:
    return client.get(f"/manage/panel/{section}", params=query, headers=pages.world.auth(role))


def post(
    client: TestClient, pages: Pages, path: str, body: dict[str, Any], role: str = "manager"
) -> Response:
    return client.post(path, json=body, headers=pages.world.auth(role))


def mistake(html: str, field: str) -> str:
    found = re.search(rf'data-error-for="{re.escape(field)}">([^<]+)<', html)
    assert found, f"no mistake next to {field}: {html[:3000]}"
    return found.group(1)


def count(connection: Connection, table: str) -> int:
    return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def recorded_seq(html: str) -> list[int]:
    found = re.search(r'data-done data-ledger-seqs="([\d ]*)"', html)
    assert found, html[:3000]
    return [int(seq) for seq in found.group(1).split()]


# --- the frame and access ----------------------------------------------------------------------


@pytest.mark.parametrize("section", ["", *(f"/{name}" for name in SECTIONS)])
def test_the_frame_is_public_and_holds_no_data(pages_client: TestClient, section: str) -> None:
    response = pages_client.get(f"/manage{section}")
    assert response.status_code == 200
    html = response.text
    assert '<html lang="zh-CN">' in html and "合作社管理" in html
    assert '<script type="module" src="/static/manage.js">' in html
    assert "data-manage-panel" in html and "民安油菜专业合作社" not in html
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "http" not in policy
    english = pages_client.get(f"/manage{section}?lang=en").text
    assert "Cooperative console" in english and "Sign in" in english


@pytest.mark.parametrize(
    ("role", "status"), [("anonymous", 401), ("farmer", 403), ("device", 403), ("admin", 403)]
)
def test_only_a_manager_opens_the_panels(
    pages_client: TestClient, pages_db: Pages, role: str, status: int
) -> None:
    for section in SECTIONS:
        response = panel(pages_client, pages_db, section, role)
        assert response.status_code == status, (section, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    refused = panel(pages_client, pages_db, "products", "farmer").json()["detail"]
    assert "合作社管理员" in refused


def test_a_manager_sees_only_its_cooperatives_data(
    pages_client: TestClient, pages_db: Pages
) -> None:
    # Cooperative B gets a product of its own: A's manager must not see it.
    other = {
        "gtin": "0690123400999" + gtin_check_digit("0690123400999"),
        "name": "清平大米",
        "category": "rice",
        "cooperative_id": pages_db.world.coop_b,
    }
    made = pages_client.post("/api/v1/products", json=other, headers=pages_db.world.auth("admin"))
    assert made.status_code == 201, made.text
    html = panel(pages_client, pages_db, "products").text
    assert "天府菜油" in html and seasons.OIL in html
    assert "清平大米" not in html
    assert "民安油菜专业合作社" in html
    members = panel(pages_client, pages_db, "members").text
    assert "王**" in members and "李**" not in members
    for secret in PERSONAL:
        assert secret not in members
    devices = panel(pages_client, pages_db, "devices").text
    assert "soil probe A" in devices and "soil probe B" not in devices
    harvest = panel(pages_client, pages_db, "harvest").text
    assert all(dkbm in harvest for dkbm in pages_db.parcels)
    assert pages_db.other_parcel not in harvest


# --- products ----------------------------------------------------------------------------------


def test_a_wrong_check_digit_is_named_next_to_the_gtin_and_nothing_is_stored(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    before = count(pages_connection, "trace_product"), count(pages_connection, "ledger_entry")
    body = {"gtin": BAD_GTIN, "name": "菜籽饼", "category": "other"}
    response = post(pages_client, pages_db, "/manage/products", body)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    said = mistake(response.text, "gtin")
    assert said == f"校验位错误：{BAD_GTIN} 的最后一位应为 {GOOD_GTIN[-1]}，不是 {BAD_GTIN[-1]}"
    assert "未保存" in response.text
    # The form keeps what was typed.
    assert f'value="{BAD_GTIN}"' in response.text
    after = count(pages_connection, "trace_product"), count(pages_connection, "ledger_entry")
    assert after == before
    english = pages_client.post(
        "/manage/products?lang=en", json=body, headers=pages_db.world.auth("manager")
    )
    assert mistake(english.text, "gtin").startswith("Wrong check digit")


def test_the_check_before_saving_names_a_gtin_already_registered(
    pages_client: TestClient, pages_db: Pages
) -> None:
    html = panel(pages_client, pages_db, "products", gtin=seasons.OIL).text
    assert mistake(html, "gtin") == f"商品条码 {seasons.OIL} 已登记过"
    short = panel(pages_client, pages_db, "products", gtin="69012").text
    assert mistake(short, "gtin") == "商品条码应为 8、12、13 或 14 位，您输入了 5 位"


def test_a_product_registered_in_the_console_is_the_apis(
    pages_client: TestClient, pages_db: Pages
) -> None:
    body = {
        "gtin": GOOD_GTIN,
        "name": "天府菜油 1 升装",
        "category": "packaged",
        "net_quantity": "1",
        "net_unit": "LTR",
    }
    response = post(pages_client, pages_db, "/manage/products", body)
    assert response.status_code == 200, response.text
    (seq,) = recorded_seq(response.text)
    assert f"已记录：账本第 {seq} 号记录。" in response.text
    product = pages_client.get(f"/api/v1/products/{GOOD_GTIN}").json()
    assert (
        product["name"] == "天府菜油 1 升装" and product["cooperative_id"] == pages_db.world.coop_a
    )
    assert product["net_quantity"] == 1.0 and product["net_unit"] == "LTR"
    entry = pages_client.get(f"/api/v1/ledger/entries/{seq}").json()
    assert entry["kind"] == "trace.product.registered"
    listed = panel(pages_client, pages_db, "products").text
    assert f'data-product="0{GOOD_GTIN}"' in listed


def test_a_packed_product_needs_its_net_content(pages_client: TestClient, pages_db: Pages) -> None:
    body = {"gtin": GOOD_GTIN, "name": "菜油", "category": "packaged", "net_unit": "LTR"}
    response = post(pages_client, pages_db, "/manage/products", body)
    assert response.status_code == 422
    assert mistake(response.text, "net_quantity") == "请填写此项"


def test_the_plausible_yield_of_a_crop_is_changed(
    pages_client: TestClient, pages_db: Pages
) -> None:
    body = {"gtin": seasons.RAPESEED, "low": "300", "high": "100"}
    refused = post(pages_client, pages_db, "/manage/products/ranges", body)
    assert refused.status_code == 422
    assert mistake(refused.text, f"high-{seasons.RAPESEED}") == "最低值不能大于最高值"
    body = {"gtin": seasons.RAPESEED, "low": "100", "high": "260"}
    assert post(pages_client, pages_db, "/manage/products/ranges", body).status_code == 200
    product = pages_client.get(f"/api/v1/products/{seasons.RAPESEED}").json()
    assert product["yield_per_mu"] == {"min": 100.0, "max": 260.0}


def edit_body(**changes: Any) -> dict[str, Any]:
    body = {
        "gtin": seasons.BOTTLE,
        "new_name": "天府菜油 4.5 升装",
        "new_category": "packaged",
        "new_net_quantity": "4.5",
        "new_net_unit": "LTR",
    }
    return {**body, **changes}


def name_facts(client: TestClient, pages: Pages, name: str) -> list[PageFact]:
    """The facts of the bottle's consumer page showing ``name``, as a browser judges them."""
    settings = pages.settings
    vkey = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin).vkey
    facts = check_page(client, html_of(client, pages.bottle), vkey)
    assert failed(facts) == [], [(f.text, f.reason) for f in failed(facts)]
    return [fact for fact in facts if fact.claims.get("/data/name") == name]


def audited(pages: Pages, connection: Connection) -> audit.AuditReport:
    with Database(connection).session() as session:
        return audit.audit(session, origin=pages.settings.ledger_origin)


@pytest.mark.parametrize("way", ["console", "api"])
def test_a_product_changed_is_shown_by_its_newest_entry(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection, way: str
) -> None:
    # The page as it was (kept by the process until an entry of a chain it shows is appended).
    assert name_facts(pages_client, pages_db, "天府菜油 5 L")
    if way == "console":
        response = post(pages_client, pages_db, "/manage/products/edit", edit_body())
        assert response.status_code == 200, response.text
        (seq,) = recorded_seq(response.text)
        assert f"已记录：账本第 {seq} 号记录。" in response.text
        assert f'<a href="/api/v1/ledger/entries/{seq}/proof">#{seq}</a>' in response.text
    else:
        response = pages_client.patch(
            f"/api/v1/products/{seasons.BOTTLE}",
            json={"name": "天府菜油 4.5 升装", "net_quantity": 4.5, "net_unit": "LTR"},
            headers=pages_db.world.auth("manager"),
        )
        assert response.status_code == 200, response.text
        seq = response.json()["ledger_seq"]
    entry = pages_client.get(f"/api/v1/ledger/entries/{seq}").json()
    assert entry["kind"] == "trace.product.changed"
    assert entry["data"]["netContent"] == {"value": 4.5, "unit": "LTR"}
    shown = name_facts(pages_client, pages_db, "天府菜油 4.5 升装")
    assert shown and {fact.index for fact in shown} == {seq}
    assert name_facts(pages_client, pages_db, "天府菜油 5 L") == []
    report = audited(pages_db, pages_connection)
    assert report.ok, report.problems
    # Saved again unchanged: nothing new on the ledger.
    again = post(pages_client, pages_db, "/manage/products/edit", edit_body())
    assert again.status_code == 200 and "没有改动，账本上未新增记录。" in again.text
    assert recorded_seq(again.text) == []


@pytest.mark.parametrize(
    ("gtin", "changes", "field", "said"),
    [
        (seasons.BOTTLE, {"new_name": " "}, "new_name", "请填写此项"),
        (seasons.BOTTLE, {"new_category": "snacks"}, "new_category", "请选择类别"),
        (seasons.BOTTLE, {"new_net_quantity": "0"}, "new_net_quantity", "须大于 0"),
        (
            seasons.BOTTLE,
            {"new_net_unit": "H87"},
            "new_net_unit",
            "按件计的产品须填写净含量（大于 0 的数量和单位）",
        ),
        (
            seasons.RAPESEED,
            {"new_name": "油菜籽", "new_category": "rapeseed"},
            "new_net_quantity",
            "只有包装产品（按件计）才有净含量",
        ),
    ],
)
def test_a_product_change_with_a_mistake_stores_nothing(
    pages_client: TestClient,
    pages_db: Pages,
    pages_connection: Connection,
    gtin: str,
    changes: dict[str, str],
    field: str,
    said: str,
) -> None:
    before = count(pages_connection, "ledger_entry")
    response = post(
        pages_client, pages_db, "/manage/products/edit", edit_body(gtin=gtin, **changes)
    )
    assert response.status_code == 422
    assert mistake(response.text, f"{field}-{gtin}") == said
    assert f'<details data-edit="{gtin}" open>' in response.text
    assert count(pages_connection, "ledger_entry") == before
    english = post(
        pages_client, pages_db, "/manage/products/edit?lang=en", edit_body(gtin=gtin, **changes)
    )
    assert english.status_code == 422
    assert mistake(english.text, f"{field}-{gtin}") not in ("", said)


def test_another_cooperatives_product_is_not_changed_from_the_console(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    before = count(pages_connection, "ledger_entry")
    with Database(pages_connection).transaction() as session:
        other = regions.get_cooperative(session=session, cooperative_id=pages_db.world.coop_b)
        products.register_product(
            session=session,
            ledger=Ledger.from_key_file(
                pages_db.settings.effective_ledger_key_path, pages_db.settings.ledger_origin
            ),
            actor=Actor.operator(),
            gtin=GOOD_GTIN,
            name=f"{other.name} 的菜籽",
            category="rapeseed",
            cooperative_id=other.id,
        )
    body = {"gtin": GOOD_GTIN, "new_name": "改名", "new_category": "rapeseed"}
    response = post(pages_client, pages_db, "/manage/products/edit", body)
    assert response.status_code == 403
    assert count(pages_connection, "ledger_entry") == before + 1


# --- harvest -----------------------------------------------------------------------------------


def harvest_body(pages: Pages, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "gtin": seasons.RAPESEED,
        "parcel": pages.parcels[:2],
        "kg": "2000",
        "lot": "RS-CONSOLE-1",
    }
    body.update(changes)
    return body


def test_a_harvest_of_two_parcels_is_the_apis_event(
    pages_client: TestClient, pages_db: Pages
) -> None:
    response = post(pages_client, pages_db, "/manage/harvest", harvest_body(pages_db))
    assert response.status_code == 200, response.text
    (seq,) = recorded_seq(response.text)
    lot = pages_client.get(f"/api/v1/lots/{seasons.RAPESEED}/RS-CONSOLE-1").json()
    assert lot["quantity"] == 2000.0
    document = pages_client.get(f"/api/v1/lots/{seasons.RAPESEED}/RS-CONSOLE-1/epcis").json()
    (event,) = document["epcisBody"]["eventList"]
    assert event["bizStep"].endswith("/harvesting")
    assert event["ilmd"]["dv:parcels"] == [f"https://dv.test/p/{d}" for d in pages_db.parcels[:2]]
    entry = pages_client.get(f"/api/v1/ledger/entries/{seq}").json()
    assert entry["kind"] == "trace.epcis_event"
    assert f"/01/{seasons.RAPESEED}/10/RS-CONSOLE-1" in response.text


@pytest.mark.parametrize(
    ("changes", "field", "said"),
    [
        ({"kg": "0"}, "kg", "须大于 0"),
        ({"kg": "50000"}, "kg", "亩产 4,252 千克不可能：请检查重量（合理范围 80–300 千克/亩）"),
        ({"kg": "abc"}, "kg", "请填写数字"),
        ({"parcel": []}, "parcel", "请至少选择一块地"),
        ({"lot": "RS 1"}, "lot", "批次号最多 20 个字符，只能用字母、数字和 - . _ /"),
        ({"gtin": seasons.OIL}, "gtin", "请选择本社的产品"),
    ],
)
def test_bad_harvests_are_refused_next_to_the_field(
    pages_client: TestClient,
    pages_db: Pages,
    pages_connection: Connection,
    changes: dict[str, Any],
    field: str,
    said: str,
) -> None:
    before = count(pages_connection, "trace_event"), count(pages_connection, "ledger_entry")
    response = post(pages_client, pages_db, "/manage/harvest", harvest_body(pages_db, **changes))
    assert response.status_code == 422
    assert mistake(response.text, field) == said
    after = count(pages_connection, "trace_event"), count(pages_connection, "ledger_entry")
    assert after == before


def test_a_parcel_not_held_that_day_is_named(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    before = count(pages_connection, "trace_event")
    body = harvest_body(pages_db, parcel=[pages_db.parcels[0], pages_db.other_parcel])
    response = post(pages_client, pages_db, "/manage/harvest", body)
    assert response.status_code == 422
    today = re.search(r'name="day" value="([\d-]+)"', response.text)
    assert today
    assert mistake(response.text, "parcel") == (
        f"地块 {pages_db.other_parcel} 在 {today.group(1)} 不由本社社员承包，也不由本社经营"
    )
    # Before the fields were contracted (September 2024), nobody held them.
    early = harvest_body(pages_db, day="2024-08-01")
    response = post(pages_client, pages_db, "/manage/harvest", early)
    assert mistake(response.text, "parcel").startswith(f"地块 {pages_db.parcels[0]} 在 2024-08-01")
    assert count(pages_connection, "trace_event") == before


def test_an_implausible_yield_is_said_at_once_and_saved_only_when_confirmed(
    pages_client: TestClient, pages_db: Pages
) -> None:
    check = panel(
        pages_client,
        pages_db,
        "harvest",
        gtin=seasons.RAPESEED,
        parcel=pages_db.parcels[:2],
        kg="5000",
    )
    assert check.status_code == 200
    assert "合计 11.76 亩，亩产 425 千克" in check.text
    assert mistake(check.text, "kg").startswith("亩产 425 千克超出合理范围 80–300 千克/亩")
    assert 'name="confirm"' in check.text
    body = harvest_body(pages_db, kg="5000")
    assert post(pages_client, pages_db, "/manage/harvest", body).status_code == 422
    body["confirm"] = "1"
    assert post(pages_client, pages_db, "/manage/harvest", body).status_code == 200


def test_a_lot_number_already_used_is_refused(pages_client: TestClient, pages_db: Pages) -> None:
    lot = pages_db.season.rapeseed_lot
    response = post(pages_client, pages_db, "/manage/harvest", harvest_body(pages_db, lot=lot))
    assert response.status_code == 422
    assert mistake(response.text, "lot") == f"批次号 {lot} 已用过（油菜籽）"


def test_every_english_word_of_the_console_has_its_chinese() -> None:
    from digital_village.web.manage_words import WORDS

    assert set(WORDS["en"]) <= set(WORDS["zh-CN"])


def test_the_village_map_offers_the_held_parcels_and_marks_the_chosen(
    pages_client: TestClient, pages_db: Pages
) -> None:
    first, second, third = pages_db.parcels
    html = panel(pages_client, pages_db, "harvest", parcel=[first], gtin="").text
    shapes = dict(
        re.findall(
            r'<path d="M[^"]+" fill-rule="evenodd" data-pick="(\d{19})"( data-chosen)?', html
        )
    )
    assert shapes == {first: " data-chosen", second: "", third: ""}
    # A parcel chosen but not held that day stays on the form, marked, and is named.
    unheld = panel(pages_client, pages_db, "harvest", parcel=[first, pages_db.other_parcel]).text
    assert f'data-parcel-unheld="{pages_db.other_parcel}"' in unheld
    assert mistake(unheld, "parcel").startswith(f"地块 {pages_db.other_parcel} 在")


def test_a_mistyped_section_is_a_page_in_the_readers_language(pages_client: TestClient) -> None:
    response = pages_client.get("/manage/harvests", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in response.text


def test_the_panels_speak_english_when_asked(pages_client: TestClient, pages_db: Pages) -> None:
    headers = pages_db.world.auth("manager")
    harvest = pages_client.get("/manage/panel/harvest?lang=en", headers=headers)
    assert harvest.headers["content-language"] == "en"
    assert "Harvest day" in harvest.text and "5.88 mu" in harvest.text
    assert "采收日期" not in harvest.text
    refused = pages_client.post("/manage/harvest?lang=en", json={"kg": "0"}, headers=headers)
    assert mistake(refused.text, "kg") == "Must be above 0"
    assert mistake(refused.text, "parcel") == "Please choose at least one parcel"
