"""The page's verifier on a log that its publisher covers a moment after each append."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from digital_village.db import Database
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.publisher import publish_now
from tests.e2e.test_facts_browser import Fresh, fresh, phone, season_file  # noqa: F401 (fixtures)


def test_a_busy_log_whose_checkpoint_keeps_up_is_verified(
    phone: Callable[[], Any],  # noqa: F811
    fresh: Fresh,  # noqa: F811
) -> None:
    """On a busy log the newest checkpoint is always a little behind the entries stored; it must
    reach what the log stored at the page's first look, not the log's size at every look."""
    settings = fresh.pages.settings
    database = Database(fresh.pages.engine)
    ledger = Ledger.from_key_file(
        settings.effective_ledger_key_path, settings.ledger_origin, sign_on_append=False
    )

    def append(count: int) -> None:
        with database.transaction() as session:
            ledger.append_many(session, [EntryIn("test.busy", {"n": n}) for n in range(count)])

    append(3)
    page = phone()
    page.goto(fresh.url + fresh.pages.bottle)
    page.wait_for_selector('[data-verify-panel] [data-verify-status]:text("正在等待")')
    # The publisher covers what the page saw stored; meanwhile the log has moved on again.
    publish_now(database, ledger)
    append(2)
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=30_000)
    assert page.locator("[data-verify-panel]").get_attribute("data-state") == "verified"
