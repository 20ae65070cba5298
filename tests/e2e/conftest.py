"""Browser tests: the real app under uvicorn on 127.0.0.1, driven by Debian's Chromium.

Playwright is used only as a driver: it launches the system ``chromium`` (no browser
download). Under CI=true a missing chromium or playwright fails the run; elsewhere the browser
tests are skipped with the reason.

``live`` starts the app over a fresh, migrated SQLite file with a few ledger entries and two
test-only routes: ``/test/verify/{index}`` (a page with the verification panel) and
``/test/blank`` (a page that only loads ``/static/verify.js`` for direct calls).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from digital_village import migrate, web
from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.ledger import keys
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.web import i18n

IN_CI = os.environ.get("CI", "").lower() == "true"
ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if shutil.which("chromium") is None:
        return "Debian's chromium is not installed (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's), shared by the session."""
    missing = _missing_browser()
    if missing:
        if IN_CI:
            pytest.fail(f"CI=true but the browser tests cannot run: {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page at a phone-sized viewport; browser console errors fail the test."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
    new_page = context.new_page()
    errors: list[str] = []
    new_page.on("pageerror", lambda error: errors.append(str(error)))
    watch_policy(new_page, errors)
    yield new_page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def watch_policy(page: Any, errors: list[str]) -> None:
    """Count what the page's Content-Security-Policy refused as an error of the page."""
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text
            else None
        ),
    )


def screenshot(page: Any, name: str) -> Path:
    """Keep a screenshot as a test artifact (var/test-artifacts/e2e/NAME.png)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.locator("[data-verify-panel]").screenshot(path=str(path))
    return path


TEST_PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>verify panel test</title>
<style>body {{ font-family: sans-serif; margin: 0.75rem; }}</style></head>
<body>{panel}</body></html>
"""


# The test-only pages' own inline style and script (the site's pages allow neither).
TEST_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'"
)


def add_test_routes(app: FastAPI) -> None:
    """Routes that exist only in the test app."""

    @app.get("/test/verify/{index}", response_class=HTMLResponse)
    def verify_page(index: int, lang: str | None = None, vkey: str | None = None) -> HTMLResponse:
        language = i18n.pick_language(lang)
        panel = (
            web.templates()
            .get_template("_verify_panel.html")
            .render(t=i18n.messages(language), lang=language, entry_index=index, vkey=vkey)
        )
        return HTMLResponse(
            TEST_PAGE.format(lang=language, panel=panel),
            headers={"Content-Security-Policy": TEST_POLICY},
        )

    @app.get("/test/blank", response_class=HTMLResponse)
    def blank_page() -> HTMLResponse:
        page = TEST_PAGE.format(
            lang="en",
            panel='<script type="module">import * as verify from "/static/verify.js";'
            " window.verify = verify; window.verifyReady = true;</script>",
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": TEST_POLICY})


class LiveServer:
    """uvicorn serving an app on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@dataclass
class Live:
    """The running app and what the tests need to reach behind it."""

    url: str
    db: Database
    ledger: Ledger
    settings: Settings

    def append(self, *data: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            self.ledger.append_many(session, [EntryIn("test.event", item) for item in data])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The real app, over a migrated SQLite file holding five ledger entries."""
    folder = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{folder / 'e2e.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    settings = Settings(
        data_dir=folder,
        database_url=url,
        ledger_origin="e2e.digital-village.example/ledger",
        log_format="text",
        log_level="WARNING",
        public_base_url="http://127.0.0.1",
        rate_limit_public_per_minute=100_000,
    )
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    db = Database(engine)
    app = create_app(settings, database=db)
    add_test_routes(app)
    live = Live(url="", db=db, ledger=ledger, settings=settings)
    live.append(*({"n": n, "product": "天府菜油", "lot": "RS2026-001"} for n in range(5)))
    with LiveServer(app) as server:
        live.url = server.url
        yield live
    engine.dispose()
