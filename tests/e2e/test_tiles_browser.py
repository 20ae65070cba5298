"""A page whose operator configured a mirror (DV_LEDGER_MIRROR_URL) takes its proofs from the
mirror's tiles, in Debian's Chromium, and a forged tile in the mirror fails the page."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.responses import HTMLResponse

from digital_village import migrate, web
from digital_village.app import create_app
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.ledger import keys, mirror
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.web import i18n
from tests.e2e.conftest import LiveServer, watch_policy

pytestmark = pytest.mark.browser


class CorsFiles(SimpleHTTPRequestHandler):
    """A static host that lets any site read its files, as a mirror's host must."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def mirrored(tmp_path: Path) -> Iterator[tuple[str, Path, str]]:
    """The log's URL (300 entries served), its mirror's folder and the mirror's URL."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    files = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(CorsFiles, directory=str(folder))
    )
    threading.Thread(target=files.serve_forever, daemon=True).start()
    mirror_url = f"http://127.0.0.1:{files.server_address[1]}/"
    url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    settings = Settings(
        data_dir=tmp_path,
        database_url=url,
        ledger_origin="mirror.digital-village.example/ledger",
        log_format="text",
        log_level="WARNING",
        ledger_mirror_url=mirror_url,
    )
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    db = Database(engine)
    with db.transaction() as session:
        ledger.append_many(session, [EntryIn("test.event", {"n": n}) for n in range(300)])
    app = create_app(settings, database=db)

    @app.get("/test-facts", response_class=HTMLResponse)
    def test_facts() -> HTMLResponse:
        # Served by the app, so the site's own Content-Security-Policy applies.
        panel = web.templates().get_template("_verify_panel.html")
        return HTMLResponse(
            '<!doctype html><html lang="en"><head><meta charset="utf-8"></head><body>'
            f"{FACTS}{panel.render(t=i18n.messages('en'), lang='en')}</body></html>"
        )

    try:
        with LiveServer(app) as server:
            mirror.mirror(mirror.http_fetch(f"{server.url}/ledger/"), folder, [ledger.vkey])
            yield server.url, folder, mirror_url
    finally:
        files.shutdown()
        engine.dispose()


def facts_page(page: Any, origin: str) -> dict[str, Any]:
    """The test page's facts checked by its panel; what the page fetched."""
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    refused: list[str] = []
    watch_policy(page, refused)
    page.goto(f"{origin}/test-facts")
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=30_000)
    panel = page.locator("[data-verify-panel]")
    assert not refused, refused  # the page's policy lets it fetch from the mirror
    return {
        "state": panel.get_attribute("data-state"),
        "reason": panel.locator("[data-verify-reason]").inner_text(),
        "failed": page.locator('[data-fact-state="failed"]').all_inner_texts(),
        "fetched": fetched,
    }


FACTS = (
    '<p><span data-fact="1" data-fact-claims=\'{"/data/n":1}\'>one</span> '
    '<span data-fact="260" data-fact-claims=\'{"/data/n":260}\'>two hundred sixty</span></p>'
)


def test_the_page_verifies_its_facts_from_the_mirrors_tiles(
    browser: Any, mirrored: tuple[str, Path, str]
) -> None:
    origin, _, mirror_url = mirrored
    context = browser.new_context()
    try:
        result = facts_page(context.new_page(), origin)
    finally:
        context.close()
    assert result["state"] == "verified", result["reason"]
    fetched = result["fetched"]
    from_mirror = sorted(u.removeprefix(mirror_url) for u in fetched if u.startswith(mirror_url))
    assert from_mirror == [
        "checkpoint",
        "tile/0/000",
        "tile/0/001.p/44",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/001.p/44",
    ], result["fetched"]
    assert not any("/api/v1/ledger/proofs" in url for url in result["fetched"])


def test_a_forged_tile_in_the_mirror_fails_the_page(
    browser: Any, mirrored: tuple[str, Path, str]
) -> None:
    origin, folder, _ = mirrored
    tile = folder / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[5 * 32] ^= 1  # leaf 5's hash: on entry 1's path, not on entry 260's
    tile.write_bytes(bytes(data))
    context = browser.new_context()
    try:
        result = facts_page(context.new_page(), origin)
    finally:
        context.close()
    assert result["state"] == "failed", result
    assert "entry is not proven at index 1 " in result["reason"]
    assert result["failed"] == ["one"]
