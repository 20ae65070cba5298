"""The monitor against a server that lies: replayed checkpoints, split views, rewritten history."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from digital_village.config import Settings
from digital_village.db import Database
from digital_village.ledger import monitor, note
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.publisher import publish_now


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


def append(db: Database, ledger: Ledger, count: int, start: int = 0) -> None:
    with db.transaction() as session:
        ledger.append_many(
            session, [EntryIn("test.event", {"n": n}) for n in range(start, start + count)]
        )


def server(client: TestClient, served: dict[str, bytes]) -> monitor.Fetch:
    """The app as the monitor sees it, with some paths answered by ``served`` instead."""

    def fetch(path: str) -> bytes | None:
        if path in served:
            return served[path]
        response = client.get(path)
        if response.status_code == 404:
            return None
        assert response.status_code == 200, response.text
        return response.content

    return fetch


def current(client: TestClient) -> bytes:
    return client.get(monitor.CHECKPOINT_PATH).content


def test_an_honest_growing_log_raises_no_alert(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    append(db, ledger, 3)
    fetch = server(client, {})
    first = monitor.look(fetch, ledger.vkey, None)
    assert first.summary == "first checkpoint: size 3"
    assert monitor.look(fetch, ledger.vkey, first.signed).summary == "unchanged at size 3"
    append(db, ledger, 4, start=3)
    grown = monitor.look(fetch, ledger.vkey, first.signed)
    assert grown.summary == "consistent: size 3 -> 7"


def test_a_log_growing_between_reads_is_busy_not_stale(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    """An append lands between reading the checkpoint and probing the entry after it."""
    append(db, ledger, 2)
    honest = server(client, {})
    appended = [False]

    def fetch(path: str) -> bytes | None:
        if path == "/api/v1/ledger/entries/2" and not appended[0]:
            append(db, ledger, 1, start=2)
            appended[0] = True
        return honest(path)

    assert monitor.look(fetch, ledger.vkey, None).checkpoint.size == 3


def test_a_replayed_checkpoint_is_caught_on_the_first_look(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    """A monitor that never saw the newer checkpoint: the server's own entries betray it."""
    append(db, ledger, 2)
    old = current(client)
    append(db, ledger, 3, start=2)
    fetch = server(client, {monitor.CHECKPOINT_PATH: old})
    waited: list[float] = []
    with pytest.raises(monitor.MonitorAlert, match="old signed checkpoint is being replayed"):
        monitor.look(fetch, ledger.vkey, None, sleep=waited.append)
    # The server's publisher had its grace to sign a newer checkpoint, and did not.
    assert sum(waited) >= monitor.PUBLISH_GRACE_S


def test_an_entry_the_publisher_covers_within_its_grace_raises_no_alert(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    """A serving process appends without signing: the entry after the checkpoint is served a
    moment before the checkpoint that covers it."""
    append(db, ledger, 2)
    unsigned = Ledger(origin=ledger.origin, signer=ledger.signer, sign_on_append=False)
    append(db, unsigned, 3, start=2)
    waited: list[float] = []

    def publisher_signs(seconds: float) -> None:
        waited.append(seconds)
        if len(waited) == 3:
            publish_now(db, unsigned)

    looked = monitor.look(server(client, {}), ledger.vkey, None, sleep=publisher_signs)
    assert looked.checkpoint.size == 5 and len(waited) == 3


def test_a_replayed_checkpoint_is_caught_against_the_newest_seen(
    client: TestClient, db: Database, ledger: Ledger
) -> None:
    """Even when the server also hides the entries after the replayed size."""
    append(db, ledger, 2)
    old = current(client)
    append(db, ledger, 3, start=2)
    seen = current(client)
    hiding: dict[str, bytes] = {monitor.CHECKPOINT_PATH: old}
    honest = server(client, hiding)

    def fetch(path: str) -> bytes | None:
        return None if path.startswith("/api/v1/ledger/entries/") else honest(path)

    with pytest.raises(monitor.MonitorAlert, match="went back from size 5 to 2"):
        monitor.look(fetch, ledger.vkey, seen)


def forged_tree(ledger: Ledger, size: int) -> bytes:
    """A checkpoint the key really signed, of a tree of ``size`` that is not the log's."""
    other = note.Checkpoint(ledger.origin, size, b"\x07" * 32)
    return note.sign_note(other.to_text(), ledger.signer)


def test_a_split_view_is_caught(client: TestClient, db: Database, ledger: Ledger) -> None:
    append(db, ledger, 4)
    seen = current(client)
    fetch = server(client, {monitor.CHECKPOINT_PATH: forged_tree(ledger, 4)})
    with pytest.raises(monitor.MonitorAlert, match="split view"):
        monitor.look(fetch, ledger.vkey, seen)


def test_a_rewritten_history_is_caught(client: TestClient, db: Database, ledger: Ledger) -> None:
    append(db, ledger, 4)
    seen = current(client)
    append(db, ledger, 2, start=4)
    fetch = server(client, {monitor.CHECKPOINT_PATH: forged_tree(ledger, 6)})
    with pytest.raises(monitor.MonitorAlert, match="not consistent with size 4"):
        monitor.look(fetch, ledger.vkey, seen)


def test_an_unsigned_checkpoint_is_caught(
    client: TestClient, db: Database, ledger: Ledger, tmp_path: Path
) -> None:
    append(db, ledger, 2)
    stranger = note.Signer.parse(note.generate_signer_key(ledger.origin))
    signed = note.sign_note(note.Checkpoint(ledger.origin, 2, b"\x01" * 32).to_text(), stranger)
    fetch = server(client, {monitor.CHECKPOINT_PATH: signed})
    with pytest.raises(monitor.MonitorAlert, match="does not verify"):
        monitor.look(fetch, ledger.vkey, None)


def test_the_state_keeps_the_newest_checkpoint_atomically(tmp_path: Path) -> None:
    state = monitor.State(tmp_path / "m")
    assert state.seen() is None
    state.keep(b"one")
    state.keep(b"two")
    assert state.seen() == b"two"
    assert sorted(p.name for p in state.folder.iterdir()) == ["checkpoint"]
