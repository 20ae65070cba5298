"""The GS1 Digital Link resolver against the GS1-Conformant Resolver criteria.

Each test names the criterion it holds. The criteria and the checks come from GS1's resolver
test suite (github.com/gs1/GS1DL-resolver-testsuite: ``Conformance1_2.txt``,
``ConformantResolver1_0.txt`` and ``public/GS1DigitalLinkResolverTestSuite.js``, whose check
ids — ``corsCheck``, ``defaultTarget``, ``loFor…`` … — are quoted below); the suite's checks
are replayed here against our server, with the same requests (curl's ``Accept: */*``, an
``Origin`` header, no redirects followed) and the same comparisons.

The linkset is checked against the rules of GS1's linkset JSON schema
(ref.gs1.org/standards/resolver/linkset-schema, as published in github.com/gs1/linkset) and RFC
9264 §4.2: GS1 publishes that schema with no licence to redistribute it, so it is not copied
here; :data:`GS1_LINKSET_RULES` writes the same rules down.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator

from digital_village.demo import oil_season as seasons
from digital_village.web import linkset
from tests.web.conftest import BASE, Pages

GS1 = "https://gs1.org/voc/"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# What GS1's tester sends (tester.php, getCustomHeaders): curl's Accept and an Origin.
SUITE = {"Accept": "*/*", "Origin": "https://ref.gs1.org/test-suites/resolver/"}

# GS1's linkset schema's rules: a ``linkset`` array of link context objects, each with an
# ``anchor`` URL and an ``itemDescription`` (the older schema requires it; the newer also allows
# ``description``); every other member is a link type — a lower-case token or an http(s) URI
# — holding an array of target objects with ``href`` and ``title`` and, optionally,
# ``hreflang`` (language tags), ``type`` (a media type), ``context``, ``fwqs`` and ``public``;
# no other members anywhere.
_URL = r"^https?://[a-zA-Z0-9./]+"
GS1_LINKSET_RULES: dict[str, Any] = {
    "type": "object",
    "required": ["linkset"],
    "additionalProperties": False,
    "properties": {
        "linkset": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["anchor", "itemDescription"],
                "additionalProperties": False,
                "properties": {
                    "anchor": {"type": "string", "pattern": _URL},
                    "itemDescription": {"type": "string"},
                },
                "patternProperties": {
                    r"^(?!(anchor|itemDescription)$)([a-z-]+|https?://[a-zA-Z0-9./]+)$": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["href", "title"],
                            "additionalProperties": False,
                            "properties": {
                                "href": {"type": "string", "pattern": _URL},
                                "title": {"type": "string", "minLength": 1},
                                "hreflang": {
                                    "type": "array",
                                    "items": {"type": "string", "pattern": r"^\w{2}(-\w{2})?$"},
                                },
                                "type": {"type": "string", "pattern": r"\w+/[-+.\w]+"},
                                "context": {"type": "array"},
                                "fwqs": {"type": "boolean"},
                                "public": {"type": "boolean"},
                            },
                        },
                    }
                },
            },
        }
    },
}
# Ratified GS1 link types (GS1 Web Vocabulary, ref.gs1.org/voc/data/linktypes) this resolver
# may list; the suite's ``linkTypesDefined`` check warns about any other gs1: term.
RATIFIED = {"pip", "traceability", "epcis", "certificationInfo", "defaultLink", "recallStatus"}


def _strip_query(url: str) -> str:
    return url.split("?", 1)[0]


def _gs1_curies(body: dict[str, Any]) -> dict[str, Any]:
    """The linkset with GS1 link types as ``gs1:`` CURIEs, as the suite reads it."""
    text = re.sub(r"https://((ref\.)|(www\.))?gs1\.org/voc/", "gs1:", json.dumps(body))
    result: dict[str, Any] = json.loads(text)
    return result


def _linkset(client: TestClient, url: str) -> dict[str, Any]:
    response = client.get(url, headers={"Accept": linkset.LINKSET_MEDIA_TYPE})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_plain_request_is_sent_to_the_default_link_the_consumer_page(
    pages_client: TestClient, pages_db: Pages
) -> None:
    """``defaultTarget``: "One of the links SHALL be recognised by the resolver as the default
    and the resolver SHALL redirect to that URL"; ``linkOnRedirect``: the linkset in a Link
    header even when redirecting; ``legacyLinkHeaders``: no gs1: links in that header."""
    url = BASE + pages_db.bottle
    response = pages_client.get(url, headers=SUITE, follow_redirects=False)
    assert response.status_code == 307
    default = _gs1_curies(_linkset(pages_client, url))["linkset"][0]["gs1:defaultLink"]
    assert response.headers["location"] == default[0]["href"] == f"{BASE}/page{pages_db.bottle}"
    assert f'<{url}?linkType=linkset>; rel="linkset"' in response.headers["link"]
    assert 'rel="gs1:' not in response.headers["link"]
    # A browser follows it to the consumer page.
    page = pages_client.get(url, headers={"Accept": BROWSER})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert str(page.url) == f"{BASE}/page{pages_db.bottle}"
    assert 'rel="linkset"' in page.headers["link"]


def test_cors_and_the_three_methods_on_every_public_read(
    pages_client: TestClient, pages_db: Pages
) -> None:
    """``corsCheck`` and ``methodsCheck``: "SHALL support CORS" and "SHALL support HTTP 1.1 (or
    higher) GET, HEAD and OPTIONS requests" — on the resolver, the linkset, the pages, the
    ledger and its proofs."""
    lot = quote(pages_db.season.bottle_lot, safe="")
    for path in (
        pages_db.bottle,
        pages_db.bottle + "?linkType=linkset",
        f"/page{pages_db.bottle}",
        "/.well-known/gs1resolver",
        "/api/v1/ledger/checkpoint",
        "/api/v1/ledger/entries/1/proof",
        f"/api/v1/trace/{seasons.BOTTLE}/{lot}",
        f"/api/v1/lots/{seasons.BOTTLE}/{lot}/epcis",
    ):
        got = pages_client.get(path, headers=SUITE, follow_redirects=False)
        assert got.status_code in (200, 307), (path, got.text[:200])
        assert got.headers["access-control-allow-origin"] == "*", path
        methods = got.headers["access-control-allow-methods"]
        assert {"GET", "HEAD", "OPTIONS"} <= {m.strip() for m in methods.split(",")}, path
        head = pages_client.head(path, headers=SUITE, follow_redirects=False)
        assert head.status_code == got.status_code and head.content == b"", path
        preflight = pages_client.options(
            path,
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "accept-language",
            },
        )
        assert preflight.status_code == 204, (path, preflight.text)
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "GET" in preflight.headers["access-control-allow-methods"]
        assert "Accept-Language" in preflight.headers["access-control-allow-headers"]
    # Writes stay same-origin: no CORS on them, so no cross-site write through a browser.
    write = pages_client.options("/api/v1/parcels", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in write.headers


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?linkType=linkset", SUITE),  # ltLinksetNoRedirect
        ("?linkType=all", SUITE),  # ltAllNoRedirect (deprecated, still answered)
        ("?linkType=all", {"Accept": "application/linkset+json"}),  # ltAcceptHeader
        ("", {"Accept": "application/linkset+json"}),  # validLinkset's own request
    ],
)
def test_the_linkset_is_answered_without_a_redirect_and_validates(
    pages_client: TestClient, pages_db: Pages, query: str, headers: dict[str, str]
) -> None:
    """ "On receiving a request for the linkset [...] the resolver SHALL NOT redirect the query
    and SHALL return the linkset"; ``validLinkset``: valid against GS1's linkset schema;
    ``declaredContentType``: application/linkset+json; ``linksetJsonldCheck``: a Link header to
    the JSON-LD context; ``varyAccept``: Vary names Accept."""
    response = pages_client.get(pages_db.bottle + query, headers=headers, follow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/linkset+json"
    context_links = [
        part for part in response.headers["link"].split(",") if "json-ld#context" in part
    ]
    assert len(context_links) == 1 and 'type="application/ld+json"' in context_links[0]
    assert "Accept" in response.headers["vary"]
    body = response.json()
    errors = [e.message for e in Draft7Validator(GS1_LINKSET_RULES).iter_errors(body)]
    assert not errors, errors
    # RFC 9264 §4.2: every context's anchor is the item it describes, finest first; the
    # uncompressed canonical URI is the subject of the facts (Conformance1_2: "The URI used as
    # the subject of facts presented SHALL be the uncompressed version").
    assert [item["anchor"] for item in body["linkset"]] == [
        BASE + pages_db.bottle,
        BASE + pages_db.bottle_lot,
        f"{BASE}/01/{seasons.BOTTLE}",
    ]


def test_json_clients_get_the_linkset_as_json(pages_client: TestClient, pages_db: Pages) -> None:
    """``listAsJSON``: the list of links is available as JSON by content negotiation."""
    for accept in ("application/json", "application/json, text/html;q=0.5"):
        response = pages_client.get(pages_db.bottle, headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json()["linkset"][0]["anchor"] == BASE + pages_db.bottle


def test_every_link_of_the_linkset_is_one_redirect_away(
    pages_client: TestClient, pages_db: Pages
) -> None:
    """The suite's ``linksetTests`` replayed: walking up the request's levels, each link type
    (the finest level that has it) is asked for with ``?linkType=`` (and ``mediaType`` and
    ``lang`` when there are several links of the type) and SHALL redirect to that link
    (``loFor…``); ``defaultLinkExists``/``singleDefaulLink``: exactly one default link per
    level, with a title and no other attribute; ``linkTypesDefined``: ratified link types;
    "Links that are typed gs1:defaultLink [...] SHALL also be described using a descriptive
    link type"."""
    dl = BASE + pages_db.bottle
    body = _gs1_curies(_linkset(pages_client, dl))
    seen: set[str] = set()
    current = dl
    checked = 0
    while current.count("/") > 4:
        for item in body["linkset"]:
            if item["anchor"] != current:
                continue
            default = item["gs1:defaultLink"]
            assert len(default) == 1 and set(default[0]) == {"href", "title"}
            described = [t["href"] for k, v in item.items() if k.startswith("gs1:") for t in v]
            assert described.count(default[0]["href"]) >= 2, "default link also typed"
            for link_type, targets in item.items():
                if link_type in ("anchor", "itemDescription") or link_type in seen:
                    continue
                seen.add(link_type)
                assert link_type.removeprefix("gs1:") in RATIFIED, link_type
                for target in targets:
                    query = f"?linkType={link_type}"
                    if len(targets) > 1:
                        query += f"&mediaType={target['type']}&lang={target['hreflang'][0]}"
                    moved = pages_client.get(dl + query, headers=SUITE, follow_redirects=False)
                    assert moved.status_code == 307, (link_type, moved.text)
                    location = moved.headers["location"]
                    if f"?linkType={link_type}" in location:
                        location = _strip_query(location)
                    elif f"&linkType={link_type}" in location:
                        location = location[: location.index("&linkType=")]
                    assert location == target["href"], (link_type, target)
                    # And the target answers, with the media type the linkset says.
                    final = pages_client.get(target["href"])
                    assert final.status_code == 200, (target, final.text[:200])
                    media = target.get("type", "text/html")
                    assert final.headers["content-type"].startswith(media), target
                    checked += 1
        current = current.rsplit("/", 2)[0]
    assert {"gs1:pip", "gs1:traceability", "gs1:epcis", "gs1:certificationInfo"} <= seen
    assert checked >= 6


