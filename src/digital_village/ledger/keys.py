"""The ledger's signing key on disk: created once by ``dv init``, mode 0600, never served."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from digital_village.ledger import note


def ensure_signing_key(path: Path, name: str) -> bool:
    """Create an Ed25519 signer key ``name`` at ``path`` unless one exists; True if created."""
    return create_secret_file(path, lambda: note.generate_signer_key(name))


def create_secret_file(path: Path, make: Callable[[], str]) -> bool:
    """Write ``make()`` and a newline to a new file of mode 0600 unless ``path`` exists; True if
    written. The ledger's key and a witness's key are kept this way."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes initialising at once never overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(make() + "\n")
    return True


def load_signer(path: Path) -> note.Signer:
    """The signer stored at ``path``."""
    return note.Signer.parse(path.read_text(encoding="ascii").strip())


def verifier_key(path: Path) -> str:
    """The public verifier key line (``<name>+<keyid>+<base64>``) of the key at ``path``."""
    return load_signer(path).verifier().to_string()
