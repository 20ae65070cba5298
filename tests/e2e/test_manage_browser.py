"""A whole season in the managers' console, in Debian's Chromium, on a phone and on a desktop.

Against a live server holding the recorded season of the page tests: cooperative A's manager
signs in with its token and, in the console only, registers a product (a wrong check digit is
pointed out first), harvests two parcels, presses the seed, bottles 24 serialised pieces in cases,
issues the 承诺达标合格证 and downloads the label sheet; then a serial's consumer page shows the
harvest, the pressing, the bottling and the certificate, and verifies in the browser.
Full-page screenshots are kept in var/test-artifacts/e2e/ (manage-*.png).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from digital_village.app import create_app
from digital_village.db import Database
from digital_village.demo import oil_season as seasons
from digital_village.gs1.keys import gtin_check_digit
from tests.e2e.conftest import ARTIFACTS, LiveServer, watch_policy
from tests.web.conftest import PERSONAL, Pages, make_pages

pytestmark = pytest.mark.browser

VIEWPORTS = {"phone": {"width": 360, "height": 740}, "desktop": {"width": 1280, "height": 860}}
LITRE_GTIN = "690123400105" + gtin_check_digit("690123400105")
WRONG_GTIN = LITRE_GTIN[:-1] + str((int(LITRE_GTIN[-1]) + 3) % 10)
RENAMED = "天府头道菜油 1 升"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[tuple[str, Pages]]:
    """The app over a SQLite file with the season recorded, served on 127.0.0.1."""
    pages = make_pages(f"sqlite:///{tmp_path / 'manage.db'}", tmp_path, every_hours=24)
    app = create_app(pages.settings, database=Database(pages.engine))
    with LiveServer(app) as server:
        yield server.url, pages
    pages.engine.dispose()


@pytest.fixture(params=list(VIEWPORTS))
def screen(request: pytest.FixtureRequest, browser: Any) -> Iterator[tuple[str, Any]]:
    """A page at the viewport's size, in zh-CN; script errors and refused assets fail the test."""
    name = request.param
    context = browser.new_context(
        viewport=VIEWPORTS[name], device_scale_factor=2, locale="zh-CN", accept_downloads=True
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    watch_policy(page, errors)
    outside: list[str] = []
    page.on(
        "request",
        lambda r: (
            outside.append(r.url)
            if not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            else None
        ),
    )
    yield name, page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
    assert not outside, f"requests to other hosts: {outside}"


def keep(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"manage-{name}.png"), full_page=True)


def open_section(page: Any, url: str, section: str) -> None:
    page.goto(f"{url}/manage/{section}")
    page.wait_for_selector(f'[data-manage-panel][data-loaded="{section}"] h2', timeout=15_000)


