"""tlog-proof files and the offline verifier, end to end on an in-memory log."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digital_village.ledger.merkle import MemoryHashStore, hash_leaf
from digital_village.ledger.note import Checkpoint, Signer, generate_signer_key, sign_note
from digital_village.ledger.proof import ConsistencyProof, ProofFormatError, TlogProof
from digital_village.ledger.verify import VerificationError, verify_proof

ORIGIN = "jingyang.example/ledger"
SIGNER = Signer.parse(generate_signer_key(ORIGIN))
VKEY = SIGNER.verifier().to_string()
ENTRIES = [f'{{"event":{i},"type":"ObjectEvent"}}'.encode() for i in range(20)]

# The example from c2sp.org/tlog-proof (its signatures are abbreviated, so only the
# file layout can be checked, not the checkpoint).
SPEC_EXAMPLE = b"""c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\xe2\x80\x94 example.com/fancylog hI2DJw[...]1roloI=
"""


def _log(entries: list[bytes]) -> MemoryHashStore:
    store = MemoryHashStore()
    for entry in entries:
        store.append(entry)
    return store


def _signed_checkpoint(store: MemoryHashStore, size: int, signer: Signer = SIGNER) -> bytes:
    checkpoint = Checkpoint(signer.name, size, store.root(size))
    return sign_note(checkpoint.to_text(), signer)


def _proof_file(store: MemoryHashStore, index: int, size: int, *, with_entry: bool = True) -> bytes:
    proof = TlogProof(
        index=index,
        inclusion_proof=tuple(store.inclusion_proof(index, size)),
        checkpoint=_signed_checkpoint(store, size),
        extra=ENTRIES[index] if with_entry else None,
    )
    return proof.to_text()


def _consistency(store: MemoryHashStore, size1: int, size2: int) -> bytes:
    hashes = tuple(store.consistency_proof(size1, size2))
    return ConsistencyProof(size1, size2, hashes).to_text()


def test_spec_example_layout_parses() -> None:
    proof = TlogProof.parse(SPEC_EXAMPLE)
    assert proof.index == 73894
    assert len(proof.inclusion_proof) == 5
    assert proof.extra is not None and proof.extra.startswith(b"age-v1.2.1-darwin-arm64")
    assert proof.checkpoint.startswith(b"example.com/fancylog\n109482\n")
    assert proof.to_text() == SPEC_EXAMPLE


def test_file_layout_is_exactly_the_c2sp_one() -> None:
    hashes = (hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest())
    checkpoint = b"origin\n3\n" + base64.b64encode(bytes(32)) + b"\n\n\xe2\x80\x94 origin AAAA\n"
    text = TlogProof(2, hashes, checkpoint, extra=b"entry").to_text()
    expected = (
        "c2sp.org/tlog-proof@v1\nextra ZW50cnk=\nindex 2\n"
        + "".join(base64.b64encode(h).decode() + "\n" for h in hashes)
        + "\n"
    ).encode() + checkpoint
    assert text == expected
    assert b"extra" not in TlogProof(2, hashes, checkpoint).to_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"c2sp.org/tlog-proof@v2\nindex 0\n\ncp\n", "first line"),
        (b"c2sp.org/tlog-proof@v1\nextra !!\nindex 0\n\ncp\n", "extra data is not base64"),
        (b"c2sp.org/tlog-proof@v1\n\n\ncp\n", "expected 'index N'"),
        (b"c2sp.org/tlog-proof@v1\nindex -5\n\ncp\n", "not a decimal"),
        (b"c2sp.org/tlog-proof@v1\nindex 07\n\ncp\n", "not a decimal"),
        (b"c2sp.org/tlog-proof@v1\nindex 18446744073709551616\n\ncp\n", "below 2\\*\\*64"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\ncp\n", "hash 0 is not base64"),
        (
            b"c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(64)) + b"\n\ncp\n",
            "hash 0 has 64 bytes",
        ),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n" + b"A" * 43 + b"=\n", "ends before"),
        (b"c2sp.org/tlog-proof@v1\nindex 0\n\n", "no checkpoint"),
        (b"c2sp.org/tlog-proof@v1", "ends before its header"),
    ],
)
def test_malformed_proof_files(text: bytes, message: str) -> None:
    with pytest.raises(ProofFormatError, match=message):
        TlogProof.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"digital-village/consistency-proof@v1\nfirst 3\n", "ends before its second size"),
        (b"digital-village/consistency-proof@v1\nsecond 3\nfirst 1\n", "expected 'first N'"),
        (b"digital-village/consistency-proof@v1\nfirst 5\nsecond 3\n", "from size 5 to 3"),
        (b"digital-village/consistency-proof@v1\nfirst 1\nsecond 3\nAAAA", "final newline"),
        (b"digital-village/consistency-proof@v1\nfirst 1\nsecond 3\nAAAA\n", "has 3 bytes"),
    ],
)
def test_malformed_consistency_files(text: bytes, message: str) -> None:
    with pytest.raises(ProofFormatError, match=message):
        ConsistencyProof.parse(text)


_HASHES = st.lists(st.binary(min_size=32, max_size=32), max_size=64).map(tuple)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**64 - 1),
    _HASHES,
    st.binary(min_size=1, max_size=200),
    st.none() | st.binary(max_size=300),
)
def test_proof_file_round_trip(
    index: int, hashes: tuple[bytes, ...], checkpoint: bytes, extra: bytes | None
) -> None:
    proof = TlogProof(index, hashes, checkpoint, extra)
    assert TlogProof.parse(proof.to_text()) == proof


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**63), st.integers(0, 2**63), _HASHES)
def test_consistency_file_round_trip(a: int, b: int, hashes: tuple[bytes, ...]) -> None:
    proof = ConsistencyProof(min(a, b), max(a, b), hashes)
    assert ConsistencyProof.parse(proof.to_text()) == proof


def test_verify_with_the_entry_carried_in_the_file() -> None:
    store = _log(ENTRIES)
    result = verify_proof(_proof_file(store, 6, 13), VKEY)
    assert result.entry == ENTRIES[6]
    assert result.leaf_hash == hash_leaf(ENTRIES[6])
    assert (result.origin, result.tree_size, result.index) == (ORIGIN, 13, 6)
    assert result.signers == (ORIGIN,)
    assert result.previous is None


def test_verify_with_an_entry_or_leaf_hash_given_separately() -> None:
    store = _log(ENTRIES)
    proof = _proof_file(store, 6, 13, with_entry=False)
    assert verify_proof(proof, VKEY, entry=ENTRIES[6]).entry == ENTRIES[6]
    assert verify_proof(proof, [VKEY], leaf_hash=hash_leaf(ENTRIES[6])).entry is None
    with pytest.raises(VerificationError, match="carries no entry"):
        verify_proof(proof, VKEY)
    with pytest.raises(VerificationError, match="not proven at index 6"):
        verify_proof(proof, VKEY, entry=ENTRIES[7])
    with pytest.raises(VerificationError, match="not proven"):
        verify_proof(_proof_file(store, 6, 13), VKEY, entry=b"forged")
    with pytest.raises(ValueError, match="not both"):
        verify_proof(proof, VKEY, entry=ENTRIES[6], leaf_hash=hash_leaf(ENTRIES[6]))


def test_wrong_keys_and_origins_are_rejected() -> None:
    proof = _proof_file(_log(ENTRIES), 0, 1)
    stranger = Signer.parse(generate_signer_key(ORIGIN)).verifier().to_string()
    with pytest.raises(VerificationError, match=r"checkpoint signature: .*trusted key"):
        verify_proof(proof, stranger)
    with pytest.raises(VerificationError, match="bad verifier key"):
        verify_proof(proof, "not a key")
    with pytest.raises(VerificationError, match="no verifier key"):
        verify_proof(proof, [])
    assert verify_proof(proof, [stranger, VKEY], origin=ORIGIN).index == 0
    with pytest.raises(VerificationError, match=r"expected 'other\.example/log'"):
        verify_proof(proof, VKEY, origin="other.example/log")
    with pytest.raises(VerificationError, match="malformed proof file"):
        verify_proof(b"hello\n", VKEY)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 20), st.data())
def test_any_flipped_bit_in_a_proof_file_fails(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    text = bytearray(_proof_file(_log(ENTRIES[:size]), index, size))
    verify_proof(bytes(text), VKEY)
    bit = data.draw(st.integers(0, len(text) * 8 - 1))
    text[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(VerificationError):
        verify_proof(bytes(text), VKEY)


@pytest.mark.parametrize(("old", "new"), [(1, 13), (5, 8), (8, 20), (12, 13), (13, 13)])
def test_previous_checkpoint_consistency(old: int, new: int) -> None:
    store = _log(ENTRIES)
    proof = _proof_file(store, 0, new)
    previous = _signed_checkpoint(store, old)
    consistency = _consistency(store, old, new)
    result = verify_proof(proof, VKEY, previous_checkpoint=previous, consistency_proof=consistency)
    assert result.previous is not None and result.previous.size == old
    # The previous checkpoint may also be the newer one.
    later = _proof_file(store, 0, old)
    assert verify_proof(
        later,
        VKEY,
        previous_checkpoint=_signed_checkpoint(store, new),
        consistency_proof=consistency,
    ).previous == Checkpoint(ORIGIN, new, store.root(new))
    if old != new:
        with pytest.raises(VerificationError, match=f"from size {old} to {new} is needed"):
            verify_proof(proof, VKEY, previous_checkpoint=previous)


def test_a_forked_log_is_detected() -> None:
    honest = _log(ENTRIES)
    forked = _log([*ENTRIES[:5], b"rewritten history", *ENTRIES[6:]])
    proof = _proof_file(honest, 2, 12)
    seen_before = _signed_checkpoint(forked, 8)
    with pytest.raises(VerificationError, match="not consistent"):
        verify_proof(
            proof,
            VKEY,
            previous_checkpoint=seen_before,
            consistency_proof=_consistency(honest, 8, 12),
        )
    with pytest.raises(VerificationError, match="two different roots for the same tree size"):
        verify_proof(proof, VKEY, previous_checkpoint=_signed_checkpoint(forked, 12))


def test_previous_checkpoint_must_match_key_origin_and_sizes() -> None:
    store = _log(ENTRIES)
    proof = _proof_file(store, 0, 12)
    other_log = Signer.parse(generate_signer_key("other.example/log"))
    with pytest.raises(VerificationError, match="previous checkpoint signature"):
        verify_proof(proof, VKEY, previous_checkpoint=_signed_checkpoint(store, 8, other_log))
    renamed = sign_note(Checkpoint("other.example/log", 8, store.root(8)).to_text(), SIGNER)
    with pytest.raises(VerificationError, match=r"is for log 'other\.example/log'"):
        verify_proof(proof, VKEY, previous_checkpoint=renamed)
    with pytest.raises(VerificationError, match="is from size 7 to 12"):
        verify_proof(
            proof,
            VKEY,
            previous_checkpoint=_signed_checkpoint(store, 8),
            consistency_proof=_consistency(store, 7, 12),
        )
    with pytest.raises(VerificationError, match="malformed consistency proof"):
        verify_proof(
            proof, VKEY, previous_checkpoint=_signed_checkpoint(store, 8), consistency_proof=b"x"
        )
    with pytest.raises(ValueError, match="needs the previous checkpoint"):
        verify_proof(proof, VKEY, consistency_proof=_consistency(store, 8, 12))
