"""Tests of GTIN validation and GS1 Digital Link parsing and building.

Vector sources (facts and examples only; no code is taken from them):

* jodal/biip ``tests/gtin/test_parse.py``: GTIN-8/12/13/14 vectors and the wrong check digit of
  5901234123458; ``tests/test_gs1_digital_link_uris.py``: the Digital Link URIs, the invalid
  ones and the canonical-form expectations.
* gs1/digital-link.js ``tests/index.js``: the gs1.evrythng.com and dlnkd.tn.gg URIs, and
  ``grammar/GS1_Digital_Link_Grammar_1_2.abnf`` for the path order and the value formats.
* gs1/gs1-syntax-dictionary ``gs1-syntax-dictionary.txt`` (11/17 are ``yymmd0``, 7007 is
  ``yymmdd [yymmdd]``, 422 is ``iso3166``), ``src/lint_cset82.c`` (set 82) and
  ``src/lint_iso3166.c`` (pass/fail country codes).
"""

from __future__ import annotations

import re
from datetime import date
from random import Random
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digital_village.gs1.digital_link import (
    DigitalLink,
    DigitalLinkError,
    canonicalize_digital_link,
    parse_digital_link,
)
from digital_village.gs1.keys import GS1_SET_82, GTINError, gtin_check_digit, validate_gtin

# --- GTIN -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gtin", "gtin14"),
    [
        # biip tests/gtin/test_parse.py
        ("96385074", "00000096385074"),
        ("000096385074", "00000096385074"),
        ("00000096385074", "00000096385074"),
        ("123601057072", "00123601057072"),
        ("036000291452", "00036000291452"),
        ("006000291455", "00006000291455"),
        ("000902914511", "00000902914511"),
        ("5901234123457", "05901234123457"),
        ("05901234123457", "05901234123457"),
        ("98765432109213", "98765432109213"),
        # biip tests/test_gs1_digital_link_uris.py
        ("614141123452", "00614141123452"),
        ("07032069804988", "07032069804988"),
        ("01234567890128", "01234567890128"),
        # digital-link.js tests/index.js (an ISBN-13 used as GTIN-13)
        ("9780345418913", "09780345418913"),
    ],
)
def test_validate_gtin_normalises_to_gtin14(gtin: str, gtin14: str) -> None:
    assert validate_gtin(gtin) == gtin14


@pytest.mark.parametrize(
    ("gtin", "message"),
    [
        ("5901234123458", "GTIN check digit should be 7, got 8 (in '5901234123458')"),
        ("00614141123453", "GTIN check digit should be 2, got 3 (in '00614141123453')"),
        ("123", "GTIN must be 8, 12, 13 or 14 digits, got 3"),
        ("96385074" + "0" * 7, "GTIN must be 8, 12, 13 or 14 digits, got 15"),
        ("1234567890", "GTIN must be 8, 12, 13 or 14 digits, got 10"),
        ("0123456789abc", "GTIN must contain only digits, got '0123456789abc'"),
        ("", "GTIN must contain only digits, got ''"),
        (" 96385074", "GTIN must contain only digits, got ' 96385074'"),
        # Arabic-Indic digits pass str.isdigit() but are not GS1 digits.
        ("٩٦٣٨٥٠٧٤", "GTIN must contain only digits"),
    ],
)
def test_validate_gtin_errors(gtin: str, message: str) -> None:
    with pytest.raises(GTINError, match=re.escape(message)):
        validate_gtin(gtin)


def test_gtin_error_is_a_digital_link_error_and_a_value_error() -> None:
    with pytest.raises(DigitalLinkError):
        validate_gtin("123")
    with pytest.raises(ValueError, match="GTIN"):
        validate_gtin("123")


@pytest.mark.parametrize(
    ("payload", "digit"),
    [("9638507", "4"), ("61414112345", "2"), ("590123412345", "7"), ("9876543210921", "3")],
)
def test_gtin_check_digit_known_answers(payload: str, digit: str) -> None:
    assert gtin_check_digit(payload) == digit


