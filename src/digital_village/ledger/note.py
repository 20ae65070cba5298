"""C2SP signed notes with Ed25519 keys, and C2SP tlog checkpoints.

Formats (c2sp.org/signed-note, c2sp.org/tlog-checkpoint), compatible with Go's
golang.org/x/mod/sumdb/note:

- key ID: SHA-256(name ‖ "\\n" ‖ 0x01 ‖ 32-byte public key)[:4]
- verifier key: ``<name>+<hex key ID>+base64(0x01 ‖ public key)``
- signer key: ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 ‖ 32-byte seed)``
- note: text ending in a newline, a blank line, then one or more lines
  ``— <name> base64(key ID ‖ signature)``

Parsing is strict: base64 must be canonical, so one note has one encoding.
Only the standard library and ``cryptography`` are used: the offline verifier
imports this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ED25519 = 0x01
MAX_SIGNATURES = 100  # the spec asks verifiers to accept at least 16
_SIGNATURE_PREFIX = "— "
_HEX_KEY_ID = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """A note, key or checkpoint was rejected; the message says why."""


class MalformedNoteError(NoteError):
    """The note or checkpoint text does not follow the format."""


class UnknownKeyError(NoteError):
    """No signature on the note comes from a trusted key."""


class InvalidSignatureError(NoteError):
    """A signature from a trusted key does not verify."""


class InvalidKeyError(NoteError):
    """A signer or verifier key string is malformed or inconsistent."""


def _key_id(name: str, public_key: bytes, algorithm: int = ED25519) -> bytes:
    material = name.encode() + b"\n" + bytes([algorithm]) + public_key
    return hashlib.sha256(material).digest()[:4]


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() or c < " " for c in name)


def _b64decode(text: str) -> bytes:
    """Decode standard base64, rejecting any non-canonical spelling."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"not base64: {text[:20]!r}") from error
    if base64.b64encode(raw).decode() != text:
        raise ValueError(f"not canonical base64: {text[:20]!r}")
    return raw


def _split_key(key: str, parts: int) -> list[str]:
    fields = key.split("+", parts - 1)
    if len(fields) != parts:
        raise InvalidKeyError("malformed key: expected fields separated by '+'")
    return fields