def test_a_link_type_the_item_lacks_is_404(pages_client: TestClient, pages_db: Pages) -> None:
    """``specificLinkTypeNotFound``: "If the requested type of link is not available, the
    resolver SHALL return a 404 Not Found message" — as problem+json, naming the linkset."""
    for path, link_type in (
        (pages_db.bottle, "gs1:nosuchlt"),
        (pages_db.bottle, "gs1:recipeInfo"),
        (f"/01/{seasons.BOTTLE}", "gs1:traceability"),  # a product has no trace of its own
        (pages_db.bottle, "https://example.org/voc/other"),
    ):
        response = pages_client.get(
            f"{path}?linkType={link_type}", headers=SUITE, follow_redirects=False
        )
        assert response.status_code == 404, (path, link_type, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert "has no link of type" in response.json()["detail"]
        assert response.json()["linkset"].endswith("?linkType=linkset")


def test_the_query_string_is_passed_on_when_redirecting(
    pages_client: TestClient, pages_db: Pages
) -> None:
    """``qsPassedOn``: "By default, SHALL pass on all key=value pairs in the query string of
    the request URI (if present) when redirecting" — to the default link and to a typed link."""
    moved = pages_client.get(pages_db.bottle + "?foo=bar", headers=SUITE, follow_redirects=False)
    assert moved.status_code == 307
    assert moved.headers["location"] == f"{BASE}/page{pages_db.bottle}?foo=bar"
    typed = pages_client.get(
        pages_db.bottle_lot + "?linkType=gs1:epcis&foo=bar&geo=31.2,104.3",
        headers=SUITE,
        follow_redirects=False,
    )
    lot = quote(pages_db.season.bottle_lot, safe="")
    assert typed.headers["location"] == (
        f"{BASE}/api/v1/lots/{seasons.BOTTLE}/{lot}/epcis?linkType=gs1:epcis&foo=bar&geo=31.2,104.3"
    )


def test_a_trailing_slash_gets_the_same_answer(pages_client: TestClient, pages_db: Pages) -> None:
    """``trailingSlash``: "SHOULD tolerate trailing slashes [...]" — the same status and the
    same Location with and without one."""
    for path in (pages_db.bottle, pages_db.bottle_lot, f"/01/{seasons.BOTTLE}"):
        plain = pages_client.get(path, headers=SUITE, follow_redirects=False)
        slash = pages_client.get(path + "/", headers=SUITE, follow_redirects=False)
        assert (plain.status_code, plain.headers.get("location")) == (
            slash.status_code,
            slash.headers.get("location"),
        )


@pytest.mark.parametrize(
    ("path", "target"),
    [
        # a GTIN-13 is written as a GTIN-14 with its leading zero
        ("/01/{gtin13}/10/{lot}", "/01/{gtin}/10/{lot}"),
        # the 1.0 alphas of other label makers
        ("/gtin/{gtin}/lot/{lot}/ser/0001", "/01/{gtin}/10/{lot}/21/0001"),
        # a serial without its lot gets the lot the item was made in
        ("/01/{gtin}/21/0002", "/01/{gtin}/10/{lot}/21/0002"),
        # GS1 attributes in their canonical order, other parameters kept as they came
        ("/01/{gtin}/10/{lot}?7007=260518&11=260605&lang=en", None),
        # the page route too
        ("/page/01/{gtin13}/10/{lot}", "/page/01/{gtin}/10/{lot}"),
    ],
)
def test_non_canonical_links_redirect_307_to_the_canonical_uri(
    pages_client: TestClient, pages_db: Pages, path: str, target: str | None
) -> None:
    """Non-canonical spellings are redirected with 307 (not a permanent 301: a label printed
    today may be read differently by a later version of the standard)."""
    values = {
        "gtin": seasons.BOTTLE,
        "gtin13": seasons.BOTTLE[1:],
        "lot": pages_db.season.bottle_lot,
    }
    response = pages_client.get(path.format(**values), follow_redirects=False)
    assert response.status_code == 307, response.text
    expected = BASE + (
        target.format(**values)
        if target
        else f"/01/{seasons.BOTTLE}/10/{pages_db.season.bottle_lot}?11=260605&7007=260518&lang=en"
    )
    assert response.headers["location"] == expected
    assert 'rel="linkset"' in response.headers["link"]
    assert pages_client.get(expected, headers={"Accept": BROWSER}).status_code == 200


def test_redirects_stay_on_the_host_asked_when_it_is_not_the_public_one(
    pages_app: Any, pages_db: Pages
) -> None:
    """Behind a proxy that rewrites Host (or on a test server), the target is relative, so it
    resolves against the address the client asked for."""
    with TestClient(pages_app, base_url="http://127.0.0.1:8000") as client:
        moved = client.get(pages_db.bottle, follow_redirects=False)
        assert moved.headers["location"] == f"/page{pages_db.bottle}"
        assert client.get(pages_db.bottle).status_code == 200


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/01/06901234001036", "check digit should be 7"),
        ("/01/{gtin}/10/{lot}/21/0001/foo", "odd number of segments"),  # reportWith400
        ("/01/{gtin}/99/X", "AI 99 (internal) is not a key qualifier of 01"),
        ("/01/{gtin}/10/{lot}?3103=12345", "AI 3103 (trade measure (metric)) must be 6 digits"),
        ("/01/{gtin}/10/{lot}?123=1", "AI 123 is not a GS1 Application Identifier"),
        ("/01/{gtin}/21/0001/10/{lot}", "must come before AI 21"),
        ("/01/{gtin}/10/A%7E", "outside GS1 set 82"),
        ("/01/{gtin}/10/" + "L" * 21, "1 to 20 characters"),
        ("/01/{gtin}/10/{lot}?7007=261332", "invalid month 13"),
    ],
)
def test_malformed_links_are_400_naming_why(
    pages_client: TestClient, pages_db: Pages, path: str, reason: str
) -> None:
    """``reportWith400``: "SHALL extract and syntactically validate the URI and report errors
    with an HTTP response code of 400"; ``noErrorWith200``: never 200 for an error."""
    target = path.format(gtin=seasons.BOTTLE, lot=pages_db.season.bottle_lot)
    client = pages_client.get(target, headers={"Accept": "application/json"})
    assert client.status_code == 400, client.text
    assert client.headers["content-type"] == "application/problem+json"
    assert client.headers["access-control-allow-origin"] == "*"
    assert reason in client.json()["detail"]
    browser = pages_client.get(target, headers={"Accept": BROWSER})
    assert browser.status_code == 400
    assert browser.headers["content-type"].startswith("text/html")
    # Wholly in the reader's language: the Chinese page says what is wrong in Chinese (the
    # detail is for English readers and clients), and that the item may be counterfeit.
    assert "链接格式有误" in browser.text and reason not in browser.text
    assert "data-counterfeit" in browser.text
    english = pages_client.get(target, headers={"Accept": BROWSER, "Accept-Language": "en"})
    assert "The link is malformed" in english.text and reason in english.text


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


