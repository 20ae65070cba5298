"""``dv witness``: run a checkpoint witness (C2SP tlog-witness) for other people's logs."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from digital_village import logs as logs_module
from digital_village.cli.common import console, fail, load_settings
from digital_village.ledger import note
from digital_village.witness import keys as witness_keys
from digital_village.witness.app import create_witness_app
from digital_village.witness.protocol import Witness
from digital_village.witness.store import WitnessStore

app = typer.Typer(
    help="A witness: cosigns the checkpoints of logs it is configured with, if consistent.",
    no_args_is_help=True,
)
logs_app = typer.Typer(help="The logs this witness cosigns.", no_args_is_help=True)
app.add_typer(logs_app, name="logs")

KeyOption = Annotated[Path, typer.Option("--key", help="The witness's private key file.")]


def _store() -> WitnessStore:
    return WitnessStore.in_folder(load_settings().data_dir)


def _load_key(path: Path) -> Witness:
    if not path.is_file():
        fail(f"no witness key at {path}; create it with `dv witness key --key {path}`", code=2)
    try:
        cosigner = witness_keys.load_cosigner(path)
    except (OSError, note.NoteError) as error:
        fail(f"cannot read the witness key {path}: {error}", code=2)
    return Witness(_store(), cosigner)


@app.command("key")
def key(
    key_file: KeyOption,
    name: Annotated[
        str | None,
        typer.Option(help="The witness's name, a schema-less URL (default: <host>/witness)."),
    ] = None,
) -> None:
    """Print the witness's verifier key line, creating the key (mode 0600) if FILE is missing."""
    try:
        created = witness_keys.ensure_witness_key(
            key_file, name or f"{socket.getfqdn() or 'localhost'}/witness"
        )
        cosigner = witness_keys.load_cosigner(key_file)
    except (OSError, note.NoteError) as error:
        fail(f"cannot use the witness key {key_file}: {error}", code=2)
    if created:
        console.print(f"created the witness key {key_file} (mode 0600); keep it secret")
    elif name is not None and name != cosigner.name:
        fail(f"{key_file} already holds the key of {cosigner.name!r}", code=2)
    console.print(cosigner.verifier().to_string(), highlight=False)


@app.command("serve")
def serve(
    key_file: KeyOption,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8100,
) -> None:
    """Serve POST /add-checkpoint; the cosigned state is kept in DV_DATA_DIR/witness.db."""
    settings = load_settings()
    logs_module.configure(level=settings.log_level, fmt=settings.log_format)
    witness = _load_key(key_file)
    logs = witness.store.logs()
    if not logs:
        console.print("no log configured yet: add one with `dv witness logs add VKEY`")
    import uvicorn

    console.print(
        f"witness {witness.cosigner.name} on http://{host}:{port}/add-checkpoint "
        f"for {len(logs)} log(s)",
        highlight=False,
    )
    uvicorn.run(create_witness_app(witness), host=host, port=port, log_level="warning")


@logs_app.command("add")
def logs_add(
    vkey: Annotated[str, typer.Argument(help="The log's verifier key line.")],
    origin: Annotated[
        str | None, typer.Option(help="The log's origin line (default: the key's name).")
    ] = None,
) -> None:
    """Witness a log: cosign its checkpoints signed by VKEY (a second key of a log: rotation)."""
    try:
        verifier = note.Verifier.parse(vkey.strip())
    except note.NoteError as error:
        fail(f"not a log verifier key: {error}", code=2)
    added = _store().add_log(origin or verifier.name, verifier.to_string())
    state = "now witnessing" if added else "already witnessing"
    console.print(f"{state} {origin or verifier.name} signed by {verifier.to_string()}")


@logs_app.command("remove")
def logs_remove(
    vkey: Annotated[str, typer.Argument(help="The log's verifier key line.")],
    origin: Annotated[str | None, typer.Option(help="The log's origin line.")] = None,
) -> None:
    """Stop trusting a log key (its cosigned state is kept, so a return is checked against it)."""
    try:
        verifier = note.Verifier.parse(vkey.strip())
    except note.NoteError as error:
        fail(f"not a log verifier key: {error}", code=2)
    if not _store().remove_key(origin or verifier.name, verifier.to_string()):
        fail("that key was not configured", code=1)
    console.print(f"no longer trusting {verifier.to_string()}")


@logs_app.command("list")
def logs_list() -> None:
    """The logs witnessed, their keys and the latest size cosigned."""
    store = _store()
    for state in store.logs():
        root = state.root_hash.hex() if state.root_hash else "-"
        refused = len(store.refusals(state.origin))
        kept = f"  [red]{refused} refused checkpoint(s) kept as evidence[/]" if refused else ""
        console.print(f"{state.origin}  size {state.size}  root {root}{kept}", highlight=False)
        for vkey in state.vkeys:
            console.print(f"  {vkey}", highlight=False)
