"""Witnesses in a real browser: the panel checks the checkpoint's cosignatures itself.

Two witnesses (the city's 农业农村局 and the provincial platform) run as real servers; the app's
pages trust them through the operator's configuration (DV_PAGE_WITNESSES, quorum 2), not the
log's witness table. A checkpoint both cosigned is shown as witnessed by both display names; once
the province's witness is down, the newest checkpoint carries one cosignature and the panel says
"not witnessed", never "verified". A cosignature altered in transit does not count.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.responses import HTMLResponse

from digital_village import migrate, web
from digital_village.app import create_app
from digital_village.config import PageWitness, Settings
from digital_village.db import Database, make_engine
from digital_village.ledger import cosigner, keys, witnesses
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.web import i18n
from tests.e2e.conftest import TEST_PAGE, TEST_POLICY, LiveServer, add_test_routes, screenshot
from tests.witness.conftest import WitnessServer, free_port, new_cosigner

pytestmark = pytest.mark.browser

CITY = "德阳市农业农村局"
PROVINCE = "四川省追溯平台"


@dataclass
class Witnessed:
    url: str
    db: Database
    ledger: Ledger
    city: WitnessServer
    province: WitnessServer

    def append(self, count: int) -> None:
        with self.db.transaction() as session:
            self.ledger.append_many(
                session, [EntryIn("test.event", {"n": n}) for n in range(count)]
            )

    def cosign(self) -> list[cosigner.Answer]:
        with cosigner.make_client(1.0) as client:
            return cosigner.cosign_newest(self.db, client)


def add_facts_route(app: Any) -> None:
    @app.get("/test/facts", response_class=HTMLResponse)
    def facts_page() -> HTMLResponse:
        panel = (
            web.templates()
            .get_template("_verify_panel.html")
            .render(t=i18n.messages("zh-CN"), lang="zh-CN", entry_index=None)
        )
        facts = '<p><span data-fact="1" data-fact-claims=\'{"/data/n": 1}\'>1</span></p>'
        return HTMLResponse(
            TEST_PAGE.format(lang="zh-CN", panel=facts + panel),
            headers={"Content-Security-Policy": TEST_POLICY},
        )


@pytest.fixture(scope="module")
def witnessed(
    tmp_path_factory: pytest.TempPathFactory, backend: str, request: pytest.FixtureRequest
) -> Iterator[Witnessed]:
    folder = tmp_path_factory.mktemp("e2e-witness")
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_e2e_witness")
    else:
        url = f"sqlite:///{folder / 'e2e.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    city = WitnessServer(folder / "city", new_cosigner("witness.deyang.example/nyj"), free_port())
    province = WitnessServer(
        folder / "province", new_cosigner("witness.sichuan.example/trace"), free_port()
    )
    settings = Settings(
        data_dir=folder,
        database_url=url,
        ledger_origin="e2e.digital-village.example/ledger",
        log_format="text",
        log_level="WARNING",
        public_base_url="http://127.0.0.1",
        rate_limit_public_per_minute=100_000,
        page_witnesses=[
            PageWitness(name=CITY, vkey=city.vkey),
            PageWitness(name=PROVINCE, vkey=province.vkey),
        ],
        page_witness_quorum=2,
    )
    keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    db = Database(engine)
    for witness in (city, province):
        witness.start()
        assert witness.store is not None
        witness.store.add_log(ledger.origin, ledger.vkey)
    with db.transaction() as session:
        # The log's own list: what it asks. The pages' trust comes from settings above.
        witnesses.add(session=session, name="city", vkey=city.vkey, url=city.url)
        witnesses.add(session=session, name="province", vkey=province.vkey, url=province.url)
    app = create_app(settings, database=db)
    add_test_routes(app)
    add_facts_route(app)
    with LiveServer(app) as live_server:
        yield Witnessed(live_server.url, db, ledger, city, province)
    for witness in (city, province):
        if witness.thread is not None and witness.thread.is_alive():
            witness.stop()
    engine.dispose()
    if backend == "postgres":
        server.drop_database(url)


def open_panel(page: Any, url: str) -> dict[str, Any]:
    page.goto(url)
    page.wait_for_selector('[data-verify-panel]:not([data-state="checking"])', timeout=30_000)
    panel = page.locator("[data-verify-panel]")
    return {
        "state": panel.get_attribute("data-state"),
        "witnessed": panel.get_attribute("data-witnessed"),
        "status": panel.locator("[data-verify-status]").inner_text(),
        "witnesses": panel.locator("[data-verify-witnesses]").inner_text(),
    }


def test_a_checkpoint_both_witnesses_cosigned_then_one_that_only_one_did(
    page: Any, witnessed: Witnessed
) -> None:
    witnessed.append(5)
    assert all(answer.cosigned for answer in witnessed.cosign())
    shown = open_panel(page, f"{witnessed.url}/test/verify/2")
    assert shown["state"] == "verified", shown
    assert shown["witnessed"] == "yes"
    assert shown["witnesses"] == f"已见证：{CITY}、{PROVINCE}（需 2 个）"
    screenshot(page, "witness-both")
    facts = open_panel(page, f"{witnessed.url}/test/facts")
    assert (facts["state"], facts["witnessed"]) == ("verified", "yes"), facts

    # The province's witness goes down; the log goes on and the city's witness cosigns.
    witnessed.province.stop()
    witnessed.append(3)
    answers = {answer.witness: answer for answer in witnessed.cosign()}
    assert answers["city"].cosigned and not answers["province"].cosigned
    shown = open_panel(page, f"{witnessed.url}/test/verify/2")
    assert shown["state"] == "unwitnessed", shown
    assert shown["witnessed"] == "no"
    assert "已验证" not in shown["status"] and shown["status"].startswith("未验证")
    expected = f"未见证：需 2 个，仅 1 个（{CITY}）；缺：{PROVINCE}"
    assert shown["witnesses"] == expected
    screenshot(page, "witness-one-of-two")
    facts = open_panel(page, f"{witnessed.url}/test/facts")
    assert (facts["state"], facts["witnessed"]) == ("unwitnessed", "no"), facts

    # Back up: the province's witness cosigns the newest checkpoint and the page is verified.
    witnessed.province.start()
    assert all(answer.cosigned for answer in witnessed.cosign())
    shown = open_panel(page, f"{witnessed.url}/test/verify/2?lang=en")
    assert (shown["state"], shown["witnessed"]) == ("verified", "yes"), shown
    assert shown["witnesses"].startswith(f"witnessed by {CITY}, {PROVINCE} (2 required")


def test_a_cosignature_altered_in_transit_does_not_count(page: Any, witnessed: Witnessed) -> None:
    witnessed.append(2)
    assert all(answer.cosigned for answer in witnessed.cosign())

    def forge(route: Any) -> None:
        response = route.fetch()
        body = response.body().decode()
        head, _, lines = body.rpartition("\n\n")
        # Flip one character of the province's line (its signature, past the key ID).
        forged = []
        for line in lines.splitlines():
            if line.startswith("— witness.sichuan.example/trace "):
                position = len(line) - 10
                swapped = "A" if line[position] != "A" else "B"
                line = line[:position] + swapped + line[position + 1 :]
            forged.append(line)
        route.fulfill(response=response, body=(head + "\n\n" + "\n".join(forged) + "\n").encode())

    page.route("**/api/v1/ledger/entries/*/proof", forge)
    shown = open_panel(page, f"{witnessed.url}/test/verify/1?lang=en")
    assert (shown["state"], shown["witnessed"]) == ("unwitnessed", "no"), shown
    assert shown["status"].startswith("NOT verified")
    assert f"not cosigned by {PROVINCE}" in shown["witnesses"]


def test_the_policy_comes_from_the_operator_not_the_log(witnessed: Witnessed) -> None:
    import httpx

    policy = httpx.get(f"{witnessed.url}/api/v1/ledger/witness-policy").json()
    assert policy == {
        "quorum": 2,
        "witnesses": [
            {"name": CITY, "vkey": witnessed.city.vkey},
            {"name": PROVINCE, "vkey": witnessed.province.vkey},
        ],
    }
    # The log's own list names its witnesses by other labels: the pages never read it.
    listed = httpx.get(f"{witnessed.url}/api/v1/ledger/witnesses").json()
    assert [row["name"] for row in listed] == ["city", "province"]


def test_no_witness_configured_says_only_the_log_signature_was_checked(
    page: Any, witnessed: Witnessed
) -> None:
    witnessed.append(2)  # entry 1 exists even when this test runs alone
    witnessed.cosign()
    page.route(
        "**/api/v1/ledger/witness-policy",
        lambda route: route.fulfill(json={"quorum": 1, "witnesses": []}),
    )
    shown = open_panel(page, f"{witnessed.url}/test/verify/1?lang=en")
    assert (shown["state"], shown["witnessed"]) == ("verified", "none"), shown
    assert shown["witnesses"] == "no witnesses configured: only the log's own signature was checked"


def test_a_bottles_consumer_page_shows_its_two_witnesses(
    browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The real consumer page of a recorded season: every fact verified in the phone's own
    browser, against a checkpoint two independent witnesses cosigned, with keys the operator
    configured for the pages (not the log's list)."""
    from tests.web.conftest import make_pages

    folder = tmp_path_factory.mktemp("e2e-witness-pages")
    pages = make_pages(f"sqlite:///{folder / 'pages.db'}", folder, every_hours=12)
    db = Database(pages.engine)
    ledger = Ledger.from_key_file(
        pages.settings.effective_ledger_key_path, pages.settings.ledger_origin
    )
    city = WitnessServer(folder / "city", new_cosigner("witness.deyang.example/nyj"), free_port())
    province = WitnessServer(
        folder / "province", new_cosigner("witness.sichuan.example/trace"), free_port()
    )
    for witness in (city, province):
        witness.start()
        assert witness.store is not None
        witness.store.add_log(ledger.origin, ledger.vkey)
    try:
        with db.transaction() as session:
            witnesses.add(session=session, name="city", vkey=city.vkey, url=city.url)
            witnesses.add(session=session, name="province", vkey=province.vkey, url=province.url)
        with cosigner.make_client(2.0) as client:
            assert all(a.cosigned for a in cosigner.cosign_newest(db, client))
        settings = pages.settings.model_copy(
            update={
                "page_witnesses": [
                    PageWitness(name=CITY, vkey=city.vkey),
                    PageWitness(name=PROVINCE, vkey=province.vkey),
                ],
                "page_witness_quorum": 2,
            }
        )
        app = create_app(settings, database=db)
        with LiveServer(app) as server:
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url + pages.bottle)
            page.wait_for_selector(
                '[data-verify-panel]:not([data-state="checking"])', timeout=30_000
            )
            panel = page.locator("[data-verify-panel]")
            assert panel.get_attribute("data-state") == "verified"
            assert panel.get_attribute("data-witnessed") == "yes"
            line = panel.locator("[data-verify-witnesses]").inner_text()
            assert line == f"已见证：{CITY}、{PROVINCE}（需 2 个）"
            screenshot(page, "witness-consumer-page")
            context.close()
            assert not errors, errors
    finally:
        for witness in (city, province):
            witness.stop()
        pages.engine.dispose()
