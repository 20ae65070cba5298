"""``dv tokens``: create, list and revoke bearer tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Column, Table

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.cli.common import china_time, console, load_settings, print_json, transaction
from digital_village.regions import service as regions
from digital_village.tokens import service as tokens

app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    role: Annotated[Role, typer.Option(help="admin, manager, farmer or device.")],
    coop: Annotated[
        str | None, typer.Option(help="manager: the cooperative's 统一社会信用代码 or id.")
    ] = None,
    household: Annotated[
        str | None, typer.Option(help="farmer: household id or 承包方编码.")
    ] = None,
    device: Annotated[int | None, typer.Option(help="device: the device id.")] = None,
    label: Annotated[str | None, typer.Option(help="A note on who holds it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Create a token and print it once; only its hash is kept."""
    with transaction(load_settings()) as session:
        issued = tokens.issue_token(
            session=session,
            role=role,
            actor=Actor.operator(),
            cooperative=coop,
            household=household,
            device_id=device,
            label=label,
        )
        public_id = issued.row.public_id
    if as_json:
        print_json({"token": issued.token, "role": role.value, "id": public_id})
        return
    console.print(
        f"created {role.value} token [bold]{public_id}[/]; store it now, it is shown once:"
    )
    console.print(issued.token, highlight=False, soft_wrap=True)


@app.command("list")
def list_(
    include_revoked: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tokens (their ids and scopes; secrets are never stored)."""
    with transaction(load_settings()) as session:
        found = auth.list_tokens(session=session, include_revoked=include_revoked)
        usccs = {c.id: c.uscc for c in regions.list_cooperatives(session=session)}
        cbfbms = {
            household_id: regions.get_household(session=session, household_id=household_id).cbfbm
            for household_id in {row.household_id for row in found if row.household_id}
        }
        rows = [
            {
                "id": row.public_id,
                "role": row.role.value,
                "cooperative": usccs.get(row.cooperative_id) if row.cooperative_id else None,
                "household": cbfbms.get(row.household_id) if row.household_id else None,
                "device_id": row.device_id,
                "label": row.label,
                "created_at": row.created_at.isoformat(),
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in found
        ]
    if as_json:
        print_json(rows)
        return
    # What a token acts for, as people name it: a household by its 承包方编码 (a farmer's
    # token also carries its cooperative), a device by its id, a cooperative by its
    # 统一社会信用代码, never cut short. Dates are China's.
    headers: list[Column | str] = [
        "id",
        "role",
        Column("for", min_width=18),
        Column("label", overflow="fold"),
        "created",
    ]
    table = Table(*headers, *(["revoked"] if include_revoked else []))
    for row in rows:
        device = f"device {row['device_id']}" if row["device_id"] else None
        scope = str(row["household"] or device or row["cooperative"] or "")
        cells = [
            str(row["id"]),
            str(row["role"]),
            scope,
            str(row["label"] or ""),
            china_time(str(row["created_at"]))[:10],
        ]
        if include_revoked:
            cells.append(china_time(str(row["revoked_at"]))[:10] if row["revoked_at"] else "")
        table.add_row(*cells)
    console.print(table)


@app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (from `dv tokens list`).")],
) -> None:
    """Revoke a token at once."""
    with transaction(load_settings()) as session:
        auth.revoke_token(session=session, public_id=token_id, actor=Actor.operator())
    console.print(f"revoked token {token_id}")
