"""What the consumer, product and parcel pages show: in Chinese by default, in English on request,
the corrected history, the map and charts, the certificate, flags — and no personal data."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

from fastapi.testclient import TestClient
from sqlalchemy import Connection, func, select

from digital_village.demo import oil_season as seasons
from digital_village.ledger.models import LedgerEntry
from digital_village.trace import builders
from digital_village.trace.models import Event
from tests.web.conftest import BASE, PERSONAL, Pages, html_of


class _Text(HTMLParser):
    """The text a reader sees (no markup, scripts or styles)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def text_of(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def is_id_number(text: str) -> bool:
    """A GB 11643 citizen identity number: a birth date and the ISO 7064 MOD 11-2 check."""
    try:
        dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    weights = [2 ** (17 - i) % 11 for i in range(17)]
    check = (12 - sum(int(d) * w for d, w in zip(text[:17], weights, strict=True)) % 11) % 11
    return text[17] == ("X" if check == 10 else str(check))


def test_the_id_number_check_knows_one() -> None:
    assert is_id_number("11010519491231002X")  # the standard's own example
    assert not is_id_number("510603101201010001")  # a household's 承包方编码


def public_pages(pages: Pages) -> list[str]:
    lot = pages.season
    return [
        pages.bottle,
        pages.bottle + "?lang=en",
        pages.bottle_lot,
        f"/01/{seasons.RAPESEED}/10/{lot.rapeseed_lot}",
        f"/01/{seasons.OIL}/10/{lot.oil_lot}?lang=en",
        f"/01/{seasons.BOTTLE}",
        f"/p/{pages.parcels[0]}",
        f"/p/{pages.parcels[0]}?lang=en",
        f"/p/{pages.other_parcel}",
        pages.bottle + "?linkType=linkset",
        pages.bottle + "?linkType=gs1:traceability",
        pages.bottle + "?linkType=gs1:epcis",
        pages.bottle + "?linkType=gs1:certificationInfo",
    ]


def test_no_public_page_shows_a_name_a_phone_or_an_id_number(
    pages_client: TestClient, pages_db: Pages
) -> None:
    for path in public_pages(pages_db):
        response = pages_client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 200, (path, response.text[:300])
        for secret in PERSONAL:
            assert secret not in response.text, (path, secret)
        # No mobile numbers and no resident ID numbers (GB 11643) in any form.
        assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", response.text), path
        assert not [n for n in re.findall(r"\d{17}[\dX]", response.text) if is_id_number(n)]
    page = html_of(pages_client, pages_db.bottle)
    assert "王**" in page  # the grower, masked as the trace graph gives it


def test_the_consumer_page_is_in_chinese_by_default(
    pages_client: TestClient, pages_db: Pages
) -> None:
    html = html_of(pages_client, pages_db.bottle)
    assert '<html lang="zh-CN">' in html
    text = text_of(html)
    for words in (
        "天府菜油 5 L",
        f"批次 {pages_db.season.bottle_lot} · 序号 0001",
        "生产者： 民安油菜专业合作社",
        "孝泉镇民安村",
        "采收 2026-05-18",
        "种植与加工记录",
        "播种",
        "施药",
        "安全间隔期（天） 14",
        "收获",
        "压榨",
        "灌装赋码",
        "检验",
        "合格",
        "生长环境",
        "土壤湿度",
        "承诺达标合格证",
        "不使用禁用农药兽药",
        "区块链存证验证",
    ):
        assert words in text, words
    assert "Harvest" not in text


def test_english_on_request_by_parameter_or_browser_language(
    pages_client: TestClient, pages_db: Pages
) -> None:
    by_parameter = html_of(pages_client, pages_db.bottle + "?lang=en")
    by_header = html_of(pages_client, pages_db.bottle, **{"Accept-Language": "en-GB,en;q=0.9"})
    for html in (by_parameter, by_header):
        assert '<html lang="en">' in html
        text = text_of(html)
        for words in (
            "How it was grown and made",
            "Sowing",
            "Pre-harvest interval (days) 14",
            "Growing conditions",
            "Soil temperature",
            "no banned pesticides or veterinary drugs",
            "Ledger verification",
        ):
            assert words in text, words
        assert "种植与加工记录" not in text
    # The page links to itself in the other language, keeping only what names the page.
    assert f'href="/page{pages_db.bottle}?lang=zh-CN"' in by_parameter
    other = html_of(pages_client, pages_db.bottle_lot + "?lang=en&linkType=gs1:pip&x=1&geo=1,2")
    assert f'href="/page{pages_db.bottle_lot}?linkType=gs1%3Apip&amp;lang=zh-CN"' in other


def test_origin_with_parcel_codes_area_and_a_map_drawn_from_the_geometry(
    pages_client: TestClient, pages_db: Pages
) -> None:
    html = html_of(pages_client, pages_db.bottle)
    for dkbm in pages_db.season.parcels:
        assert f'data-parcel="{dkbm}"' in html
        assert f'href="/p/{dkbm}"' in html
    assert pages_db.parcels[2] not in html  # registered, but not harvested into this lot
    assert "孝泉镇民安村一组" in html
    assert "11.76 亩" in html  # two 70 m × 56 m fields
    (svg,) = re.findall(r'<svg class="map".*?</svg>', html, re.S)
    assert svg.count('<path d="M') >= 2 and "00001" in svg and "00002" in svg
    assert "50 m" in svg  # the scale bar
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")  # no tiles


def test_the_timeline_is_the_corrected_history(pages_client: TestClient, pages_db: Pages) -> None:
    html = html_of(pages_client, pages_db.bottle + "?lang=en")
    steps = re.findall(r'data-step="(step_\w+)"', html)
    assert steps == [
        "step_fertilizing",
        "step_planting",
        "step_fertilizing",
        "step_irrigating",
        "step_spraying",
        "step_harvesting",
        "step_pressing",
        "step_commissioning",
        "step_inspecting",
    ]
    text = text_of(html)
    # The harvest first keyed in at ten times its weight was declared erroneous: only the
    # corrected weight is shown, marked, and the correction is listed with its reason.
    assert "油菜籽 1,940.4 kg" in text
    assert "19,404" not in text
    assert "Harvest corrected" in text
    assert "The corrected record (the corrections are listed below)" in text
    assert re.search(
        r"The Harvest record of 2026-05-18 was declared erroneous on 2026-05-18 "
        r"\(incorrect data\)",
        text,
    )
    # Spraying: the pesticide, its dose, its pre-harvest interval, and the wait before harvest.
    assert "Pesticide 吡虫啉 10% 可湿性粉剂 Dose 20 g Pre-harvest interval (days) 14" in text
    assert "Days from spraying to harvest 50 ✓" in text
    assert "In 油菜籽 1,940.4 kg Out 天府菜油 737.4 L" in text
    assert "Items 6" in text
    # Each step links to the proof of its ledger entries.
    for seq in re.findall(r"/api/v1/ledger/entries/(\d+)/proof", html):
        proof = pages_client.get(f"/api/v1/ledger/entries/{seq}/proof")
        assert proof.status_code == 200


def test_growing_conditions_are_charted_per_parcel_from_sealed_readings(
    pages_client: TestClient, pages_db: Pages
) -> None:
    html = html_of(pages_client, pages_db.bottle + "?lang=en")
    charted = re.findall(r'data-conditions="(\d{19})"', html)
    assert charted == pages_db.season.parcels
    assert len(re.findall(r'<svg class="chart"', html)) == 4
    text = text_of(html)
    assert re.search(
        r"Parcel 00001: 2025-10-08 to 2026-05-18, soil sensor readings of 22\d days sealed "
        r"into the ledger day by day; the charts are drawn from those seals",
        text,
    )
    for month in ("Nov", "Jan", "May"):
        assert f">{month}</text>" in html


def test_the_verification_panel_checks_every_fact_of_the_page(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    html = html_of(pages_client, pages_db.bottle)
    assert 'data-verify-panel data-state="checking" data-verify-facts' in html
    assert '<script type="module" src="/static/verify-panel.js"></script>' in html
    latest = pages_connection.execute(
        select(func.max(LedgerEntry.seq)).where(
            LedgerEntry.chain_key == f"lot:{seasons.BOTTLE}/{pages_db.season.bottle_lot}",
            LedgerEntry.kind == "trace.epcis_event",
        )
    ).scalar_one()
    assert f'data-fact="{latest}"' in html
    assert f'href="/api/v1/ledger/entries/{latest}/proof"' in html


def test_a_spraying_too_close_to_harvest_is_flagged_on_the_page(
    pages_client: TestClient, pages_db: Pages
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
    response = pages_client.post(
        "/api/v1/events", json=spray, headers=pages_db.world.auth("manager")
    )
    assert response.status_code == 201, response.text
    html = html_of(pages_client, pages_db.bottle)
    assert "data-flags" in html
    assert "施药后 6.1 天即采收，短于农药的安全间隔期 21 天。" in text_of(html)
    assert '<dd class="bad">6 ✗</dd>' in html
    english = text_of(html_of(pages_client, pages_db.bottle + "?lang=en"))
    assert "Harvested 6.1 days after spraying, sooner than the pesticide's pre-harvest" in english


def test_the_page_follows_new_ledger_entries(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    before = html_of(pages_client, pages_db.bottle_lot)
    packing = builders.packing(
        parent=f"{BASE}/00/169012340000000019",
        gtin=seasons.BOTTLE,
        lot=pages_db.season.bottle_lot,
        serials=pages_db.season.serials[:2],
        when=dt.datetime(2026, 6, 7, 9, tzinfo=builders.CHINA),
        base_url=BASE,
    )
    response = pages_client.post(
        "/api/v1/events", json=packing, headers=pages_db.world.auth("manager")
    )
    assert response.status_code == 201, response.text
    after = html_of(pages_client, pages_db.bottle_lot)
    assert "step_packing" not in before
    assert 'data-step="step_packing"' in after
    seq = response.json()["ledgerSeq"]
    assert f'data-fact="{seq}"' in after  # the panel now checks the newest event too
    assert pages_connection.execute(select(func.count()).select_from(Event)).scalar_one() > 0


def test_the_product_page_lists_its_lots(pages_client: TestClient, pages_db: Pages) -> None:
    html = html_of(pages_client, f"/01/{seasons.BOTTLE}")
    assert "天府菜油 5 L" in html and "民安油菜专业合作社" in html
    assert f'href="/01/{seasons.BOTTLE}/10/{pages_db.season.bottle_lot}"' in html
    english = html_of(pages_client, f"/01/{seasons.BOTTLE}?lang=en")
    assert "packaged product" in english
    assert f'href="/01/{seasons.BOTTLE}/10/{pages_db.season.bottle_lot}?lang=en"' in english


def test_pages_are_small_and_self_contained(pages_client: TestClient, pages_db: Pages) -> None:
    response = pages_client.get(pages_db.bottle, headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert int(response.headers["content-length"]) < 20_000
    html = response.text
    # Inline CSS; scripts and styles only from this site; no fonts, tiles or trackers.
    assert "<style>" in html
    sources = re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    assert all(source.startswith(BASE) for source in sources), sources
    assert "@import" not in html and "url(" not in html
