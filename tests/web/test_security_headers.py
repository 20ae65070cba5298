"""HTTP security headers on every answer, and pages whose only scripts are this site's files.

Every page carries a Content-Security-Policy that allows scripts from this site only (no
inline script: the JSON data blocks are not scripts), its inline stylesheet by hash, no
framing (``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff`` and a
Referrer-Policy. The API docs (/docs, /redoc) load their assets from this site, not a CDN.
"""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from fastapi.testclient import TestClient

from digital_village.demo import oil_season as seasons
from tests.web.conftest import Pages

HTML = {"Accept": "text/html"}


def _directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            found[words[0]] = words[1:]
    return found


def _page_paths(pages: Pages) -> list[str]:
    return [
        pages.bottle,
        pages.bottle + "?lang=en",
        pages.bottle_lot,
        f"/01/{seasons.BOTTLE}",
        f"/p/{pages.parcels[0]}",
        "/labels",
        f"/01/{seasons.BOTTLE}/10/NO-SUCH-LOT",  # a browser's 404 page
    ]


def test_every_page_has_a_policy_that_allows_only_this_sites_scripts(
    pages_client: TestClient, pages_db: Pages
) -> None:
    for path in _page_paths(pages_db):
        response = pages_client.get(path, headers=HTML)
        assert response.headers["content-type"].startswith("text/html"), path
        html = response.text
        policy = _directives(response.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"], path
        assert policy["script-src"] == ["'self'"], path
        assert policy["frame-ancestors"] == ["'none'"], path
        assert policy["base-uri"] == ["'none'"] and policy["form-action"] == ["'self'"], path
        assert "'unsafe-inline'" not in policy["style-src"], path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        # Every script is a file of this site or an inert JSON data block.
        for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
            assert 'src="/static/' in attributes or (
                'type="application/json"' in attributes and 'src="' not in attributes
            ), (path, attributes, body[:80])
        # Every inline stylesheet is allowed by its hash; no style or event attributes.
        for css in re.findall(r"<style>(.*?)</style>", html, re.S):
            digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
            assert f"'sha256-{digest}'" in policy["style-src"], path
        assert not re.search(r"<[^>]+\sstyle=", html), path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/api/v1/products", "application/json"),
        ("/api/v1/parcels/51060310120101", "application/problem+json"),
        ("/static/verify.js", "text/javascript"),
        ("/healthz", "application/json"),
    ],
)
def test_every_answer_is_nosniff_and_never_framed(
    pages_client: TestClient, path: str, kind: str
) -> None:
    response = pages_client.get(path)
    assert response.headers["content-type"].startswith(kind), response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]


def test_an_svg_may_not_run_scripts(pages_client: TestClient) -> None:
    response = pages_client.get(f"/api/v1/labels/{seasons.BOTTLE}.svg")
    assert response.headers["content-type"].startswith("image/svg+xml")
    policy = _directives(response.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"] and "script-src" not in policy


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_load_their_assets_from_this_site(pages_client: TestClient, path: str) -> None:
    response = pages_client.get(path)
    assert response.status_code == 200
    html = response.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    for source in sources:
        assert source.startswith("/"), source
        assert pages_client.get(source).status_code == 200, source
    assert "cdn." not in html and "fonts.googleapis" not in html
    policy = _directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"] and policy["frame-ancestors"] == ["'none'"]
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>\s*\S", html), "inline script"
