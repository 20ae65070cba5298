"""Offline check of a reading proof (``digital-village/reading-proof@v1``).

Standard library plus the ledger's offline verifier (which needs only ``cryptography``):

1. the leaf is the canonical JSON of the reading the proof claims;
2. the leaf is included at ``leaf_index`` of the day's tree whose root is ``root``
   (RFC 9162 inclusion proof);
3. the ledger proof verifies against the log's verifier key, and the entry it proves is the
   ``iot.readings.sealed`` entry of that parcel, day and part, carrying that root and size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from digital_village.ledger.merkle import ProofError, hash_leaf, verify_inclusion
from digital_village.ledger.verify import VerificationError, verify_proof

READING_PROOF_FORMAT = "digital-village/reading-proof@v1"


@dataclass(frozen=True)
class VerifiedReading:
    """What a verified reading proof established."""

    reading: Mapping[str, Any]
    parcel: str
    day: str
    part: int
    ledger_seq: int
    tree_size: int


def _hex(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{what} must be a hex string")
    try:
        decoded = bytes.fromhex(value)
    except ValueError:
        raise VerificationError(f"{what} is not hex") from None
    if len(decoded) != 32:
        raise VerificationError(f"{what} must be 32 bytes")
    return decoded


def verify_reading_proof(
    document: bytes | Mapping[str, Any], vkey: str | Sequence[str]
) -> VerifiedReading:
    """Verify a reading proof offline; raise VerificationError naming the failed step."""
    try:
        proof = json.loads(document) if isinstance(document, bytes) else dict(document)
    except ValueError as error:
        raise VerificationError(f"the proof is not JSON: {error}") from None
    if not isinstance(proof, dict) or proof.get("format") != READING_PROOF_FORMAT:
        raise VerificationError(f"not a {READING_PROOF_FORMAT} document")
    try:
        claimed = proof["reading"]
        leaf = str(proof["leaf"]).encode()
        index = int(proof["leaf_index"])
        size = int(proof["tree_size"])
        path = [
            _hex(node, f"inclusion_proof[{n}]") for n, node in enumerate(proof["inclusion_proof"])
        ]
        root = _hex(proof["root"], "root")
        seal = proof["seal"]
        ledger_proof = str(proof["ledger_proof"]).encode()
    except (KeyError, TypeError, ValueError) as error:
        raise VerificationError(f"the proof lacks or garbles a field: {error}") from None

    # 1. The leaf says what the proof claims.
    try:
        leaf_fields = json.loads(leaf)
    except ValueError:
        raise VerificationError("the leaf is not JSON") from None
    for key in ("device", "metric", "time", "value", "unit"):
        if leaf_fields.get(key) != claimed.get(key):
            raise VerificationError(
                f"the leaf's {key} ({leaf_fields.get(key)!r}) differs from the reading's "
                f"({claimed.get(key)!r})"
            )

    # 2. The leaf is in the day's tree.
    try:
        verify_inclusion(hash_leaf(leaf), index, size, path, root)
    except ProofError as error:
        raise VerificationError(f"the reading is not in the sealed day's tree: {error}") from None

    # 3. The tree's root is what the signed log recorded for that parcel and day.
    verified = verify_proof(ledger_proof, vkey)
    if verified.entry is None:
        raise VerificationError("the ledger proof carries no entry")
    try:
        entry = json.loads(verified.entry)
        data = entry["data"]
    except (ValueError, KeyError, TypeError):
        raise VerificationError("the ledger entry is not a sealed-readings entry") from None
    if entry.get("kind") != "iot.readings.sealed":
        raise VerificationError(f"the ledger entry is a {entry.get('kind')!r}, not a seal")
    expected = {
        "root": root.hex(),
        "count": size,
        "parcel": seal.get("parcel"),
        "day": seal.get("day"),
        "part": seal.get("part"),
    }
    for key, value in expected.items():
        if data.get(key) != value:
            raise VerificationError(
                f"the sealed entry's {key} is {data.get(key)!r}, the proof says {value!r}"
            )
    if verified.index != seal.get("ledger_seq"):
        raise VerificationError(
            f"the ledger proof is for entry {verified.index}, "
            f"the seal names {seal.get('ledger_seq')}"
        )
    return VerifiedReading(
        reading=claimed,
        parcel=str(data["parcel"]),
        day=str(data["day"]),
        part=int(data["part"]),
        ledger_seq=verified.index,
        tree_size=size,
    )