def test_a_bad_link_type_is_400(pages_client: TestClient, pages_db: Pages) -> None:
    bad = pages_client.get(pages_db.bottle + "?linkType=not%20a%20type")
    assert bad.status_code == 400
    assert "is not a link type" in bad.json()["detail"]
    # A client that accepts nothing we have is still sent to the default link.
    moved = pages_client.get(
        pages_db.bottle, headers={"Accept": "image/png"}, follow_redirects=False
    )
    assert moved.status_code == 307


def test_the_linktype_targets_answer_what_they_promise(
    pages_client: TestClient, pages_db: Pages
) -> None:
    trace = pages_client.get(pages_db.bottle + "?linkType=gs1:traceability").json()
    assert trace["root"] == f"01/{seasons.BOTTLE}/21/{pages_db.season.serials[0]}"
    parcels = {node["id"] for node in trace["nodes"] if node["type"] == "parcel"}
    assert parcels == set(pages_db.season.parcels)
    epcis = pages_client.get(pages_db.bottle_lot + "?linkType=https://gs1.org/voc/epcis")
    assert epcis.headers["content-type"] == "application/ld+json"
    assert epcis.json()["type"] == "EPCISDocument"
    steps = [event.get("bizStep", "") for event in epcis.json()["epcisBody"]["eventList"]]
    assert "inspecting" in steps and any(step.endswith("/harvesting") for step in steps)
    certified = pages_client.get(pages_db.bottle + "?linkType=gs1:certificationInfo")
    body = certified.json()
    assert body["anchor"] == BASE + pages_db.bottle_lot
    (certificate,) = body["certificates"]
    assert certificate["number"] == pages_db.season.certificate
    assert certificate["issuer"] == "民安油菜专业合作社"
    assert "contact" not in certificate and "0838" not in certified.text


