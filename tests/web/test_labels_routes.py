"""QR codes and label sheets over HTTP and from ``dv labels``; every code decodes to its URI."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from pypdf import PdfReader
from typer.testing import CliRunner

from digital_village.app import create_app
from digital_village.cli.main import app as dv
from digital_village.db import Database
from digital_village.demo import oil_season as seasons
from tests.web.conftest import BASE, Pages


def decoded(png: bytes) -> str:
    image = Image.open(io.BytesIO(png)).convert("L")
    (found,) = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return str(found.text)


def test_qr_codes_decode_to_the_exact_uris(pages_client: TestClient, pages_db: Pages) -> None:
    lot = pages_db.season.bottle_lot
    dkbm = pages_db.parcels[0]
    for path, uri in (
        (f"/api/v1/labels/{seasons.BOTTLE}.png", f"{BASE}/01/{seasons.BOTTLE}"),
        (f"/api/v1/labels/{seasons.BOTTLE[1:]}/{lot}.png", f"{BASE}/01/{seasons.BOTTLE}/10/{lot}"),
        (
            f"/api/v1/labels/{seasons.BOTTLE}/{lot}/0004.png?size_mm=30&dpi=600",
            f"{BASE}/01/{seasons.BOTTLE}/10/{lot}/21/0004",
        ),
        (f"/api/v1/labels/parcels/{dkbm}.png", f"{BASE}/p/{dkbm}"),
    ):
        response = pages_client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "image/png"
        assert decoded(response.content) == uri
    svg = pages_client.get(f"/api/v1/labels/{seasons.BOTTLE}/{lot}.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<?xml") and 'width="25mm"' in svg.text


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/api/v1/labels/06901234001036.png", 422, "check digit"),
        ("/api/v1/labels/{gtin}/NOPE.png", 404, "no lot"),
        ("/api/v1/labels/{gtin}/{lot}/9999.png", 404, "no serialised unit"),
        ("/api/v1/labels/{gtin}/{oil}/0001.png", 404, "is not in lot"),
        ("/api/v1/labels/{gtin}/{lot}.png?size_mm=8", 422, "print it at least"),
        ("/api/v1/labels/{gtin}/{lot}.gif", 422, "fmt"),
        ("/api/v1/labels/parcels/123.png", 422, "DKBM must be 19 digits"),
    ],
)
def test_bad_label_requests(
    pages_client: TestClient, pages_db: Pages, path: str, status: int, reason: str
) -> None:
    target = path.format(
        gtin=seasons.BOTTLE, lot=pages_db.season.bottle_lot, oil=pages_db.season.oil_lot
    )
    response = pages_client.get(target)
    assert response.status_code == status, response.text
    assert reason in response.text


def test_a_label_sheet_is_for_the_products_cooperative(
    pages_client: TestClient, pages_db: Pages
) -> None:
    path = f"/api/v1/labels/{seasons.BOTTLE}/{pages_db.season.bottle_lot}/sheet.pdf"
    world = pages_db.world
    assert pages_client.get(path).status_code == 401
    assert pages_client.get(path, headers=world.auth("farmer")).status_code == 403
    recorded = pages_client.get(path, headers=world.auth("manager"))
    assert recorded.status_code == 200, recorded.text
    assert recorded.headers["x-label-count"] == "6"
    assert len(PdfReader(io.BytesIO(recorded.content)).pages) == 1
    text = PdfReader(io.BytesIO(recorded.content)).pages[0].extract_text()
    assert "天府菜油 5 L" in text and "采收 2026-05-18" in text and "序号 0006" in text
    # Serials not commissioned yet, for a recorded lot: labels are printed first.
    fresh = pages_client.get(path + "?serials=0001-0030", headers=world.auth("admin"))
    assert fresh.status_code == 200 and fresh.headers["x-label-count"] == "30"
    assert len(PdfReader(io.BytesIO(fresh.content)).pages) == 2
    # A lot nobody recorded has no sheet.
    unknown = pages_client.get(
        f"/api/v1/labels/{seasons.BOTTLE}/B2027-01/sheet.pdf?serials=0001-0030",
        headers=world.auth("admin"),
    )
    assert unknown.status_code == 404 and "is recorded" in unknown.json()["detail"]
    bad = pages_client.get(path + "?serials=0010-0001", headers=world.auth("manager"))
    assert bad.status_code == 422 and "ends before it starts" in bad.json()["detail"]
    unnamed = pages_client.get(
        f"/api/v1/labels/{seasons.BOTTLE}/B2027-02/sheet.pdf", headers=world.auth("manager")
    )
    assert unnamed.status_code == 404 and "B2027-02" in unnamed.json()["detail"]


def test_dv_labels_prints_sheets_and_codes(
    pages_db: Pages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pages_db.settings
    monkeypatch.setenv("DV_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DV_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("DV_PUBLIC_BASE_URL", BASE)
    monkeypatch.setenv("DV_LEDGER_ORIGIN", settings.ledger_origin)
    runner = CliRunner()
    lot = pages_db.season.bottle_lot
    sheet = tmp_path / "labels.pdf"
    result = runner.invoke(dv, ["labels", seasons.BOTTLE, lot, "--out", str(sheet), "--count", "4"])
    assert result.exit_code == 0, result.output
    assert "wrote 4 labels of lot B2026-01 (0001…0004) on 1 A4 sheet(s)" in result.output
    assert PdfReader(sheet).pages[0].extract_text().count("查询码") == 4
    code = tmp_path / "bottle.png"
    result = runner.invoke(dv, ["labels", seasons.BOTTLE, "--serial", "0002", "--out", str(code)])
    assert result.exit_code == 0, result.output
    assert decoded(code.read_bytes()) == f"{BASE}/01/{seasons.BOTTLE}/10/{lot}/21/0002"
    result = runner.invoke(dv, ["labels", seasons.BOTTLE, "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code == 2 and "a label sheet is for a lot" in result.output
    result = runner.invoke(dv, ["labels", seasons.BOTTLE, lot, "--out", str(tmp_path / "x.gif")])
    assert result.exit_code == 2 and "--out must end in .pdf, .png or .svg" in result.output


def test_dv_farmers_invite_prints_a_sign_in_link(
    pages_db: Pages, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pages_db.settings
    monkeypatch.setenv("DV_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DV_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("DV_PUBLIC_BASE_URL", BASE)
    result = CliRunner().invoke(dv, ["farmers", "invite", str(pages_db.world.household_a)])
    assert result.exit_code == 0, result.output
    link = next(line for line in result.output.splitlines() if "#token=" in line)
    assert link.startswith(f"{BASE}/p/{pages_db.parcels[0]}#token=dv_")
    assert "王**" in result.output and "王建国" not in result.output
    token = link.split("#token=")[1]
    # The command committed the token: a new app on the database (outside this test's
    # transaction) accepts it.
    app = create_app(settings, database=Database(pages_db.engine))
    with TestClient(app, base_url=BASE) as client:
        me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["role"] == "farmer"


def test_the_managers_label_page(pages_client: TestClient) -> None:
    html = pages_client.get("/labels", headers={"Accept": "text/html"}).text
    assert '<html lang="zh-CN">' in html and "打印标签" in html
    assert f'<option value="{seasons.BOTTLE}">天府菜油 5 L · {seasons.BOTTLE}</option>' in html
    assert 'data-labels-form data-state="signed-out"' in html
    assert '<script type="module" src="/static/labels.js"></script>' in html
    english = pages_client.get("/labels?lang=en").text
    assert "Print labels" in english and "Download the label PDF" in english
