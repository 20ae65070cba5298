"""An independent tlog-tiles client verifies our log from its tiles alone: Go's sumdb/tlog.

Needs Go and Debian's golang-golang-x-mod-dev (CI installs both); skipped elsewhere, saying so.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from digital_village.ledger import note
from tests.ledger.tile_server import live_log, run_checker, tile_checker

__all__ = ["tile_checker"]


def test_go_verifies_every_entry_from_the_served_tiles(
    tile_checker: Path, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with live_log(backend, tmp_path, request) as log:
        log.append(0, 70)
        earlier = httpx.get(log.prefix + "checkpoint").content
        (tmp_path / "earlier.checkpoint").write_bytes(earlier)
        # Two full level-0 tiles and a partial one; a level-1 tile of width 2.
        log.append(70, 600)
        code, output = run_checker(tile_checker, log.ledger.vkey, log.prefix)
        assert code == 0, output
        assert output.startswith(
            "ok: tiles.digital-village.example/ledger size 600, 600 entries verified from tiles"
        )
        previous = ["-previous", str(tmp_path / "earlier.checkpoint")]
        code, output = run_checker(tile_checker, log.ledger.vkey, log.prefix, *previous)
        assert code == 0 and "consistent with size 70" in output, output

        # An entry edited behind the log's back no longer hashes to its tile.
        log.execute("UPDATE ledger_entry SET body = :body WHERE seq = 590", body=b'{"forged":true}')
        code, output = run_checker(tile_checker, log.ledger.vkey, log.prefix)
        assert code == 1 and "FAIL: entry 590" in output, output

        # Another log's key does not open the checkpoint.
        stranger = note.verifier_key(note.generate_signer_key(log.settings.ledger_origin))
        code, output = run_checker(tile_checker, stranger, log.prefix)
        assert code == 1 and "FAIL: checkpoint: " in output, output
