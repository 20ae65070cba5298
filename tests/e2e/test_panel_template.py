"""The verification panel's template, the site's i18n and the static mount, without a browser."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from digital_village import web
from digital_village.web import i18n

PANEL = "_verify_panel.html"


def render(language: str, **context: object) -> str:
    values: dict[str, object] = {"t": i18n.messages(language), "lang": language, "entry_index": 7}
    values.update(context)
    return web.templates().get_template(PANEL).render(**values)


def panel_messages(html: str) -> dict[str, str]:
    found = re.search(
        r"<script type=\"application/json\" data-verify-messages>(.*?)</script>", html, re.S
    )
    assert found
    loaded: dict[str, str] = json.loads(found.group(1))
    return loaded


def test_the_panel_starts_checking_and_never_claims_verified_by_itself() -> None:
    html = render("zh-CN")
    assert 'data-state="checking"' in html
    assert "正在验证…" in html
    # "Verified" exists only in messages for the script to use after its own check.
    shown = html
    for message in panel_messages(html).values():
        shown = shown.replace(message, "")
    assert "已验证" not in shown
    assert 'href="/api/v1/ledger/entries/7/proof" download="entry-7.tlog-proof"' in html
    assert '<script type="module" src="/static/verify-panel.js"></script>' in html


def test_the_panel_speaks_english_with_placeholders_for_the_script() -> None:
    messages = panel_messages(render("en"))
    assert messages["verified"] == (
        "verified — entry #{index} is in the log of size {size} signed by {key}"
    )
    assert set(messages) == {
        "checking",
        "verified",
        "failed",
        "reason",
        "waiting",
        "facts_verified",
        "facts_failed",
        "facts_partial",
        "facts_stale",
        "fact_failed",
        "fact_unbound",
        "witness_ok",
        "witness_missing",
        "witness_none",
        "unwitnessed",
    }
    assert "{reason}" in messages["reason"]
    assert messages["facts_verified"] == (
        "verified — all {facts} facts on this page come from {entries} ledger entries, "
        "each in the log of size {size} signed by {key}"
    )


def test_without_an_entry_the_panel_checks_the_pages_facts() -> None:
    panel = web.templates().get_template("_verify_panel.html")
    html = panel.render(t=i18n.messages("en"), lang="en")
    assert "data-verify-facts" in html and "data-index" not in html
    assert "compared each fact shown with its entry" in html
    assert "entries/" not in html  # no single proof to download


def test_values_are_escaped_and_the_base_url_and_pinned_key_are_carried() -> None:
    html = render("en", base_url="https://dv.example.cn", vkey='k"<x>+1+2', entry_index=3)
    assert 'data-base-url="https://dv.example.cn"' in html
    assert 'data-vkey="k&#34;&lt;x&gt;+1+2"' in html
    assert 'href="https://dv.example.cn/api/v1/ledger/entries/3/proof"' in html
    # The JSON block cannot be closed early by a message: tojson escapes <, > and &.
    assert "</script>" not in panel_messages(html)["checking"]


def test_every_language_has_only_known_keys_and_zh_cn_has_all() -> None:
    default = set(i18n.MESSAGES[i18n.DEFAULT_LANGUAGE])
    for language, table in i18n.MESSAGES.items():
        assert set(table) <= default, f"{language} has keys zh-CN lacks: {set(table) - default}"
        assert all(value.strip() for value in table.values())
    assert set(i18n.messages("en")) == default
    assert i18n.messages("fr") == i18n.messages("zh-CN")
    for key, value in i18n.MESSAGES["en"].items():
        # Placeholders must match, or a translation would drop a number the script fills in.
        assert set(re.findall(r"\{\w+\}", value)) == set(
            re.findall(r"\{\w+\}", i18n.MESSAGES["zh-CN"][key])
        ), key


@pytest.mark.parametrize(
    ("requested", "accept", "expected"),
    [
        (None, None, "zh-CN"),
        ("en", "zh-CN", "en"),
        ("EN-gb", None, "en"),
        ("fr", "en;q=0.9", "en"),
        (None, "fr-FR,en-US;q=0.8,zh;q=0.5", "en"),
        (None, "zh-TW,en;q=0.9", "zh-CN"),
        (None, "en;q=0,de", "zh-CN"),
        (None, "en;q=bad,zh", "zh-CN"),
    ],
)
def test_pick_language(requested: str | None, accept: str | None, expected: str) -> None:
    assert i18n.pick_language(requested, accept) == expected


def test_static_files_are_served_by_the_app(client: TestClient) -> None:
    script = client.get("/static/verify.js")
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in {
        "text/javascript",
        "application/javascript",
    }
    assert "export async function verifyEntry" in script.text
    assert client.get("/static/verify-panel.css").status_code == 200
    assert client.get("/static/nothing-here.js").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


def test_templates_static_files_and_the_label_font_ship_in_the_package() -> None:
    root = Path(web.__file__).parents[1]
    pyproject = tomllib.loads((root.parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["digital_village"]
    files = [
        *web.TEMPLATES_DIR.iterdir(),
        *web.STATIC_DIR.iterdir(),
        *(root / "labels" / "fonts").iterdir(),
    ]
    assert (web.TEMPLATES_DIR / PANEL) in files and (web.STATIC_DIR / "verify.js") in files
    for path in files:
        relative = path.relative_to(root).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
