"""How the resolver serves: cached answers on the event loop without a thread hand-off, pages
gzipped from parts deflated once, one build per view however many requests miss at once."""

from __future__ import annotations

import gzip
import os
import sqlite3
import zlib
from typing import Any

import pytest
from fastapi import FastAPI

from digital_village.web import pages, resolver
from tests.web.conftest import Pages, client_at

HTML = {"Accept": "text/html", "Accept-Encoding": "gzip"}
LINKSET = {"Accept": "application/linkset+json", "Accept-Encoding": "gzip"}


def test_parts_deflated_apart_make_one_gzip_member() -> None:
    parts: list[bytes | pages.Deflated] = [
        pages.Deflated.of(b"<html>" + "溯源".encode() * 2000),
        b"",
        b"<p>per request</p>",
        pages.Deflated.of(b""),
        pages.Deflated.of(os.urandom(3000)),
        b"x" * 5000,
        pages.Deflated.of(b"</html>"),
    ]
    raw = b"".join(part.raw if isinstance(part, pages.Deflated) else part for part in parts)
    body = pages.gzip_parts(parts)
    assert gzip.decompress(body) == raw
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # strict: one member, nothing after it
    assert inflater.decompress(body) == raw
    assert inflater.eof and inflater.unused_data == b""
    assert len(body) < len(raw) // 2


def test_a_cached_page_and_linkset_are_served_on_the_event_loop(
    pages_app: FastAPI, pages_db: Pages, monkeypatch: pytest.MonkeyPatch
) -> None:
    offloaded: list[str] = []
    real = resolver.run_in_threadpool

    async def counting(function: Any, *args: Any) -> Any:
        offloaded.append(function.__name__)
        return await real(function, *args)

    monkeypatch.setattr(resolver, "run_in_threadpool", counting)
    with client_at(pages_app, "203.0.113.9") as client:
        page = f"/page{pages_db.bottle}"  # where the resolver sends a browser
        first = client.get(page, headers=HTML)
        assert first.status_code == 200
        if pages_db.engine.dialect.name != "sqlite":
            # PostgreSQL: the ledger's size is a network round trip, read in the thread pool.
            assert offloaded == ["_answer_in_thread"]
            return
        assert offloaded == ["_answer_in_thread"]  # the page is built once, in a thread
        again = client.get(page, headers=HTML)
        client.get(pages_db.bottle, headers=LINKSET)  # the linkset: built in a thread
        linkset = client.get(pages_db.bottle, headers=LINKSET)
    assert offloaded == ["_answer_in_thread", "_answer_in_thread"]
    assert again.status_code == linkset.status_code == 200
    assert again.headers["content-encoding"] == "gzip"
    assert 'data-scans="1"' in again.text  # its scan (a reload: counted once) was stored
    assert again.headers["link"] == first.headers["link"]
    assert linkset.json()["linkset"][0]["anchor"].endswith("/21/0001")


def test_the_page_is_the_same_gzipped_or_not(pages_app: FastAPI, pages_db: Pages) -> None:
    with client_at(pages_app, "198.51.100.9") as client:
        zipped = client.get(pages_db.bottle, headers=HTML)
        plain = client.get(pages_db.bottle, headers={**HTML, "Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert zipped.text == plain.text  # the same network again: the same count
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2


def test_the_ledger_size_read_fails_as_sqlalchemy_would(
    pages_db: Pages, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if pages_db.engine.dialect.name != "sqlite":
        pytest.skip("the ledger's size has its own connection on SQLite only")
    from sqlalchemy.exc import DBAPIError

    from digital_village.db import Database, Failure, failure_of

    state = resolver.ResolverState(Database(pages_db.engine))
    try:
        assert state.head() > 0
        assert state._connection is not None

        class Broken:
            def execute(self, _: str) -> None:
                error = sqlite3.OperationalError("database is locked")
                error.sqlite_errorcode = 5  # type: ignore[attr-defined]
                raise error

            def close(self) -> None:
                pass

        monkeypatch.setattr(state._connection, "cursor", lambda: Broken())
        with pytest.raises(DBAPIError) as raised:
            state.head()
        assert failure_of(raised.value) is Failure.UNAVAILABLE  # answered 503, not 500
        assert state.head() > 0  # a new connection for the next read
    finally:
        state.close()
