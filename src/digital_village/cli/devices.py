"""``dv devices``: register field sensors on parcels, move them, rotate or revoke their tokens."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer
from rich.table import Table

from digital_village.auth.actor import Actor
from digital_village.cli.common import console, fail, load_settings, print_json, transaction
from digital_village.iot import devices
from digital_village.ledger.log import Ledger

app = typer.Typer(help="Field sensors: register, list, move, tokens, retire.", no_args_is_help=True)


def _when(value: str | None, what: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"{what} {value!r} is not an RFC 3339 date-time (e.g. 2026-03-01T08:00:00+08:00)")
    if moment.tzinfo is None:
        fail(f"{what} {value!r} needs a UTC offset (Z or +08:00)")
    return moment


def _ledger() -> Ledger:
    settings = load_settings()
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


@app.command("add")
def add(
    model: Annotated[str, typer.Option(help="DL-5TM, EM500-SMTC, LSE01 or generic.")],
    parcel: Annotated[
        str | None, typer.Option(help="DKBM of the parcel it is installed on.")
    ] = None,
    dev_eui: Annotated[str | None, typer.Option(help="LoRaWAN DevEUI (16 hex digits).")] = None,
    lon: Annotated[float | None, typer.Option(help="Longitude of the device (WGS84).")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude of the device (WGS84).")] = None,
    name: Annotated[str | None, typer.Option(help="A name to tell it by.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option(help="A metric it reports (repeat; default: its model's).")
    ] = None,
    coop: Annotated[
        str | None, typer.Option(help="The owning cooperative: its 统一社会信用代码.")
    ] = None,
    installed_at: Annotated[
        str | None, typer.Option(help="When it was installed (RFC 3339; default now).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Register a device on a parcel and print its token (shown once; only its hash is kept)."""
    settings = load_settings()
    when = _when(installed_at, "--installed-at")
    with transaction(settings) as session:
        made = devices.register_device(
            session=session,
            ledger=Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin),
            actor=Actor.operator(),
            model=model,
            parcel=parcel,
            lon=lon,
            lat=lat,
            dev_eui=dev_eui,
            name=name,
            metric_names=metric,
            cooperative=coop,
            installed_at=when,
        )
        summary: dict[str, Any] = {
            "device_id": made.device.id,
            "token": made.token,
            "model": made.device.model,
            "dev_eui": made.device.dev_eui,
            "parcel": made.installation.parcel_dkbm,
            "lon": made.installation.lon,
            "lat": made.installation.lat,
            "cooperative_id": made.device.cooperative_id,
            "metrics": made.device.metrics,
            "ledger_seq": made.installation.ledger_seq,
        }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"registered device [bold]{summary['device_id']}[/] ({summary['model']}) on parcel "
        f"{summary['parcel']} at {summary['lon']:.6f}, {summary['lat']:.6f}"
    )
    console.print("its token (store it now, it is shown once):")
    console.print(summary["token"], highlight=False, soft_wrap=True)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List devices with the parcel each stands on now."""
    with transaction(load_settings()) as session:
        rows = []
        for device in devices.list_devices(session=session, actor=Actor.operator()):
            current = devices.current_installation(session=session, device_id=device.id)
            rows.append(
                {
                    "id": device.id,
                    "model": device.model,
                    "dev_eui": device.dev_eui,
                    "name": device.name,
                    "cooperative_id": device.cooperative_id,
                    "parcel": current.parcel_dkbm if current else None,
                    "retired": device.retired_at is not None,
                }
            )
    if as_json:
        print_json(rows)
        return
    table = Table("id", "model", "dev_eui", "name", "coop", "parcel", "state")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["model"]),
            str(row["dev_eui"] or ""),
            str(row["name"]),
            str(row["cooperative_id"]),
            str(row["parcel"] or ""),
            "retired" if row["retired"] else "active",
        )
    console.print(table)


@app.command("move")
def move(
    device_id: Annotated[int, typer.Argument(help="The device id.")],
    parcel: Annotated[str | None, typer.Option(help="DKBM of the new parcel.")] = None,
    lon: Annotated[float | None, typer.Option(help="New longitude.")] = None,
    lat: Annotated[float | None, typer.Option(help="New latitude.")] = None,
    at: Annotated[str | None, typer.Option(help="When it moved (RFC 3339; default now).")] = None,
) -> None:
    """Move a device; readings taken before the move stay on the old parcel."""
    when = _when(at, "--at")
    with transaction(load_settings()) as session:
        row = devices.move_device(
            session=session,
            ledger=_ledger(),
            actor=Actor.operator(),
            device_id=device_id,
            parcel=parcel,
            lon=lon,
            lat=lat,
            at=when,
        )
        dkbm = row.parcel_dkbm
    console.print(f"device {device_id} now stands on parcel {dkbm}")


@app.command("token")
def token(
    device_id: Annotated[int, typer.Argument(help="The device id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object.")] = False,
) -> None:
    """Rotate the device's token: the old ones stop working, a new one is printed once."""
    with transaction(load_settings()) as session:
        new = devices.rotate_token(session=session, actor=Actor.operator(), device_id=device_id)
    if as_json:
        print_json({"device_id": device_id, "token": new})
        return
    console.print(f"new token for device {device_id} (the old ones are revoked):")
    console.print(new, highlight=False, soft_wrap=True)


@app.command("revoke")
def revoke(device_id: Annotated[int, typer.Argument(help="The device id.")]) -> None:
    """Revoke every token of the device at once."""
    with transaction(load_settings()) as session:
        count = devices.revoke_tokens(session=session, actor=Actor.operator(), device_id=device_id)
    console.print(f"revoked {count} token(s) of device {device_id}")


@app.command("retire")
def retire(device_id: Annotated[int, typer.Argument(help="The device id.")]) -> None:
    """Take a device out of service; its readings are kept."""
    with transaction(load_settings()) as session:
        devices.retire_device(session=session, actor=Actor.operator(), device_id=device_id)
    console.print(f"device {device_id} retired: tokens revoked, installation closed")
