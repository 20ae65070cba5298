"""The witness's signing key on disk: created once, mode 0600, never served."""

from __future__ import annotations

import os
from pathlib import Path

from digital_village.ledger import cosignature


def ensure_witness_key(path: Path, name: str) -> bool:
    """Create a cosigner key ``name`` at ``path`` unless one exists; True if created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two commands creating the key at once never overwrite each other's.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(cosignature.generate_cosigner_key(name) + "\n")
    return True


def load_cosigner(path: Path) -> cosignature.Cosigner:
    """The witness key stored at ``path``."""
    return cosignature.Cosigner.parse(path.read_text(encoding="ascii"))
