"""The table of access: API tokens, stored as hashes only.

A token's scope names a cooperative, a household or a device by its row id; those tables belong
to ``regions`` and ``iot``, and this module imports neither.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from digital_village.db import Base, UTCDateTime, utcnow


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"  # one cooperative
    FARMER = "farmer"  # one household
    DEVICE = "device"  # one device


class ApiToken(Base):
    """A bearer token. Only the SHA-256 of its secret part is kept."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The public part of the token (``dv_<public_id>_<secret>``): names it in lists and logs.
    public_id: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    cooperative_id: Mapped[int | None] = mapped_column(
        ForeignKey("cooperative.id"), index=True, default=None
    )
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("household.id"), index=True, default=None
    )
    device_id: Mapped[int | None] = mapped_column(ForeignKey("device.id"), index=True, default=None)
    label: Mapped[str | None] = mapped_column(String(200), default=None)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, default=None)