def test_several_links_of_a_type_are_chosen_by_language(
    pages_client: TestClient, pages_db: Pages
) -> None:
    """ "SHOULD support the use of the Accept-Language [...] to disambiguate between multiple
    links of the same linkType" (Conformance1_2)."""
    asked = pages_client.get(
        pages_db.bottle + "?linkType=gs1:pip",
        headers={"Accept-Language": "en-GB,en;q=0.9"},
        follow_redirects=False,
    )
    assert asked.headers["location"] == f"{BASE}/page{pages_db.bottle}?lang=en&linkType=gs1:pip"
    chinese = pages_client.get(
        pages_db.bottle + "?linkType=gs1:pip",
        headers={"Accept-Language": "zh"},
        follow_redirects=False,
    )
    assert chinese.headers["location"] == f"{BASE}/page{pages_db.bottle}?linkType=gs1:pip"


def test_head_answers_headers_only_and_counts_no_scan(
    pages_client: TestClient, pages_db: Pages
) -> None:
    page = f"/page{pages_db.bottle}"
    head = pages_client.head(page, headers={"Accept": BROWSER})
    assert head.status_code == 200
    assert head.content == b""
    assert 'rel="linkset"' in head.headers["link"]
    assert pages_client.head(pages_db.bottle, follow_redirects=False).status_code == 307
    shown = pages_client.get(page, headers={"Accept": BROWSER})
    assert 'data-scans="1"' in shown.text


