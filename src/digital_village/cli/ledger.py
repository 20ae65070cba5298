"""``dv verify`` and ``dv ledger``: check proofs offline, audit the log, watch or mirror a server,
keys."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.orm import Session

from digital_village import audit
from digital_village.cli.common import (
    console,
    fail,
    load_settings,
    print_json,
    require_migrated,
    transaction,
)
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.errors import DomainError
from digital_village.ledger import audit as ledger_audit
from digital_village.ledger import cosignature, cosigner, keys, note
from digital_village.ledger import log as ledger_log
from digital_village.ledger import mirror as ledger_mirror
from digital_village.ledger import monitor as ledger_monitor
from digital_village.ledger import witnesses as ledger_witnesses
from digital_village.ledger.cosignature import WitnessCheck
from digital_village.ledger.verify import VerificationError, verify_proof

app = typer.Typer(help="Audit the ledger, watch a server's checkpoints, manage the key.")
key_app = typer.Typer(help="The ledger's signing key.", no_args_is_help=True)
app.add_typer(key_app, name="key")


def _read_vkey(value: str) -> str:
    """A verifier key given inline, or the path of a file holding it."""
    path = Path(value)
    if "+" not in value or path.is_file():
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as error:
            fail(f"cannot read verifier key file {value}: {error.strerror}", code=2)
    return value.strip()


def _read_file(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        fail(f"cannot read {what} {path}: {error.strerror}", code=2)


def verify_command(
    proof_file: Annotated[Path, typer.Argument(help="A .tlog-proof file.", metavar="FILE")],
    vkey: Annotated[str, typer.Option(help="Verifier key line, or a file holding it.")],
    entry: Annotated[
        Path | None, typer.Option(help="The entry's bytes (default: the proof's).")
    ] = None,
    previous: Annotated[
        Path | None, typer.Option(help="An earlier signed checkpoint to check consistency with.")
    ] = None,
    consistency: Annotated[
        Path | None, typer.Option(help="Consistency proof from --previous to the proof's size.")
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A witness's verifier key line (or a file holding it) you trust; repeatable.",
        ),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(help="How many --witness keys must have cosigned (default: all).", min=0),
    ] = None,
) -> None:
    """Verify a proof offline: signature, inclusion and, given --previous, consistency; given
    --witness keys, that a quorum of those witnesses cosigned the checkpoint."""
    proof_bytes = _read_file(proof_file, "proof")
    assert proof_bytes is not None
    try:
        verified = verify_proof(
            proof_bytes,
            _read_vkey(vkey),
            entry=_read_file(entry, "entry"),
            previous_checkpoint=_read_file(previous, "previous checkpoint"),
            consistency_proof=_read_file(consistency, "consistency proof"),
            witnesses=[_read_vkey(key) for key in witness or []],
            quorum=quorum,
        )
    except (VerificationError, ValueError) as error:
        fail(f"verification FAILED: {error}")
    console.print(
        f"[bold green]verified[/]: entry {verified.index} is in {verified.origin} at tree size "
        f"{verified.tree_size}, signed by {', '.join(verified.signers)}"
    )
    if verified.previous is not None:
        console.print(
            f"and that tree is consistent with the earlier one of size {verified.previous.size}"
        )
    if verified.witnesses is not None:
        console.print(_witnessed_text(verified.witnesses), highlight=False)


def _witnessed_text(check: WitnessCheck) -> str:
    names = ", ".join(
        f"{name} (at {time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(when))})"
        for name, when in check.cosigned
    )
    text = (
        f"witnessed: {len(check.cosigned)} of {len(check.trusted)} trusted witnesses cosigned "
        f"(quorum {check.quorum}): {names or 'none'}"
    )
    if check.missing:
        text += f"; not cosigned by {', '.join(check.missing)}"
    return text


@contextmanager
def _snapshot(settings: Settings) -> Iterator[Session]:
    """One read transaction with a consistent view of the whole database, holding up no
    writer: a WAL snapshot on SQLite, REPEATABLE READ on PostgreSQL."""
    engine = require_migrated(settings)
    if engine.dialect.name == "postgresql":
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    try:
        with Session(engine) as session, session.begin():
            yield session
    except DomainError as error:
        fail(error.detail, code=2 if error.status == 503 else 1)
    finally:
        engine.dispose()


@app.command("verify")
def audit_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Audit the whole log: every leaf, chain link, tree hash and checkpoint. Exit 0 if all hold."""
    settings = load_settings()
    extra = []
    if settings.effective_ledger_key_path.is_file():
        extra.append(keys.verifier_key(settings.effective_ledger_key_path))
    with _snapshot(settings) as session:
        total = ledger_audit.count_entries(session)
        with Progress(
            TextColumn("auditing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=as_json or total < 10_000,
        ) as progress:
            task = progress.add_task("entries", total=total)
            report = audit.audit(
                session,
                origin=settings.ledger_origin,
                extra_vkeys=extra,
                progress=lambda done: progress.update(task, completed=done),
            )
    if as_json:
        print_json(report.as_dict())
    elif report.ok:
        console.print(
            f"[bold green]ledger OK[/]: {report.entries} entries, {report.stored_hashes} tree "
            f"hashes and {report.checkpoints} checkpoints verified; root {report.root}"
        )
    else:
        console.print(f"[bold red]ledger FAILED[/] at index {report.problems[0].index}:")
        for problem in report.problems:
            console.print(f"  {problem}")
    if not report.ok:
        raise typer.Exit(1)


def _fetch(url: str, *, missing_ok: bool = False) -> bytes | None:
    """The body at ``url``; None for a 404 when ``missing_ok``; exit 1 on any other failure."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (operator's URL)
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as error:
        if missing_ok and error.code == 404:
            return None
        fail(f"cannot fetch {url}: {error}")
    except (urllib.error.URLError, TimeoutError) as error:
        fail(f"cannot fetch {url}: {error}")


@app.command("monitor")
def monitor(
    url: Annotated[str, typer.Argument(help="The server, e.g. https://dv.example.cn")],
    vkey: Annotated[
        str | None, typer.Option(help="Verifier key (needed the first time; then remembered).")
    ] = None,
    state: Annotated[
        Path | None, typer.Option(help="Folder keeping the newest checkpoint seen.")
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between checks.")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit.")] = False,
    witness: Annotated[
        list[str] | None,
        typer.Option("--witness", help="A witness's verifier key you trust; repeatable."),
    ] = None,
    quorum: Annotated[
        int | None,
        typer.Option(help="How many of the --witness keys must cosign (default: all).", min=0),
    ] = None,
) -> None:
    """Watch a log: each checkpoint served must be signed, current, and extend the newest seen.

    Exits 1 with an ALERT on a replayed old checkpoint, a split view or a rewritten history,
    and, given --witness keys, on a checkpoint that a quorum of them has not cosigned.
    """
    base = url.rstrip("/")
    kept = ledger_monitor.State(
        state or load_settings().data_dir / "monitor" / (urlsplit(base).netloc or "log")
    )
    kept.folder.mkdir(parents=True, exist_ok=True)
    if vkey is not None:
        kept.key_file.write_text(_read_vkey(vkey) + "\n", encoding="utf-8")
    if not kept.key_file.is_file():
        fail("first run: give --vkey (from the log operator, not from the server itself)", code=2)
    verifier = kept.key_file.read_text(encoding="utf-8").strip()
    witness_keys = [_read_vkey(key) for key in witness or []]
    if quorum is not None and quorum > len(witness_keys):
        fail(f"a quorum of {quorum} needs that many --witness keys", code=2)
    try:
        cosignature.parse_witness_keys(witness_keys)
    except note.NoteError as error:
        fail(f"bad --witness key: {error}", code=2)
    policy = ledger_monitor.WitnessPolicy(
        witness_keys, len(witness_keys) if quorum is None else quorum
    )

    def fetch(path: str) -> bytes | None:
        return _fetch(base + path, missing_ok=True)

    while True:
        try:
            seen = ledger_monitor.look(fetch, verifier, kept.seen(), policy)
        except ledger_monitor.MonitorAlert as alert:
            fail(f"ALERT: {alert}")
        kept.keep(seen.signed)
        console.print(
            seen.summary + ("" if seen.previous_size is not None else f"; kept in {kept.seen_file}")
        )
        if once:
            return
        time.sleep(interval)


@app.command("mirror")
def mirror_command(
    url: Annotated[
        str, typer.Argument(help="The log's tile prefix, e.g. https://dv.example.cn/ledger/")
    ],
    out: Annotated[Path, typer.Option("--out", help="The folder holding the copy.")],
    vkey: Annotated[
        list[str],
        typer.Option(help="Verifier key of the log (repeat for a rotated key), or a file."),
    ],
    connections: Annotated[int, typer.Option(help="Parallel requests.", min=1, max=64)] = 8,
) -> None:
    """Copy what the log added since the last run, checked against its signed checkpoint.

    The new checkpoint must be signed by --vkey and extend the copy: on a fork (a rollback, a
    second root for one size, a rewritten history) it stops with exit 1 and leaves the last
    consistent copy; other failures exit 2. Serve the folder with any static HTTP server.
    """
    out.mkdir(parents=True, exist_ok=True)
    with Progress(
        TextColumn("copying tiles"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("tiles", total=None)
        try:
            copied = ledger_mirror.mirror(
                ledger_mirror.http_fetch(url),
                out,
                [_read_vkey(key) for key in vkey],
                progress=lambda done, total: progress.update(task, completed=done, total=total),
                connections=connections,
            )
        except ledger_mirror.Fork as fork:
            fail(f"{fork}; the copy in {out} is left as it was")
        except ledger_mirror.MirrorError as error:
            fail(f"{error}; the copy in {out} is left as it was", code=2)
    console.print(copied.summary, highlight=False)


@key_app.command("show")
def key_show() -> None:
    """Print the verifier key line (public; give it to anyone who verifies)."""
    settings = load_settings()
    path = settings.effective_ledger_key_path
    if not path.is_file():
        fail(f"no ledger key at {path}; run `dv init`", code=2)
    console.print(keys.verifier_key(path), highlight=False)


@key_app.command("rotate")
def key_rotate() -> None:
    """Make a new signing key; the old one is kept aside and its checkpoints stay verifiable."""
    settings = load_settings()
    path = settings.effective_ledger_key_path
    if not path.is_file():
        fail(f"no ledger key at {path}; run `dv init`", code=2)
    old = keys.load_signer(path)
    retired = path.with_name(f"{path.name}.{old.key_id.hex()}.retired")
    path.rename(retired)
    keys.ensure_signing_key(path, settings.ledger_origin)
    console.print(f"old key {old.key_id.hex()} moved to {retired}")
    console.print(f"new verifier key: {keys.verifier_key(path)}", highlight=False)
    console.print("restart the servers; the new key signs from the next append on")


witnesses_app = typer.Typer(
    help="The witnesses this log asks to cosign its checkpoints (C2SP tlog-witness).",
    no_args_is_help=True,
)
app.add_typer(witnesses_app, name="witnesses")


@witnesses_app.command("add")
def witnesses_add(
    name: Annotated[str, typer.Argument(help="Your name for the witness, e.g. deyang-nyj.")],
    vkey: Annotated[str, typer.Argument(help="The witness's verifier key line (from it).")],
    url: Annotated[str, typer.Argument(help="The witness's URL prefix (before /add-checkpoint).")],
) -> None:
    """Ask a witness to cosign every checkpoint from now on (the running servers pick it up)."""
    settings = load_settings()
    try:
        with transaction(settings) as session:
            witness = ledger_witnesses.add(
                session=session, name=name, vkey=_read_vkey(vkey), url=url
            )
            line = f"witness {witness.name} added: {witness.vkey} at {witness.url}"
    except DomainError as error:
        fail(error.detail)
    console.print(line, highlight=False)


@witnesses_app.command("remove")
def witnesses_remove(name: Annotated[str, typer.Argument(help="The witness's name.")]) -> None:
    """Stop asking a witness; the cosignatures it gave stay on their checkpoints."""
    try:
        with transaction(load_settings()) as session:
            ledger_witnesses.remove(session=session, name=name)
    except DomainError as error:
        fail(error.detail)
    console.print(f"witness {name} removed")


@witnesses_app.command("list")
def witnesses_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """The witnesses, what each last cosigned, and whether the newest checkpoint is witnessed."""
    settings = load_settings()
    with _snapshot(settings) as session:
        rows = ledger_witnesses.configured(session)
        newest = ledger_log.latest_checkpoint(session)
        latest = newest.size if newest else 0
        status = ledger_witnesses.status(session, latest, settings.witness_quorum)
        listed = [
            {
                "name": w.name,
                "vkey": w.vkey,
                "url": w.url,
                "known_size": w.known_size,
                "last_error": w.last_error,
                "last_contact": ledger_witnesses.since(w.last_contact),
            }
            for w in rows
        ]
    if as_json:
        print_json(
            {
                "witnesses": listed,
                "size": latest,
                "quorum": status.quorum,
                "cosigned_by": list(status.cosigned_by),
                "witnessed": status.witnessed,
            }
        )
        return
    for row in listed:
        console.print(
            f"{row['name']}  {row['url']}  cosigned size {row['known_size']}  "
            f"last answer {row['last_contact']}"
            + (f"  [red]{row['last_error']}[/]" if row["last_error"] else ""),
            highlight=False,
        )
        console.print(f"  {row['vkey']}", highlight=False)
    state = "witnessed" if status.witnessed else "NOT witnessed"
    console.print(
        f"newest checkpoint (size {latest}) {state}: {len(status.cosigned_by)} of "
        f"{status.configured} cosigned, quorum {status.quorum} (DV_WITNESS_QUORUM)"
    )


@witnesses_app.command("ask")
def witnesses_ask() -> None:
    """Ask every witness that has not cosigned the newest checkpoint now, and say what each did."""
    settings = load_settings()
    engine = require_migrated(settings)
    database = Database(engine)
    try:
        with cosigner.make_client(settings.witness_timeout_s) as client:
            answers = cosigner.cosign_newest(database, client)
    finally:
        engine.dispose()
    for answer in answers:
        mark = "[green]cosigned[/]" if answer.cosigned else "[red]not cosigned[/]"
        console.print(f"{answer.witness}: {mark} size {answer.size}: {answer.detail}")
    if any(not answer.cosigned for answer in answers):
        raise typer.Exit(1)
