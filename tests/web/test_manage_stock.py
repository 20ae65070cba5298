"""The console's processing, packing, certificates, labels, members and devices.

Against the recorded season of the page tests: a harvest made in the console is pressed, its oil
bottled into 24 serialised 5 L bottles in cases of 6, certified, and its label sheet printed.
Each mistake is said in Chinese next to its field, and nothing is stored.
"""

from __future__ import annotations

import base64
import io
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import Connection, text

from digital_village.demo import oil_season as seasons
from tests.web.conftest import PERSONAL, Pages
from tests.web.test_manage import count, harvest_body, mistake, panel, post, recorded_seq

SEED = f"{seasons.RAPESEED} RS-CONSOLE-1"


def harvested(client: TestClient, pages: Pages) -> None:
    response = post(client, pages, "/manage/harvest", harvest_body(pages))
    assert response.status_code == 200, response.text


def pressing(**changes: Any) -> dict[str, Any]:
    body = {
        "step": "pressing",
        "in_lot_1": SEED,
        "in_amount_1": "800",
        "out_gtin": seasons.OIL,
        "out_amount": "300",
        "lot": "OIL-CONSOLE-1",
    }
    body.update(changes)
    return body


def pressed(client: TestClient, pages: Pages) -> None:
    harvested(client, pages)
    response = post(client, pages, "/manage/processing", pressing())
    assert response.status_code == 200, response.text


def bottling(**changes: Any) -> dict[str, Any]:
    body = {
        "source": f"{seasons.OIL} OIL-CONSOLE-1",
        "gtin": seasons.BOTTLE,
        "count": "24",
        "first_serial": "1001",
        "case_size": "6",
        "lot": "B-CONSOLE-1",
    }
    body.update(changes)
    return body


def test_pressing_shows_its_mass_balance_before_saving(
    pages_client: TestClient, pages_db: Pages
) -> None:
    harvested(pages_client, pages_db)
    check = panel(pages_client, pages_db, "processing", **pressing())
    assert check.status_code == 200
    shown = re.search(r"data-balance>([^<]+)<", check.text)
    assert shown and shown.group(1).startswith("物料平衡：投入 800 千克，产出 300 升，出品率 0.375")
    assert "data-error-for" not in check.text
    response = post(pages_client, pages_db, "/manage/processing", pressing())
    assert response.status_code == 200, response.text
    (seq,) = recorded_seq(response.text)
    oil = pages_client.get(f"/api/v1/lots/{seasons.OIL}/OIL-CONSOLE-1").json()
    assert oil["quantity"] == 300.0 and oil["unit"] == "LTR"
    seed = pages_client.get(f"/api/v1/lots/{seasons.RAPESEED}/RS-CONSOLE-1").json()
    assert seed["remaining"] == 1200.0
    assert pages_client.get(f"/api/v1/ledger/entries/{seq}").json()["kind"] == "trace.epcis_event"


@pytest.mark.parametrize(
    ("changes", "field", "said"),
    [
        ({"out_amount": "900"}, "out_amount", "产出 900 多于投入 800"),
        ({"in_amount_1": "2500"}, "in_amount_1", "该批次只剩 2,000 千克"),
        ({"in_lot_1": "06901234001010 NOPE"}, "in_lot_1", "请选择本社的批次"),
        ({"out_amount": "0"}, "out_amount", "须大于 0"),
        ({"lot": "RS-CONSOLE-1", "out_gtin": seasons.RAPESEED}, "lot", None),
        ({"out_amount": "100"}, "out_amount", None),
    ],
)
def test_bad_processing_is_refused_next_to_the_field(
    pages_client: TestClient,
    pages_db: Pages,
    pages_connection: Connection,
    changes: dict[str, Any],
    field: str,
    said: str | None,
) -> None:
    harvested(pages_client, pages_db)
    before = count(pages_connection, "trace_event")
    response = post(pages_client, pages_db, "/manage/processing", pressing(**changes))
    assert response.status_code == 422
    text = mistake(response.text, field)
    if said is not None:
        assert text == said
    assert count(pages_connection, "trace_event") == before


