"""The 查询码 printed under a serial's QR code: 8 characters a person types when the code will
not scan (labels print it; the resolver finds the item by it, ``/q/<code>``)."""

from __future__ import annotations

import hashlib
import re
from typing import Final

from digital_village.gs1.digital_link import DigitalLink

CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# What people type for Crockford's letters: case is ignored, I and L read as 1, O as 0.
_TYPED: Final = str.maketrans({"I": "1", "L": "1", "O": "0"})
_SHAPE: Final = re.compile(r"[0-9A-HJKMNP-TV-Z]{8}")


def short_code(gtin: str, lot: str, serial: str) -> str:
    """A code of 8 Crockford base32 characters (``XXXX-XXXX``) naming one serialized unit.

    It is the first 40 bits of SHA-256 over the unit's canonical Digital Link path, so anyone can
    recompute it from the GTIN, lot and serial, and a person can type it when the QR code is
    unreadable. It identifies; it does not authenticate.
    """
    path = DigitalLink(gtin=gtin, lot=lot, serial=serial).path
    number = int.from_bytes(hashlib.sha256(path.encode()).digest()[:5], "big")
    chars = "".join(CROCKFORD[(number >> shift) & 31] for shift in range(35, -1, -5))
    return f"{chars[:4]}-{chars[4:]}"


def normalise(typed: str) -> str | None:
    """A typed 查询码 in its printed form (``XXXX-XXXX``), or None when it cannot be one:
    spaces and dashes anywhere, any case, I/L for 1 and O for 0."""
    compact = re.sub(r"[\s\-‐-―－]", "", typed).upper().translate(_TYPED)
    if not _SHAPE.fullmatch(compact):
        return None
    return f"{compact[:4]}-{compact[4:]}"
