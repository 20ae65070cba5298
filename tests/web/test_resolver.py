"""The GS1 Digital Link resolver: content negotiation, linksets, redirects and refusals."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator

from digital_village.demo import oil_season as seasons
from digital_village.web import linkset
from tests.web.conftest import BASE, Pages

GS1 = "https://gs1.org/voc/"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"

# The GS1-Conformant Resolver linkset schema's shape (ref.gs1.org/standards/resolver/
# linkset-schema), reduced to what it requires: an anchor per context object, and every link
# type an array of targets with an href and a title.
LINKSET_SCHEMA = {
    "type": "object",
    "required": ["linkset"],
    "properties": {
        "linkset": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["anchor"],
                "properties": {"anchor": {"type": "string", "pattern": "^https?://"}},
                "patternProperties": {
                    "^https?://": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["href", "title"],
                            "properties": {
                                "href": {"type": "string", "pattern": "^https?://"},
                                "title": {"type": "string", "minLength": 1},
                                "type": {"type": "string"},
                                "hreflang": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    }
                },
            },
        }
    },
}


def _contexts(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["anchor"]: item for item in body["linkset"]}


def _hrefs(context: dict[str, Any], link_type: str) -> list[str]:
    return [target["href"] for target in context.get(GS1 + link_type, [])]


def test_a_browser_gets_the_consumer_page_with_a_link_to_the_linkset(
    pages_client: TestClient, pages_db: Pages
) -> None:
    response = pages_client.get(pages_db.bottle, headers={"Accept": BROWSER})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    anchor = BASE + pages_db.bottle
    assert f'<{anchor}?linkType=linkset>; rel="linkset"' in response.headers["link"]
    assert f'<{anchor}>; rel="canonical"' in response.headers["link"]
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Accept" in response.headers["vary"]


@pytest.mark.parametrize(
    ("headers", "query", "media_type"),
    [
        ({"Accept": "application/linkset+json"}, "", "application/linkset+json"),
        ({"Accept": "application/json"}, "", "application/json"),
        ({"Accept": "application/json, text/html;q=0.5"}, "", "application/json"),
        ({"Accept": BROWSER}, "?linkType=linkset", "application/linkset+json"),
        ({}, "?linkType=all", "application/linkset+json"),
    ],
)
def test_json_clients_and_linktype_linkset_get_the_rfc9264_linkset(
    pages_client: TestClient,
    pages_db: Pages,
    headers: dict[str, str],
    query: str,
    media_type: str,
) -> None:
    response = pages_client.get(pages_db.bottle + query, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == media_type
    assert 'rel="http://www.w3.org/ns/json-ld#context"' in response.headers["link"]
    body = response.json()
    assert not list(Draft7Validator(LINKSET_SCHEMA).iter_errors(body))
    assert [item["anchor"] for item in body["linkset"]] == [
        BASE + pages_db.bottle,
        BASE + pages_db.bottle_lot,
        f"{BASE}/01/{seasons.BOTTLE}",
    ]


def test_the_linkset_names_every_link_type_with_the_right_hrefs(
    pages_client: TestClient, pages_db: Pages
) -> None:
    body = pages_client.get(pages_db.bottle + "?linkType=linkset").json()
    contexts = _contexts(body)
    for path in (pages_db.bottle, pages_db.bottle_lot):
        anchor = BASE + path
        item = contexts[anchor]
        assert _hrefs(item, "pip") == [
            f"{anchor}?linkType=gs1:pip",
            f"{anchor}?linkType=gs1:pip&lang=en",
        ]
        assert [t["hreflang"] for t in item[GS1 + "pip"]] == [["zh-CN"], ["en"]]
        assert _hrefs(item, "traceability") == [f"{anchor}?linkType=gs1:traceability"]
        assert _hrefs(item, "epcis") == [f"{anchor}?linkType=gs1:epcis"]
        assert _hrefs(item, "certificationInfo") == [f"{anchor}?linkType=gs1:certificationInfo"]
        assert _hrefs(item, "defaultLink") == [f"{anchor}?linkType=gs1:pip"]
        assert item[GS1 + "epcis"][0]["type"] == "application/ld+json"
    product = contexts[f"{BASE}/01/{seasons.BOTTLE}"]
    assert set(product) == {"anchor", "description", GS1 + "pip", GS1 + "defaultLink"}
    assert product["description"] == "天府菜油 5 L"


def test_every_href_of_the_linkset_answers_with_its_media_type(
    pages_client: TestClient, pages_db: Pages
) -> None:
    body = pages_client.get(pages_db.bottle + "?linkType=linkset").json()
    for item in body["linkset"]:
        for key, targets in item.items():
            if not key.startswith(GS1):
                continue
            for target in targets:
                response = pages_client.get(target["href"].removeprefix(BASE))
                assert response.status_code == 200, (target, response.text[:300])
                assert response.headers["content-type"].startswith(target["type"]), target
                assert 'rel="linkset"' in response.headers["link"]


def test_linktype_traceability_is_the_backward_trace_of_the_item(
    pages_client: TestClient, pages_db: Pages
) -> None:
    response = pages_client.get(pages_db.bottle + "?linkType=gs1:traceability")
    body = response.json()
    assert body["root"] == f"01/{seasons.BOTTLE}/21/{pages_db.season.serials[0]}"
    parcels = {node["id"] for node in body["nodes"] if node["type"] == "parcel"}
    assert parcels == set(pages_db.season.parcels)
    same = pages_client.get(f"/api/v1/trace/{seasons.BOTTLE}/{pages_db.season.bottle_lot}/0001")
    assert same.json()["nodes"] == body["nodes"]


def test_linktype_epcis_is_the_lots_epcis_document(
    pages_client: TestClient, pages_db: Pages
) -> None:
    response = pages_client.get(
        pages_db.bottle_lot + "?linkType=https://gs1.org/voc/epcis",
        headers={"Accept": "application/ld+json"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/ld+json"
    assert response.headers["gs1-epcis-version"] == "2.0"
    document = response.json()
    assert document["type"] == "EPCISDocument"
    steps = [event.get("bizStep", "") for event in document["epcisBody"]["eventList"]]
    assert "inspecting" in steps and "commissioning" in steps
    assert any(step.endswith("/harvesting") for step in steps)


def test_linktype_certificationinfo_is_the_certificate_without_a_phone_number(
    pages_client: TestClient, pages_db: Pages
) -> None:
    response = pages_client.get(pages_db.bottle + "?linkType=gs1:certificationInfo")
    body = response.json()
    assert body["anchor"] == BASE + pages_db.bottle
    (certificate,) = body["certificates"]
    assert certificate["number"] == pages_db.season.certificate
    assert certificate["type"] == "承诺达标合格证"
    assert certificate["issuer"] == "民安油菜专业合作社"
    assert "contact" not in certificate
    assert "0838" not in response.text
    assert {c["code"] for c in certificate["basis"]} == {
        "self_testing",
        "internal_quality_control",
    }


def test_a_link_type_the_item_lacks_redirects_to_the_default_link(
    pages_client: TestClient, pages_db: Pages
) -> None:
    response = pages_client.get(
        pages_db.bottle + "?linkType=gs1:recipeInfo&lang=en", follow_redirects=False
    )
    assert response.status_code == 307
    assert response.headers["location"] == pages_db.bottle + "?lang=en"
    assert 'rel="linkset"' in response.headers["link"]
    # A product has no trace of its own: its default link is its page.
    product = f"/01/{seasons.BOTTLE}"
    moved = pages_client.get(product + "?linkType=gs1:traceability", follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (307, product)


@pytest.mark.parametrize(
    ("path", "target"),
    [
        # a GTIN-13 is written as a GTIN-14 with its leading zero
        ("/01/{gtin13}/10/{lot}", "/01/{gtin}/10/{lot}"),
        # the 1.0 alphas of other label makers
        ("/gtin/{gtin}/lot/{lot}/ser/0001", "/01/{gtin}/10/{lot}/21/0001"),
        # a trailing slash is tolerated, then corrected
        ("/01/{gtin}/10/{lot}/", "/01/{gtin}/10/{lot}"),
        # a serial without its lot gets the lot the item was made in
        ("/01/{gtin}/21/0002", "/01/{gtin}/10/{lot}/21/0002"),
        # GS1 attributes in their canonical order, other parameters kept as they came
        ("/01/{gtin}/10/{lot}?7007=260518&11=260605&lang=en", None),
    ],
)
def test_non_canonical_links_redirect_to_the_canonical_uri(
    pages_client: TestClient, pages_db: Pages, path: str, target: str | None
) -> None:
    values = {
        "gtin": seasons.BOTTLE,
        "gtin13": seasons.BOTTLE[1:],
        "lot": pages_db.season.bottle_lot,
    }
    response = pages_client.get(path.format(**values), follow_redirects=False)
    assert response.status_code == 301, response.text
    expected = (
        target.format(**values)
        if target
        else f"/01/{seasons.BOTTLE}/10/{pages_db.season.bottle_lot}?11=260605&7007=260518&lang=en"
    )
    assert response.headers["location"] == expected
    assert 'rel="linkset"' in response.headers["link"]
    assert pages_client.get(expected, headers={"Accept": BROWSER}).status_code == 200


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/01/06901234001036", "check digit should be 7"),
        ("/01/{gtin}/99/X", "AI 99 is not a key qualifier of 01"),
        ("/01/{gtin}/21/0001/10/{lot}", "must come before AI 21"),
        ("/01/{gtin}/10/{lot}/21", "odd number of segments"),
        ("/01/{gtin}/10/A%7E", "outside GS1 set 82"),
        ("/01/{gtin}/10/" + "L" * 21, "1 to 20 characters"),
        ("/01/{gtin}/10/{lot}?7007=261332", "invalid month 13"),
        ("/01/{gtin}/10/{lot}?99=1", "AI 99 is not supported as a query attribute"),
        ("/01/{gtin}/22/X", "AI 22"),
    ],
)
def test_malformed_links_are_400_naming_why(
    pages_client: TestClient, pages_db: Pages, path: str, reason: str
) -> None:
    target = path.format(gtin=seasons.BOTTLE, lot=pages_db.season.bottle_lot)
    client = pages_client.get(target, headers={"Accept": "application/json"})
    assert client.status_code == 400, client.text
    assert client.headers["content-type"] == "application/problem+json"
    assert client.headers["access-control-allow-origin"] == "*"
    assert reason in client.json()["detail"]
    browser = pages_client.get(target, headers={"Accept": BROWSER})
    assert browser.status_code == 400
    assert browser.headers["content-type"].startswith("text/html")
    assert "链接格式有误" in browser.text and reason in browser.text


def test_unknown_products_lots_and_serials_are_404(
    pages_client: TestClient, pages_db: Pages
) -> None:
    lot = pages_db.season.bottle_lot
    unknown_gtin = seasons.make_gtin("690123400999")
    for path, reason in (
        (f"/01/{unknown_gtin}", "no product"),
        (f"/01/{seasons.BOTTLE}/10/NOPE", "no lot"),
        (f"/01/{seasons.BOTTLE}/10/{lot}/21/9999", "no serialised unit"),
        (f"/01/{seasons.BOTTLE}/10/{pages_db.season.oil_lot}/21/0001", "is not in lot"),
    ):
        client = pages_client.get(path, headers={"Accept": "application/json"})
        assert client.status_code == 404, (path, client.text)
        assert reason in client.json()["detail"]
        page = pages_client.get(path, headers={"Accept": BROWSER, "Accept-Language": "en"})
        assert page.status_code == 404
        assert "Not found" in page.text and reason in page.text


def test_a_bad_link_type_is_400_and_an_unacceptable_accept_is_406(
    pages_client: TestClient, pages_db: Pages
) -> None:
    bad = pages_client.get(pages_db.bottle + "?linkType=not%20a%20type")
    assert bad.status_code == 400
    assert "is not a link type" in bad.json()["detail"]
    refused = pages_client.get(pages_db.bottle, headers={"Accept": "image/png"})
    assert refused.status_code == 406
    assert "text/html" in refused.json()["detail"]
    assert 'rel="linkset"' in refused.headers["link"]


def test_head_answers_headers_only_and_counts_no_scan(
    pages_client: TestClient, pages_db: Pages
) -> None:
    head = pages_client.head(pages_db.bottle, headers={"Accept": BROWSER})
    assert head.status_code == 200
    assert head.content == b""
    assert 'rel="linkset"' in head.headers["link"]
    page = pages_client.get(pages_db.bottle, headers={"Accept": BROWSER})
    assert 'data-scans="1"' in page.text


def test_the_resolver_description_file(pages_client: TestClient) -> None:
    body = pages_client.get("/.well-known/gs1resolver").json()
    assert body["resolverRoot"] == BASE
    assert body["supportedPrimaryKeys"] == ["01"]
    assert body["supportedLinkType"] == [{"namespace": GS1, "prefix": "gs1:"}]


def test_negotiation_rules() -> None:
    assert linkset.negotiate(None) == "html"
    assert linkset.negotiate("*/*") == "html"
    assert linkset.negotiate(BROWSER) == "html"
    assert linkset.negotiate("application/linkset+json") == "linkset"
    assert linkset.negotiate("text/html;q=0.4, application/json") == "linkset"
    assert linkset.negotiate("application/json;q=0.5, text/html") == "html"
    assert linkset.negotiate("application/json;q=0") is None
    assert linkset.negotiate("image/png") is None
    assert linkset.parse_link_type("https://gs1.org/voc/pip") == "gs1:pip"
    assert linkset.parse_link_type("https://ref.gs1.org/voc/epcis") == "gs1:epcis"
    assert linkset.parse_link_type("all") == "linkset"
    with pytest.raises(linkset.LinkTypeError):
        linkset.parse_link_type("pip")
