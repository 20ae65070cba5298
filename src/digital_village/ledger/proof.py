"""C2SP tlog-proof@v1 files, and the project's consistency proof files.

A ``.tlog-proof`` file (c2sp.org/tlog-proof)::

    c2sp.org/tlog-proof@v1
    extra <base64 of the entry bytes>        (optional)
    index <decimal leaf index>
    <base64 inclusion proof hash, leaf's sibling first>
    ...
    <empty line>
    <signed checkpoint note, verbatim>

The spec leaves the meaning of ``extra`` to the application. Here it is the
exact bytes of the logged entry (the RFC 8785 canonical JSON event), so the
file is self-contained: the leaf hash is SHA-256(0x00 ‖ extra). It is not
trusted by itself; the inclusion proof is what vouches for it.

C2SP defines no file for consistency proofs, so this module adds a small one in
the same style, for proving that a checkpoint seen earlier is a prefix of the
one in a proof file::

    digital-village/consistency-proof@v1
    first <old tree size>
    second <new tree size>
    <base64 consistency proof hash, RFC 9162 order>
    ...

Parsing is strict (canonical base64, no leading zeros) and raises
ProofFormatError naming the offending line. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
CONSISTENCY_PROOF_HEADER = "digital-village/consistency-proof@v1"
_HASH_SIZE = 32
# A tree of at most 2**64 leaves needs at most 64 hashes in either proof.
_MAX_PROOF_HASHES = 64
_MAX_SIZE = 2**64
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class ProofFormatError(ValueError):
    """A proof file is malformed; the message says where."""


def _b64decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ProofFormatError(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != text:
        raise ProofFormatError(f"{what} is not canonical base64")
    return raw


def _decimal(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text) or int(text) >= _MAX_SIZE:
        raise ProofFormatError(f"{what} {text[:30]!r} is not a decimal number below 2**64")
    return int(text)


def _hash_line(line: str, position: int) -> bytes:
    raw = _b64decode(line, f"proof hash {position}")
    if len(raw) != _HASH_SIZE:
        raise ProofFormatError(f"proof hash {position} has {len(raw)} bytes, expected 32")
    return raw


def _check_hashes(hashes: tuple[bytes, ...]) -> None:
    if len(hashes) > _MAX_PROOF_HASHES:
        raise ProofFormatError(f"{len(hashes)} proof hashes, more than any tree needs")
    for position, node in enumerate(hashes):
        if len(node) != _HASH_SIZE:
            raise ProofFormatError(f"proof hash {position} has {len(node)} bytes, expected 32")


class _Lines:
    """Reads newline-terminated ASCII lines from the head of a file."""

    def __init__(self, data: bytes, kind: str) -> None:
        self.data, self.position, self.kind = data, 0, kind

    def next(self, expecting: str) -> str:
        end = self.data.find(b"\n", self.position)
        if end < 0:
            raise ProofFormatError(f"{self.kind} ends before its {expecting}")
        raw = self.data[self.position : end]
        self.position = end + 1
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise ProofFormatError(f"{self.kind}: non-ASCII {expecting} line") from None

    def rest(self) -> bytes:
        return self.data[self.position :]


@dataclass(frozen=True)
class TlogProof:
    """A c2sp.org/tlog-proof@v1 file: leaf index, inclusion path, signed checkpoint."""

    index: int
    inclusion_proof: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.index < _MAX_SIZE:
            raise ProofFormatError(f"leaf index {self.index} out of range")
        _check_hashes(self.inclusion_proof)
        if not self.checkpoint:
            raise ProofFormatError("proof has no checkpoint")

    def to_text(self) -> bytes:
        """Return the file contents."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(node).decode() for node in self.inclusion_proof)
        lines.append("")
        return "".join(line + "\n" for line in lines).encode() + self.checkpoint

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        """Parse a tlog-proof file; raise ProofFormatError. The checkpoint is not verified."""
        lines = _Lines(data, "tlog-proof")
        header = lines.next("header")
        if header != TLOG_PROOF_HEADER:
            raise ProofFormatError(f"first line must be {TLOG_PROOF_HEADER!r}")
        line = lines.next("index")
        extra = None
        if line.startswith("extra "):
            extra = _b64decode(line.removeprefix("extra "), "extra data")
            line = lines.next("index")
        if not line.startswith("index "):
            raise ProofFormatError(f"expected 'index N', found {line[:30]!r}")
        index = _decimal(line.removeprefix("index "), "leaf index")
        hashes: list[bytes] = []
        while (line := lines.next("blank line before the checkpoint")) != "":
            if len(hashes) == _MAX_PROOF_HASHES:
                raise ProofFormatError(f"more than {_MAX_PROOF_HASHES} proof hashes")
            hashes.append(_hash_line(line, len(hashes)))
        return cls(index, tuple(hashes), lines.rest(), extra)


@dataclass(frozen=True)
class ConsistencyProof:
    """An RFC 9162 consistency proof between two tree sizes, as a small text file."""

    first: int
    second: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.first <= self.second < _MAX_SIZE:
            raise ProofFormatError(f"no consistency proof from size {self.first} to {self.second}")
        _check_hashes(self.hashes)

    def to_text(self) -> bytes:
        """Return the file contents."""
        lines = [CONSISTENCY_PROOF_HEADER, f"first {self.first}", f"second {self.second}"]
        lines.extend(base64.b64encode(node).decode() for node in self.hashes)
        return "".join(line + "\n" for line in lines).encode()

    @classmethod
    def parse(cls, data: bytes) -> ConsistencyProof:
        """Parse a consistency proof file; raise ProofFormatError."""
        lines = _Lines(data, "consistency proof")
        if lines.next("header") != CONSISTENCY_PROOF_HEADER:
            raise ProofFormatError(f"first line must be {CONSISTENCY_PROOF_HEADER!r}")
        sizes = []
        for keyword in ("first", "second"):
            line = lines.next(f"{keyword} size")
            if not line.startswith(keyword + " "):
                raise ProofFormatError(f"expected '{keyword} N', found {line[:30]!r}")
            sizes.append(_decimal(line.removeprefix(keyword + " "), f"{keyword} size"))
        hashes: list[bytes] = []
        while lines.rest():
            if len(hashes) == _MAX_PROOF_HASHES:
                raise ProofFormatError(f"more than {_MAX_PROOF_HASHES} proof hashes")
            hashes.append(_hash_line(lines.next("final newline"), len(hashes)))
        return cls(sizes[0], sizes[1], tuple(hashes))
