"""``dv parcels``: import GIS files, find the parcel under a point, export, draw maps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from digital_village.auth.actor import Actor
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
from digital_village.ledger.log import Ledger
from digital_village.parcels import geojson, geometry
from digital_village.parcels import io as parcel_io
from digital_village.parcels import service as parcels

app = typer.Typer(help="The map: land parcels, their codes, areas and maps.", no_args_is_help=True)

CrsOption = Annotated[
    str | None,
    typer.Option(
        "--crs",
        help="CRS of the coordinates: EPSG:NNNN (e.g. EPSG:4544), gcj02 or bd09 "
        "(default: the file's own, else lon/lat).",
    ),
]


def _output(out: Path, suffixes: tuple[str, ...]) -> str:
    """Check an --out path before any work: a known suffix and an existing folder."""
    suffix = out.suffix.lower()
    if suffix not in suffixes:
        fail(f"--out must end in {' or '.join(suffixes)}, not {suffix or 'nothing'}", code=2)
    if not out.parent.is_dir():
        fail(f"--out {out}: there is no folder {out.parent}", code=2)
    return suffix


def _write(out: Path, data: bytes) -> None:
    try:
        out.write_bytes(data)
    except OSError as error:
        fail(f"cannot write {out}: {error.strerror or error}", code=2)


def _source(crs: str | None, datum: str | None) -> parcels.SourceCrs:
    try:
        source = parcels.parse_source_crs(crs)
    except DomainError as error:
        fail(error.detail, code=2)
    if datum is None:
        return source
    choice = datum.strip().lower().replace("-", "")
    if choice not in ("gcj02", "bd09", "wgs84"):
        fail(f"--datum must be gcj02, bd09 or wgs84, not {datum!r}", code=2)
    named: geometry.MapDatum = (
        "gcj02" if choice == "gcj02" else "bd09" if choice == "bd09" else "wgs84"
    )
    return parcels.SourceCrs(crs=source.crs, datum=named)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, .shp or .zip.")],
    fbfbm: Annotated[str, typer.Option(help="发包方编码 (14 digits) the parcels belong to.")],
    crs: CrsOption = None,
    datum: Annotated[
        str | None, typer.Option(help="Lon/lat from a consumer map: gcj02 or bd09.")
    ] = None,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Repair invalid shapes (and report it)."),
    ] = False,
    all_or_nothing: Annotated[
        bool, typer.Option("--all-or-nothing", help="Store nothing if any feature is bad.")
    ] = False,
    land_use: Annotated[
        str | None, typer.Option(help="GB/T 21010 class for features without one, e.g. 0101.")
    ] = None,
    layer: Annotated[str | None, typer.Option(help="GeoPackage layer (default: first).")] = None,
    codes: Annotated[
        str,
        typer.Option(
            "--codes",
            help="keep: a feature's own DKBM is kept (checked); assign: new codes for all.",
        ),
    ] = "keep",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Register every good feature of a file; name every bad one and why.

    Exit 0 when every feature was stored, 1 when any was rejected (the good ones are stored
    unless --all-or-nothing), 2 when nothing could be imported (no such file, an FBFBM that
    is wrong or not registered, a CRS that cannot apply).
    """
    settings = load_settings()
    source = _source(crs, datum)
    if codes not in ("keep", "assign"):
        fail(f"--codes must be keep or assign, not {codes!r}", code=2)
    try:
        read = parcel_io.read_file(
            file,
            layer=layer,
            max_features=settings.import_max_features,
            max_vertices=settings.import_max_vertices,
        )
    except DomainError as error:
        fail(error.detail, code=2)
    if not read.geometries:
        fail(f"{read.filename} holds no features{f' in layer {layer}' if layer else ''}", code=2)
    options = parcel_io.ImportOptions(
        fbfbm=fbfbm,
        source=source,
        allow_repair=repair,
        all_or_nothing=all_or_nothing,
        land_use=land_use,
        keep_codes=codes == "keep",
    )
    report = _store_features(settings, read, options, quiet=as_json)
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report, read.filename)
    if report.rejected:
        raise typer.Exit(1)


