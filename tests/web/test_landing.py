"""The front door and the error pages a reader meets: `/` takes a label's 查询码 or a
certificate's number, `/q/<code>` opens the item's page, a wrong code says so in the reader's
language; a mistyped or unknown label link is answered wholly in that language with a plain
counterfeit warning; and the site has an icon."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import Connection, update

from digital_village.demo import oil_season as seasons
from digital_village.gs1.short_code import normalise, short_code
from digital_village.trace.models import Unit
from tests.web.conftest import Pages

HTML = {"Accept": "text/html"}
LATIN_WORDS = re.compile(r"\b(not|no|lot|found|valid|GTIN|link)\b")


def visible_text(html: str) -> str:
    main = html[html.index("<main>") : html.index("</main>")]
    return re.sub(r"<[^>]+>", " ", main)


def test_the_landing_page_has_one_box(pages_client: TestClient) -> None:
    response = pages_client.get("/", headers=HTML)
    assert response.status_code == 200
    assert response.text.count("<input") == 1 and 'name="code"' in response.text
    assert "查询码或合格证编号" in response.text
    english = pages_client.get("/?lang=en", headers=HTML).text
    assert "Check code or certificate number" in english
    assert 'name="lang" value="en"' in english  # the answer stays in English


def test_a_typed_check_code_opens_the_bottles_page(
    pages_client: TestClient, pages_db: Pages
) -> None:
    season = pages_db.season
    code = short_code(seasons.BOTTLE, season.bottle_lot, season.serials[0])
    # As people type it: lower case, no dash, an O for a 0 and an l for a 1.
    typed = code.lower().replace("-", "").replace("0", "o").replace("1", "l")
    assert normalise(typed) == code
    sent = pages_client.get("/", params={"code": typed}, headers=HTML, follow_redirects=False)
    assert sent.status_code == 303
    opened = pages_client.get(sent.headers["location"], headers=HTML, follow_redirects=False)
    assert opened.status_code == 303
    assert opened.headers["location"] == pages_db.bottle
    page = pages_client.get(opened.headers["location"], headers=HTML)
    assert page.status_code == 200 and season.serials[0] in page.text
    # Every other bottle has its own code.
    other = short_code(seasons.BOTTLE, season.bottle_lot, season.serials[1])
    found = pages_client.get(f"/q/{other}", headers=HTML, follow_redirects=False)
    assert found.headers["location"].endswith(f"/21/{season.serials[1]}")


def test_two_items_under_one_code_are_both_offered(
    pages_client: TestClient, pages_db: Pages, pages_connection: Connection
) -> None:
    # 40 bits of a hash: in a county's millions of bottles, two may share a code.
    season = pages_db.season
    code = short_code(seasons.BOTTLE, season.bottle_lot, season.serials[0])
    pages_connection.execute(
        update(Unit).where(Unit.serial == season.serials[1]).values(short_code=code)
    )
    response = pages_client.get(f"/q/{code}", headers=HTML, follow_redirects=False)
    assert response.status_code == 200 and "data-landing-choices" in response.text
    for serial in season.serials[:2]:
        assert f'/21/{serial}"' in response.text


def test_a_certificate_number_opens_its_lots_page(
    pages_client: TestClient, pages_db: Pages
) -> None:
    number = pages_db.season.certificate
    assert number is not None
    response = pages_client.get(f"/q/{number}?lang=en", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"{pages_db.bottle_lot}?lang=en"


def test_a_wrong_code_gets_a_clear_message_in_the_readers_language(
    pages_client: TestClient,
) -> None:
    unknown = pages_client.get("/q/ZZZZ-ZZZZ", headers=HTML)
    assert unknown.status_code == 404
    assert 'data-landing-message="landing_not_found"' in unknown.text
    assert "ZZZZ-ZZZZ" in unknown.text and "假冒" in unknown.text
    assert not LATIN_WORDS.search(visible_text(unknown.text).replace("ZZZZ-ZZZZ", ""))
    mistyped = pages_client.get("/q/hello", headers={**HTML, "Accept-Language": "en"})
    assert mistyped.status_code == 404
    assert 'data-landing-message="landing_malformed"' in mistyped.text
    assert "neither a check code" in mistyped.text
    empty = pages_client.get("/?code=", headers=HTML)
    assert empty.status_code == 400 and "请先输入" in empty.text


def test_an_unknown_label_link_is_answered_wholly_in_chinese_with_a_counterfeit_warning(
    pages_client: TestClient, pages_db: Pages
) -> None:
    for path, status in (
        (f"/01/{seasons.BOTTLE}/10/NO-SUCH-LOT", 404),
        (f"/01/{seasons.BOTTLE}/10/{pages_db.season.bottle_lot}/21/NOSUCH", 404),
        ("/01/12345678901234/10/X", 400),  # a wrong check digit: mistyped or forged
    ):
        response = pages_client.get(path, headers=HTML)
        assert response.status_code == status, path
        text = visible_text(response.text)
        assert "data-counterfeit" in response.text and "假冒" in text, path
        assert not LATIN_WORDS.search(text), (path, text)
        assert 'href="/?lang=zh-CN"' in response.text  # type the 查询码 instead
        english = pages_client.get(path, headers={**HTML, "Accept-Language": "en"})
        assert "may be counterfeit" in english.text and "Reason:" in english.text
    # Clients that ask for JSON still get problem+json with the detail.
    problem = pages_client.get(f"/01/{seasons.BOTTLE}/10/NO-SUCH-LOT")
    assert problem.headers["content-type"].startswith("application/problem+json")


def test_the_consumer_page_names_the_signer_as_readers_know_it_and_no_developer_words(
    pages_client: TestClient, pages_db: Pages
) -> None:
    name = pages_db.settings.operator_name
    assert name == "德阳市旌阳区数字乡村"  # the default, DV_OPERATOR_NAME
    for path in (pages_db.bottle, pages_db.bottle_lot, f"/p/{pages_db.parcels[0]}"):
        for language in ("zh-CN", "en"):
            html = pages_client.get(path, headers={**HTML, "Accept-Language": language}).text
            assert f'data-signer="{name}"' in html, path
            for developer in ("VKEY", "dv verify", "--vkey", "tlog-proof --"):
                assert developer not in html, (path, developer)


def test_the_site_has_an_icon(pages_client: TestClient) -> None:
    # Browsers ask for /favicon.ico by themselves: the pages spend no bytes linking it.
    icon = pages_client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/vnd.microsoft.icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
