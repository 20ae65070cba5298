"""The background cosigner in a running log: appends never wait for witnesses."""

from __future__ import annotations

import socket
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
    # The province's address takes connections and never answers: each request to it waits for
    # the whole timeout.
    black_hole = socket.socket()
    black_hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    black_hole.bind(("127.0.0.1", province.port))
    black_hole.listen(64)
    with db.transaction() as session:
        witnesses.add(session=session, name="city", vkey=city.vkey, url=city.url)
        witnesses.add(session=session, name="province", vkey=province.vkey, url=province.url)
    background = cosigner.BackgroundCosigner(db, poll=0.05, timeout=3.0).start()
    try:
        started = time.monotonic()
        for n in range(40):
            with db.transaction() as session:
                ledger.append(session, kind="test.event", data={"n": n})
            background.notify()
            time.sleep(0.01)
        appending = time.monotonic() - started
        # Less than one of the province's timeouts: nobody waited for it.
        assert appending < 3, f"appends took {appending:.1f} s with a witness not answering"

        def cosigned_by(size: int) -> tuple[str, ...]:
            with db.session() as session:
                return witnesses.status(session, size, 1).cosigned_by

        assert wait_for(lambda: cosigned_by(40) == ("city",), 20), cosigned_by(40)
        # The province's witness comes up (and is told about the log): it catches up.
        black_hole.close()
        province.start()
        assert province.store is not None
        province.store.add_log(ledger.origin, ledger.vkey)
        with db.transaction() as session:
            ledger.append(session, kind="test.event", data={"n": 40})
        assert wait_for(lambda: cosigned_by(41) == ("city", "province"), 60), cosigned_by(41)
        assert province.store.state(ledger.origin).size == 41  # type: ignore[union-attr]
    finally:
        background.stop()
        black_hole.close()
