"""``dv farmers invite HOUSEHOLD``: a farmer's sign-in link for the parcel pages."""

from __future__ import annotations

from typing import Annotated

import typer

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.cli.common import console, load_settings, print_json, transaction
from digital_village.regions import service as regions
from digital_village.web import farmer

app = typer.Typer(help="Farmers: sign-in links for recording field work.", no_args_is_help=True)


@app.command("invite")
def invite(
    household: Annotated[str, typer.Argument(help="Household id or 承包方编码.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Make a farmer token for the household and print its sign-in link (shown once).

    The link opens one of the household's parcel pages with the token after '#', which browsers
    never send to the server; the page keeps it on the phone and forgets it from the address.
    Any parcel sign the farmer scans afterwards is then ready to record work.
    """
    settings = load_settings()
    with transaction(settings) as session:
        found = regions.find_household(session=session, key=household)
        issued = auth.issue_token(
            session=session,
            role=Role.FARMER,
            actor=Actor.operator(),
            scope=auth.TokenScope(household_id=found.id, cooperative_id=found.cooperative_id),
            label=f"invite {found.cbfbm}",
        )
        held = farmer.parcels_held_by(session=session, household_id=found.id)
        masked = regions.mask_name(found.name)
        cbfbm = found.cbfbm
    link = f"{settings.public_base_url}/p/{held[0]}#token={issued.token}" if held else None
    if as_json:
        print_json({"household": cbfbm, "link": link, "token": issued.token, "parcels": held})
        return
    if link is None:
        console.print(
            f"household {cbfbm} ({masked}) holds no parcel today; give the farmer this sign-in "
            "code to type once on a parcel page:"
        )
        console.print(issued.token, highlight=False, soft_wrap=True)
        return
    console.print(f"farmer token for household {cbfbm} ({masked}); send this link once:")
    console.print(link, highlight=False, soft_wrap=True)
    console.print(f"its parcels: {', '.join(held)}", highlight=False)
