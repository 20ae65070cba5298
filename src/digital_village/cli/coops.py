"""``dv coops``: cooperatives (农民专业合作社) under their 统一社会信用代码."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Column, Table

from digital_village.auth.actor import Actor
from digital_village.cli.common import console, load_settings, print_json, transaction
from digital_village.regions import service as regions

app = typer.Typer(help="Cooperatives, named by their 统一社会信用代码.", no_args_is_help=True)


@app.command("add")
def add(
    uscc: Annotated[str, typer.Argument(help="统一社会信用代码: 18 characters, check included.")],
    name: Annotated[str, typer.Argument(help="Its registered name.")],
    region: Annotated[
        str, typer.Option(help="The 9-digit township or 12-digit village it is registered in.")
    ],
) -> None:
    """Register a cooperative (its code's check character is verified)."""
    with transaction(load_settings()) as session:
        cooperative = regions.register_cooperative(
            session=session, uscc=uscc, name=name, region_code=region, actor=Actor.operator()
        )
        place = regions.get_region(session=session, code=cooperative.region_code).name
        line = f"registered {cooperative.name} ({cooperative.uscc}) in {place} {region}"
    console.print(line, highlight=False)


@app.command("list")
def list_(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the registered cooperatives with their members' count."""
    with transaction(load_settings()) as session:
        rows: list[dict[str, Any]] = [
            {
                "uscc": cooperative.uscc,
                "name": cooperative.name,
                "region_code": cooperative.region_code,
                "members": members,
            }
            for cooperative, members in regions.cooperatives_with_members(session=session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table(
        Column("统一社会信用代码", min_width=18),
        Column("name", overflow="fold"),
        "region",
        "members",
    )
    for row in rows:
        table.add_row(row["uscc"], row["name"], row["region_code"], str(row["members"]))
    console.print(table)