@pytest.mark.parametrize("payload", ["123456", "12345678", "1234567890", "12345678901234"])
def test_gtin_check_digit_rejects_payload_lengths(payload: str) -> None:
    with pytest.raises(GTINError, match="payload must be 7, 11, 12 or 13 digits"):
        gtin_check_digit(payload)


def test_gtin_check_digit_rejects_non_digits() -> None:
    with pytest.raises(GTINError, match="only digits"):
        gtin_check_digit("12345A7")


gtin_payloads = st.sampled_from([7, 11, 12, 13]).flatmap(
    lambda length: st.text(alphabet="0123456789", min_size=length, max_size=length)
)


@given(gtin_payloads)
def test_payload_plus_check_digit_validates(payload: str) -> None:
    gtin = payload + gtin_check_digit(payload)
    assert validate_gtin(gtin) == gtin.zfill(14)


@given(gtin_payloads, st.data())
def test_any_single_digit_change_is_detected(payload: str, data: st.DataObject) -> None:
    gtin = payload + gtin_check_digit(payload)
    position = data.draw(st.integers(0, len(gtin) - 1))
    replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != gtin[position]]))
    changed = gtin[:position] + replacement + gtin[position + 1 :]
    with pytest.raises(GTINError, match="check digit should be"):
        validate_gtin(changed)


# --- parsing vectors ------------------------------------------------------------------------


def test_parse_canonical_uri() -> None:
    # biip: canonical URI on the GS1 reference resolver.
    link = parse_digital_link("https://id.gs1.org/01/00614141123452")
    assert link == DigitalLink(gtin="00614141123452")
    assert link.gtin == "00614141123452"
    assert link.lot is None
    assert link.serial is None
    assert dict(link.attributes) == {}
    assert link.base_url == "https://id.gs1.org"
    assert link.uri() == "https://id.gs1.org/01/00614141123452"


def test_parse_custom_domain_with_path_prefix_and_gtin12() -> None:
    # biip: "Custom domain and path prefix, with unpadded GTIN-12".
    link = parse_digital_link("https://example.com/foo/01/614141123452")
    assert link.gtin == "00614141123452"
    assert link.base_url == "https://example.com/foo"
    assert link.uri() == "https://example.com/foo/01/00614141123452"


def test_parse_lot() -> None:
    link = parse_digital_link("https://id.gs1.org/01/00614141123452/10/ABC123")
    assert (link.gtin, link.lot, link.serial) == ("00614141123452", "ABC123", None)


def test_parse_lot_and_serial_from_digital_link_js() -> None:
    link = parse_digital_link("https://gs1.evrythng.com/01/9780345418913/10/38737643/21/58943")
    assert link.gtin == "09780345418913"
    assert link.lot == "38737643"
    assert link.serial == "58943"
    assert link.base_url == "https://gs1.evrythng.com"
    assert link.uri() == "https://gs1.evrythng.com/01/09780345418913/10/38737643/21/58943"


def test_parse_serial_without_lot() -> None:
    link = parse_digital_link("https://id.gs1.org/01/01234567890128/21/12345XYZ")
    assert (link.lot, link.serial) == (None, "12345XYZ")
    assert link.path == "/01/01234567890128/21/12345XYZ"


def test_non_gs1_query_params_are_kept_apart_and_dropped_from_canonical_form() -> None:
    # biip: "GTIN-14 with extra query parameter that is ignored".
    link = parse_digital_link("https://id.gs1.org/01/00614141123452?foo=bar")
    assert link.extra_params == (("foo", "bar"),)
    assert dict(link.attributes) == {}
    assert link.uri() == "https://id.gs1.org/01/00614141123452"


def test_link_type_is_kept_for_the_resolver() -> None:
    link = parse_digital_link(
        "https://dv.example.org/01/09506000134352/10/LOT-7?linkType=gs1%3Atraceability&17=251231"
    )
    assert link.extra_params == (("linkType", "gs1:traceability"),)
    assert dict(link.attributes) == {"17": "251231"}
    assert link.uri() == "https://dv.example.org/01/09506000134352/10/LOT-7?17=251231"