def _store_features(
    settings: Settings, read: parcel_io.SourceFile, options: parcel_io.ImportOptions, *, quiet: bool
) -> parcels.RegisterReport:
    """Import the features read, with a progress bar unless ``quiet``: all checked first,
    then stored in short transactions (exit 2 when the import as a whole was refused)."""
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    engine = require_migrated(settings)
    report: parcels.RegisterReport | None = None
    try:
        with Progress(
            TextColumn("[bold]importing[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=quiet or not console.is_terminal,
            transient=True,
        ) as progress:
            # Each feature is checked, then stored (or rejected).
            task = progress.add_task(read.filename, total=2 * len(read.geometries))
            report = parcel_io.import_features(
                database=Database(engine),
                ledger=ledger,
                source=read,
                options=options,
                actor=Actor.operator(),
                limits=parcel_io.ImportLimits.of(settings),
                progress=lambda n: progress.advance(task, n),
            )
    except DomainError as error:  # the import as a whole: its size, FBFBM, scope, CRS
        fail(f"nothing imported: {error.detail}", code=2)
    finally:
        engine.dispose()
    assert report is not None
    return report


def _print_report(report: parcels.RegisterReport, filename: str) -> None:
    if report.already_imported:
        seen = report.already_imported
        console.print(
            f"[yellow]note:[/] {filename} has the same bytes as import {seen['import_id']} "
            f"({seen['filename']}, {seen['at'][:19]}): a re-import"
        )
    total_mu = sum(c.area_mu for c in report.created)
    count = len(report.created)
    console.print(
        f"[bold green]{count} parcel{'s' if count != 1 else ''} stored[/] ({total_mu:.2f} 亩)"
        if report.stored
        else "[bold red]nothing stored[/] (--all-or-nothing)"
    )
    for created in report.created[:20]:
        notes = f"  [yellow]{'; '.join(created.warnings)}[/]" if created.warnings else ""
        console.print(f"  {created.dkbm}  {created.area_mu:8.3f} 亩{notes}", highlight=False)
    if len(report.created) > 20:
        console.print(f"  … and {len(report.created) - 20} more")
    if report.rejected:
        count = len(report.rejected)
        console.print(f"[bold red]{count} feature{'s' if count != 1 else ''} rejected[/]:")
        for rejected in report.rejected:
            console.print(f"  feature {rejected.feature}: {rejected.reason}", highlight=False)


@app.command("locate")
def locate(
    x: Annotated[float, typer.Argument(help="Longitude (or easting in --crs).", metavar="LON")],
    y: Annotated[float, typer.Argument(help="Latitude (or northing in --crs).", metavar="LAT")],
    crs: CrsOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The parcel that holds a point; exit 1 when none does, 2 when the point makes no sense."""
    source = _source(crs, None)
    try:
        lon, lat = parcels.to_lonlat_point(x, y, source)
    except DomainError as error:
        fail(error.detail, code=2)
    with transaction(load_settings()) as session:
        parcel = parcels.parcel_containing_point(session=session, lon=lon, lat=lat)
        if parcel is None:
            fail(f"no active parcel holds the point lon {lon:.7f}, lat {lat:.7f}")
        result = {
            "dkbm": parcel.dkbm,
            "area_m2": round(parcel.area_m2, 2),
            "area_mu": round(parcel.area_mu, 4),
            "lon": round(lon, 7),
            "lat": round(lat, 7),
        }
    if as_json:
        print_json(result)
    else:
        console.print(f"{result['dkbm']}  {result['area_mu']} 亩", highlight=False)


@app.command("show")
def show(dkbm: Annotated[str, typer.Argument(help="The 19-digit 地块编码.")]) -> None:
    """A parcel as GeoJSON, with its history and whether its geometry matches the ledger."""
    with transaction(load_settings()) as session:
        parcel = parcels.get_parcel(session=session, dkbm=dkbm)
        document = geojson.feature(parcel)
        document["properties"]["history"] = parcels.history(session=session, dkbm=dkbm)
        document["properties"]["geometry_check"] = (
            parcels.verify_geometry(session=session, dkbm=dkbm) or "matches the ledger"
        )
    print_json(document)


@app.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", help="The .geojson file to write.")],
    village: Annotated[
        str | None,
        typer.Option(help="Only this 9-digit township, 12-digit village or 14-digit FBFBM."),
    ] = None,
    due_diligence: Annotated[
        bool,
        typer.Option(
            "--due-diligence", help="Plot geolocation: a point under 4 ha, a polygon otherwise."
        ),
    ] = False,
) -> None:
    """Write active parcels as RFC 7946 GeoJSON with 6 decimals."""
    _output(out, (".geojson", ".json"))
    with transaction(load_settings()) as session:
        if due_diligence:
            document = geojson.export_due_diligence(session=session, region=village)
        else:
            document = geojson.export_geojson(session=session, region=village)
    _write(out, (geojson.dumps(document) + "\n").encode())
    console.print(f"wrote {len(document['features'])} parcels to {out}")


@app.command("map")
def map_(
    code: Annotated[str, typer.Argument(help="Village (12), FBFBM (14) or township (9).")],
    out: Annotated[Path, typer.Option("--out", help="FILE.svg or FILE.png")],
    color_by: Annotated[str, typer.Option("--by", help="crop or land_use")] = "crop",
) -> None:
    """Draw a village's or township's parcels, coloured by crop or land use."""
    from digital_village.parcels import render

    suffix = _output(out, (".svg", ".png"))
    with transaction(load_settings()) as session:
        drawing = render.map_data(session=session, code=code, color_by=color_by)
    _write(out, render.to_svg(drawing) if suffix == ".svg" else render.to_png(drawing))
    console.print(f"wrote the map of {drawing.title} ({len(drawing.parcels)} parcels) to {out}")


@app.command("sign")
def sign(
    dkbm: Annotated[str, typer.Argument(help="The 19-digit 地块编码.")],
    out: Annotated[Path, typer.Option("--out", help="FILE.png or FILE.pdf (or .svg: QR only)")],
) -> None:
    """Print a parcel's sign (土地赋码): QR code of https://<host>/p/<DKBM>, code, village, 亩."""
    from digital_village.parcels import signs

    suffix = _output(out, (".png", ".pdf", ".svg"))
    settings = load_settings()
    with transaction(settings) as session:
        card = signs.sign_for(session=session, dkbm=dkbm, base_url=settings.public_base_url)
    _write(
        out, signs.qr_svg(card.url) if suffix == ".svg" else signs.render_sign(card, fmt=suffix[1:])
    )
    console.print(f"wrote the sign of {card.dkbm} ({card.url}) to {out}")
