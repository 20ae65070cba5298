"""The background cosigner in a running log: appends never wait for witnesses."""

from __future__ import annotations

import time

from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger import cosigner, witnesses
from digital_village.ledger.log import Ledger
from tests.witness.conftest import WitnessServer


def wait_for(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_checkpoints_get_cosigned_in_the_background_and_a_dead_witness_holds_nothing_up(
    committed_db: Database, settings: Settings, witness_servers: list[WitnessServer]
) -> None:
    db = committed_db
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    city, province = witness_servers
    city.start()
    assert city.store is not None
    city.store.add_log(ledger.origin, ledger.vkey)
    with db.transaction() as session:
        witnesses.add(session=session, name="city", vkey=city.vkey, url=city.url)
        # The province's witness is configured but not running.
        witnesses.add(session=session, name="province", vkey=province.vkey, url=province.url)
    background = cosigner.BackgroundCosigner(db, poll=0.05, timeout=0.5).start()
    try:
        started = time.monotonic()
        for n in range(40):
            with db.transaction() as session:
                ledger.append(session, kind="test.event", data={"n": n})
            background.notify()
        appending = time.monotonic() - started
        assert appending < 5, f"appends took {appending:.1f} s with a witness down"

        def cosigned_by(size: int) -> tuple[str, ...]:
            with db.session() as session:
                return witnesses.status(session, size, 1).cosigned_by

        assert wait_for(lambda: cosigned_by(40) == ("city",), 5), cosigned_by(40)
        # The province's witness comes up (and is told about the log): it catches up.
        province.start()
        assert province.store is not None
        province.store.add_log(ledger.origin, ledger.vkey)
        with db.transaction() as session:
            ledger.append(session, kind="test.event", data={"n": 40})
        assert wait_for(lambda: cosigned_by(41) == ("city", "province"), 40), cosigned_by(41)
        assert province.store.state(ledger.origin).size == 41  # type: ignore[union-attr]
    finally:
        background.stop()
