"""`dv … --help` wraps cleanly in an 80-column terminal: paragraphs reflowed, nothing cut
short with an ellipsis, no line wider than the terminal (Chinese counted two columns)."""

from __future__ import annotations

import typer
from rich.cells import cell_len
from typer.testing import CliRunner

from digital_village.cli.main import app

runner = CliRunner()


def every_command(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    for name, command in getattr(group, "commands", {}).items():
        found += every_command(command, (*path, name))
    return found


def test_every_help_fits_80_columns_without_cut_words() -> None:
    root = typer.main.get_command(app)
    paths = every_command(root)
    assert ("households", "list") in paths and ("trace", "example-season") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert result.exit_code == 0, (path, result.output)
        wide = [line for line in result.output.splitlines() if cell_len(line) > 80]
        assert not wide, (path, wide)
        assert "…" not in result.output, (path, result.output)


def test_a_docstrings_paragraph_is_reflowed_not_broken_where_the_source_broke_it() -> None:
    output = runner.invoke(app, ["parcels", "import", "--help"], env={"COLUMNS": "80"}).output
    flowing = " ".join(line.strip(" │") for line in output.splitlines())
    assert "the good ones are stored unless --all-or-nothing" in " ".join(flowing.split())
    # The source breaks after "are stored"; reflowed, that line goes on to the terminal's edge.
    assert not any(line.rstrip().endswith("are stored") for line in output.splitlines())
    output = runner.invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    assert "exchange packages in" in output and "in an…" not in output