def test_parse_all_supported_attributes() -> None:
    link = parse_digital_link(
        "https://dv.example.org/01/09506000134352/10/A1?7007=240601240615&422=156&17=250100&11=240616"
    )
    assert list(link.attributes.items()) == [
        ("11", "240616"),
        ("17", "250100"),
        ("422", "156"),
        ("7007", "240601240615"),
    ]
    assert link.query == "11=240616&17=250100&422=156&7007=240601240615"


def test_convenience_alphas_are_accepted_and_canonicalised() -> None:
    # digital-link.js Compression test input, minus its unsupported ?15= attribute.
    uri = "https://dlnkd.tn.gg/gtin/09780345418913/lot/231/ser/345345"
    assert (
        canonicalize_digital_link(uri) == "https://dlnkd.tn.gg/01/09780345418913/10/231/21/345345"
    )
    assert canonicalize_digital_link("https://h.example/01/96385074?exp=260300") == (
        "https://h.example/01/00000096385074?17=260300"
    )


def test_percent_encoding_is_decoded_and_re_encoded_canonically() -> None:
    link = parse_digital_link("https://h.example/01/96385074/10/AB%2fC%2b1/21/x%21y(z)")
    assert link.lot == "AB/C+1"
    assert link.serial == "x!y(z)"
    assert link.path == "/01/00000096385074/10/AB%2FC%2B1/21/x%21y%28z%29"


def test_scheme_and_host_are_lower_cased() -> None:
    assert canonicalize_digital_link("HTTPS://ID.GS1.ORG/01/00614141123452") == (
        "https://id.gs1.org/01/00614141123452"
    )


def test_equality_ignores_base_url_and_extra_params() -> None:
    a = parse_digital_link("https://a.example/01/614141123452/10/X?linkType=all")
    b = parse_digital_link("https://b.example/r/01/00614141123452/10/X")
    assert a == b
    assert hash(a) == hash(b)
    assert a.uri() != b.uri()
    assert a != parse_digital_link("https://a.example/01/614141123452/10/Y")


