"""``dv iot``: seal finished days into the ledger, verify them, run the MQTT ingest worker."""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from digital_village import logs
from digital_village.cli.common import (
    console,
    fail,
    load_settings,
    print_json,
    require_migrated,
    transaction,
)
from digital_village.db import Database
from digital_village.errors import DomainError
from digital_village.iot import seal
from digital_village.iot.proof import verify_reading_proof
from digital_village.ledger import log as ledger_log
from digital_village.ledger.log import Ledger
from digital_village.ledger.verify import VerificationError

if TYPE_CHECKING:
    from digital_village.iot.mqtt import IngestWorker

app = typer.Typer(
    help="The sensor net: seal days into the ledger, verify them, MQTT ingest.",
    no_args_is_help=True,
)


def _day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"day {value!r} is not a date (YYYY-MM-DD)")


@app.command("seal")
def seal_command(
    day: Annotated[
        str | None,
        typer.Option(
            "--day", "--date", help="Seal this finished day (default: every one pending)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Append per parcel and day the Merkle root of that day's readings to the ledger.

    Days are China Standard Time; only finished days are sealed. Readings that arrive after
    their day was sealed go into a supplementary seal the next time this runs.
    """
    settings = load_settings()
    chosen = _day(day)
    with transaction(settings) as session:
        ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
        made = seal.seal_days(session=session, ledger=ledger, day=chosen)
    rows: list[dict[str, Any]] = [
        {
            "parcel": m.parcel,
            "day": m.day.isoformat(),
            "part": m.part,
            "count": m.count,
            "root": m.root_hash.hex(),
            "ledger_seq": m.ledger_seq,
        }
        for m in made
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("nothing to seal: no finished day has unsealed readings")
    for row in rows:
        console.print(
            f"sealed {row['parcel']} {row['day']} part {row['part']}: {row['count']} readings, "
            f"root {row['root'][:16]}…, ledger entry {row['ledger_seq']}"
        )


@app.command("policy")
def policy_command(
    metric: Annotated[str, typer.Argument(help="A catalogue metric, e.g. soil_temperature.")],
    policy: Annotated[
        str, typer.Argument(help="reject, flag, or default (the catalogue's).", metavar="POLICY")
    ],
) -> None:
    """Set whether a metric's implausible values are rejected or kept flagged."""
    from digital_village.auth.actor import Actor
    from digital_village.iot import ingest

    with transaction(load_settings()) as session:
        chosen = ingest.set_metric_policy(
            session=session, actor=Actor.operator(), metric=metric, policy=policy
        )
    outcome = "rejected" if chosen.value == "reject" else "kept and flagged"
    console.print(f"{metric}: values outside the plausible range are now {outcome}")


@app.command("verify-day")
def verify_day(
    parcel: Annotated[str, typer.Option(help="DKBM of the parcel.")],
    day: Annotated[str, typer.Option("--day", "--date", help="The day (YYYY-MM-DD).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recompute a sealed day's roots from the stored readings and compare with the ledger."""
    chosen = _day(day)
    assert chosen is not None
    results: list[dict[str, Any]] = []
    with transaction(load_settings()) as session:
        sealed = seal.seals_of(session=session, dkbm=parcel, day=chosen)
        for made in sealed:
            check = seal.check_seal(session=session, seal=made)
            entry = json.loads(ledger_log.get_entry(session, made.ledger_seq).body)
            in_ledger = entry.get("data", {}).get("root")
            results.append(
                {
                    "part": made.part,
                    "count_sealed": made.count,
                    "count_stored": check.count,
                    "root_in_ledger": in_ledger,
                    "root_recomputed": check.root_hash.hex(),
                    "ok": check.ok and in_ledger == made.root_hash.hex(),
                }
            )
    if as_json:
        print_json(results)
    elif not results:
        console.print(f"parcel {parcel} has no sealed readings on {chosen}")
    for row in results:
        if as_json:
            break
        state = "[bold green]OK[/]" if row["ok"] else "[bold red]MISMATCH[/]"
        console.print(
            f"{parcel} {chosen} part {row['part']}: {state} — {row['count_stored']} stored, "
            f"{row['count_sealed']} sealed, root {row['root_recomputed'][:16]}… "
            f"(ledger {str(row['root_in_ledger'])[:16]}…)"
        )
    if not results or not all(row["ok"] for row in results):
        raise typer.Exit(1)


@app.command("verify-reading")
def verify_reading(
    proof_file: Annotated[Path, typer.Argument(help="A reading proof (JSON) from the API.")],
    vkey: Annotated[str, typer.Option(help="The ledger's verifier key line.")],
) -> None:
    """Check a reading proof offline: leaf → day root → sealed ledger entry → signed checkpoint."""
    try:
        document = proof_file.read_bytes()
    except OSError as error:
        fail(f"cannot read {proof_file}: {error.strerror}", code=2)
    key = vkey
    if "+" not in vkey and Path(vkey).is_file():
        key = Path(vkey).read_text(encoding="utf-8").strip()
    try:
        verified = verify_reading_proof(document, key)
    except (VerificationError, ValueError) as error:
        fail(f"verification FAILED: {error}")
    reading = verified.reading
    console.print(
        f"[bold green]verified[/]: {reading.get('metric')} = {reading.get('value')} "
        f"{reading.get('unit')} at {reading.get('time')} from device {reading.get('device')} is "
        f"in the sealed readings of parcel {verified.parcel} on {verified.day} "
        f"(part {verified.part}, ledger entry {verified.ledger_seq})"
    )


@app.command("mqtt")
def mqtt_command(
    host: Annotated[str, typer.Option(help="MQTT broker host.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="MQTT broker port.")] = 1883,
    group: Annotated[
        str, typer.Option(help="Shared-subscription group ('' for a plain subscription).")
    ] = "dv-ingest",
    client_id: Annotated[
        str | None,
        typer.Option(help="Stable client id (one per worker; keeps its session across restarts)."),
    ] = None,
    auth_mode: Annotated[
        str,
        typer.Option(
            "--auth", help="token: the device token in each message; broker: broker ACLs."
        ),
    ] = "token",
    username: Annotated[str | None, typer.Option(help="Broker username of the worker.")] = None,
    password: Annotated[str | None, typer.Option(help="Broker password of the worker.")] = None,
    batch_ms: Annotated[float, typer.Option(help="Group-commit window in milliseconds.")] = 20.0,
    protocol: Annotated[
        str,
        typer.Option(
            help="MQTT 5 (Receive Maximum 65535, any broker) or 3.1.1 (less CPU; needs the "
            "broker's max_inflight_messages raised, as in deploy/mosquitto.conf)."
        ),
    ] = "5",
    report_every: Annotated[float, typer.Option(help="Seconds between progress lines.")] = 10.0,
) -> None:
    """Ingest telemetry from dv/v1/devices/<id>/telemetry; acknowledge after each commit."""
    from digital_village.iot.mqtt import IngestWorker, WorkerOptions

    if auth_mode not in ("token", "broker"):
        fail("--auth must be token or broker", code=2)
    if protocol not in ("5", "3.1.1"):
        fail("--protocol must be 5 or 3.1.1", code=2)
    settings = load_settings()
    logs.configure(level=settings.log_level, fmt=settings.log_format)
    require_migrated(settings).dispose()
    database = Database.from_url(settings.effective_database_url)
    options = WorkerOptions(
        host=host,
        port=port,
        group=group or None,
        username=username,
        password=password,
        auth=auth_mode,
        batch_ms=batch_ms,
        protocol=protocol,
    )
    if client_id:
        options.client_id = client_id
    _run_worker(IngestWorker(database, options), database, report_every)


def _run_worker(worker: IngestWorker, database: Database, report_every: float) -> None:
    """Connect, ingest until SIGINT or SIGTERM, then print what was ingested."""
    options = worker.options
    host, port, auth_mode = options.host, options.port, options.auth
    # Everything imported so far lives as long as the process: keep the cyclic collector from
    # walking it again and again while messages stream in (measured: most of the worker's CPU).
    gc.collect()
    gc.freeze()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        worker.connect()
    except (OSError, ConnectionError) as error:
        fail(f"cannot connect to the MQTT broker at {host}:{port}: {error}", code=2)
    console.print(
        f"ingesting {options.subscription} from {host}:{port} as {options.client_id} "
        f"(auth: {auth_mode}); Ctrl-C to stop"
    )
    last = [time.monotonic()]

    def progress(stats: Any) -> None:
        if time.monotonic() - last[0] >= report_every:
            last[0] = time.monotonic()
            logging.getLogger("digital_village.iot.mqtt").info("progress", extra=stats.as_dict())

    try:
        stats = worker.run(stop, on_batch=progress)
    except DomainError as error:
        fail(error.detail)
    finally:
        worker.close()
        database.dispose()
    console.print(f"stopped: {stats.as_dict()}")