def _decode_key_material(
    name: str, hex_id: str, b64: str, kind: str, algorithm: int = ED25519
) -> bytes:
    if not _valid_name(name):
        raise InvalidKeyError(f"malformed {kind} key: invalid name {name!r}")
    if not _HEX_KEY_ID.fullmatch(hex_id):
        raise InvalidKeyError(f"malformed {kind} key: key ID {hex_id!r} is not 8 hex digits")
    try:
        material = _b64decode(b64)
    except ValueError as error:
        raise InvalidKeyError(f"malformed {kind} key: {error}") from None
    if not material:
        raise InvalidKeyError(f"malformed {kind} key: empty key data")
    if material[0] != algorithm:
        raise InvalidKeyError(f"unknown signature algorithm 0x{material[0]:02x} in {kind} key")
    if len(material) != 33:
        raise InvalidKeyError(f"malformed {kind} key: Ed25519 key data must be 32 bytes")
    return material[1:]


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 public key with the name it signs under."""

    name: str
    key_id: bytes
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """Parse ``<name>+<hex key ID>+base64(0x01 ‖ public key)``; raise InvalidKeyError."""
        name, hex_id, b64 = _split_key(vkey, 3)
        public_key = _decode_key_material(name, hex_id, b64, "verifier")
        key_id = bytes.fromhex(hex_id)
        if key_id != _key_id(name, public_key):
            raise InvalidKeyError(f"verifier key ID {hex_id} does not match its name and key")
        return cls(name=name, key_id=key_id, public_key=public_key)

    def to_string(self) -> str:
        """Return the verifier key string."""
        material = base64.b64encode(bytes([ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Report whether ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 private key with the name it signs under. Keep it secret."""

    name: str
    key_id: bytes
    seed: bytes = field(repr=False)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """Parse ``PRIVATE+KEY+<name>+<hex key ID>+base64(0x01 ‖ seed)``; raise InvalidKeyError."""
        private, key, name, hex_id, b64 = _split_key(skey, 5)
        if (private, key) != ("PRIVATE", "KEY"):
            raise InvalidKeyError("malformed signer key: must start with PRIVATE+KEY+")
        seed = _decode_key_material(name, hex_id, b64, "signer")
        key_id = bytes.fromhex(hex_id)
        public_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
        if key_id != _key_id(name, public_key):
            raise InvalidKeyError(f"signer key ID {hex_id} does not match its name and key")
        return cls(name=name, key_id=key_id, seed=seed)

    def to_string(self) -> str:
        """Return the private signer key string."""
        material = base64.b64encode(bytes([ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{material}"

    def sign(self, message: bytes) -> bytes:
        """Return the Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)

    def verifier(self) -> Verifier:
        """Return the matching public verifier."""
        public_key = Ed25519PrivateKey.from_private_bytes(self.seed).public_key()
        return Verifier(self.name, self.key_id, public_key.public_bytes_raw())


def generate_signer_key(name: str) -> str:
    """Create a new Ed25519 signer key string for ``name``."""
    if not _valid_name(name):
        raise InvalidKeyError(f"invalid key name {name!r}: non-empty, no spaces, no '+'")
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    public_key = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    return Signer(name, _key_id(name, public_key), seed).to_string()


def verifier_key(signer_key: str) -> str:
    """Return the public verifier key string for a signer key string."""
    return Signer.parse(signer_key).verifier().to_string()


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True)
class ParsedNote:
    """A note split into text and signatures, none of them verified yet."""

    text: str
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class OpenedNote:
    """A note whose text is vouched for by at least one trusted key."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]

    @property
    def signers(self) -> tuple[str, ...]:
        """Names of the trusted keys that signed."""
        return tuple(signature.name for signature in self.verified)


def _check_characters(text: str) -> None:
    for char in text:
        if char < " " and char != "\n":
            raise MalformedNoteError(f"malformed note: control character U+{ord(char):04X}")


def parse_note(note: bytes) -> ParsedNote:
    """Split a signed note into text and signatures without verifying them."""
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNoteError("malformed note: not valid UTF-8") from None
    _check_characters(decoded)
    split = decoded.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("malformed note: no blank line before the signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block.endswith("\n"):
        raise MalformedNoteError("malformed note: no signature lines, or no final newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_SIGNATURE_PREFIX):
            raise MalformedNoteError(f"malformed note: not a signature line: {line[:40]!r}")
        name, _, b64 = line[len(_SIGNATURE_PREFIX) :].partition(" ")
        if not _valid_name(name):
            raise MalformedNoteError(f"malformed note: invalid key name {name!r}")
        try:
            raw = _b64decode(b64)
        except ValueError as error:
            raise MalformedNoteError(f"malformed note: signature by {name}: {error}") from None
        if len(raw) < 5:
            raise MalformedNoteError(f"malformed note: signature by {name} is too short")
        signatures.append(NoteSignature(name=name, key_id=raw[:4], signature=raw[4:]))
    return ParsedNote(text=text, signatures=tuple(signatures))


def _verifier_table(
    verifiers: Verifier | str | Iterable[Verifier | str],
) -> dict[tuple[str, bytes], Verifier]:
    items: Iterable[Verifier | str] = (
        [verifiers] if isinstance(verifiers, Verifier | str) else verifiers
    )
    table: dict[tuple[str, bytes], Verifier] = {}
    for item in items:
        verifier = Verifier.parse(item) if isinstance(item, str) else item
        known = table.setdefault((verifier.name, verifier.key_id), verifier)
        if known != verifier:
            raise InvalidKeyError(f"ambiguous key {verifier.name}+{verifier.key_id.hex()}")
    return table


def open_note(note: bytes, verifiers: Verifier | str | Iterable[Verifier | str]) -> OpenedNote:
    """Parse a signed note, then verify it against the trusted keys.

    Signatures by unknown keys are ignored (they may be witnesses, or a rotated
    key). Raises MalformedNoteError, InvalidSignatureError if any trusted key's
    signature fails, UnknownKeyError if no trusted key signed, and
    InvalidKeyError for a bad or ambiguous verifier key.
    """
    parsed = parse_note(note)
    table = _verifier_table(verifiers)
    message = parsed.text.encode()
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for signature in parsed.signatures:
        verifier = table.get((signature.name, signature.key_id))
        if verifier is None:
            if signature not in unverified:
                unverified.append(signature)
            continue
        if not verifier.verify(message, signature.signature):
            raise InvalidSignatureError(
                f"invalid signature for key {signature.name}+{signature.key_id.hex()}"
            )
        if all(v.key_id != signature.key_id or v.name != signature.name for v in verified):
            verified.append(signature)
    if not verified:
        trusted = ", ".join(f"{name}+{key_id.hex()}" for name, key_id in table) or "none"
        raise UnknownKeyError(f"note has no signature from a trusted key (trusted: {trusted})")
    return OpenedNote(text=parsed.text, verified=tuple(verified), unverified=tuple(unverified))


def sign_note(text: str, signers: Signer | Sequence[Signer]) -> bytes:
    """Sign ``text`` (which must end in a newline) and return the encoded note."""
    chosen = [signers] if isinstance(signers, Signer) else list(signers)
    if not chosen:
        raise ValueError("sign_note needs at least one signer")
    if not text.endswith("\n"):
        raise MalformedNoteError("malformed note: text must end with a newline")
    _check_characters(text)
    message = text.encode()
    lines = []
    for signer in chosen:
        encoded = base64.b64encode(signer.key_id + signer.sign(message)).decode()
        lines.append(f"{_SIGNATURE_PREFIX}{signer.name} {encoded}\n")
    return (text + "\n" + "".join(lines)).encode()


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog-checkpoint: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise MalformedNoteError("malformed checkpoint: origin must be one non-empty line")
        _check_characters(self.origin)
        if not 0 <= self.size < 2**64:
            raise MalformedNoteError(f"malformed checkpoint: tree size {self.size} out of range")
        if len(self.root_hash) != 32:
            raise MalformedNoteError("malformed checkpoint: root hash must be 32 bytes")
        for line in self.extensions:
            if not line or "\n" in line:
                raise MalformedNoteError("malformed checkpoint: empty or multi-line extension")
            _check_characters(line)

    def to_text(self) -> str:
        """Return the checkpoint note text (every line ends with a newline)."""
        root = base64.b64encode(self.root_hash).decode()
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text; raise MalformedNoteError."""
        if not text.endswith("\n"):
            raise MalformedNoteError("malformed checkpoint: text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedNoteError("malformed checkpoint: needs origin, size and root lines")
        origin, size, root, *extensions = lines
        if not _DECIMAL.fullmatch(size):
            raise MalformedNoteError(f"malformed checkpoint: bad tree size {size[:30]!r}")
        try:
            root_hash = _b64decode(root)
        except ValueError as error:
            raise MalformedNoteError(f"malformed checkpoint: root hash {error}") from None
        return cls(origin, int(size), root_hash, tuple(extensions))
