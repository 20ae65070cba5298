"""``dv integrations``: secrets for LoRaWAN network servers (ChirpStack, The Things Stack)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from digital_village.auth.actor import Actor
from digital_village.cli.common import console, load_settings, print_json, transaction
from digital_village.iot import adapters, integrations

app = typer.Typer(
    help="LoRaWAN network-server integrations: add, list, revoke.", no_args_is_help=True
)

_ROUTES = {
    adapters.CHIRPSTACK: "/api/v1/integrations/chirpstack (HTTP integration, JSON encoding)",
    adapters.TTN: "/api/v1/integrations/ttn (webhook, uplink messages)",
}


@app.command("add")
def add(
    kind: Annotated[str, typer.Argument(help="chirpstack or ttn.", metavar="chirpstack|ttn")],
    coop: Annotated[
        str | None, typer.Option(help="Accept only this cooperative's devices.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="A note on which server this is.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Make the header a network server must send; the secret is printed once."""
    settings = load_settings()
    with transaction(settings) as session:
        made = integrations.create_integration(
            session=session,
            actor=Actor.operator(),
            kind=kind.strip().lower(),
            cooperative=coop,
            label=label,
        )
        public_id, chosen = made.row.public_id, made.row.kind
    if as_json:
        print_json({"header": made.header, "secret": made.secret, "id": public_id, "kind": chosen})
        return
    console.print(f"created {chosen} integration [bold]{public_id}[/]; configure the server with")
    console.print(f"  URL     {settings.public_base_url}{_ROUTES[chosen]}")
    console.print(f"  header  {made.header}: {made.secret}", highlight=False, soft_wrap=True)
    console.print("the secret is shown only now; only its hash is kept")


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List integrations (secrets are never stored, so never shown)."""
    with transaction(load_settings()) as session:
        rows = [
            {
                "id": row.public_id,
                "kind": row.kind,
                "cooperative_id": row.cooperative_id,
                "label": row.label,
                "created_at": row.created_at.isoformat(),
                "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            }
            for row in integrations.list_integrations(session=session, actor=Actor.operator())
        ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "kind", "coop", "label", "created", "revoked")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["kind"]),
            str(row["cooperative_id"] or "any"),
            str(row["label"] or ""),
            str(row["created_at"])[:19],
            str(row["revoked_at"] or "")[:19],
        )
    console.print(table)


@app.command("revoke")
def revoke(integration_id: Annotated[str, typer.Argument(help="The integration's id.")]) -> None:
    """Refuse the integration's requests from now on."""
    with transaction(load_settings()) as session:
        integrations.revoke_integration(
            session=session, actor=Actor.operator(), public_id=integration_id
        )
    console.print(f"revoked integration {integration_id}")
