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
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from digital_village import web
from digital_village.ledger import mirror
from digital_village.web import i18n
from tests.e2e.conftest import watch_policy
from tests.ledger.tile_server import live_log

pytestmark = pytest.mark.browser


class CorsFiles(SimpleHTTPRequestHandler):
    """A static host that lets any site read its files, as a mirror's host must."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _facts_route(app: FastAPI) -> None:
    @app.get("/test-facts", response_class=HTMLResponse)
    def test_facts() -> HTMLResponse:
        # Served by the app, so the site's own Content-Security-Policy applies.
        panel = web.templates().get_template("_verify_panel.html")
        return HTMLResponse(
            '<!doctype html><html lang="en"><head><meta charset="utf-8"></head><body>'
            f"{FACTS}{panel.render(t=i18n.messages('en'), lang='en')}</body></html>"
        )


@pytest.fixture
def mirrored(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path, str]]:
    """The log's URL (300 entries served), its mirror's folder and the mirror's URL."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    files = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(CorsFiles, directory=str(folder))
    )
    threading.Thread(target=files.serve_forever, daemon=True).start()
    mirror_url = f"http://127.0.0.1:{files.server_address[1]}/"
    try:
        with live_log(
            "sqlite", tmp_path, request, mirror_url=mirror_url, routes=_facts_route
        ) as log:
            log.append(0, 300, batch=300)
            mirror.mirror(mirror.http_fetch(log.prefix), folder, [log.ledger.vkey])
            yield log.url, folder, mirror_url
    finally:
        files.shutdown()


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
