"""Witnesses for tests: keys, stores and real witness servers on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from digital_village import migrate
from digital_village.db import Database, make_engine
from digital_village.ledger import cosignature, merkle, note
from digital_village.ledger.cosigner import request_body
from digital_village.witness.app import create_witness_app
from digital_village.witness.protocol import Witness
from digital_village.witness.store import WitnessStore

ORIGIN = "test.digital-village.example/ledger"


def new_cosigner(name: str) -> cosignature.Cosigner:
    return cosignature.Cosigner.parse(cosignature.generate_cosigner_key(name))


class FakeLog:
    """A log in memory: entries, a signing key, checkpoints and consistency proofs."""

    def __init__(self, origin: str = ORIGIN, signer: note.Signer | None = None) -> None:
        self.origin = origin
        self.signer = signer or note.Signer.parse(note.generate_signer_key(origin))
        self.tree = merkle.MemoryHashStore()

    @property
    def vkey(self) -> str:
        return self.signer.verifier().to_string()

    def grow(self, count: int) -> FakeLog:
        for _ in range(count):
            self.tree.append(f"entry {self.tree.size}".encode())
        return self

    def checkpoint(self, size: int | None = None) -> bytes:
        size = self.tree.size if size is None else size
        text = note.Checkpoint(self.origin, size, self.tree.root(size)).to_text()
        return note.sign_note(text, self.signer)

    def request(self, old: int, size: int | None = None, proof: list[bytes] | None = None) -> bytes:
        size = self.tree.size if size is None else size
        if proof is None:
            proof = self.tree.consistency_proof(old, size) if 0 < old < size else []
        return request_body(old, proof, self.checkpoint(size))


class WitnessServer:
    """A witness under uvicorn on a fixed port of 127.0.0.1: it can stop and start again."""

    def __init__(self, folder: Path, cosigner: cosignature.Cosigner, port: int) -> None:
        self.folder = folder
        self.cosigner = cosigner
        self.port = port
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        self.store: WitnessStore | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def vkey(self) -> str:
        return self.cosigner.verifier().to_string()

    def start(self) -> WitnessServer:
        self.store = WitnessStore.in_folder(self.folder)
        app = create_witness_app(Witness(self.store, self.cosigner))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the witness did not start")
            time.sleep(0.02)
        self._socket = sock
        return self

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None and self.store is not None
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self._socket.close()
        self.store.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def witness_servers(tmp_path: Path) -> Iterator[list[WitnessServer]]:
    """Two witnesses (the city's and the province's), each with its own store, not started."""
    servers = [
        WitnessServer(tmp_path / "city", new_cosigner("witness.deyang.example/nyj"), free_port()),
        WitnessServer(
            tmp_path / "province", new_cosigner("witness.sichuan.example/trace"), free_port()
        ),
    ]
    yield servers
    for server in servers:
        if server.server is not None and server.thread is not None and server.thread.is_alive():
            server.stop()


@pytest.fixture
def committed_db(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Database]:
    """A fresh, migrated database of the backend whose commits are real (for threads)."""
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        url = server.create_database("dv_witness")
    else:
        url = f"sqlite:///{tmp_path / 'log.db'}"
    engine = make_engine(url)
    with engine.begin() as connection:
        migrate.upgrade(connection)
    yield Database(engine)
    engine.dispose()
    if backend == "postgres":
        server.drop_database(url)
