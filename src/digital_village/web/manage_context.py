"""What every panel of the manager console works with (web/manage.py), and how it records.

Events are recorded through ``trace.capture.capture``, the service behind ``POST /api/v1/events``
and the EPCIS capture interface: the console builds them with ``trace.builders`` as every other
client does, so the same rules check them and the same ledger entries record them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.config import Settings
from digital_village.ledger.log import Ledger
from digital_village.regions.models import Cooperative
from digital_village.trace import capture
from digital_village.trace.epcis import default_context, parse_event
from digital_village.web.manage_words import words


@dataclass(frozen=True)
class Console:
    """The request's session, the signed-in manager, their cooperative and language."""

    session: Session
    actor: Actor
    cooperative: Cooperative
    language: str
    settings: Settings

    @property
    def cooperative_id(self) -> int:
        return self.cooperative.id

    @property
    def base_url(self) -> str:
        return self.settings.public_base_url

    @property
    def m(self) -> Mapping[str, str]:
        return words(self.language)


def record(
    console: Console, ledger: Ledger, events: Sequence[dict[str, Any]]
) -> capture.CaptureResult:
    """Capture the events as the API does, all or nothing, in the request's transaction."""
    models = [parse_event(event) for event in events]
    return capture.capture(
        session=console.session,
        ledger=ledger,
        actor=console.actor,
        events=models,
        base_url=console.base_url,
        context=default_context(),
        pointer=None if len(models) == 1 else "/epcisBody/eventList",
        strict_hash=console.settings.epcis_strict_hash,
        max_quantity=console.settings.max_quantity,
    )