def fits(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def save(page: Any, form: str) -> str:
    """Submit a panel's form and wait for what it recorded; the answer's text."""
    page.locator(f'form[data-form="{form}"] button[type="submit"]').click()
    done = page.wait_for_selector("[data-done]", timeout=20_000)
    return str(done.inner_text())


def test_a_season_in_the_console(screen: tuple[str, Any], live: tuple[str, Pages]) -> None:
    name, page = screen
    url, pages = live
    width = VIEWPORTS[name]["width"]

    page.goto(f"{url}/manage")
    page.fill("[data-token-input]", pages.world.tokens["manager"])
    page.get_by_role("button", name="登录").click()
    page.wait_for_selector('[data-manage-panel][data-loaded="products"] [data-products]')
    assert "民安油菜专业合作社" in page.locator("[data-cooperative]").inner_text()

    # Products: the check digit is shown as it is typed; a wrong one is refused at the field.
    page.fill('form[data-form="product"] input[name="gtin"]', WRONG_GTIN)
    assert page.locator("[data-gtin-check]").inner_text() == f"校验位应为 {LITRE_GTIN[-1]}"
    page.fill('input[name="name"]', "天府菜油 1 升装")
    page.select_option('select[name="category"]', "packaged")
    page.fill('input[name="net_quantity"]', "1")
    page.select_option('select[name="net_unit"]', "LTR")
    page.locator('form[data-form="product"] button[type="submit"]').click()
    error = page.wait_for_selector('[data-error-for="gtin"]')
    assert error.inner_text().startswith("校验位错误")
    keep(page, f"{name}-product-mistake")
    page.fill('form[data-form="product"] input[name="gtin"]', LITRE_GTIN)
    assert page.locator("[data-gtin-check]").inner_text() == f"校验位 {LITRE_GTIN[-1]} 正确"
    assert re.search(r"已记录：账本第 \d+ 号记录", save(page, "product"))
    assert page.locator(f'[data-product="0{LITRE_GTIN}"]').count() == 1
    fits(page, width)
    keep(page, f"{name}-products")
    # Its name changed in the console: a new ledger entry, which the consumer page follows.
    page.locator(f'[data-edit="0{LITRE_GTIN}"] summary').click()
    page.fill(f'form[data-form="edit-0{LITRE_GTIN}"] input[name="new_name"]', RENAMED)
    page.locator(f'form[data-form="edit-0{LITRE_GTIN}"] button[type="submit"]').click()
    page.wait_for_selector(f'[data-product="0{LITRE_GTIN}"]:has-text("{RENAMED}")')
    assert re.search(r"账本第 \d+ 号记录", page.locator("[data-done]").inner_text())
    keep(page, f"{name}-product-renamed")

    # Harvest two parcels: the yield per 亩 is shown before saving.
    open_section(page, url, "harvest")
    page.select_option('select[name="gtin"]', seasons.RAPESEED)
    # One parcel tapped on the village map, the other ticked in the list.
    page.locator(f'[data-pick="{pages.parcels[0]}"]').click()
    assert page.locator(f'input[name="parcel"][value="{pages.parcels[0]}"]').is_checked()
    assert page.locator(f'[data-pick="{pages.parcels[0]}"][data-chosen]').count() == 1
    page.check(f'input[name="parcel"][value="{pages.parcels[1]}"]')
    page.fill('input[name="kg"]', "2000")
    page.fill('input[name="lot"]', "RS-E2E")
    page.wait_for_selector("[data-yield]")
    assert "合计 11.76 亩，亩产 170 千克" in page.locator("[data-yield]").inner_text()
    fits(page, width)
    keep(page, f"{name}-harvest-check")
    assert "RS-E2E" in save(page, "harvest")
    keep(page, f"{name}-harvest-done")

    # Press: the mass balance before saving.
    open_section(page, url, "processing")
    page.select_option('select[name="in_lot_1"]', f"{seasons.RAPESEED} RS-E2E")
    page.fill('input[name="in_amount_1"]', "800")
    page.select_option('select[name="out_gtin"]', seasons.OIL)
    page.fill('input[name="out_amount"]', "300")
    page.fill('input[name="lot"]', "OIL-E2E")
    page.wait_for_selector("[data-balance]")
    assert "出品率 0.375" in page.locator("[data-balance]").inner_text()
    keep(page, f"{name}-processing-check")
    save(page, "processing")

    # Pack 24 serialised litres in cases of 6.
    open_section(page, url, "packing")
    page.select_option('select[name="source"]', f"{seasons.OIL} OIL-E2E")
    page.select_option('select[name="gtin"]', f"0{LITRE_GTIN}")
    page.fill('input[name="count"]', "24")
    page.fill('input[name="case_size"]', "6")
    page.fill('input[name="lot"]', "L-E2E")
    assert "共 24 件；4 箱" in save(page, "packing")
    fits(page, width)
    keep(page, f"{name}-packing-done")

    # The certificate, then the label sheet of the 24 serials.
    open_section(page, url, "certificates")
    page.select_option('select[name="lot"]', f"0{LITRE_GTIN} L-E2E")
    page.fill('input[name="contact"]', "0838-6200000")
    page.check('input[name="basis"][value="self_testing"]')
    number = re.search(r"合格证编号 ([\d-]+)", save(page, "certificate"))
    assert number
    with page.expect_download() as download:
        page.locator(f'[data-certified-lot="0{LITRE_GTIN} L-E2E"] a[data-download]').click()
    sheet = PdfReader(download.value.path())
    assert len(sheet.pages) == 1
    assert "L-E2E" in sheet.pages[0].extract_text()
    fits(page, width)
    keep(page, f"{name}-certificates")

    # A member's invitation: the sign-in link as a QR code to show the farmer.
    open_section(page, url, "members")
    assert "王**" in page.locator("[data-members]").inner_text()
    page.locator('[data-member] form[data-post="/manage/invitations"] button').first.click()
    page.wait_for_selector("[data-invite-qr]", timeout=20_000)
    assert page.locator("[data-invite-qr]").is_visible()
    assert "#token=dv_" in page.locator("[data-invite-link]").inner_text()
    fits(page, width)
    keep(page, f"{name}-invitation")

    # A serial's consumer page shows it all, and verifies in this browser.
    page.goto(f"{url}/01/0{LITRE_GTIN}/10/L-E2E/21/0001")
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=30_000)
    assert page.locator("[data-verify-panel]").get_attribute("data-state") == "verified"
    for step in ("step_harvesting", "step_pressing", "step_commissioning"):
        assert page.locator(f'[data-step="{step}"]').count() >= 1, step
    body = page.locator("body").inner_text()
    assert RENAMED in body and "天府菜油 1 升装" not in body and number.group(1) in body
    for secret in PERSONAL:
        assert secret not in body
    fits(page, width)
    keep(page, f"{name}-consumer")