# --- invalid URIs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        # biip test_parse_error
        ("614141123452", "expected an http or https URI, got '614141123452'"),
        ("mailto:alice@example.com", "expected an http or https URI, got scheme 'mailto'"),
        ("http://example.com/foo/123", "unknown primary key 'foo' in path '/foo/123'"),
        (
            "https://example.com/foo/01/614141123452/123",
            "path after AI 01 must be key/value pairs, got an odd number of segments",
        ),
        (
            "https://id.gs1.org/01/614141123452/15/20250324",
            "AI 15 (best before date) is not a key qualifier of 01 (expected 22, 10, 21 or 235)",
        ),
        (
            "https://id.gs1.org/01/614141123452/10/ABC123/22/123456789",
            "AI 22 (consumer product variant) must come before AI 10 (lot)",
        ),
        (
            "https://id.gs1.org/01/614141123452/10/ABC123/235/TPX1",
            "the qualifiers 10, 235 of 01 are not one allowed sequence (22, 10, 21 or 235)",
        ),
        (
            "https://id.gs1.org/01/01234567890128/21/12345XYZ/10/ABC123",
            "AI 10 (lot) must come before AI 21 (serial)",
        ),
        (
            "https://id.gs1.org/00/106141412345678908/10/ABC123",
            "AI 10 (lot) is not a key qualifier of 00 (expected none)",
        ),
        (
            "https://id.gs1.org/00/106141412345678908",
            "primary key AI 00 (SSCC) is not supported; only AI 01 (GTIN)",
        ),
        # digital-link.js: "badurl", a missing identifier, and a trailing non-digit.
        ("badurl", "expected an http or https URI"),
        ("https://gs1.evrythng.com", "URI has no path"),
        ("https://gs1.evrythng.com/01/9780345418913d", "GTIN must contain only digits"),
        ("https://gs1.evrythng.com/01/123", "GTIN must be 8, 12, 13 or 14 digits, got 3"),
        # own cases
        ("https:///01/00614141123452", "URI has no host"),
        ("https://h.example/01/00614141123453", "GTIN check digit should be 2, got 3"),
        ("https://h.example/21/S1/01/00614141123452", "AI 21 (serial) must follow the primary key"),
        ("https://h.example/10/L1/01/00614141123452", "AI 10 (lot) must follow the primary key"),
        ("https://h.example/01/00614141123452/10/A/10/B", "AI 10 (lot) appears twice"),
        ("https://h.example/01/00614141123452/01/00614141123452", "one primary key"),
        ("https://h.example/01/00614141123452/", "empty path segment"),
        ("https://h.example/01//00614141123452", "empty path segment"),
        ("https://h.example/01/00614141123452/10/AB#C", "unexpected fragment '#C'"),
        ("https://h.example/01/00614141123452/10/AB%23C", "outside GS1 set 82: '#'"),
        ("https://h.example/01/00614141123452/10/A%20B", "outside GS1 set 82: ' '"),
        ("https://h.example/01/00614141123452/10/caf%C3%A9", "outside GS1 set 82: 'é'"),
        ("https://h.example/01/00614141123452/10/A%zzB", "malformed percent-encoding"),
        ("https://h.example/01/00614141123452/10/A%C3", "is not UTF-8"),
        ("https://h.example/01/00614141123452/10/A B", "must be percent-encoded: ' '"),
        ("https://h.example/01/00614141123452/10/A\tB", "must be percent-encoded: '\\t'"),
        ("https://h.example/01/00614141123452/10/é", "must be percent-encoded: 'é'"),
        ("https://h.example/01/00614141123452/10/" + "A" * 21, "1 to 20 characters, got 21"),
        ("https://h.example/01/00614141123452/21/" + "9" * 21, "AI 21 (serial) must be 1 to 20"),
        # query attributes
        ("https://h.example/01/00614141123452?11=131313", "AI 11 (production date) has invalid"),
        ("https://h.example/01/00614141123452?17=999999", "invalid month 99"),
        ("https://h.example/01/00614141123452?11=250230", "invalid day 30"),
        ("https://h.example/01/00614141123452?11=250229", "invalid day 29"),
        ("https://h.example/01/00614141123452?11=2502", "must be a YYMMDD date, got '2502'"),
        ("https://h.example/01/00614141123452?7007=240600", "does not allow day 00"),
        ("https://h.example/01/00614141123452?7007=2406011", "must be YYMMDD or YYMMDD-YYMMDD"),
        ("https://h.example/01/00614141123452?7007=240615240601", "ends before it starts"),
        ("https://h.example/01/00614141123452?422=999", "'999' is not an ISO 3166-1 numeric"),
        ("https://h.example/01/00614141123452?422=000", "is not an ISO 3166-1 numeric"),
        ("https://h.example/01/00614141123452?422=CHN", "AI 422 (country of origin) must be 3"),
        ("https://h.example/01/00614141123452?11=240101&11=240102", "appears twice in the query"),
        ("https://h.example/01/00614141123452?10=ABC", "belongs in the path after 01"),
        # Any AI GS1 defines is a valid attribute, but its value must have the AI's format.
        (
            "https://h.example/01/00614141123452?15=230931",
            "AI 15 (best before date) has invalid day",
        ),
        (
            "https://h.example/01/00614141123452?3103=12345",
            "AI 3103 (trade measure (metric)) must be 6",
        ),
        (
            "https://h.example/01/00614141123452?12345=1",
            "AI 12345 is not a GS1 Application Identifier",
        ),
        ("https://h.example/01/00614141123452?3106=000100", "AI 3106 is not a GS1 Application"),
        ("https://h.example/01/00614141123452?99=" + "X" * 91, "at most 90 characters"),
        ("https://h.example/01/00614141123452?253=9506000134375", "AI 253 (GDTI) check digit"),
    ],
)
def test_parse_errors(uri: str, message: str) -> None:
    with pytest.raises(DigitalLinkError, match=re.escape(message)):
        parse_digital_link(uri)


