"""C2SP tlog-cosignature (``cosignature/v1``): timestamped Ed25519 cosignatures of checkpoints.

A cosignature is one more signature line on a checkpoint's signed note
(c2sp.org/tlog-cosignature), made by a *witness* that checked the checkpoint is consistent
with every earlier one it saw of that log:

- key ID: SHA-256(name ‖ "\\n" ‖ 0x04 ‖ 32-byte Ed25519 public key)[:4]
- verifier key: ``<name>+<hex key ID>+base64(0x04 ‖ public key)``
- signer key (the witness's file): ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x04 ‖ seed)``
- signature line: ``— <name> base64(key ID ‖ u64 big-endian timestamp ‖ Ed25519 signature)``
- signed message: ``cosignature/v1\\ntime <timestamp>\\n`` followed by the whole checkpoint
  body (every line up to, not including, the blank line before the signatures).

Verifiers hold the policy (which witnesses, how many of them); the log only collects the
lines. Standard library and ``cryptography`` only, like ``verify.py`` which imports it.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from digital_village.ledger import note

COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1\n"
MAX_TIMESTAMP = 2**63 - 1
_SIGNATURE_LENGTH = 4 + 8 + 64  # key ID, timestamp, Ed25519 signature


def signed_message(body: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signs for this checkpoint body at this time."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"cosignature timestamp {timestamp} out of range")
    return f"{HEADER}time {timestamp}\n{body}".encode()


def _key_id(name: str, hex_id: str, public_key: bytes) -> bytes:
    """The key ID a key string gives, checked against its name and public key."""
    key_id = bytes.fromhex(hex_id)
    if key_id != note._key_id(name, public_key, COSIGNATURE_V1):
        raise note.InvalidKeyError(f"witness key ID {hex_id} does not match its name and key")
    return key_id


@dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's public key: the name it cosigns under and its Ed25519 key."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``<name>+<hex key ID>+base64(0x04 ‖ public key)``; raise InvalidKeyError."""
        fields = vkey.strip().split("+", 2)
        if len(fields) != 3:
            raise note.InvalidKeyError("malformed witness key: expected fields separated by '+'")
        name, hex_id, b64 = fields
        public_key = note._decode_key_material(name, hex_id, b64, "witness", COSIGNATURE_V1)
        return cls(name=name, key_id=_key_id(name, hex_id, public_key), public_key=public_key)

    def to_string(self) -> str:
        """Return the verifier key string."""
        material = base64.b64encode(bytes([COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def matches(self, signature: note.NoteSignature) -> bool:
        """Whether a signature line claims to come from this witness (name and key ID)."""
        return signature.name == self.name and signature.key_id == self.key_id

    def verify(self, body: str, signature: note.NoteSignature) -> int | None:
        """The cosignature's timestamp if it is this witness's valid cosignature of ``body``."""
        if not self.matches(signature) or len(signature.signature) != _SIGNATURE_LENGTH - 4:
            return None
        (timestamp,) = struct.unpack(">Q", signature.signature[:8])
        if timestamp > MAX_TIMESTAMP:
            return None
        message = signed_message(body, timestamp)
        plain = note.Verifier(self.name, self.key_id, self.public_key)
        return timestamp if plain.verify(message, signature.signature[8:]) else None


@dataclass(frozen=True)
class Cosigner:
    """A witness's private key. Keep it secret."""

    name: str
    key_id: bytes
    seed: bytes = field(repr=False)

    @classmethod
    def parse(cls, skey: str) -> Cosigner:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x04 ‖ seed)``; raise InvalidKeyError."""
        fields = skey.strip().split("+", 4)
        if len(fields) != 5 or fields[:2] != ["PRIVATE", "KEY"]:
            raise note.InvalidKeyError("malformed witness signer key: must start with PRIVATE+KEY+")
        _, _, name, hex_id, b64 = fields
        seed = note._decode_key_material(name, hex_id, b64, "witness signer", COSIGNATURE_V1)
        public_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        return cls(name=name, key_id=_key_id(name, hex_id, public_key), seed=seed)

    def to_string(self) -> str:
        """Return the private signer key string."""
        material = base64.b64encode(bytes([COSIGNATURE_V1]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{material}"

    def verifier(self) -> CosignatureVerifier:
        """The matching public key."""
        public_key = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return CosignatureVerifier(self.name, self.key_id, public_key.public_bytes_raw())

    def cosign(self, body: str, timestamp: int) -> str:
        """The signature line (with its newline) cosigning checkpoint ``body`` at ``timestamp``."""
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(
            signed_message(body, timestamp)
        )
        raw = self.key_id + struct.pack(">Q", timestamp) + signature
        return f"— {self.name} {base64.b64encode(raw).decode()}\n"


def generate_cosigner_key(name: str) -> str:
    """A new witness signer key string for ``name`` (a schema-less URL naming the witness)."""
    if not note._valid_name(name):
        raise note.InvalidKeyError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    public_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return Cosigner(name, note._key_id(name, public_key, COSIGNATURE_V1), seed).to_string()


def add_signature_lines(signed: bytes, lines: Iterable[str]) -> bytes:
    """The signed note with more signature lines after its own, none repeated."""
    text = signed.decode("utf-8")
    present = set(text[text.rfind("\n\n") + 2 :].splitlines())
    extra = []
    for line in lines:
        bare = line.rstrip("\n")
        if bare and bare not in present:
            present.add(bare)
            extra.append(bare + "\n")
    return (text + "".join(extra)).encode("utf-8")


@dataclass(frozen=True)
class WitnessCheck:
    """Which trusted witnesses validly cosigned a checkpoint, against a quorum."""

    quorum: int
    cosigned: tuple[tuple[str, int], ...]  # (witness name, timestamp)
    invalid: tuple[str, ...]  # trusted witnesses whose line did not verify
    trusted: tuple[str, ...]

    @property
    def met(self) -> bool:
        """Whether at least ``quorum`` distinct trusted witnesses cosigned."""
        return len(self.cosigned) >= self.quorum

    @property
    def missing(self) -> tuple[str, ...]:
        """Trusted witnesses with no valid cosignature on the checkpoint."""
        done = {name for name, _ in self.cosigned}
        return tuple(name for name in self.trusted if name not in done)


def parse_witness_keys(
    vkeys: Iterable[str | CosignatureVerifier],
) -> list[CosignatureVerifier]:
    """Witness keys from strings (or already parsed); InvalidKeyError names a bad one."""
    return [CosignatureVerifier.parse(k) if isinstance(k, str) else k for k in vkeys]


def check_cosignatures(
    signed: bytes, witnesses: Iterable[str | CosignatureVerifier], quorum: int
) -> WitnessCheck:
    """Count the trusted witnesses whose cosignature on the note verifies.

    Lines from unknown keys are ignored (the log's own, other witnesses'). A trusted
    witness counts once however many lines it has. The note's own signature is not checked
    here: open it with the log's key first (``note.open_note``).
    """
    if quorum < 0:
        raise ValueError("quorum must be 0 or more")
    keys = parse_witness_keys(witnesses)
    parsed = note.parse_note(signed)
    cosigned: dict[tuple[str, bytes], tuple[str, int]] = {}
    invalid: list[str] = []
    for key in keys:
        for line in parsed.signatures:
            if not key.matches(line) or (key.name, key.key_id) in cosigned:
                continue
            timestamp = key.verify(parsed.text, line)
            if timestamp is None:
                invalid.append(key.name)
            else:
                cosigned[key.name, key.key_id] = (key.name, timestamp)
    valid = {name for name, _ in cosigned.values()}
    return WitnessCheck(
        quorum=quorum,
        cosigned=tuple(cosigned.values()),
        invalid=tuple(dict.fromkeys(name for name in invalid if name not in valid)),
        trusted=tuple(key.name for key in keys),
    )
