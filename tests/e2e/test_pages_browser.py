"""The consumer and parcel pages in Debian's Chromium at a phone's size, against a live server
holding a whole recorded season (demo/oil_season.py).

The consumer page must say "verified" only when the browser's own check of every fact it shows
passed, and fail visibly, at the fact, once an entry is edited in the database (more tampering:
test_facts_browser.py); a farmer signed in by an invitation link records a spraying in a few
taps and sees its ledger index.
Full-page screenshots are kept in var/test-artifacts/e2e/ (pages-*.png).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import select, update

from digital_village.app import create_app
from digital_village.db import Database
from digital_village.demo import oil_season as seasons
from digital_village.ledger.models import LedgerEntry
from digital_village.trace.models import Event
from tests.e2e.conftest import ARTIFACTS, LiveServer, watch_policy
from tests.web.conftest import PERSONAL, Pages, make_pages

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@dataclass
class LivePages:
    url: str
    pages: Pages


@pytest.fixture(scope="module")
def live_pages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePages]:
    """The app over a SQLite file with the season recorded, served on 127.0.0.1."""
    folder = tmp_path_factory.mktemp("e2e-pages")
    pages = make_pages(f"sqlite:///{folder / 'pages.db'}", folder, every_hours=6)
    app = create_app(pages.settings, database=Database(pages.engine))
    with LiveServer(app) as server:
        yield LivePages(url=server.url, pages=pages)
    pages.engine.dispose()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    """A factory of phone-sized pages in a given locale; console errors fail the test."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page(locale: str = "zh-CN", **options: Any) -> Any:
        context = browser.new_context(
            viewport=PHONE, device_scale_factor=2, locale=locale, **options
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        watch_policy(page, errors)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def keep(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"pages-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def checked(page: Any) -> dict[str, str]:
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=20_000)
    panel = page.locator("[data-verify-panel]")
    return {
        "state": panel.get_attribute("data-state") or "",
        "status": panel.locator("[data-verify-status]").inner_text(),
        "reason": panel.locator("[data-verify-reason]").inner_text(),
    }


def test_the_consumer_page_of_a_bottle_verifies_in_the_phones_own_browser(
    phone: Any, live_pages: LivePages
) -> None:
    page = phone("zh-CN")
    page.goto(live_pages.url + live_pages.pages.bottle)
    shown = checked(page)
    assert shown["state"] == "verified", shown
    assert re.match(
        r"已验证：本页 \d+ 项信息出自账本中的 \d+ 条记录，均已收录在共", shown["status"]
    )
    assert (
        page.locator('[data-fact-state="verified"]').count() == page.locator("[data-fact]").count()
    )
    assert page.locator("[data-fact-mark]").count() == 0
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("svg.map").is_visible()
    assert page.locator('[data-step="step_harvesting"]').count() == 1
    assert page.locator("svg.chart").count() == 4
    assert page.locator("[data-certificate]").is_visible()
    text = page.locator("body").inner_text()
    for secret in PERSONAL:
        assert secret not in text
    # Phone-sized: nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    keep(page, "consumer-zh-CN")
    english = phone("en-US")
    english.goto(live_pages.url + live_pages.pages.bottle)
    assert checked(english)["state"] == "verified"
    assert "How it was grown and made" in english.locator("body").inner_text()
    keep(english, "consumer-en")


def test_the_page_fails_visibly_once_the_lots_ledger_entry_is_edited(
    phone: Any, live_pages: LivePages
) -> None:
    pages = live_pages.pages
    page = phone("zh-CN")
    page.goto(live_pages.url + pages.bottle_lot)
    honest = checked(page)
    assert honest["state"] == "verified"
    inspection = page.locator('[data-step="step_inspecting"] a[data-fact]')
    seq = int(inspection.get_attribute("data-fact") or "")
    with pages.engine.begin() as connection:
        body = connection.execute(
            select(LedgerEntry.body).where(LedgerEntry.seq == seq)
        ).scalar_one()
        assert b"\xe5\x90\x88\xe6\xa0\xbc" in body  # the inspection's 合格
        forged = body.replace("合格".encode(), "优等".encode())
        connection.execute(update(LedgerEntry).where(LedgerEntry.seq == seq).values(body=forged))
    try:
        page.goto(live_pages.url + pages.bottle_lot)
        shown = checked(page)
        assert shown["state"] == "failed", shown
        assert (
            shown["status"] == "验证失败：本页有 1 项信息未能通过本机浏览器的核验，已在页面上标出"
        )
        assert f"entry is not proven at index {seq}" in shown["reason"]
        link = page.locator(f'[data-step="step_inspecting"] a[data-fact="{seq}"]')
        assert link.get_attribute("data-fact-state") == "failed"
        assert (
            page.locator('[data-step="step_inspecting"] [data-fact-mark]').inner_text() == "未验证"
        )
        keep(page, "consumer-tampered-zh-CN")
    finally:
        with pages.engine.begin() as connection:
            connection.execute(update(LedgerEntry).where(LedgerEntry.seq == seq).values(body=body))
    page.goto(live_pages.url + pages.bottle_lot)
    assert checked(page)["state"] == "verified"


def test_sharing_an_approximate_location_adds_it_to_the_scan(
    phone: Any, live_pages: LivePages
) -> None:
    page = phone(
        "zh-CN",
        permissions=["geolocation"],
        geolocation={"latitude": 31.1349, "longitude": 104.3981},
    )
    bottle = live_pages.pages.bottle.replace("/21/0001", "/21/0005")
    page.goto(live_pages.url + bottle)
    assert page.locator("[data-scans]").get_attribute("data-scans") == "1"
    with page.expect_navigation():
        page.locator("[data-geo-button]").click()
    assert "geo=31.1%2C104.4" in page.url or "geo=31.1,104.4" in page.url
    assert page.locator("[data-geo-recorded]").is_visible()
    assert page.locator("[data-scans]").get_attribute("data-scans") == "1"


def test_a_farmer_records_a_spraying_from_the_parcel_sign(
    phone: Any, live_pages: LivePages
) -> None:
    pages = live_pages.pages
    dkbm = pages.parcels[2]
    page = phone("zh-CN")
    page.goto(f"{live_pages.url}/p/{dkbm}")
    assert page.locator("[data-farmer-form]").get_attribute("data-state") == "signed-out"
    keep(page, "farmer-read-only-zh-CN")
    # The invitation link from `dv farmers invite`: the token rides after '#'.
    page.goto(f"{live_pages.url}/p/{dkbm}#token={pages.world.tokens['farmer']}")
    page.wait_for_selector('[data-farmer-form][data-state="signed-in"]', timeout=15_000)
    assert "#token" not in page.url
    assert page.evaluate("localStorage.getItem('dv-token')") == pages.world.tokens["farmer"]
    # The page says which parcels the household holds, and this is one of them.
    page.wait_for_selector('[data-farmer-form][data-holds="yes"]', timeout=15_000)
    held = page.locator("[data-held-parcel]").all_inner_texts()
    assert dkbm in held and "您家今天承包的地块" in page.locator("[data-held]").inner_text()
    page.get_by_text("施药", exact=True).click()
    page.fill('input[name="pesticide"]', "吡唑醚菌酯 25% 悬浮剂")
    page.fill('input[name="dose"]', "30")
    page.select_option('select[name="dose_unit"]', "MLT")
    page.fill('input[name="phi"]', "21")
    page.fill('input[name="note"]', "东边一半")
    page.get_by_role("button", name="记录").click()
    page.wait_for_selector('[data-farmer-form][data-state="done"]', timeout=15_000)
    result = page.locator("[data-result]").inner_text()
    seq = int(re.search(r"已记录：账本第 (\d+) 号", result).group(1))  # type: ignore[union-attr]
    # What was recorded, as the farmer typed it.
    assert "施药 · 吡唑醚菌酯 25% 悬浮剂 · 30 mL" in result
    assert page.locator("[data-result] a").get_attribute("href") == (
        f"/api/v1/ledger/entries/{seq}/proof"
    )
    assert page.locator("[data-recent] [data-step]").first.get_attribute("data-step") == (
        "step_spraying"
    )
    keep(page, "farmer-recorded-zh-CN")
    with pages.engine.connect() as connection:
        event = connection.execute(select(Event).where(Event.ledger_seq == seq)).one()
        entry = connection.execute(
            select(LedgerEntry.body).where(LedgerEntry.seq == seq)
        ).scalar_one()
    assert event.biz_step.endswith("/spraying")
    assert event.household_id == pages.world.household_a
    for value in ("吡唑醚菌酯 25% 悬浮剂", '"dv:preHarvestIntervalDays":21', "东边一半", dkbm):
        assert value.encode() in entry
    # Back on the page, the new work is the first of the recent list.
    page.reload()
    assert page.locator("[data-step]").first.get_attribute("data-step") == "step_spraying"
    # A parcel the household does not hold: said at once, and no form to fill in.
    page.goto(f"{live_pages.url}/p/{pages.other_parcel}")
    page.wait_for_selector('[data-farmer-form][data-holds="no"]', timeout=15_000)
    assert pages.other_parcel in page.locator("[data-not-held]").inner_text()
    assert "不是您家承包的" in page.locator("[data-not-held]").inner_text()
    assert not page.locator("[data-work-fields]").is_visible()
    assert dkbm in page.locator("[data-held-parcel]").all_inner_texts()
    keep(page, "farmer-not-held-zh-CN")


def test_a_manager_downloads_a_label_sheet(phone: Any, live_pages: LivePages) -> None:
    pages = live_pages.pages
    page = phone("zh-CN")
    page.goto(f"{live_pages.url}/labels")
    page.fill("[data-token-input]", pages.world.tokens["manager"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector('[data-labels-form][data-state="signed-in"]', timeout=15_000)
    page.select_option('select[name="gtin"]', seasons.BOTTLE)
    page.fill('input[name="lot"]', pages.season.bottle_lot)
    page.fill('input[name="serials"]', "0001-0030")
    with page.expect_download() as download:
        page.get_by_role("button", name="下载标签 PDF").click()
    saved = download.value.path()
    assert download.value.suggested_filename == (
        f"labels-{seasons.BOTTLE}-{pages.season.bottle_lot}.pdf"
    )
    assert len(PdfReader(saved).pages) == 2
    assert "已生成 30 张标签" in page.locator("[data-result]").inner_text()
    keep(page, "labels-downloaded-zh-CN")


def test_a_reader_types_the_labels_check_code_on_a_phone(phone: Any, live_pages: LivePages) -> None:
    from digital_village.gs1.short_code import short_code

    pages = live_pages.pages
    season = pages.season
    code = short_code(seasons.BOTTLE, season.bottle_lot, season.serials[2])
    page = phone("zh-CN")
    page.goto(f"{live_pages.url}/")
    keep(page, "landing-zh-CN")
    # As read off the label, in lower case and without the dash.
    page.fill('input[name="code"]', code.lower().replace("-", ""))
    with page.expect_navigation():
        page.get_by_role("button", name="查询").click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/01/{seasons.BOTTLE}/10/{season.bottle_lot}/21/{season.serials[2]}")
    assert season.serials[2] in page.locator("main").inner_text()
    # A code that names nothing: a clear message on the same page, and the box to try again.
    page.goto(f"{live_pages.url}/")
    page.fill('input[name="code"]', "ZZZZ-ZZZZ")
    with page.expect_navigation():
        page.get_by_role("button", name="查询").click()
    message = page.locator("[data-landing-message]").inner_text()
    assert "ZZZZ-ZZZZ" in message and "假冒" in message
    assert page.locator('input[name="code"]').input_value() == "ZZZZ-ZZZZ"
    keep(page, "landing-not-found-zh-CN")
