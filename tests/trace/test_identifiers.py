"""Which identifiers name the project's things: GTIN links and URNs, parcel URIs, units."""

from __future__ import annotations

import pytest

from digital_village.trace.identifiers import (
    GtinItem,
    IdentifierError,
    canonical_epc,
    convert,
    parcel_of_extension,
    parcel_of_uri,
    parse_gtin_identifier,
)

DKBM = "5106031012010100001"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://dv.test/01/06901234500011/10/RS-1", GtinItem("06901234500011", "RS-1")),
        ("https://x.example/01/6901234500011/10/RS-1", GtinItem("06901234500011", "RS-1")),
        (
            "https://dv.test/01/06901234500035/10/B-7/21/0001",
            GtinItem("06901234500035", "B-7", "0001"),
        ),
        ("https://dv.test/01/06901234500035/21/0001", GtinItem("06901234500035", None, "0001")),
        ("https://dv.test/gtin/06901234500011/lot/RS-1", GtinItem("06901234500011", "RS-1")),
        ("https://dv.test/01/06901234500011", GtinItem("06901234500011")),
        # EPC URNs name the same things; their check digit is computed, so always right.
        ("urn:epc:class:lgtin:6901234.050001.RS-1", GtinItem("06901234500011", "RS-1")),
        ("urn:epc:id:sgtin:6901234.050003.0001", GtinItem("06901234500035", None, "0001")),
        # A consumer product variant (AI 22) does not change which lot is meant.
        ("https://dv.test/01/06901234500011/22/A/10/RS-1", GtinItem("06901234500011", "RS-1")),
    ],
)
def test_gtin_identifiers_are_read_on_any_host(uri: str, expected: GtinItem) -> None:
    assert parse_gtin_identifier(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "https://dv.test/00/169012345000000017",
        "https://dv.test/p/5106031012010100001",
        "urn:epc:id:sscc:6901234.1000000001",
        "https://example.com/anything",
        "urn:uuid:9f1c0ab2-3f4e-4c11-8f36-4a1d2b1b1b1b",
    ],
)
def test_other_identifiers_are_not_gtins(uri: str) -> None:
    assert parse_gtin_identifier(uri) is None


def test_a_wrong_check_digit_is_named() -> None:
    with pytest.raises(IdentifierError, match="check digit should be 1, got 2"):
        parse_gtin_identifier("https://dv.test/01/06901234500012/10/RS-1")


def test_a_lot_outside_gs1_characters_is_refused() -> None:
    with pytest.raises(IdentifierError, match="lot"):
        parse_gtin_identifier("https://dv.test/01/06901234500011/10/%E6%B2%B9")


def test_canonical_epcs_ignore_host_and_spelling() -> None:
    assert canonical_epc("https://dv.test/01/6901234500011/10/RS-1") == canonical_epc(
        "urn:epc:class:lgtin:6901234.050001.RS-1"
    )
    assert canonical_epc("urn:uuid:1") == "urn:uuid:1"


def test_parcel_uris_on_the_projects_host() -> None:
    assert parcel_of_uri(f"https://dv.test/p/{DKBM}", base_url="https://dv.test") == DKBM
    assert parcel_of_uri(f"https://other.example/p/{DKBM}", base_url="https://dv.test") is None
    with pytest.raises(IdentifierError, match="19 digits"):
        parcel_of_uri("https://dv.test/p/51060310120101", base_url="https://dv.test")


def test_parcel_extension_values() -> None:
    assert parcel_of_extension(DKBM) == DKBM
    assert parcel_of_extension(f"https://anywhere.example/p/{DKBM}") == DKBM
    with pytest.raises(IdentifierError):
        parcel_of_extension(42)
    with pytest.raises(IdentifierError, match="sequence 00000"):
        parcel_of_extension("5106031012010100000")


def test_units_convert_within_their_kind() -> None:
    assert convert(1.5, "TNE", "KGM") == 1500
    assert convert(500, "MLT", "LTR") == 0.5
    assert convert(3, "EA", "H87") == 3
    assert convert(1, "KGM", "LTR") is None
    assert convert(1, "XYZ", "KGM") is None