def test_an_implausible_output_is_saved_once_confirmed(
    pages_client: TestClient, pages_db: Pages
) -> None:
    harvested(pages_client, pages_db)
    refused = post(pages_client, pages_db, "/manage/processing", pressing(out_amount="100"))
    assert mistake(refused.text, "out_amount").startswith("出品率 0.125 超出合理范围 0.28–0.48")
    assert 'name="confirm"' in refused.text
    body = pressing(out_amount="100", confirm="1")
    assert post(pages_client, pages_db, "/manage/processing", body).status_code == 200


def test_24_bottles_are_packed_in_cases_certified_and_printed(
    pages_client: TestClient, pages_db: Pages
) -> None:
    pressed(pages_client, pages_db)
    check = panel(pages_client, pages_db, "packing", **bottling())
    assert "共用 120 升，批次剩余 300" in check.text
    response = post(pages_client, pages_db, "/manage/packing", bottling())
    assert response.status_code == 200, response.text
    seqs = recorded_seq(response.text)
    assert len(seqs) == 5  # the bottling, and four cases of six
    assert "序列号 1001–1024，共 24 件；4 箱" in response.text
    lot = pages_client.get(f"/api/v1/lots/{seasons.BOTTLE}/B-CONSOLE-1").json()
    assert lot["items"] == 24
    oil = pages_client.get(f"/api/v1/lots/{seasons.OIL}/OIL-CONSOLE-1").json()
    assert oil["remaining"] == 180.0
    document = pages_client.get(f"/api/v1/lots/{seasons.BOTTLE}/B-CONSOLE-1/epcis").json()
    cases = [e for e in document["epcisBody"]["eventList"] if e["type"] == "AggregationEvent"]
    assert [len(case["childEPCs"]) for case in cases] == [6, 6, 6, 6]
    assert len({case["parentID"] for case in cases}) == 4
    assert all(re.search(r"/00/\d{18}$", case["parentID"]) for case in cases)

    certificates = panel(pages_client, pages_db, "certificates").text
    assert "下载标签 PDF（24 个序列号）" in certificates
    body = {"lot": f"{seasons.BOTTLE} B-CONSOLE-1", "contact": "", "basis": []}
    refused = post(pages_client, pages_db, "/manage/certificates", body)
    assert refused.status_code == 422
    assert mistake(refused.text, "contact") == "请填写开具人的联系电话"
    assert mistake(refused.text, "basis") == "请至少选择一项承诺依据"
    body = {"lot": body["lot"], "contact": "0838-6200001", "basis": ["self_testing"]}
    issued = post(pages_client, pages_db, "/manage/certificates", body)
    assert issued.status_code == 200, issued.text
    number = re.search(r"合格证编号 ([\d-]+)", issued.text)
    assert number
    (seq,) = recorded_seq(issued.text)
    entry = pages_client.get(f"/api/v1/ledger/entries/{seq}").json()
    assert entry["kind"] == "trace.certificate.issued"
    assert lot["gtin"] in pages_client.get(f"/api/v1/certificates/{number.group(1)}").text

    sheet_link = re.search(r'href="(/api/v1/labels/[^"]+/sheet\.pdf)"', issued.text)
    assert sheet_link
    sheet = pages_client.get(sheet_link.group(1), headers=pages_db.world.auth("manager"))
    assert sheet.status_code == 200 and sheet.headers["X-Label-Count"] == "24"
    assert len(PdfReader(io.BytesIO(sheet.content)).pages) == 1


