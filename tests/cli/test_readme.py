"""The README's commands work as printed against `dv demo`'s database: every line of the code
blocks of "Using it" and "The chain" runs, with only what cannot be printed substituted (a
token's ID, a free port for `dv serve`, the demo's season year, optional `[...]` parts left
out), so the README cannot drift from the program."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.demo_db import DemoDatabase, demo_database

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = ("Using it", "The chain")
PRINTED_YEAR = "2026"


@pytest.fixture(scope="module")
def demo(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DemoDatabase]:
    yield from demo_database(backend, tmp_path_factory, request)


def commands(section: str) -> list[str]:
    """The `dv` commands of a README section's code blocks, one per line (`a | b` is two)."""
    text = README.read_text("utf-8")
    start = text.index(f"\n## {section}")
    end = text.find("\n## ", start + 1)
    body = text[start:end]
    found: list[str] = []
    for block in re.findall(r"```\n(.*?)```", body, flags=re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line.startswith("dv "):
                found += [part.strip() for part in line.split(" | ")]
    return found


def arguments(command: str, year: int) -> list[str]:
    """A printed command as `dv` receives it: optional `[...]` parts dropped, the demo's year."""
    command = re.sub(r"\s*\[[^\]]*\]", "", command)
    command = command.replace(PRINTED_YEAR, str(year))
    return shlex.split(command)[1:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(demo: DemoDatabase, args: list[str]) -> None:
    """`dv serve` as printed, on a free port: it answers /healthz, then it is stopped."""
    port = free_port()
    args = [str(port) if value == "8000" else value for value in args]
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dv")), *args],
        env={**os.environ, **demo.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    return
            except OSError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                time.sleep(0.2)
        pytest.fail("dv serve did not answer within 120 s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_readme_lists_what_it_is_tested_on() -> None:
    using = commands("Using it")
    assert "dv tokens create --role manager --coop 93510603MA6DX0001T" in using
    assert any(line.startswith("dv households list") for line in using)
    assert any(line.startswith("dv trace example-season") for line in commands("The chain"))


@pytest.mark.parametrize("section", SECTIONS)
def test_every_readme_command_works_against_the_demo(
    demo: DemoDatabase, section: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # files the commands write (season.json, lot.json) land here
    for command in commands(section):
        args = arguments(command, demo.year)
        if args[:1] == ["serve"]:
            serve(demo, args)
            continue
        if "ID" in args:  # a token's id, from the list printed before
            listed = json.loads(demo.dv("tokens", "list", "--json")[1])
            args = [listed[-1]["id"] if value == "ID" else value for value in args]
        code, output = demo.dv(*args)
        assert code == 0, f"`{command}` failed (exit {code}):\n{output}"


def test_serving_on_is_printed_only_once_the_port_accepts_connections(
    demo: DemoDatabase,
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dv")), "serve", "--port", str(port)],
        env={**os.environ, **demo.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "serving on" in line:
                break
        assert lines and f"serving on http://127.0.0.1:{port}" in lines[-1], lines
        # At the moment the line appears, the port answers.
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            assert answer.status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
