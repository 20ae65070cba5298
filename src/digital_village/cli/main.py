"""The ``dv`` command: a thin adapter over the same services the API uses."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Annotated

import typer
import typer.rich_utils

from digital_village import migrate
from digital_village.cli import coops as coops_cli
from digital_village.cli import devices as devices_cli
from digital_village.cli import farmers as farmers_cli
from digital_village.cli import households as households_cli
from digital_village.cli import integrations as integrations_cli
from digital_village.cli import iot as iot_cli
from digital_village.cli import labels as labels_cli
from digital_village.cli import ledger as ledger_cli
from digital_village.cli import ops as ops_cli
from digital_village.cli import parcels as parcels_cli
from digital_village.cli import regions as regions_cli
from digital_village.cli import registry as registry_cli
from digital_village.cli import tokens as tokens_cli
from digital_village.cli import trace as trace_cli
from digital_village.cli import witness as witness_cli
from digital_village.cli.common import (
    console,
    fail,
    load_settings,
    require_migrated,
    transaction,
)
from digital_village.config import Settings
from digital_village.db import make_single_use_engine
from digital_village.ledger import keys
from digital_village.regions import service as regions

# Help is markdown, so a docstring's paragraphs are reflowed to the terminal's width. Rich's
# tables crop a help line that fills its column exactly when the column has no padding at the
# table's edge (one cell short for CJK text: "packages in an…"); padding both edges avoids it.
typer.rich_utils.STYLE_OPTIONS_TABLE_PAD_EDGE = True
typer.rich_utils.STYLE_COMMANDS_TABLE_PAD_EDGE = True

app = typer.Typer(
    name="dv",
    help="Digital Village: land parcels, field sensors and a verifiable product ledger.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
app.add_typer(tokens_cli.app, name="tokens")
app.add_typer(regions_cli.app, name="regions")
app.add_typer(coops_cli.app, name="coops")
app.add_typer(households_cli.app, name="households")
app.add_typer(ledger_cli.app, name="ledger")
app.add_typer(parcels_cli.app, name="parcels")
app.add_typer(registry_cli.app, name="registry")
app.add_typer(devices_cli.app, name="devices")
app.add_typer(integrations_cli.app, name="integrations")
app.add_typer(iot_cli.app, name="iot")
app.add_typer(trace_cli.app, name="trace")
app.add_typer(farmers_cli.app, name="farmers")
app.add_typer(witness_cli.app, name="witness")
app.command("labels")(labels_cli.labels_command)
app.command("verify")(ledger_cli.verify_command)
app.command("backup")(ops_cli.backup)
app.command("restore")(ops_cli.restore)


def initialise(settings: Settings, *, seed: bool = True) -> None:
    """Create the data folder, apply migrations, seed 旌阳区 and make the ledger key."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_single_use_engine(settings.effective_database_url)
    try:
        with engine.begin() as connection:
            before = migrate.current_revision(connection)
            migrate.upgrade(connection)
            after = migrate.current_revision(connection)
    except Exception as error:
        fail(f"cannot migrate {engine.url.render_as_string(hide_password=True)}: {error}")
    finally:
        engine.dispose()
    if before == after:
        console.print(f"database already at migration [bold]{after}[/]")
    else:
        console.print(f"database migrated from {before or 'empty'} to [bold]{after}[/]")
    if seed:
        with transaction(settings) as session:
            added = regions.seed_jingyang(session=session)
        if added:
            console.print(
                f"seeded {regions.JINGYANG_NAME} {regions.JINGYANG_CODE} and its townships"
            )
    created = keys.ensure_signing_key(settings.effective_ledger_key_path, settings.ledger_origin)
    state = "created" if created else "kept"
    console.print(f"ledger signing key {state} at {settings.effective_ledger_key_path} (mode 0600)")


@app.command()
def init(
    seed: Annotated[bool, typer.Option(help="Seed 旌阳区 and its 13 townships.")] = True,
) -> None:
    """Create or upgrade the database, seed the county, and make the ledger signing key."""
    initialise(load_settings(), seed=seed)


def _check_ready(settings: Settings) -> None:
    require_migrated(settings).dispose()
    if not settings.effective_ledger_key_path.is_file():
        fail(
            f"no ledger signing key at {settings.effective_ledger_key_path}; run `dv init`", code=2
        )


WORKER_HEALTHCHECK_S = 60
LISTEN_WAIT_S = 600.0


def announce_when_listening(host: str, port: int, message: str) -> threading.Thread:
    """Print ``message`` once the port accepts connections (from a thread, as the server starts
    in this one): a person or script that reads "serving on" may connect at once."""
    any_address = host in ("0.0.0.0", "")  # noqa: S104 (a comparison, not a binding)
    target = "127.0.0.1" if any_address else "::1" if host == "::" else host

    def wait() -> None:
        deadline = time.monotonic() + LISTEN_WAIT_S
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((target, port), timeout=1.0):
                    console.print(message, highlight=False)
                    return
            except OSError:
                time.sleep(0.1)

    thread = threading.Thread(target=wait, name="announce-listening", daemon=True)
    thread.start()
    return thread


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1)] = 1,
) -> None:
    """Serve the API and pages (run `dv init` first)."""
    settings = load_settings()
    _check_ready(settings)
    from digital_village.cli import serving

    announce_when_listening(host, port, f"serving on http://{host}:{port} (API docs at /docs)")
    # Several workers each accept on a socket of their own (cli/serving.py).
    serving.serve(
        host,
        port,
        workers,
        app="digital_village.app:create_app",
        factory=True,
        log_level="warning",
        # Off Linux, uvicorn's own workers: a spawned worker answers its supervisor's health
        # check only once its imports are done (seconds of CPU); on a busy machine uvicorn's
        # default 5 s killed every worker before it was up, and restarted it, forever.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
    )


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    fixtures: Annotated[
        Path | None, typer.Option(help="Sample village data (default: the repository's fixtures/).")
    ] = None,
    serve_after: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve afterwards.")
    ] = True,
) -> None:
    """Initialise ./var, load the sample village, print what was made, and serve it."""
    from digital_village.cli import demo as demo_data

    settings = load_settings()
    initialise(settings)
    summary = demo_data.load_sample_village(settings, fixtures or demo_data.default_fixture_dir())
    demo_data.print_summary(summary, settings, host=host, port=port)
    if serve_after:
        os.environ.setdefault("DV_PUBLIC_BASE_URL", f"http://{host}:{port}")
        serve(host=host, port=port, workers=1)
