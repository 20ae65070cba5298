"""Request dependencies of the map: when the latest event on some parcels was recorded.

The map sits below the chain: events that name parcels are recorded by ``trace``, which
imports ``parcels``, never the reverse. A parcel change must not start before the latest event
still standing on the parcel, so the app hands the map that lookup (``create_app`` sets
``app.state.last_event_on_parcels``) and the write routes take it as a dependency.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Protocol

from fastapi import Depends, Request
from sqlalchemy.orm import Session


class LastEventOnParcels(Protocol):
    def __call__(self, *, session: Session, dkbms: Sequence[str]) -> dt.datetime | None:
        """When the latest event still standing was recorded on any of the parcels, or None."""
        ...


def get_last_event_on_parcels(request: Request) -> LastEventOnParcels:
    """The app's lookup of the latest event on parcels."""
    lookup: LastEventOnParcels = request.app.state.last_event_on_parcels
    return lookup


LastEventDep = Annotated[LastEventOnParcels, Depends(get_last_event_on_parcels)]
