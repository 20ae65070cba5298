"""Request dependencies of the ledger: the log, with its signing key loaded on first use."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from digital_village.api.deps import get_settings
from digital_village.ledger.log import Ledger
from digital_village.ledger.publisher import Publisher


def get_ledger(request: Request) -> Ledger:
    """The ledger, with its signing key loaded on first use (503 while the key is missing): the
    publisher's, which leaves signing to it, when the app runs one (ledger/publisher.py)."""
    ledger: Ledger | None = getattr(request.app.state, "ledger", None)
    if ledger is None:
        publisher: Publisher | None = getattr(request.app.state, "publisher", None)
        if publisher is not None:
            ledger = publisher.ledger()
        else:
            settings = get_settings(request)
            ledger = Ledger.from_key_file(
                settings.effective_ledger_key_path, settings.ledger_origin
            )
        request.app.state.ledger = ledger
    return ledger


async def _ledger(request: Request) -> Ledger:
    """``get_ledger`` without a trip through the thread pool once the ledger is loaded."""
    loaded: Ledger | None = getattr(request.app.state, "ledger", None)
    return loaded if loaded is not None else await run_in_threadpool(get_ledger, request)


LedgerDep = Annotated[Ledger, Depends(_ledger)]