# --- attribute rules ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["240229", "000229", "250100", "251231", "991231"])
def test_production_and_expiry_dates_accept_gs1_dates(value: str) -> None:
    link = DigitalLink(gtin="96385074", attributes={"11": value, "17": value})
    assert link.attributes == {"11": value, "17": value}


def test_harvest_range_with_hyphen_is_normalised() -> None:
    link = DigitalLink(gtin="96385074", attributes={"7007": "240601-240615"})
    assert link.attributes["7007"] == "240601240615"
    assert link.query == "7007=240601240615"
    assert DigitalLink(gtin="96385074", attributes={"7007": "240601"}).query == "7007=240601"
    assert DigitalLink(gtin="96385074", attributes={"7007": "240601240601"}).query == (
        "7007=240601240601"
    )


@pytest.mark.parametrize("code", ["004", "008", "156", "344", "446", "158", "840", "894"])
def test_country_of_origin_accepts_iso_3166_numeric(code: str) -> None:
    assert DigitalLink(gtin="96385074", attributes={"422": code}).attributes["422"] == code


@pytest.mark.parametrize("code", ["000", "001", "005", "999", "897", "0156", "15"])
def test_country_of_origin_rejects_others(code: str) -> None:
    with pytest.raises(DigitalLinkError, match="AI 422"):
        DigitalLink(gtin="96385074", attributes={"422": code})


def test_all_of_set_82_is_accepted_in_lot_and_serial() -> None:
    # The pass vectors of lint_cset82.c, which together cover the set ('.' added: the linter
    # lists it only in its single-character cases).
    chunks = [
        "!\"%&'()*+,-/012345",
        "6789:;<=>?ABCDEFGHIJ",
        "KLMNOPQRSTUVWXYZ_abc",
        "defghijklmnopqrstuvw",
        "xyz.",
    ]
    for chunk in chunks:
        link = DigitalLink(gtin="96385074", lot=chunk, serial=chunk)
        assert parse_digital_link(link.uri("https://h.example")) == link
    assert len(GS1_SET_82) == 82


@pytest.mark.parametrize("char", ["#", "$", "@", "[", "\\", "]", "^", "`", "{", "|", "}", "~", " "])
def test_characters_outside_set_82_are_rejected(char: str) -> None:
    with pytest.raises(DigitalLinkError, match=re.escape(f"outside GS1 set 82: {char!r}")):
        DigitalLink(gtin="96385074", lot=f"A{char}B")


def test_lot_error_message_names_the_ai_and_character() -> None:
    with pytest.raises(DigitalLinkError) as caught:
        DigitalLink(gtin="96385074", lot="LOT#1")
    assert str(caught.value) == "AI 10 (lot) has a character outside GS1 set 82: '#'"


def test_empty_lot_is_rejected() -> None:
    with pytest.raises(DigitalLinkError, match=r"AI 10 .* got 0"):
        DigitalLink(gtin="96385074", lot="")


def test_attributes_are_read_only() -> None:
    source = {"11": "240101"}
    link = DigitalLink(gtin="96385074", attributes=source)
    source["17"] = "250101"
    assert dict(link.attributes) == {"11": "240101"}
    with pytest.raises(TypeError):
        link.attributes["17"] = "250101"  # type: ignore[index]


def test_extra_params_must_not_smuggle_gs1_ais() -> None:
    with pytest.raises(DigitalLinkError, match="is a GS1 AI"):
        DigitalLink(gtin="96385074", extra_params=(("17", "250101"),))


# --- building -------------------------------------------------------------------------------


def test_build_matches_design_shape() -> None:
    link = DigitalLink(
        gtin="6901234567892",
        lot="2024-RICE-07",
        serial="0001",
        attributes={"7007": "240915", "11": "240920", "422": "156"},
    )
    assert link.uri("https://trace.example.cn/") == (
        "https://trace.example.cn/01/06901234567892/10/2024-RICE-07/21/0001"
        "?11=240920&422=156&7007=240915"
    )


