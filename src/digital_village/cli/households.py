"""``dv households``: the farming households (承包方), by 承包方编码 and masked name."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from digital_village.auth.actor import Actor
from digital_village.cli.common import console, load_settings, print_json, transaction
from digital_village.regions import service as regions
from digital_village.web import farmer

app = typer.Typer(help="Households (承包方) and the parcels they hold.", no_args_is_help=True)


@app.command("list")
def list_(
    coop: Annotated[
        str | None, typer.Option(help="Only the members of this cooperative (统一社会信用代码).")
    ] = None,
    village: Annotated[
        str | None, typer.Option(help="Only households of this village, group or township code.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List households by 承包方编码, names masked, with the parcels they hold today."""
    with transaction(load_settings()) as session:
        cooperative = regions.find_cooperative(session=session, key=coop) if coop else None
        if village is not None:
            regions.get_region(session=session, code=village)
        found = regions.list_households(
            session=session,
            actor=Actor.operator(),
            cooperative_id=cooperative.id if cooperative else None,
            region_code=village,
        )
        usccs = {c.id: c.uscc for c in regions.list_cooperatives(session=session)}
        held = farmer.parcels_held_by_households(
            session=session, household_ids=[household.id for household in found]
        )
        rows = [
            {
                "cbfbm": household.cbfbm,
                "name": regions.mask_name(household.name),
                "region_code": household.region_code,
                "cooperative": usccs.get(household.cooperative_id or 0),
                "parcels": held.get(household.id, []),
            }
            for household in found
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("承包方编码", "name", "group", "member of", "parcels")
    for household in found:
        parcels = held.get(household.id, [])
        table.add_row(
            household.cbfbm,
            regions.mask_name(household.name),
            household.region_code,
            usccs.get(household.cooperative_id or 0) or "—",
            f"{len(parcels)}" if parcels else "",
        )
    console.print(table)
    console.print(f"{len(rows)} households", highlight=False)
