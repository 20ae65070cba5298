"""What a reader's browser concludes about a page's facts, computed the same way in Python.

``check_page`` reads every ``data-fact`` element of a page, fetches one batch proof of their
entries, verifies it (ledger/batch.py ``check_batch``) and compares each claim with its entry:
the rules of static/verify-panel.js ``judgeFact``. The browser tests (tests/e2e) run the real
script; these helpers let page tests say which fact fails and why without a browser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from fastapi.testclient import TestClient

from digital_village.jsonpointer import resolve
from digital_village.ledger import batch, note


@dataclass
class PageFact:
    index: int | None
    more: list[int]
    claims: dict[str, Any]
    unrecorded: bool
    text: str
    attributes: dict[str, str | None]
    state: str = ""
    reason: str = ""


class _Facts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[PageFact] = []
        self.open: list[tuple[str, PageFact | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        fact = None
        if "data-fact" in attributes:
            indexes = [int(each) for each in (attributes["data-fact"] or "").split()]
            fact = PageFact(
                index=indexes[0] if indexes else None,
                more=indexes[1:],
                claims=json.loads(attributes.get("data-fact-claims") or "{}"),
                unrecorded="data-fact-unrecorded" in attributes,
                text="",
                attributes=attributes,
            )
            self.found.append(fact)
        if tag not in ("br", "img", "input", "meta", "link"):
            self.open.append((tag, fact))

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, fact in self.open:
            if fact is not None:
                fact.text += data


def page_facts(html: str) -> list[PageFact]:
    parser = _Facts()
    parser.feed(html)
    for fact in parser.found:
        fact.text = " ".join(fact.text.split())
    return parser.found


def check_page(client: TestClient, html: str, vkey: str) -> list[PageFact]:
    """Every fact of the page with its state (verified, failed, unbound) and reason."""
    found = page_facts(html)
    indexes = sorted(
        {fact.index for fact in found if fact.index is not None}
        | {index for fact in found for index in fact.more}
    )
    document = client.get(
        "/api/v1/ledger/proofs", params={"indexes": ",".join(map(str, indexes))}
    ).json()
    checked = batch.check_batch(document, [note.Verifier.parse(vkey)])
    for fact in found:
        fact.state, fact.reason = _judge(fact, checked)
    return found


def _judge(fact: PageFact, checked: batch.CheckedBatch) -> tuple[str, str]:
    if fact.index is None:
        return "unbound", "no entry"
    for index in fact.more:
        if index not in checked.entries:
            return "failed", checked.failures.get(index, f"entry {index} not proven")
    if fact.index in checked.failures:
        return "failed", checked.failures[fact.index]
    if fact.index in checked.missing:
        return "failed", f"entry {fact.index} removed"
    if fact.index in checked.pending or fact.index not in checked.entries:
        return "failed", f"entry {fact.index} not covered"
    if fact.unrecorded:
        return "unbound", "recorded before"
    entry = json.loads(checked.entries[fact.index])
    for path, claimed in fact.claims.items():
        present, value = resolve(entry, path)
        if not present:
            return "failed", f"entry {fact.index} records nothing at {path}"
        if value != claimed:
            return "failed", f"shows {claimed!r}, entry {fact.index} records {value!r} at {path}"
    return "verified", ""


def failed(facts: list[PageFact]) -> list[PageFact]:
    return [fact for fact in facts if fact.state != "verified"]
