"""``dv registry``: the county's 确权 exchange package (NY/T 2539) in and out."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from digital_village.auth.actor import Actor
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
from digital_village.ledger.log import Ledger
from digital_village.registry.export import export_package
from digital_village.registry.importer import ImportReport, import_package
from digital_village.registry.package import read_package
from digital_village.registry.writer import zip_folder

app = typer.Typer(
    help="The county's 确权 registry: NY/T 2539 exchange packages in and out.",
    no_args_is_help=True,
)


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"--valid-from must be a date such as 2026-12-01, not {value!r}", code=2)


@app.command("import")
def import_(
    package: Annotated[Path, typer.Argument(help="The package: a folder or a .zip.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    partial: Annotated[
        bool, typer.Option("--partial", help="Store the good records even if some are bad.")
    ] = False,
    crs: Annotated[
        str | None,
        typer.Option("--crs", help="CRS of the DK layer when it has no .prj, e.g. EPSG:4544."),
    ] = None,
    valid_from: Annotated[
        str | None, typer.Option(help="Date the changes take effect (default: today).")
    ] = None,
) -> None:
    """Import (or re-import) the package: 发包方, households, parcels, contracts.

    All or nothing unless --partial. Exit 0 when everything was stored, 1 when something was
    rejected, 2 when nothing could be read (no DK layer, no CRS, a wrong zone, a bad table).
    """
    settings = load_settings()
    start = _date(valid_from)
    try:
        read = read_package(package, crs=crs)
    except DomainError as error:
        fail(f"nothing imported: {error.detail}", code=2)
    engine = require_migrated(settings)
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    try:
        report = import_package(
            database=Database(engine),
            ledger=ledger,
            package=read,
            actor=Actor.operator(),
            partial=partial,
            valid_from=start,
        )
    except DomainError as error:
        fail(f"nothing imported: {error.detail}", code=2)
    finally:
        engine.dispose()
    if as_json:
        print_json(report.as_dict())
    else:
        _print(report)
    if report.rejected:
        raise typer.Exit(1)


def _print(report: ImportReport) -> None:
    counts = report.counts
    if report.crs_note:
        console.print(f"[yellow]note:[/] {report.crs_note}")
    verdict = "[bold green]stored[/]" if report.stored else "[bold red]nothing stored[/]"
    console.print(f"{report.package}: {verdict} (read in {report.crs})")
    for kind in ("collectives", "households", "parcels", "contracts"):
        c = counts[kind]
        console.print(
            f"  {kind:12} {c['created']} new, {c['changed']} changed, {c['retired']} retired, "
            f"{c['unchanged']} unchanged",
            highlight=False,
        )
    if report.rejected:
        console.print(f"[bold red]{len(report.rejected)} records rejected[/]:")
        for r in report.rejected[:200]:
            where = f"{r.table} row {r.record}" + (f" {r.key}" if r.key else "")
            field = f" [{r.field}]" if r.field else ""
            console.print(f"  {where}{field}: {r.reason}", highlight=False)
        if len(report.rejected) > 200:
            console.print(f"  … and {len(report.rejected) - 200} more (--json lists all)")


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="A folder to write, or a .zip file.")],
    village: Annotated[
        str | None, typer.Option(help="Only this township (9), village (12) or county (6).")
    ] = None,
    fbfbm: Annotated[str | None, typer.Option(help="Only this 发包方 (14 digits).")] = None,
) -> None:
    """Write the registry as the county's package: DK layer (.shp with .prj and .cpg in the
    CGCS2000 3° GK zone) and the FBF, CBF, CBF_JTCY, CBHT, CBJYQZ, CBDKXX tables (.dbf, .csv).

    The tables hold names and ID numbers: the export is for the county's own systems.
    """
    if village and fbfbm:
        fail("give --village or --fbfbm, not both", code=2)
    zipped = out.suffix.lower() == ".zip"
    if zipped and not out.parent.is_dir():
        fail(f"--out {out}: there is no folder {out.parent}", code=2)
    if not zipped and out.exists() and any(out.iterdir()):
        fail(f"--out {out} is a folder that is not empty", code=2)
    with transaction(load_settings()) as session:
        if zipped:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="dv-export-") as scratch:
                done = export_package(session, folder=Path(scratch), scope=village or fbfbm)
                zip_folder(Path(scratch), out)
        else:
            done = export_package(session, folder=out, scope=village or fbfbm)
    listed = ", ".join(f"{name} {count}" for name, count in done.counts.items())
    console.print(f"wrote {out} (EPSG:{done.epsg}): {listed}", highlight=False)
