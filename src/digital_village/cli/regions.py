"""``dv regions``: the administrative tree."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from digital_village.auth.actor import Actor
from digital_village.cli.common import console, load_settings, print_json, transaction
from digital_village.regions import service as regions

app = typer.Typer(help="Townships, villages and groups.", no_args_is_help=True)


@app.command("add")
def add(
    code: Annotated[
        str, typer.Argument(help="9-digit township, 12-digit village or 14-digit group code.")
    ],
    name: Annotated[str, typer.Argument(help="Its name, e.g. 民安村.")],
) -> None:
    """Add a region whose parent already exists."""
    with transaction(load_settings()) as session:
        region = regions.add_region(session=session, code=code, name=name, actor=Actor.operator())
        level = region.level.value
    console.print(f"added {level} {code} {name}")


@app.command("list")
def list_(
    parent: Annotated[str | None, typer.Option(help="Only the children of this code.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List regions by code."""
    with transaction(load_settings()) as session:
        rows = [
            {"code": r.code, "level": r.level.value, "name": r.name, "parent_code": r.parent_code}
            for r in regions.list_regions(session=session, parent_code=parent)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("code", "level", "name", "parent")
    for row in rows:
        table.add_row(row["code"], row["level"], row["name"], row["parent_code"] or "")
    console.print(table)
