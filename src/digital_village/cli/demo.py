"""The sample village behind ``dv demo``: load it once, then say what is there and where."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.cli.common import console, require_migrated, transaction
from digital_village.config import Settings
from digital_village.db import Database
from digital_village.gs1.short_code import short_code
from digital_village.regions import service as regions
from digital_village.regions.models import Cooperative, Region


@dataclass
class DemoSummary:
    """What the demo made (or found already made) and the tokens to try it with."""

    cooperative: str = ""
    cooperative_uscc: str = ""
    villages: list[str] = field(default_factory=list)
    households: int = 0
    parcels: int = 0
    parcels_added: int = 0
    already_loaded: bool = False
    tokens: dict[str, str] = field(default_factory=dict)
    season: Any = None  # demo.village_season.SeasonSummary once the season is on the chain
    net: Any = None  # demo.village_net.NetSummary once the probes and their readings are in


def default_fixture_dir() -> Path:
    """fixtures/ in the working directory, else beside the source tree."""
    here = Path("fixtures")
    if (here / "sample-village.json").is_file():
        return here
    return Path(__file__).resolve().parents[3] / "fixtures"


def _read(fixture_dir: Path) -> dict[str, Any]:
    path = fixture_dir / "sample-village.json"
    if not path.is_file():
        raise FileNotFoundError(f"no sample village at {path}; run scripts/make_fixtures.py")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def load_sample_village(settings: Settings, fixture_dir: Path) -> DemoSummary:
    """Load the sample village once (a second run finds it and loads nothing twice)."""
    data = _read(fixture_dir)
    operator = Actor.operator()
    summary = DemoSummary()
    coop_data = data["cooperative"]
    with transaction(settings) as session:
        existing = session.scalar(select(Cooperative).where(Cooperative.uscc == coop_data["uscc"]))
        summary.already_loaded = existing is not None
        for village in data["villages"]:
            summary.villages.append(f"{village['code']} {village['name']}")
            if summary.already_loaded:
                continue
            regions.add_region(
                session=session, code=village["code"], name=village["name"], actor=operator
            )
            for group in village["groups"]:
                regions.add_region(
                    session=session, code=group["code"], name=group["name"], actor=operator
                )
        if existing is None:
            existing = regions.register_cooperative(
                session=session,
                uscc=coop_data["uscc"],
                name=coop_data["name"],
                region_code=coop_data["region_code"],
                actor=operator,
            )
            for household in data["households"]:
                regions.register_household(
                    session=session,
                    region_code=household["region_code"],
                    name=household["name"],
                    phone=household["phone"],
                    cooperative_id=existing.id if household["member"] else None,
                    actor=operator,
                )
        summary.cooperative = existing.name
        summary.cooperative_uscc = existing.uscc
        summary.households = len(data["households"])
        for role, scope in (
            (Role.ADMIN, auth.TokenScope()),
            (Role.MANAGER, auth.TokenScope(cooperative_id=existing.id)),
        ):
            issued = auth.issue_token(
                session=session, role=role, actor=operator, scope=scope, label="dv demo"
            )
            summary.tokens[role.value] = issued.token
        assert session.get(Region, data["township"]) is not None
    _load_sample_parcels(settings, fixture_dir, data, summary)
    _record_sample_season(settings, summary)
    _record_sample_net(settings, summary)
    return summary


def _record_sample_net(settings: Settings, summary: DemoSummary) -> None:
    """Three soil probes on sample fields and a season of their readings, sealed (once)."""
    from digital_village.demo import village_net
    from digital_village.ledger.log import Ledger
    from digital_village.parcels import service as parcels

    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    with transaction(settings) as session:
        cooperative = session.scalar(
            select(Cooperative).where(Cooperative.uscc == summary.cooperative_uscc)
        )
        assert cooperative is not None
        summary.net = village_net.record_sample_net(
            session=session, ledger=ledger, cooperative_id=cooperative.id, today=parcels.today()
        )


# The sample households have held their land since well before the demo's season (the
# parcels are imported with holdings from this day), so a past harvest has its holders.
SAMPLE_HOLDINGS_FROM = dt.date(2020, 1, 1)


def _record_sample_season(settings: Settings, summary: DemoSummary) -> None:
    """Put a season of rapeseed and rice on the chain, once (see demo.village_season)."""
    from digital_village.demo import village_season
    from digital_village.ledger.log import Ledger
    from digital_village.parcels import service as parcels

    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    with transaction(settings) as session:
        cooperative = session.scalar(
            select(Cooperative).where(Cooperative.uscc == summary.cooperative_uscc)
        )
        assert cooperative is not None
        summary.season = village_season.record_sample_season(
            session=session,
            ledger=ledger,
            cooperative_id=cooperative.id,
            base_url=settings.public_base_url,
            today=parcels.today(),
        )


def _load_sample_parcels(
    settings: Settings, fixture_dir: Path, data: dict[str, Any], summary: DemoSummary
) -> None:
    """Import fixtures/sample-parcels.geojson through the import service, once per village."""
    from digital_village.ledger.log import Ledger
    from digital_village.parcels import io as parcel_io
    from digital_village.parcels import service as parcels

    path = fixture_dir / "sample-parcels.geojson"
    if not path.is_file():
        return
    document = json.loads(path.read_text(encoding="utf-8"))
    ledger = Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)
    engine = require_migrated(settings)
    database = Database(engine)
    try:
        for village in data["villages"]:
            code = village["code"]
            with database.transaction(write=False) as session:
                if parcels.parcels_of_region(session=session, code=code):
                    continue  # loaded by an earlier run
            subset = {
                "type": "FeatureCollection",
                "features": [
                    f for f in document["features"] if f["properties"]["fbfbm"].startswith(code)
                ],
            }
            report = parcel_io.import_features(
                database=database,
                ledger=ledger,
                source=parcel_io.read_geojson(subset, filename=f"{path.name} ({code})"),
                options=parcel_io.ImportOptions(fbfbm=code + "00", valid_from=SAMPLE_HOLDINGS_FROM),
                actor=Actor.operator(),
            )
            if report.rejected:
                raise ValueError(f"sample parcels rejected: {report.rejected[:3]}")
            summary.parcels_added += len(report.created)
        with database.transaction(write=False) as session:
            summary.parcels = len(parcels.list_all_active(session=session))
    finally:
        engine.dispose()


def print_summary(summary: DemoSummary, settings: Settings, *, host: str, port: int) -> None:
    """Tell the person at the terminal what exists and what to open."""
    base = f"http://{host}:{port}"
    state = "already loaded" if summary.already_loaded else "loaded"
    console.print(f"\n[bold green]Sample village {state}[/] into {settings.effective_database_url}")
    console.print(f"  cooperative  {summary.cooperative} ({summary.cooperative_uscc})")
    for village in summary.villages:
        console.print(f"  village      {village}")
    console.print(f"  households   {summary.households}")
    added = f" ({summary.parcels_added} added now)" if summary.parcels_added else ""
    console.print(f"  parcels      {summary.parcels}{added}")
    console.print("\nTokens made for this demo (shown once):")
    for role, token in summary.tokens.items():
        console.print(f"  {role:<8} {token}", highlight=False, soft_wrap=True)
    console.print("\nOpen:")
    console.print(f"  {base}/docs      the API, with a form for every route")
    console.print(f"  {base}/healthz   service health")
    console.print(f"  {base}/api/v1/regions?parent=510603101   the sample township's villages")
    console.print(f"  {base}/api/v1/maps/510603101201.svg   the map of 民安村 (also .png)")
    console.print(f"  {base}/api/v1/parcels?region=510603101201   its parcels as GeoJSON")
    _print_season(summary, base)
    _print_net(summary, base)
    _print_pages(summary, settings, base)


def _print_net(summary: DemoSummary, base: str) -> None:
    net = summary.net
    if net is None:
        return
    if net.skipped:
        console.print(f"[yellow]No sample sensors:[/] {net.skipped}\n")
        return
    done = f"{net.readings} readings, {net.seals} sealed parcel-days"
    state = "already loaded" if net.already_loaded else done
    console.print(f"[bold green]Field sensors[/] ({state}):")
    for device_id, model, dkbm in net.devices:
        console.print(f"  {model:<10} on {dkbm}", highlight=False)
        # Raw readings are the cooperative's: the manager token above reads them.
        url = f"{base}/api/v1/devices/{device_id}/readings?metric=soil_moisture&bucket=1d"
        console.print(f"             {url} (manager token)", highlight=False)
    if net.devices:
        conditions = f"{base}/api/v1/parcels/{net.devices[0][2]}/conditions"
        console.print(f"  conditions {conditions} (public)", highlight=False)
    console.print()


def _print_pages(summary: DemoSummary, settings: Settings, base: str) -> None:
    """The consumer page of a real bottle of the season, and a parcel sign's page."""
    from digital_village.parcels import service as parcels
    from digital_village.trace import lineage, products

    season = summary.season
    if season is None or "bottles" not in season.lots:
        return
    gtin, lot = season.lots["bottles"]
    with transaction(settings) as session:
        row = products.get_lot(session=session, gtin=gtin, lot=lot)
        units = lineage.units_of_lots(session=session, lot_ids=[row.id])
        closure = lineage.lot_closure(session=session, lot_ids=[row.id], upstream=True)
        upstream = sorted({row.id} | {source for source, _, _ in closure})
        fields = sorted({p.dkbm for p in lineage.lot_parcels_of(session=session, lot_ids=upstream)})
        holder = None
        if fields:
            held = parcels.holder_at(session=session, dkbm=fields[0], on=parcels.today())
            if held.contractor_household_id is not None:
                household = regions.get_household(
                    session=session, household_id=held.contractor_household_id
                )
                holder = household.cbfbm
    if not units:
        return
    bottle = f"{base}/01/{gtin}/10/{lot}/21/{units[0].serial}"
    console.print("[bold green]Scan to verify[/] (the pages a QR code opens):")
    console.print(f"  bottle     {bottle}", highlight=False)
    console.print(f"             {bottle}?lang=en   (English)", highlight=False)
    console.print(f"  linkset    {bottle}?linkType=linkset", highlight=False)
    code = short_code(gtin, lot, units[0].serial)
    console.print(f"  by hand    {base}/   (type the label's 查询码 {code})", highlight=False)
    if fields:
        console.print(f"  parcel     {base}/p/{fields[0]}   (the sign's page)", highlight=False)
    if holder:
        console.print(
            f"  farmer     dv farmers invite {holder}   (a sign-in link to record field work)",
            highlight=False,
        )
    console.print(
        f"  labels     dv labels {gtin} {lot} --out labels.pdf   "
        f"(or {base}/api/v1/labels/{gtin}/{lot}/sheet.pdf with the manager token)",
        highlight=False,
    )
    console.print()


def _print_season(summary: DemoSummary, base: str) -> None:
    season = summary.season
    if season is None:
        console.print()
        return
    if season.skipped and not season.lots:
        console.print(f"\n[yellow]No season on the chain:[/] {season.skipped}\n")
        return
    state = "already on the chain" if season.already_recorded else f"{season.events} events"
    console.print(f"\n[bold green]A season on the chain[/] ({state}):")
    for label, (gtin, lot) in season.lots.items():
        console.print(f"  {label:<10} {base}/api/v1/trace/{gtin}/{lot}", highlight=False)
    if "bottles" in season.lots:
        gtin, lot = season.lots["bottles"]
        console.print(
            f"  recall     {base}/api/v1/trace/{gtin}/{lot}?direction=forward", highlight=False
        )
        console.print(f"  EPCIS      {base}/api/v1/lots/{gtin}/{lot}/epcis", highlight=False)
    if season.certificate:
        console.print(
            f"  合格证     {base}/api/v1/certificates/{season.certificate}", highlight=False
        )
    console.print()
