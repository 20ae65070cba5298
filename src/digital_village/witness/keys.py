"""The witness's signing key on disk: created once, mode 0600, never served."""

from __future__ import annotations

from pathlib import Path

from digital_village.ledger import cosignature, keys


def ensure_witness_key(path: Path, name: str) -> bool:
    """Create a cosigner key ``name`` at ``path`` (mode 0600) unless one exists; True if
    created."""
    return keys.create_secret_file(path, lambda: cosignature.generate_cosigner_key(name))


def load_cosigner(path: Path) -> cosignature.Cosigner:
    """The witness key stored at ``path``."""
    return cosignature.Cosigner.parse(path.read_text(encoding="ascii"))
