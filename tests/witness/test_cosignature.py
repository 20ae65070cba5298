"""cosignature/v1 lines (c2sp.org/tlog-cosignature): bytes signed, key IDs, the quorum check."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from digital_village.ledger import cosignature, note
from tests.witness.conftest import FakeLog, new_cosigner


def test_the_signed_message_is_header_time_and_the_whole_body() -> None:
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    assert cosignature.signed_message(body, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_key_id_uses_type_0x04_and_the_line_is_id_timestamp_signature() -> None:
    cosigner = new_cosigner("witness.example/w1")
    verifier = cosigner.verifier()
    expected_id = hashlib.sha256(b"witness.example/w1\n\x04" + verifier.public_key).digest()[:4]
    assert cosigner.key_id == verifier.key_id == expected_id
    material = base64.b64decode(verifier.to_string().split("+", 2)[2])
    assert material[0] == 0x04 and material[1:] == verifier.public_key
    body = FakeLog().grow(3).checkpoint().decode().split("\n\n")[0] + "\n"
    line = cosigner.cosign(body, 1_700_000_000)
    name, encoded = line[len("— ") :].rstrip("\n").split(" ")
    raw = base64.b64decode(encoded)
    assert name == "witness.example/w1" and raw[:4] == expected_id and len(raw) == 76
    assert struct.unpack(">Q", raw[4:12]) == (1_700_000_000,)
    # A plain Ed25519 signature over the cosignature/v1 message: any implementation checks it.
    Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(
        raw[12:], cosignature.signed_message(body, 1_700_000_000)
    )


def test_keys_round_trip_and_a_log_key_is_not_a_witness_key() -> None:
    skey = cosignature.generate_cosigner_key("witness.example/w1")
    cosigner = cosignature.Cosigner.parse(skey)
    assert cosigner.to_string() == skey
    vkey = cosigner.verifier().to_string()
    assert cosignature.CosignatureVerifier.parse(vkey).to_string() == vkey
    log_vkey = note.verifier_key(note.generate_signer_key("example.com/log"))
    with pytest.raises(note.InvalidKeyError, match="algorithm 0x01"):
        cosignature.CosignatureVerifier.parse(log_vkey)
    with pytest.raises(note.InvalidKeyError, match="algorithm 0x04"):
        note.Verifier.parse(vkey)


def test_quorum_counts_distinct_trusted_witnesses_with_valid_lines() -> None:
    log = FakeLog().grow(4)
    signed = log.checkpoint()
    body = note.parse_note(signed).text
    w1, w2, stranger = (new_cosigner(f"w{i}.example") for i in (1, 2, 3))
    keys = [w1.verifier().to_string(), w2.verifier().to_string()]
    one = cosignature.add_signature_lines(signed, [w1.cosign(body, 10), stranger.cosign(body, 11)])
    check = cosignature.check_cosignatures(one, keys, 2)
    assert not check.met and check.cosigned == (("w1.example", 10),)
    assert check.missing == ("w2.example",)
    assert cosignature.check_cosignatures(one, keys, 1).met
    both = cosignature.add_signature_lines(one, [w2.cosign(body, 12), w1.cosign(body, 13)])
    assert cosignature.check_cosignatures(both, keys, 2).met
    # The same line twice counts once; a line for another checkpoint does not count.
    twice = cosignature.add_signature_lines(signed, [w1.cosign(body, 10), w1.cosign(body, 10)])
    assert twice.count(b"\n\xe2\x80\x94 w1.example") == 1
    other_body = note.parse_note(log.grow(1).checkpoint()).text
    moved = cosignature.add_signature_lines(signed, [w1.cosign(other_body, 10)])
    check = cosignature.check_cosignatures(moved, keys, 1)
    assert not check.met and check.invalid == ("w1.example",)


def test_a_changed_timestamp_breaks_the_cosignature() -> None:
    signed = FakeLog().grow(2).checkpoint()
    body = note.parse_note(signed).text
    witness = new_cosigner("w1.example")
    line = witness.cosign(body, 1000)
    raw = bytearray(base64.b64decode(line.split(" ")[2]))
    raw[11] ^= 1
    forged = f"— w1.example {base64.b64encode(bytes(raw)).decode()}\n"
    check = cosignature.check_cosignatures(
        cosignature.add_signature_lines(signed, [forged]), [witness.verifier().to_string()], 1
    )
    assert not check.met