def test_packing_refuses_serials_already_used_and_more_than_the_lot(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    pressed(pages_client, pages_db)
    before = count(pages_connection, "trace_unit")
    taken = post(pages_client, pages_db, "/manage/packing", bottling(first_serial="0001"))
    assert taken.status_code == 422
    assert mistake(taken.text, "first_serial") == "序列号 0001 已用过"
    too_many = post(pages_client, pages_db, "/manage/packing", bottling(count="61"))
    assert mistake(too_many.text, "count") == "该批次只剩 300 升"
    none = post(pages_client, pages_db, "/manage/packing", bottling(count="0"))
    assert mistake(none.text, "count") == "件数须为 1 到 5000 之间的整数"
    assert count(pages_connection, "trace_unit") == before


def post_json(client: TestClient, pages: Pages, path: str, body: dict[str, Any]) -> Any:
    made = client.post(path, json=body, headers=pages.world.auth("manager"))
    assert made.status_code == 201, made.text
    return made.json()


def test_an_invitation_is_a_farmers_sign_in_link_as_a_qr_code(
    pages_client: TestClient, pages_db: Pages
) -> None:
    members = panel(pages_client, pages_db, "members").text
    assert all(dkbm in members for dkbm in pages_db.parcels)
    body = {"household": str(pages_db.world.household_a)}
    response = post(pages_client, pages_db, "/manage/invitations", body)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    image = re.search(r'src="data:image/svg\+xml;base64,([^"]+)" alt="([^"]+)"', response.text)
    assert image and image.group(2) == "王** 的登录二维码"
    assert base64.b64decode(image.group(1)).startswith(b"<?xml")
    link = re.search(r"data-invite-link>([^<]+)<", response.text)
    assert link
    parcel, token = link.group(1).split("#token=")
    assert parcel == f"https://dv.test/p/{pages_db.parcels[0]}"
    me = pages_client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["role"] == "farmer"
    for secret in PERSONAL:
        assert secret not in response.text
    other = post(pages_client, pages_db, "/manage/invitations", {"household": "999"})
    assert other.status_code == 422
    assert mistake(other.text, "household") == "请选择本社的社员"


def test_devices_show_their_latest_readings_and_open_alerts(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    html = panel(pages_client, pages_db, "devices").text
    assert "soil probe A" in html
    # The season's probes report soil moisture and temperature, the newest in China time.
    assert re.search(
        r"土壤含水量 <b>[\d.]+ %</b> <span class=\"seq\">\d{4}-\d\d-\d\d \d\d:\d\d", html
    )
    assert "没有未处理的告警。" in html
    rule = post_json(
        pages_client,
        pages_db,
        "/api/v1/alert-rules",
        {
            "parcel": pages_db.parcels[0],
            "metric": "soil_moisture",
            "below": 15,
        },
    )
    for acknowledged in (None, "2026-06-01 00:00:00"):
        pages_connection.execute(
            text(
                "INSERT INTO alert (rule_id, cooperative_id, device_id, parcel_dkbm, metric_id, "
                "time_ms, value, created_at, acknowledged_at) VALUES (:rule, :coop, :device, "
                ":dkbm, 1, :time, 9.5, '2026-05-30 00:00:00', :ack)"
            ),
            {
                "rule": rule["id"],
                "coop": pages_db.world.coop_a,
                "device": pages_db.world.device_a,
                "dkbm": pages_db.parcels[0],
                "time": 1780000000000 + (0 if acknowledged is None else 1),
                "ack": acknowledged,
            },
        )
    alerts = re.findall(
        r"<tr data-alert=\"\d+\"><td>([^<]+)</td><td class=\"code\">(\d+)</td>"
        r"<td>([^<]+)</td><td>([^<]+)</td>",
        panel(pages_client, pages_db, "devices").text,
    )
    assert alerts == [("2026-05-29 04:26", pages_db.parcels[0], "土壤含水量", "9.5 %")]
    english = pages_client.get(
        "/manage/panel/devices?lang=en", headers=pages_db.world.auth("manager")
    ).text
    assert "Open alerts" in english
