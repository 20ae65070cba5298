"""LoRaWAN network-server integrations: their secrets, and the uplinks they post.

A network server authenticates with a header it sends on every request (ChirpStack's HTTP
integration and TTS webhooks both let an operator add headers). The value is
``dvi_<public id>_<secret>``; only the SHA-256 of the secret is stored and it is compared in
constant time, as bearer tokens are.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.db import utcnow
from digital_village.errors import Forbidden, Invalid, NotFound, Unauthorized
from digital_village.iot import adapters, decoders, devices, ingest, shapes
from digital_village.iot.models import Device, Integration, LorawanUplink
from digital_village.regions import service as regions

HEADER = "X-DV-Integration-Secret"
_UPLINKS: Table = LorawanUplink.__table__  # type: ignore[assignment]
SECRET_PREFIX = "dvi"  # noqa: S105 (a public prefix, not a secret)


@dataclass(frozen=True)
class CreatedIntegration:
    """An integration just made: the only moment its secret exists in clear."""

    row: Integration
    header: str
    secret: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_integration(
    *,
    session: Session,
    actor: Actor,
    kind: str,
    cooperative: str | None = None,
    label: str | None = None,
) -> CreatedIntegration:
    """Make an integration secret for a ChirpStack or TTS instance (admin)."""
    actor.require_admin()
    if kind not in adapters.INTEGRATION_KINDS:
        raise Invalid(
            f"unknown integration {kind!r}; known: {', '.join(adapters.INTEGRATION_KINDS)}"
        )
    row = Integration(public_id=secrets.token_hex(6), kind=kind, secret_hash="", label=label)
    if cooperative is not None:
        row.cooperative_id = regions.find_cooperative(session=session, key=cooperative).id
    secret = secrets.token_urlsafe(32)
    row.secret_hash = _hash(secret)
    session.add(row)
    session.flush()
    return CreatedIntegration(row, HEADER, f"{SECRET_PREFIX}_{row.public_id}_{secret}")


def list_integrations(*, session: Session, actor: Actor) -> Sequence[Integration]:
    """Integrations (admin); secrets are never stored, so never shown."""
    actor.require_admin()
    return session.scalars(select(Integration).order_by(Integration.id)).all()


def revoke_integration(*, session: Session, actor: Actor, public_id: str) -> Integration:
    """Refuse the integration's requests from now on."""
    actor.require_admin()
    row = session.scalar(select(Integration).where(Integration.public_id == public_id))
    if row is None:
        raise NotFound(f"no integration with id {public_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return row


def authenticate(*, session: Session, kind: str, presented: str | None) -> Integration:
    """The integration a header value stands for; Unauthorized otherwise."""
    if not presented:
        raise Unauthorized(
            f"this route needs the {HEADER} header of a `dv integrations add {kind}`"
        )
    parts = presented.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != SECRET_PREFIX or not parts[1] or not parts[2]:
        raise Unauthorized(f"malformed {HEADER}; expected dvi_<id>_<secret>")
    row = session.scalar(select(Integration).where(Integration.public_id == parts[1]))
    stored = row.secret_hash if row is not None else "0" * 64
    # Hash and compare even for an unknown id, so timing does not tell which ids exist.
    if not hmac.compare_digest(_hash(parts[2]), stored) or row is None:
        raise Unauthorized(f"invalid {HEADER}")
    if row.revoked_at is not None:
        raise Unauthorized("this integration has been revoked")
    if row.kind != kind:
        raise Unauthorized(f"this secret belongs to a {row.kind} integration, not {kind}")
    return row


def _values(uplink: adapters.Uplink, device: Device) -> tuple[dict[str, object], list[str]]:
    """The metrics an uplink carries: the network server's decoded object, else our decoder."""
    ignored: list[str] = []
    if uplink.decoded:
        taken, ignored = adapters.catalogue_values(uplink.decoded)
        if device.metrics:
            # A vendor codec may reuse a catalogue name in another unit (Milesight's "battery"
            # is percent); only metrics the device is registered for count.
            ignored += [name for name in taken if name not in device.metrics]
            taken = {name: value for name, value in taken.items() if name in device.metrics}
        if taken:
            return taken, ignored
    if uplink.frame is None:
        if uplink.decoded:
            raise Invalid(
                f"the decoded payload has no catalogue metric (keys: {', '.join(ignored)}) "
                "and the uplink carries no raw frame to decode",
                ignored=ignored,
            )
        raise Invalid("the uplink carries neither a decoded payload nor a raw frame")
    if device.model == devices.GENERIC_MODEL:
        raise Invalid(
            f"device {device.id} is registered as generic (no decoder) and the uplink has no "
            "decoded catalogue metrics; set its model, or configure a codec in the network server"
        )
    try:
        measured = decoders.decode(device.model, uplink.fport, uplink.frame)
    except decoders.DecodeError as error:
        raise Invalid(f"cannot decode the {device.model} frame: {error}") from None
    values: dict[str, object] = {}
    for measurement in measured:
        values[measurement.metric] = measurement.value
    return values, ignored


def ingest_uplink(
    *, session: Session, integration: Integration, uplink: adapters.Uplink
) -> ingest.IngestResult:
    """Store one uplink's readings once, however often the network server posts it."""
    device = devices.find_device_by_eui(session=session, dev_eui=uplink.dev_eui)
    if (
        integration.cooperative_id is not None
        and device.cooperative_id != integration.cooperative_id
    ):
        raise Forbidden(
            f"integration {integration.public_id} may post only for its own cooperative's "
            f"devices; device {device.id} is another's"
        )
    values, ignored = _values(uplink, device)
    now = ingest.now_ms()
    time_ms = uplink.time_ms if uplink.time_ms is not None else now
    if not values:
        # A frame that carried only status records (e.g. a Milesight device-info frame).
        return ingest.IngestResult(ignored=ignored)
    try:
        checked = ingest.check_decoded(
            device_id=device.id,
            values=values,
            time_ms=time_ms,
            now_ms=now,
            where="uplink",
            policies=ingest.metric_policies(session=session),
        )
    except shapes.PayloadError as error:
        raise ingest.payload_invalid(error) from None
    checked.ignored = ignored
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    # RETURNING, not the row count: drivers report -1 for a single INSERT … ON CONFLICT.
    first_time = session.execute(
        dialect.insert(_UPLINKS).on_conflict_do_nothing().returning(_UPLINKS.c.dedup_key),
        {"dedup_key": uplink.dedup_key, "device_id": device.id, "received_at": utcnow()},
    ).first()
    if first_time is None:
        return ingest.IngestResult(duplicates=len(checked.rows) + len(checked.rejected))
    context = ingest.device_context(session=session, device=device)
    return ingest.store(session=session, batches=[(context, checked)])
