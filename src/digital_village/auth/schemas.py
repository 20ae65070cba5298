"""Wire shapes of tokens and of the current actor."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from digital_village.auth.models import Role


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    cooperative: str | None = Field(
        default=None, description="manager: the cooperative's 统一社会信用代码 or id"
    )
    household: str | None = Field(default=None, description="farmer: household id or 承包方编码")
    device_id: int | None = Field(default=None, description="device: the device id")
    label: str | None = Field(default=None, max_length=200)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    public_id: str
    role: Role
    cooperative_id: int | None
    household_id: int | None
    device_id: int | None
    label: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class TokenIssued(TokenOut):
    token: str = Field(description="the bearer token; shown only this once")


class MeOut(BaseModel):
    role: Role
    token_id: str | None
    cooperative_id: int | None
    household_id: int | None
    device_id: int | None
