"""The pages' Content-Security-Policy in Chromium: the site's own pages and the API docs run
under it without a refusal (every browser test fails on one, see ``watch_policy``), and what
it is for holds: a script slipped into a page does not run, another site cannot frame a page,
and the docs draw the API from assets this app serves."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Live

pytestmark = pytest.mark.browser


def test_swagger_ui_and_redoc_render_from_this_site(browser: Any, live: Live) -> None:
    context = browser.new_context()
    page = context.new_page()
    outside: list[str] = []
    refused: list[str] = []
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: (
            outside.append(response.url)
            if not response.url.startswith((live.url, f"blob:{live.url}/"))
            else None
        ),
    )
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto(live.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "Digital Village" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() > 20
    assert refused == []
    page.goto(live.url + "/redoc")
    page.wait_for_selector("h1", timeout=20_000)
    assert "Digital Village" in page.locator("h1").first.inner_text()
    context.close()
    assert errors == [] and outside == []
    # ReDoc's footer asks the vendor's CDN for its logo: refused, and the logo hides itself.
    assert all("cdn.redoc.ly" in text for text in refused), refused


def _listened(browser: Any) -> tuple[Any, Any, list[str]]:
    """A fresh context and page, and every console message the page logs."""
    context = browser.new_context()
    page = context.new_page()
    messages: list[str] = []
    page.on("console", lambda message: messages.append(message.text))
    return context, page, messages


def test_a_script_slipped_into_a_page_does_not_run(browser: Any, live: Live) -> None:
    context, page, refused = _listened(browser)
    page.goto(live.url + "/labels")
    ran = page.evaluate(
        """() => {
          const script = document.createElement('script');
          script.textContent = 'window.injected = true';
          document.body.append(script);
          const div = document.createElement('div');
          div.innerHTML = '<img src="x" onerror="window.injected = true">';
          document.body.append(div);
          return new Promise((done) => setTimeout(() => done(window.injected === true), 300));
        }"""
    )
    context.close()
    assert ran is False
    assert any("Content Security Policy" in text for text in refused), refused


def test_another_site_cannot_frame_a_page(browser: Any, live: Live) -> None:
    context, page, refused = _listened(browser)
    # A page of another origin (a data: URL is opaque) framing the label page.
    page.set_content(f'<iframe src="{live.url}/labels" width="300" height="300"></iframe>')
    page.wait_for_timeout(800)
    frame = page.frames[-1]
    framed_text = ""
    try:
        framed_text = frame.evaluate("document.body ? document.body.innerText : ''")
    except Exception:  # a refused frame may have no document to evaluate in
        framed_text = ""
    context.close()
    assert "Token" not in framed_text and "登录" not in framed_text
    assert any("frame-ancestors" in text or "refused" in text.lower() for text in refused), refused