def test_the_resolver_description_file(pages_client: TestClient) -> None:
    """``rdFile``: "SHALL provide a resolver description file at /.well-known/gs1resolver";
    "The list of supported primary identifiers SHALL be provided"; "A context file [...] SHOULD
    be declared". Checked with the rules of GS1's description-file schema (1.2.0)."""
    response = pages_client.get("/.well-known/gs1resolver", headers={"Accept": "application/json"})
    assert response.headers["access-control-allow-origin"] == "*"
    body = response.json()
    rules = {
        "type": "object",
        "required": ["resolverRoot", "supportedPrimaryKeys", "name"],
        "properties": {
            "resolverRoot": {"type": "string", "pattern": "^https?://"},
            "supportedPrimaryKeys": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "enum": [
                        "all",
                        "01",
                        "8006",
                        "8013",
                        "8010",
                        "410",
                        "411",
                        "412",
                        "413",
                        "414",
                        "415",
                        "417",
                        "8017",
                        "8018",
                        "255",
                        "00",
                        "253",
                        "401",
                        "402",
                        "8003",
                        "8004",
                    ]
                },
            },
            "name": {"type": "string"},
            "supportedLinkType": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "namespace": {"type": "string", "pattern": "^https?://"},
                        "prefix": {"type": "string", "pattern": "^[a-zA-Z_][A-Za-z0-9_-]*?:$"},
                    },
                },
            },
            "linkTypeDefaultCanBeLinkset": {"type": "boolean"},
            "jsonLdContextLocation": {"type": "string", "pattern": "^https?://"},
        },
    }
    assert not list(Draft7Validator(rules).iter_errors(body))
    assert body["resolverRoot"] == BASE
    assert "01" in body["supportedPrimaryKeys"]
    assert body["supportedLinkType"] == [{"namespace": GS1, "prefix": "gs1:"}]
    assert body["jsonLdContextLocation"] == linkset.LINKSET_CONTEXT


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
    zh = linkset.Target("https://x.test/a", "中文", "text/html", ("zh-CN",))
    en = linkset.Target("https://x.test/a?lang=en", "English", "text/html", ("en",))
    data = linkset.Target("https://x.test/b", "data", "application/json")
    assert linkset.choose([zh, en]) is zh
    assert linkset.choose([zh, en], lang="en") is en
    assert linkset.choose([zh, en], accept_language="fr, en;q=0.5") is en
    assert linkset.choose([zh, en], accept_language="zh-TW") is zh
    assert linkset.choose([zh, data], media_type="application/json") is data
    assert linkset.choose([zh, data], accept="application/json") is data
