"""An insider's edits, in Debian's Chromium: the page says "not verified" at the fact.

Each test gets a fresh copy of a recorded season (SQLite) and a fresh server, edits the
database behind the application's back as an insider could — a certificate's origin, a
product's name, a lot's size, a parcel's land use or area, a removed entry, the newest
checkpoints removed so that an old one is served as current — and then opens the bottle's page
in a phone-sized browser. The page's own script must mark the fact that changed as not
verified, leave the others verified, and never say "verified" for the page. Screenshots are
kept in var/test-artifacts/e2e/ (facts-*.png).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from digital_village import web
from digital_village.app import create_app
from digital_village.db import Database, make_engine
from digital_village.demo import oil_season as seasons
from digital_village.web import i18n
from tests.e2e.conftest import ARTIFACTS, Live, LiveServer
from tests.web.conftest import Pages, make_pages

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@dataclass
class Fresh:
    url: str
    pages: Pages
    database: Path

    def sql(self, statement: str, *params: Any) -> None:
        """Plain SQL on the file, as an insider with a database shell would (no foreign keys)."""
        with sqlite3.connect(self.database) as connection:
            connection.execute(statement, params)


@pytest.fixture(scope="module")
def season_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Pages]:
    """A recorded season in a SQLite file, made once and copied for each test."""
    folder = tmp_path_factory.mktemp("e2e-facts")
    pages = make_pages(f"sqlite:///{folder / 'season.db'}", folder, every_hours=12)
    pages.engine.dispose()
    return folder / "season.db", pages


@pytest.fixture
def fresh(season_file: tuple[Path, Pages], tmp_path: Path) -> Iterator[Fresh]:
    template, pages = season_file
    database = tmp_path / "season.db"
    with sqlite3.connect(template) as source, sqlite3.connect(database) as target:
        source.backup(target)
    url = f"sqlite:///{database}"
    engine = make_engine(url)
    settings = pages.settings.model_copy(update={"database_url": url})
    app = create_app(settings, database=Database(engine))
    copy = Pages(engine, settings, pages.world, pages.season, pages.parcels, pages.other_parcel)
    with LiveServer(app) as server:
        yield Fresh(server.url, copy, database)
    engine.dispose()


@pytest.fixture
def phone(browser: Any) -> Iterator[Callable[[], Any]]:
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page() -> Any:
        context = browser.new_context(viewport=PHONE, device_scale_factor=2, locale="zh-CN")
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def checked(page: Any, url: str) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=30_000)
    panel = page.locator("[data-verify-panel]")
    failed = page.locator('[data-fact-state="failed"]')
    return {
        "state": panel.get_attribute("data-state"),
        "status": panel.locator("[data-verify-status]").inner_text(),
        "reason": panel.locator("[data-verify-reason]").inner_text(),
        "failed": [failed.nth(i).inner_text() for i in range(failed.count())],
        "marks": page.locator("[data-fact-mark]").all_inner_texts(),
        "verified": page.locator('[data-fact-state="verified"]').count(),
    }


def keep(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"facts-{name}.png"), full_page=True)


@pytest.mark.parametrize(
    ("name", "edit", "shown", "pointer"),
    [
        (
            "certificate-origin",
            "UPDATE trace_certificate SET origin = '黑龙江五常'",
            "黑龙江五常",
            "/data/origin",
        ),
        (
            "product-name",
            f"UPDATE trace_product SET name = '五常大米' WHERE gtin = '{seasons.BOTTLE}'",
            "五常大米",
            "/data/name",
        ),
        (
            "lot-quantity",
            f"UPDATE trace_lot SET produced = 600 WHERE gtin = '{seasons.BOTTLE}'",
            "600 瓶",
            "/produced",
        ),
        (
            "land-use",
            "UPDATE parcel SET land_use = '0101' WHERE dkbm = ?",
            "水田",
            "/data/land_use",
        ),
        ("area", "UPDATE parcel SET area_mu = 9.5 WHERE dkbm = ?", "9.50 亩", "/data/area_mu"),
    ],
)
def test_an_edited_row_is_not_verified_where_the_page_shows_it(
    phone: Callable[[], Any], fresh: Fresh, name: str, edit: str, shown: str, pointer: str
) -> None:
    params = (fresh.pages.season.parcels[0],) if "?" in edit else ()
    fresh.sql(edit, *params)
    page = phone()
    result = checked(page, fresh.url + fresh.pages.bottle)
    assert result["state"] == "failed", result
    assert result["status"].startswith("验证失败：本页有")
    assert result["failed"] and set(result["failed"]) == {shown}, result
    assert set(result["marks"]) == {"未验证"}
    assert pointer in result["reason"] and "the page shows" in result["reason"]
    assert result["verified"] > 30  # everything else still stands
    keep(page, name)


def test_a_removed_entry_fails_the_facts_it_recorded(
    phone: Callable[[], Any], fresh: Fresh
) -> None:
    page = phone()
    honest = checked(page, fresh.url + fresh.pages.bottle)
    assert honest["state"] == "verified", honest
    origin = page.locator("[data-origin]")
    seq = int(origin.get_attribute("data-fact") or "")
    fresh.sql("DELETE FROM ledger_entry WHERE seq = ?", seq)
    result = checked(page, fresh.url + fresh.pages.bottle)
    assert result["state"] == "failed", result
    assert f"the log has no entry {seq}" in result["reason"]
    assert "旌阳区孝泉镇民安村" in result["failed"]  # the certificate's fields
    keep(page, "removed-entry")


def test_an_old_checkpoint_served_as_current_is_caught(
    phone: Callable[[], Any], fresh: Fresh
) -> None:
    page = phone()
    honest = checked(page, fresh.url + fresh.pages.bottle)
    assert honest["state"] == "verified"
    # The newest checkpoints removed: the server now serves an older one as current.
    with sqlite3.connect(fresh.database) as connection:
        (size,) = connection.execute("SELECT max(size) FROM ledger_checkpoint").fetchone()
        connection.execute("DELETE FROM ledger_checkpoint WHERE size > ?", (size - 3,))
    # A browser that verified the newer checkpoint before refuses the older one at once.
    again = checked(page, fresh.url + fresh.pages.bottle)
    assert again["state"] == "failed", again
    assert "older than one this browser verified before" in again["reason"]
    # A browser that never saw it waits for a checkpoint that covers the whole log, then says
    # the page is not verified: whatever came after the old checkpoint would be hidden.
    first_look = phone()
    result = checked(first_look, fresh.url + fresh.pages.bottle)
    assert result["state"] == "failed", result
    assert result["status"].startswith("验证失败：服务器提供的检查点不是最新的")
    assert "an old checkpoint is being served" in result["reason"]
    keep(first_look, "old-checkpoint")


def test_entries_a_checkpoint_covers_a_moment_later_are_verified(
    phone: Callable[[], Any], fresh: Fresh
) -> None:
    with sqlite3.connect(fresh.database) as connection:
        (size,) = connection.execute("SELECT max(size) FROM ledger_checkpoint").fetchone()
        newest = connection.execute(
            "SELECT size, root_hash, note, key_id, created_at FROM ledger_checkpoint"
            " WHERE size = ?",
            (size,),
        ).fetchone()
        connection.execute("DELETE FROM ledger_checkpoint WHERE size = ?", (size,))
    page = phone()
    page.goto(fresh.url + fresh.pages.bottle)
    page.wait_for_selector('[data-verify-panel] [data-verify-status]:text("正在等待")')
    # The checkpoint is published while the page waits for it.
    with sqlite3.connect(fresh.database) as connection:
        connection.execute(
            "INSERT INTO ledger_checkpoint (size, root_hash, note, key_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            newest,
        )
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=30_000)
    assert page.locator("[data-verify-panel]").get_attribute("data-state") == "verified"


def facts_page(live: Live, page: Any, facts_html: str) -> dict[str, Any]:
    """A page of the live server's origin showing ``facts_html`` and the facts panel."""
    panel = web.templates().get_template("_verify_panel.html")
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"></head><body>'
        f"{facts_html}{panel.render(t=i18n.messages('en'), lang='en')}</body></html>"
    )
    page.route(
        f"{live.url}/test-facts",
        lambda route: route.fulfill(body=html, content_type="text/html; charset=utf-8"),
    )
    return checked(page, f"{live.url}/test-facts")