def test_uri_needs_a_base_url() -> None:
    with pytest.raises(DigitalLinkError, match="no base URL"):
        DigitalLink(gtin="96385074").uri()


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("ftp://h.example", "http or https"),
        ("h.example", "http or https"),
        ("https://", "no host"),
        ("https://h.example?x=1", "query or fragment"),
        ("https://h.example#top", "query or fragment"),
    ],
)
def test_bad_base_urls(base_url: str, message: str) -> None:
    with pytest.raises(DigitalLinkError, match=re.escape(message)):
        DigitalLink(gtin="96385074").uri(base_url)


def test_uri_on_other_base_keeps_identity() -> None:
    link = parse_digital_link("https://a.example/01/96385074/10/L1")
    assert link.uri("https://b.example/x/") == "https://b.example/x/01/00000096385074/10/L1"


# --- properties -----------------------------------------------------------------------------

set_82_text = st.text(alphabet=sorted(GS1_SET_82), min_size=1, max_size=20)
gtins = gtin_payloads.map(lambda payload: payload + gtin_check_digit(payload))
yymmdd = st.dates(date(2000, 1, 1), date(2099, 12, 31)).map(lambda d: d.strftime("%y%m%d"))
yymm00 = st.tuples(st.integers(0, 99), st.integers(1, 12)).map(
    lambda ym: f"{ym[0]:02d}{ym[1]:02d}00"
)
gs1_dates = st.one_of(yymmdd, yymm00)
harvest = st.one_of(yymmdd, st.tuples(yymmdd, yymmdd).map(lambda pair: "".join(sorted(pair))))
countries = st.sampled_from(["004", "156", "276", "344", "392", "446", "704", "840"])
attribute_maps = st.fixed_dictionaries(
    {},
    optional={"11": gs1_dates, "17": gs1_dates, "422": countries, "7007": harvest},
)
base_urls = st.sampled_from(
    [
        "https://id.gs1.org",
        "https://dv.example.org",
        "http://localhost:8000",
        "https://example.com/resolver/v1",
    ]
)
links = st.builds(
    DigitalLink,
    gtin=gtins,
    lot=st.none() | set_82_text,
    serial=st.none() | set_82_text,
    attributes=attribute_maps,
)


@given(links, base_urls)
def test_build_parse_round_trip(link: DigitalLink, base_url: str) -> None:
    uri = link.uri(base_url)
    parsed = parse_digital_link(uri)
    assert parsed == link
    assert parsed.base_url == base_url
    assert parsed.lot == link.lot
    assert parsed.serial == link.serial
    assert parsed.uri() == uri


@given(links, base_urls)
def test_canonical_form_is_idempotent(link: DigitalLink, base_url: str) -> None:
    uri = link.uri(base_url)
    assert canonicalize_digital_link(uri) == uri
    assert canonicalize_digital_link(canonicalize_digital_link(uri)) == uri


def _encode_everything(value: str, *, lower: bool) -> str:
    encoded = "".join(f"%{ord(char):02X}" for char in value)
    return encoded.lower() if lower else encoded


@given(links, base_urls, st.booleans(), st.booleans(), st.randoms(use_true_random=False))
@settings(max_examples=200)
def test_non_canonical_spellings_canonicalise_to_the_built_uri(
    link: DigitalLink, base_url: str, use_alphas: bool, lower_hex: bool, random: Random
) -> None:
    short_gtin = link.gtin
    for length in (8, 12, 13):
        if short_gtin[: 14 - length] == "0" * (14 - length):
            short_gtin = link.gtin[14 - length :]
            break
    codes = {"01": "gtin", "10": "lot", "21": "ser"} if use_alphas else {}
    path = f"/{codes.get('01', '01')}/{short_gtin}"
    if link.lot is not None:
        path += f"/{codes.get('10', '10')}/{_encode_everything(link.lot, lower=lower_hex)}"
    if link.serial is not None:
        path += f"/{codes.get('21', '21')}/{quote(link.serial, safe='')}"
    pairs = [f"{ai}={value}" for ai, value in link.attributes.items()]
    pairs += ["linkType=gs1%3Apip", "context=dv"]
    random.shuffle(pairs)
    messy_base = base_url.replace("https://id.gs1.org", "HTTPS://ID.GS1.org")
    messy = f"{messy_base}{path}?{'&'.join(pairs)}"
    assert canonicalize_digital_link(messy) == link.uri(base_url)
    assert parse_digital_link(messy) == link


