"""`dv ledger mirror`: a checked copy of the log's tiles that a static server serves, and that
stops when the log forks."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from digital_village.cli.main import app as dv_app
from digital_village.config import Settings
from digital_village.ledger import merkle, mirror, note, tiles
from tests.ledger.tile_server import LiveLog, live_log, run_checker, tile_checker

__all__ = ["tile_checker"]
runner = CliRunner()


def run_mirror(log: LiveLog, out: Path, *vkeys: str) -> tuple[int, str]:
    args = ["ledger", "mirror", log.prefix, "--out", str(out)]
    for vkey in vkeys or (log.ledger.vkey,):
        args += ["--vkey", vkey]
    result = runner.invoke(dv_app, args)
    return result.exit_code, " ".join(result.output.split())


def files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """Python's http.server serving the folder, as any static host would."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(100):
            try:
                httpx.get(url + "checkpoint")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_a_mirror_follows_the_log_and_serves_as_a_static_copy(
    tile_checker: Path, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "mirror"
    with live_log(backend, tmp_path, request) as log:
        log.append(0, 300)
        code, output = run_mirror(log, out)
        assert code == 0, output
        assert "first copy -> size 300: 3 tiles and 2 entry bundles copied and verified" in output
        copy = files(out)
        assert copy["checkpoint"] == httpx.get(log.prefix + "checkpoint").content
        assert set(copy) == {
            "checkpoint",
            "tile/0/000",
            "tile/0/001.p/44",
            "tile/1/000.p/1",
            "tile/entries/000",
            "tile/entries/001.p/44",
        }
        for path in copy:
            assert copy[path] == httpx.get(log.prefix + path).content, path
        first_checkpoint = tmp_path / "at-300.checkpoint"
        first_checkpoint.write_bytes(copy["checkpoint"])

        log.append(300, 600)
        code, output = run_mirror(log, out)
        assert code == 0 and "size 300 -> size 600" in output, output
        copy = files(out)
        # The partial tiles of size 300 went once their full tiles came.
        assert "tile/0/001" in copy and "tile/0/001.p/44" not in copy
        assert "tile/entries/001.p/44" not in copy
        assert {"tile/0/002.p/88", "tile/1/000.p/2", "tile/entries/002.p/88"} <= set(copy)
        assert not (out / mirror.STAGING).exists()
        assert run_mirror(log, out) == (0, "unchanged at size 600")
        vkey = log.ledger.vkey

    # The log is gone; its copy verifies on its own, as a folder and served by http.server.
    code, output = run_checker(tile_checker, vkey, str(out), "-previous", str(first_checkpoint))
    assert code == 0 and "size 600, 600 entries verified" in output, output
    with static_server(out) as url:
        code, output = run_checker(tile_checker, vkey, url)
        assert code == 0 and "600 entries verified from tiles" in output, output
        # A mirror's URL is a tile prefix too: the copy can be mirrored in turn.
        again = tmp_path / "mirror-of-mirror"
        copied = mirror.mirror(mirror.http_fetch(url), again, [vkey])
        assert copied.summary.startswith("first copy -> size 600")
        # All but the partial tile of size 300 that the first copy keeps for older readers.
        assert files(again) == {p: d for p, d in files(out).items() if p != "tile/1/000.p/1"}


def test_the_mirror_checks_every_tile_and_the_key(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "mirror"
    with live_log(backend, tmp_path, request) as log:
        log.append(0, 600)
        honest = mirror.http_fetch(log.prefix)

        def tampered(path: str, offset: int) -> mirror.Fetch:
            def fetch(asked: str) -> bytes:
                data = honest(asked)
                if asked == path:
                    data = data[:offset] + bytes([data[offset] ^ 1]) + data[offset + 1 :]
                return data

            return fetch

        cases = {
            ("tile/entries/001", 40): "entry 256 does not hash to its leaf hash in tile/0/001",
            ("tile/0/002.p/88", 0): "entry 512 does not hash to its leaf hash",
            ("tile/1/000.p/2", 33): "tile/1/000.p/2 does not hold the tree hash of tile/0/001",
            ("checkpoint", 60): "not signed by the expected key",
        }
        for (path, offset), message in cases.items():
            with pytest.raises(mirror.MirrorError, match=message):
                mirror.mirror(tampered(path, offset), out, [log.ledger.vkey])
            assert files(out) == {}, path

        stranger = note.verifier_key(note.generate_signer_key(log.settings.ledger_origin))
        code, output = run_mirror(log, out, stranger)
        assert code == 2 and "not signed by the expected key" in output
        # After a key rotation, the old and the new key both open its checkpoints.
        code, output = run_mirror(log, out, stranger, log.ledger.vkey)
        assert code == 0, output


def test_the_mirror_stops_when_the_log_forks(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    out = tmp_path / "mirror"
    with live_log(backend, tmp_path, request) as log:
        log.append(0, 300)
        assert run_mirror(log, out)[0] == 0
        copied = files(out)

        # An insider rolls the log back to size 100 behind its back: entries, tree hashes and
        # the checkpoints after it removed.
        log.execute("DELETE FROM ledger_checkpoint WHERE size > 100")
        log.execute("DELETE FROM ledger_entry WHERE seq >= 100")
        log.execute("DELETE FROM ledger_hash WHERE idx >= :n", n=merkle.stored_hash_count(100))
        code, output = run_mirror(log, out)
        assert code == 1, output
        assert "FORK: the log's checkpoint has size 100, smaller than the size 300" in output
        assert files(out) == copied

        # ... then writes another history past the copy, its checkpoints signed by the log's key.
        log.append(100, 400, kind="test.rewritten")
        code, output = run_mirror(log, out)
        assert code == 1, output
        assert (
            "FORK: the log's checkpoint of size 400 is not consistent with the size 300" in output
        )
        assert "rewritten its history" in output
        assert files(out) == copied
        assert not (out / mirror.STAGING).exists()


def test_tile_paths_a_copy_needs() -> None:
    assert mirror.plan(300, 0) == [
        tiles.Tile(None, 0),
        tiles.Tile(None, 1, 44),
        tiles.Tile(0, 0),
        tiles.Tile(0, 1, 44),
        tiles.Tile(1, 0, 1),
    ]
    assert mirror.plan(600, 300) == [
        tiles.Tile(None, 1),
        tiles.Tile(None, 2, 88),
        tiles.Tile(0, 1),
        tiles.Tile(0, 2, 88),
        tiles.Tile(1, 0, 2),
    ]


def test_the_pages_mirror_setting_is_a_web_prefix(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ledger_mirror_url="https://mirror.example.cn:8443/dv")
    assert settings.ledger_mirror_url == "https://mirror.example.cn:8443/dv/"
    assert settings.ledger_mirror_origin == "https://mirror.example.cn:8443"
    assert Settings(data_dir=tmp_path, ledger_mirror_url="").ledger_mirror_url is None
    with pytest.raises(ValueError, match="must start with https://"):
        Settings(data_dir=tmp_path, ledger_mirror_url="mirror.example.cn/dv/")