def test_claims_are_compared_with_the_proven_entries(phone: Callable[[], Any], live: Live) -> None:
    good = facts_page(
        live,
        phone(),
        '<p><span data-fact="1" data-fact-claims=\'{"/data/n":1,"/data/lot":"RS2026-001"}\'>'
        'one</span> <span data-fact="2 3 4">three</span></p>',
    )
    assert good["state"] == "verified", good
    assert good["status"].startswith("verified — all 2 facts on this page come from 4 ledger")
    bad = facts_page(
        live, phone(), '<p><span data-fact="3" data-fact-claims=\'{"/data/n":99}\'>n</span></p>'
    )
    assert bad["state"] == "failed" and bad["failed"] == ["n"]
    assert "the page shows 99 but entry 3 records 3 at /data/n" in bad["reason"]
    assert bad["marks"] == ["not verified"]


def test_a_fact_the_ledger_did_not_carry_makes_the_page_partly_verified(
    phone: Callable[[], Any], live: Live
) -> None:
    result = facts_page(
        live,
        phone(),
        '<span data-fact="1">one</span> <span data-fact="2" data-fact-unrecorded>old</span>',
    )
    assert result["state"] == "partial", result
    assert result["status"] == (
        "partly verified: 1 facts verified; 1 were recorded before the ledger carried such "
        "facts and cannot be checked (marked on the page)"
    )
    assert result["marks"] == ["cannot be checked"] and result["failed"] == []


def test_a_fact_resting_on_an_entry_never_covered_fails_after_waiting(
    phone: Callable[[], Any], live: Live
) -> None:
    result = facts_page(live, phone(), '<span data-fact="1 999">chart</span>')
    assert result["state"] == "failed", result
    assert "no checkpoint covers entry 999 yet" in result["reason"]
    assert result["failed"] == ["chart"]