# --- every query-string AI and key qualifier (GS1 Digital Link 1.4) --------------------------


def test_any_gs1_ai_is_a_query_attribute_checked_against_its_format() -> None:
    link = parse_digital_link(
        "https://h.example/01/09506000134352?99=A%2FB&3103=000500&15=261231&17=270100"
    )
    assert dict(link.attributes) == {"15": "261231", "17": "270100", "3103": "000500", "99": "A/B"}
    # Canonical: sorted by AI, values percent-encoded.
    assert link.uri() == (
        "https://h.example/01/09506000134352?15=261231&17=270100&3103=000500&99=A%2FB"
    )


def test_a_cpv_and_a_third_party_serial_are_key_qualifiers_of_a_gtin() -> None:
    link = parse_digital_link("https://h.example/01/09506000134352/22/2A/10/L1/21/S1")
    assert (link.cpv, link.lot, link.serial, link.tpx) == ("2A", "L1", "S1", None)
    assert link.path == "/01/09506000134352/22/2A/10/L1/21/S1"
    tpx = parse_digital_link("https://h.example/01/09506000134352/235/TPX-123")
    assert tpx.tpx == "TPX-123" and tpx.path == "/01/09506000134352/235/TPX-123"
    assert parse_digital_link("https://h.example/gtin/09506000134352/cpv/2A").cpv == "2A"


def _with_check(digits: str) -> str:
    from digital_village.gs1.keys import check_digit

    return digits + check_digit(digits)


def test_other_primary_keys_and_their_qualifiers() -> None:
    from digital_village.gs1.digital_link import KeyLink, parse_link

    sscc = _with_check("10614141234567890")
    gln = _with_check("950600013437")
    gsrn = _with_check("95060001343761234")
    cases = {
        f"https://h.example/00/{sscc}": ("00", sscc, ()),
        f"https://h.example/sscc/{sscc}": ("00", sscc, ()),
        f"https://h.example/414/{gln}/254/32a%2Fb": ("414", gln, (("254", "32a/b"),)),
        f"https://h.example/gln/{gln}": ("414", gln, ()),
        f"https://h.example/417/{gln}": ("417", gln, ()),
        "https://h.example/8004/9506000ASSET/7040/1ABC": (
            "8004",
            "9506000ASSET",
            (("7040", "1ABC"),),
        ),
        "https://h.example/8010/9506000ABC-1/8011/42": ("8010", "9506000ABC-1", (("8011", "42"),)),
        f"https://h.example/8017/{gsrn}/8019/7": ("8017", gsrn, (("8019", "7"),)),
        f"https://h.example/8006/{_with_check('0950600013435')}0102/10/L1": (
            "8006",
            _with_check("0950600013435") + "0102",
            (("10", "L1"),),
        ),
    }
    for uri, (key, value, qualifiers) in cases.items():
        link = parse_link(uri)
        assert isinstance(link, KeyLink), uri
        assert (link.key, link.value, link.qualifiers) == (key, value, qualifiers), uri
        assert parse_link(link.uri()) == link
    with pytest.raises(DigitalLinkError, match="check digit"):
        parse_link(f"https://h.example/414/{gln[:-1]}{(int(gln[-1]) + 1) % 10}")
    itip = _with_check("0950600013435") + "0102"
    with pytest.raises(DigitalLinkError, match=r"AI 10 \(lot\) must come before AI 21"):
        parse_link(f"https://h.example/8006/{itip}/21/S/10/L")
    with pytest.raises(DigitalLinkError, match="not one allowed sequence"):
        parse_link(f"https://h.example/414/{gln}/254/X/7040/1ABC")
