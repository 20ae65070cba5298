"""The server's scheduled task: seal finished days in the background.

Every API process runs one (a daemon thread); the sealer's lock makes concurrent ones harmless:
the second finds nothing pending. ``dv iot seal`` does the same on demand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from sqlalchemy.orm import Session

from digital_village.bulk import write_in_chunks
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import DomainError
from digital_village.iot import seal
from digital_village.ledger.log import Ledger

log = logging.getLogger("digital_village.iot.sealer")
INTERVAL_SECONDS = 600.0


def seal_finished_days(
    database: Database, ledger: Ledger, holds: list[float] | None = None
) -> list[seal.SealMade]:
    """Seal every finished day with unsealed readings.

    The days' readings are read and hashed in a read transaction, which keeps no writer
    waiting; then each parcel-day (with the pending pairs it clears) is checked and appended
    in a short write transaction of its own (``bulk.write_in_chunks``). Read under the writer,
    one pass over a day of three sensors' readings held it for 1.8 s while sensors and
    managers waited.
    ``holds`` gets how long each write transaction held the writer.
    """
    with database.transaction(write=False) as session:
        plan = seal.plan_seals(session)
    made: list[seal.SealMade] = []

    def store(session: Session, parts: Sequence[seal.SealPlan]) -> None:
        for part in parts:
            made.extend(seal.store_planned(session, ledger, part))

    # Parts range from a few late readings to a parcel's whole day: each is stored alone.
    write_in_chunks(database, seal.split_plan(plan), store, most=1, durations=holds)
    return made


class BackgroundSealer:
    """A daemon thread sealing finished days every ``interval`` seconds."""

    def __init__(
        self, database: Database, settings: Settings, interval: float = INTERVAL_SECONDS
    ) -> None:
        self.database = database
        self.settings = settings
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dv-sealer", daemon=True)

    def start(self) -> BackgroundSealer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        # First pass soon after start-up, then on the interval.
        delay = min(30.0, self.interval)
        while not self._stop.wait(delay):
            self.run_once()
            delay = self.interval

    def run_once(self) -> None:
        try:
            ledger = Ledger.from_key_file(
                self.settings.effective_ledger_key_path, self.settings.ledger_origin
            )
            holds: list[float] = []
            made = seal_finished_days(self.database, ledger, holds)
        except DomainError as error:
            log.warning("sealing finished days failed: %s", error.detail)
            return
        except Exception:
            log.exception("sealing finished days failed")
            return
        if made:
            log.info(
                "sealed %d parcel-days in %d write transactions, the longest %.0f ms",
                len(made),
                len(holds),
                max(holds) * 1000,
                extra={
                    "seals": [f"{m.parcel}/{m.day}/{m.part}" for m in made],
                    "readings": sum(m.count for m in made),
                    "write_hold_ms": [round(hold * 1000, 1) for hold in holds],
                },
            )
