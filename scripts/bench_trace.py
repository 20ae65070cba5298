"""Benchmark the chain: capture throughput and trace latency at county scale.

    python scripts/bench_trace.py            # ~1,000,000 events, ~100,000 lots (SQLite)
    python scripts/bench_trace.py --quick    # ~25,000 events, ~2,500 lots: under a minute
    python scripts/bench_trace.py --postgres postgresql+psycopg://postgres@127.0.0.1/postgres

A synthetic county is built on a fresh database: households of one cooperative holding
parcels registered through the parcel registry, then season after season of rapeseed (sown in
autumn, harvested in May, pressed into oil, bottled into serialised 5 L bottles) and rice
(planted in June, harvested in September, milled, bagged). Every event goes through the real
capture path (EPCIS 2.0 model validation, CBV 2.0 event hash, the capture rules against lots
and parcels, ledger append with one signed checkpoint per capture, lineage rows), in
documents of ``--batch`` events, each committed on its own. Then backward and forward traces
of random retail lots, harvest lots and parcels are timed in-process (the service and the
JSON encoding of its graph) and through the HTTP API (FastAPI's TestClient, in-process). A
trading partner's documents (pallets, bottles and sensor readings only it knows, a fifth as
many events as the county's) are then captured, half as JSON-LD and half as EPCIS 2.0 XML.
The EPCIS query interface's ``epcs/{epc}/events`` is timed through the HTTP API for random
identifiers (with the plan the database chose), and webhook deliveries to 10 subscribers (each
an HTTP endpoint in another process) are timed from each capture's commit while partner events
are captured at 1,000 events/s.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import shapely
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from digital_village import migrate
from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.config import Settings
from digital_village.db import Database, make_engine
from digital_village.gs1.keys import gtin_check_digit
from digital_village.ledger import keys
from digital_village.ledger.log import Ledger
from digital_village.ledger.models import LedgerEntry
from digital_village.parcels import service as parcels
from digital_village.parcels.geometry import to_lonlat
from digital_village.regions import service as regions
from digital_village.trace import builders, capture, epcis_answers, epcis_xml, products, tracing
from digital_village.trace.epcis import EPCISDocument, parse_document
from digital_village.trace.models import Event, Lot, Unit

BASE = "https://bench.dv.example"
ORIGIN = "bench.digital-village.example/ledger"
VILLAGE = "510603101201"
PARCELS_PER_GROUP = 250
CHINA = builders.CHINA
SIZE = 40.0  # 40 m fields: 2.4 亩


def gtin(payload12: str) -> str:
    return "0" + payload12 + gtin_check_digit(payload12)


RAPESEED, OIL, BOTTLE = gtin("690123450101"), gtin("690123450102"), gtin("690123450103")
PADDY, RICE, BAG = gtin("690123450104"), gtin("690123450105"), gtin("690123450106")


@contextmanager
def fresh_database(postgres: str | None, folder: Path) -> Iterator[str]:
    """A new empty database: a SQLite file in ``folder`` or a throwaway PostgreSQL database."""
    if postgres is None:
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    server = make_url(postgres)
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"dv_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fields(count: int, columns: int = 100) -> list[Any]:
    shapes = []
    for index in range(count):
        x = 430_000.0 + (index % columns) * (SIZE + 1)
        y = 3_459_000.0 + (index // columns) * (SIZE + 1)
        shapes.append(shapely.box(x, y, x + SIZE, y + SIZE))
    return list(to_lonlat(shapely.GeometryCollection(shapes), 4544).geoms)


def setup(database: Database, ledger: Ledger, parcel_count: int) -> tuple[Actor, list[str]]:
    """A cooperative, its households, its parcels and its six products."""
    operator = Actor.operator()
    with database.transaction() as session:
        regions.seed_jingyang(session=session)
        regions.add_region(session=session, code=VILLAGE, name="民安村", actor=operator)
        group_count = max(1, -(-parcel_count // PARCELS_PER_GROUP))
        groups = [f"{VILLAGE}{g:02d}" for g in range(1, group_count + 1)]
        for code in groups:
            regions.add_region(session=session, code=code, name=f"{code[-2:]}组", actor=operator)
        coop = regions.register_cooperative(
            session=session,
            uscc="93510603MA6DX0001T",
            name="民安油菜专业合作社",
            region_code=VILLAGE,
            actor=operator,
        )
        households = [
            regions.register_household(
                session=session,
                region_code=groups[(i * 4) // PARCELS_PER_GROUP],
                name=f"农户{i:04d}",
                phone=None,
                cooperative_id=coop.id,
                actor=operator,
            ).id
            for i in range(max(1, parcel_count // 4))
        ]
        # A village group (发包方) holds a few hundred parcels, as in the sample village.
        report = parcels.register_many(
            session=session,
            ledger=ledger,
            fbfbm=VILLAGE + "00",
            items=[
                parcels.ParcelIn(
                    geometry=shape,
                    land_use="0101",
                    fbfbm=groups[i // PARCELS_PER_GROUP],
                    contractor_household_id=households[i // 4 % len(households)],
                )
                for i, shape in enumerate(_fields(parcel_count))
            ],
            actor=operator,
            valid_from=dt.date(2000, 1, 1),
        )
        assert not report.rejected, report.rejected[:3]
        for code, name, category, extra in (
            (RAPESEED, "油菜籽", "rapeseed", {}),
            (OIL, "天府菜油", "rapeseed_oil", {}),
            (BOTTLE, "天府菜油 5 L", "packaged", {"net_quantity": 5.0, "net_unit": "LTR"}),
            (PADDY, "稻谷", "paddy", {}),
            (RICE, "大米", "rice", {}),
            (BAG, "大米 10 kg", "packaged", {"net_quantity": 10.0, "net_unit": "KGM"}),
        ):
            products.register_product(
                session=session,
                ledger=ledger,
                actor=operator,
                gtin=code,
                name=name,
                category=category,
                cooperative_id=coop.id,
                **extra,  # type: ignore[arg-type]
            )
        dkbms = [created.dkbm for created in report.created]
    return Actor(role=Role.MANAGER, cooperative_id=coop.id), dkbms


def season_events(
    season: int, dkbms: list[str], rng: random.Random, first_year: int = 2012
) -> Iterator[dict[str, Any]]:
    """One season on every parcel, in capture order: field work, harvests, processing."""
    rapeseed = season % 2 == 0
    year = first_year + season // 2
    if rapeseed:
        sown, harvested = (
            dt.datetime(year - 1, 10, 8, tzinfo=CHINA),
            dt.datetime(year, 5, 18, tzinfo=CHINA),
        )
        crop, out, pack, step, ratio, net = RAPESEED, OIL, BOTTLE, "pressing", 0.38, 5.0
    else:
        sown, harvested = (
            dt.datetime(year, 6, 2, tzinfo=CHINA),
            dt.datetime(year, 9, 20, tzinfo=CHINA),
        )
        crop, out, pack, step, ratio, net = PADDY, RICE, BAG, "milling", 0.68, 10.0
    span = (harvested - sown).total_seconds()

    def during(fraction: float) -> dt.datetime:
        return sown + dt.timedelta(seconds=span * fraction, minutes=rng.randrange(600))

    groups: list[list[str]] = []
    index = 0
    while index < len(dkbms):
        size = rng.choice((1, 2, 2, 3))
        groups.append(dkbms[index : index + size])
        index += size
    for group in groups:
        for dkbm in group:
            yield builders.field_work("planting", dkbm=dkbm, when=during(0.0), base_url=BASE)
            yield builders.field_work("fertilizing", dkbm=dkbm, when=during(0.3), base_url=BASE)
            yield builders.spraying(
                dkbm=dkbm,
                when=during(0.6),
                base_url=BASE,
                pesticide="吡虫啉 10% WP",
                dose=0.3,
                dose_unit="KGM",
                interval_days=14,
            )
            yield builders.field_work("irrigating", dkbm=dkbm, when=during(0.7), base_url=BASE)
            yield builders.field_work("fertilizing", dkbm=dkbm, when=during(0.8), base_url=BASE)
    harvests: list[tuple[str, float]] = []
    for number, group in enumerate(groups):
        lot = f"H{season:02d}-{number:05d}"
        kilograms = round(len(group) * 2.4 * rng.uniform(150, 220 if rapeseed else 600), 1)
        harvests.append((lot, kilograms))
        yield builders.harvest(
            gtin=crop, lot=lot, kilograms=kilograms, dkbms=group, when=harvested, base_url=BASE
        )
    processed = harvested + dt.timedelta(days=10)
    for batch in range(0, len(harvests), 5):
        inputs = harvests[batch : batch + 5]
        total = sum(kilograms for _, kilograms in inputs)
        made = round(total * ratio, 1)
        out_lot = f"P{season:02d}-{batch // 5:05d}"
        yield builders.transformation(
            step=step,
            inputs=[(crop, lot, kilograms, "KGM") for lot, kilograms in inputs],
            outputs=[(out, out_lot, made, "LTR" if rapeseed else "KGM")],
            when=processed,
            base_url=BASE,
        )
        yield builders.bottling(
            source=(out, out_lot, net * 10, "LTR" if rapeseed else "KGM"),
            gtin=pack,
            lot=f"R{season:02d}-{batch // 5:05d}",
            serials=[f"{season:02d}{batch // 5:05d}{unit:02d}" for unit in range(10)],
            when=processed + dt.timedelta(days=1),
            base_url=BASE,
        )


def _capture(
    database: Database, ledger: Ledger, actor: Actor, document: EPCISDocument
) -> capture.CaptureResult:
    """One document through the real capture path, in its own committed transaction."""
    with database.transaction() as session:
        return capture.capture(
            session=session,
            ledger=ledger,
            actor=actor,
            events=document.epcis_body.event_list,
            base_url=BASE,
            context=document.context,
            capture_id=uuid.uuid4().hex,
        )


def load(
    database: Database,
    ledger: Ledger,
    actor: Actor,
    dkbms: list[str],
    *,
    target_events: int,
    batch: int,
) -> dict[str, Any]:
    """Capture seasons until ``target_events``; returns throughput figures."""
    rng = random.Random(510603)
    pending: list[dict[str, Any]] = []
    captured = 0
    batch_seconds: list[float] = []
    started = time.perf_counter()
    cpu_started = time.process_time()
    created = dt.datetime(2026, 1, 1, tzinfo=CHINA)

    def flush() -> None:
        nonlocal captured
        if not pending:
            return
        tick = time.perf_counter()
        _capture(
            database, ledger, actor, parse_document(builders.document(pending, created=created))
        )
        batch_seconds.append(time.perf_counter() - tick)
        captured += len(pending)
        pending.clear()

    # Enough seasons for the target, the last one finished before today (no future events).
    per_season = len(dkbms) * 5.7
    seasons_needed = int(target_events / per_season) + 2
    first_year = dt.date.today().year - 1 - (seasons_needed + 1) // 2
    season = 0
    while captured + len(pending) < target_events and season < seasons_needed:
        for event in season_events(season, dkbms, rng, first_year):
            pending.append(event)
            if len(pending) == batch:
                flush()
        flush()  # a season's processing never waits for the next season's documents
        season += 1
        print(f"  season {season}: {captured} events", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    capturing = sum(batch_seconds)
    return {
        "captured_events": captured,
        "seasons": season,
        # Capture proper: from the document's JSON to the commit (parse into the EPCIS models,
        # checks, event hashes, lineage, ledger append and checkpoint), summed over documents.
        "capture_s": round(capturing, 1),
        "capture_events_per_s": round(captured / capturing),
        "capture_batch": batch,
        "capture_batch_p50_s": round(statistics.median(batch_seconds), 3),
        "capture_batch_p95_s": round(
            statistics.quantiles(batch_seconds, n=20)[-1] if len(batch_seconds) > 1 else capturing,
            3,
        ),
        # The whole load, the bench's own generation of the seasons' events included. This
        # process's CPU only (on PostgreSQL the server's work is not in it): on a shared
        # machine the wall-clock rate depends on what else runs.
        "load_s": round(elapsed, 1),
        "load_events_per_s": round(captured / elapsed),
        "load_cpu_s": round(cpu, 1),
        "load_events_per_cpu_s": round(captured / cpu),
    }


PARTNER_CONTEXT: list[Any] = [
    "https://ref.gs1.org/standards/epcis/epcis-context.jsonld",
    {"acme": "https://acme.example.com/epcis/"},
]


def partner_events(first: int, count: int) -> list[dict[str, Any]]:
    """A trading partner's events about its own pallets and bottles (identifiers the project
    does not know): packing, a sensor-reported receipt and a shipment, in turn."""
    events: list[dict[str, Any]] = []
    when = dt.datetime(2026, 1, 2, 8, tzinfo=CHINA)
    for number in range(first, first + count):
        moment = (when + dt.timedelta(seconds=number)).isoformat(timespec="milliseconds")
        pallet = f"urn:epc:id:sscc:4012345.{number:010d}"
        items = [f"urn:epc:id:sgtin:4012345.011111.{number}-{k}" for k in range(3)]
        common = {"eventTime": moment, "eventTimeZoneOffset": "+08:00",
                  "readPoint": {"id": "urn:epc:id:sgln:4012345.00011.0"},
                  "acme:shift": {"acme:line": number % 4, "acme:crew": "early"}}  # fmt: skip
        kind = number % 3
        order = "urn:epcglobal:cbv:bt:4012345000009:PO-"
        if kind == 0:
            events.append({"type": "AggregationEvent", **common, "parentID": pallet,
                           "childEPCs": items, "action": "ADD", "bizStep": "packing"})  # fmt: skip
        elif kind == 1:
            events.append({
                "type": "ObjectEvent", **common, "epcList": [pallet], "action": "OBSERVE",
                "bizStep": "receiving", "disposition": "in_progress",
                "sensorElementList": [{"sensorReport": [
                    {"type": "Temperature", "value": 4.0 + number % 7, "uom": "CEL"},
                    {"type": "RelativeHumidity", "value": 60 + number % 9, "uom": "P1"},
                ]}],
            })  # fmt: skip
        else:
            events.append({
                "type": "ObjectEvent", **common, "epcList": items, "action": "OBSERVE",
                "bizStep": "shipping", "disposition": "in_transit",
                "bizTransactionList": [{"type": "po", "bizTransaction": f"{order}{number}"}],
                "destinationList": [{"type": "owning_party",
                                     "destination": "urn:epc:id:pgln:0614141.00000"}],
            })  # fmt: skip
    return events


def partner_load(
    database: Database, ledger: Ledger, actor: Actor, *, count: int, batch: int
) -> dict[str, Any]:
    """Capture partners' documents, half as JSON-LD and half as EPCIS 2.0 XML."""
    figures: dict[str, Any] = {}
    created = dt.datetime(2026, 1, 3, tzinfo=CHINA).isoformat()
    first = 0
    for syntax in ("json", "xml"):
        seconds = 0.0
        cpu = 0.0
        captured = 0
        while captured < count // 2:
            events = partner_events(first, min(batch, count // 2 - captured))
            first += len(events)
            document = {**builders.document(events, created=dt.datetime(2026, 1, 3, tzinfo=CHINA)),
                        "@context": PARTNER_CONTEXT}  # fmt: skip
            body = (
                orjson.dumps(document)
                if syntax == "json"
                else epcis_answers.event_document(
                    events, creation_date=created, context=PARTNER_CONTEXT
                )
            )
            tick, cpu_tick = time.perf_counter(), time.process_time()
            if syntax == "json":
                parsed = parse_document(body)
            else:
                parsed = parse_document(epcis_xml.read_document(body).document)
            _capture(database, ledger, actor, parsed)
            seconds += time.perf_counter() - tick
            cpu += time.process_time() - cpu_tick
            captured += len(events)
        figures[f"partner_{syntax}_events"] = captured
        figures[f"partner_{syntax}_events_per_s"] = round(captured / seconds)
        figures[f"partner_{syntax}_events_per_cpu_s"] = round(captured / cpu)
    return figures


def _percentiles(samples: list[float], cpu: list[float] | None = None) -> dict[str, float]:
    ordered = sorted(samples)
    figures = {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }
    if cpu:
        ordered_cpu = sorted(cpu)
        figures["cpu_p50_ms"] = round(statistics.median(ordered_cpu) * 1000, 2)
        figures["cpu_p95_ms"] = round(ordered_cpu[int(0.95 * (len(ordered_cpu) - 1))] * 1000, 2)
    return figures


def time_traces(
    database: Database, settings: Settings, samples: int, http_samples: int
) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from digital_village.app import create_app

    rng = random.Random(7)
    with database.session() as session:
        retail = session.execute(
            select(Lot.gtin, Lot.lot).where(Lot.gtin.in_([BOTTLE, BAG])).order_by(Lot.id)
        ).all()
        harvest = session.execute(
            select(Lot.gtin, Lot.lot).where(Lot.origin == "harvest").order_by(Lot.id)
        ).all()
    dkbms = sorted({row for row in _parcels_with_harvests(database)})
    cases = {
        "backward_retail": [(g, lot, "backward") for g, lot in rng.sample(retail, samples)],
        "forward_retail": [(g, lot, "forward") for g, lot in rng.sample(retail, samples)],
        "forward_harvest": [(g, lot, "forward") for g, lot in rng.sample(harvest, samples)],
        "backward_harvest": [(g, lot, "backward") for g, lot in rng.sample(harvest, samples)],
    }
    figures: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    with database.session() as session:
        for name, picks in cases.items():
            timings, cpu = [], []
            for code, lot, direction in picks:
                tick, cpu_tick = time.perf_counter(), time.process_time()
                body = tracing.trace_lot(
                    session=session, gtin=code, lot=lot, direction=direction, base_url=BASE
                )
                orjson.dumps(body)
                timings.append(time.perf_counter() - tick)
                cpu.append(time.process_time() - cpu_tick)
                sizes[name] = max(sizes.get(name, 0), len(body["nodes"]))
            figures[name] = _percentiles(timings, cpu)
        timings, cpu = [], []
        for dkbm in rng.sample(dkbms, min(samples, len(dkbms))):
            tick, cpu_tick = time.perf_counter(), time.process_time()
            body = tracing.trace_parcel(session=session, dkbm=dkbm, base_url=BASE)
            orjson.dumps(body)
            timings.append(time.perf_counter() - tick)
            cpu.append(time.process_time() - cpu_tick)
            sizes["forward_parcel"] = max(sizes.get("forward_parcel", 0), len(body["nodes"]))
        figures["forward_parcel"] = _percentiles(timings, cpu)
    app = create_app(settings, database=database)
    with TestClient(app) as client:
        for name in ("backward_retail", "forward_harvest"):
            timings = []
            for code, lot, direction in cases[name][:http_samples]:
                tick = time.perf_counter()
                response = client.get(
                    f"/api/v1/trace/{code}/{lot}", params={"direction": direction}
                )
                timings.append(time.perf_counter() - tick)
                assert response.status_code == 200, response.text
            figures[f"http_{name}"] = _percentiles(timings)
    figures["largest_graph_nodes"] = sizes
    return figures


def _parcels_with_harvests(database: Database) -> list[str]:
    from digital_village.trace.models import LotParcel

    with database.session() as session:
        return list(session.scalars(select(LotParcel.dkbm).distinct()))


# --- the EPCIS query interface and webhook subscriptions -----------------------------------------


def _manager_token(database: Database, actor: Actor) -> str:
    from digital_village.auth import service as auth

    with database.transaction() as session:
        issued = auth.issue_token(
            session=session,
            role=Role.MANAGER,
            actor=Actor.operator(),
            scope=auth.TokenScope(cooperative_id=actor.cooperative_id),
            label="bench",
        )
        return issued.token


def _epcs_plan(database: Database, epc: str, actor: Actor) -> list[str]:
    """The plan the database chooses for ``epcs/{epc}/events`` as the manager reads it."""
    from sqlalchemy.dialects import postgresql, sqlite

    from digital_village.trace import epcis_query, epcis_query_run

    query = epcis_query.parse([])
    query.matches[epcis_query_run.ANY_FIELD] = [epc]
    scope = epcis_query_run.ReadScope(Role.MANAGER, actor.cooperative_id)
    statement = epcis_query_run.ordered(epcis_query_run.filtered(query, scope), query).limit(31)
    dialect = postgresql.dialect() if database.dialect == "postgresql" else sqlite.dialect()
    sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN" if database.dialect == "postgresql" else "EXPLAIN QUERY PLAN"
    with database.session() as session:
        rows = session.execute(text(f"{explain} {sql}")).all()
    return [str(row[-1]).strip() for row in rows]


def time_epcis_queries(
    database: Database, settings: Settings, actor: Actor, samples: int
) -> dict[str, Any]:
    """``GET /api/v1/epcis/epcs/{epc}/events`` through the HTTP API for random identifiers
    (items, lots, pallets, parcels' products) as the cooperative's manager reads them."""
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from digital_village.app import create_app
    from digital_village.trace.models import EventEpc

    rng = random.Random(13)
    with database.session() as session:
        newest = session.scalar(select(func.max(Event.id))) or 0
        picks = [rng.randint(1, newest) for _ in range(samples * 2)]
        epcs = list(
            dict.fromkeys(session.scalars(select(EventEpc.epc).where(EventEpc.event_pk.in_(picks))))
        )[:samples]
    token = _manager_token(database, actor)
    headers = {"Authorization": f"Bearer {token}"}
    figures: dict[str, Any] = {"identifiers": len(epcs)}
    app = create_app(settings, database=database)
    with TestClient(app) as client:
        for epc in epcs[:5]:  # the first requests load the signing key and warm the caches
            client.get(f"/api/v1/epcis/epcs/{quote(epc, safe='')}/events", headers=headers)
        for name, path in (
            ("http_epcs_events", "/api/v1/epcis/epcs/{}/events"),
            ("http_match_any_epc", "/api/v1/epcis/events?MATCH_anyEPC={}"),
        ):
            timings, counts = [], []
            for epc in epcs:
                tick = time.perf_counter()
                response = client.get(path.format(quote(epc, safe="")), headers=headers)
                timings.append(time.perf_counter() - tick)
                assert response.status_code == 200, response.text
                counts.append(
                    len(response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"])
                )
            figures[name] = {**_percentiles(timings), "events_p50": statistics.median(counts)}
    figures["plan"] = _epcs_plan(database, epcs[0], actor) if epcs else []
    return figures


def _subscribers(ports: Any, records: Any, count: int, stop: Any) -> None:
    """Run ``count`` webhook endpoints (a process of their own), each recording the time each
    eventID arrived; the records go back when ``stop`` is set."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[int, str, float, str]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrived = time.time()
            events = orjson.loads(body)["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
            delivery = self.headers.get("Idempotency-Key", "")
            with lock:
                port = int(self.server.server_address[1])  # type: ignore[index]
                seen.extend((port, event["eventID"], arrived, delivery) for event in events)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(count)]
    for server in servers:
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports.put([server.server_port for server in servers])
    stop.wait()
    with lock:
        records.put(list(seen))


def time_webhooks(
    database: Database,
    ledger: Ledger,
    actor: Actor,
    *,
    seconds: float,
    rate: int = 1000,
    subscriber_count: int = 10,
) -> dict[str, Any]:
    """Webhook deliveries: partner events captured at ``rate`` events/s in documents of a
    tenth of a second, ``subscriber_count`` stream subscriptions of every event (each its own
    endpoint, in another process); the time from each capture's commit until each subscriber
    has the event."""
    import multiprocessing

    from digital_village.trace.subscriptions import service as subscriptions
    from digital_village.trace.subscriptions.delivery import DeliveryWorker
    from digital_village.trace.subscriptions.models import Delivery

    context = multiprocessing.get_context("spawn")
    ports_queue, records_queue, stop = context.Queue(), context.Queue(), context.Event()
    process = context.Process(
        target=_subscribers, args=(ports_queue, records_queue, subscriber_count, stop)
    )
    process.start()
    ports = ports_queue.get(timeout=60)
    now = dt.datetime.now(dt.UTC)
    with database.transaction() as session:
        for number, port in enumerate(ports):
            name = f"bench-{number}"
            subscriptions.create_query(session=session, actor=actor, name=name, query={})
            subscriptions.subscribe(
                session=session,
                actor=actor,
                name=name,
                wanted=subscriptions.SubscriptionIn(
                    dest=f"http://127.0.0.1:{port}/epcis", signature_token="bench", stream=True
                ),
                now=now,
            )
    worker = DeliveryWorker(database).start()
    committed: dict[str, float] = {}
    per_document = max(1, rate // 10)
    first = 1_000_000  # after the partner load's numbers; times stay in the past
    started = time.perf_counter()
    documents = 0
    while time.perf_counter() - started < seconds:
        due = started + documents * 0.1
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        events = partner_events(first, per_document)
        first += per_document
        created = dt.datetime(2026, 1, 3, tzinfo=CHINA)
        document = parse_document(
            {**builders.document(events, created=created), "@context": PARTNER_CONTEXT}
        )
        result = _capture(database, ledger, actor, document)
        done = time.time()
        committed.update({event.event_id: done for event in result.events})
        documents += 1
    capturing = time.perf_counter() - started
    expected = len(committed) * subscriber_count
    deadline = time.perf_counter() + 60
    with database.session() as session:
        while time.perf_counter() < deadline:
            delivered = session.scalar(
                select(func.coalesce(func.sum(Delivery.event_count), 0)).where(
                    Delivery.delivered_at.is_not(None)
                )
            )
            session.rollback()
            if (delivered or 0) >= expected:
                break
            time.sleep(0.2)
    worker.stop()
    stop.set()
    records = records_queue.get(timeout=60)
    process.join(timeout=30)
    latencies = [arrived - committed[event_id] for _, event_id, arrived, _ in records
                 if event_id in committed]  # fmt: skip
    received = {(port, event_id) for port, event_id, _, _ in records}
    return {
        "subscribers": subscriber_count,
        "offered_events_per_s": rate,
        "captured_events": len(committed),
        "captured_events_per_s": round(len(committed) / capturing),
        "expected_deliveries_of_events": expected,
        "received_events": len(received),
        "duplicates": len(records) - len(received),
        "deliveries": len({delivery for *_, delivery in records}),
        **({"latency_after_commit": _percentiles(latencies)} if latencies else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small county, under a minute")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server to use instead")
    parser.add_argument("--events", type=int, help="events to capture (default by size)")
    parser.add_argument("--parcels", type=int, help="parcels of the county (default by size)")
    parser.add_argument("--batch", type=int, default=1000, help="events per capture")
    parser.add_argument("--samples", type=int, help="traces timed per kind")
    parser.add_argument(
        "--webhook-seconds", type=float, help="how long events are captured for the webhooks"
    )
    args = parser.parse_args()
    events = args.events or (25_000 if args.quick else 1_000_000)
    parcel_count = args.parcels or (400 if args.quick else 5_000)
    samples = args.samples or (50 if args.quick else 300)
    with (
        tempfile.TemporaryDirectory() as folder,
        fresh_database(args.postgres, Path(folder)) as url,
    ):
        engine = make_engine(url)
        with engine.begin() as connection:
            migrate.upgrade(connection)
        database = Database(engine)
        settings = Settings(
            data_dir=Path(folder),
            database_url=url,
            ledger_origin=ORIGIN,
            public_base_url=BASE,
            log_level="WARNING",
        )
        keys.ensure_signing_key(settings.effective_ledger_key_path, ORIGIN)
        ledger = Ledger.from_key_file(settings.effective_ledger_key_path, ORIGIN)
        tick = time.perf_counter()
        actor, dkbms = setup(database, ledger, parcel_count)
        setup_s = time.perf_counter() - tick
        print(f"county: {len(dkbms)} parcels in {setup_s:.1f} s", file=sys.stderr)
        figures: dict[str, Any] = {
            "backend": database.dialect,
            "quick": args.quick,
            "parcels": len(dkbms),
        }
        figures.update(load(database, ledger, actor, dkbms, target_events=events, batch=args.batch))
        # Partners' documents: from the body's bytes to the commit, JSON-LD and XML.
        figures.update(partner_load(database, ledger, actor, count=events // 5, batch=args.batch))
        with database.session() as session:
            figures["events"] = session.scalar(select(func.count()).select_from(Event))
            figures["lots"] = session.scalar(select(func.count()).select_from(Lot))
            figures["units"] = session.scalar(select(func.count()).select_from(Unit))
            figures["ledger_entries"] = session.scalar(
                select(func.count()).select_from(LedgerEntry)
            )
        if database.dialect == "postgresql":
            with engine.connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
        figures["trace"] = time_traces(database, settings, samples, http_samples=samples // 2)
        # The EPCIS query interface at this size, then webhooks to 10 subscribers at 1,000
        # events/s (the subscriptions see only what is captured from then on).
        figures["epcis_query"] = time_epcis_queries(database, settings, actor, samples)
        figures["webhooks"] = time_webhooks(
            database, ledger, actor, seconds=args.webhook_seconds or (5.0 if args.quick else 30.0)
        )
        database.dispose()
    print(json.dumps(figures, indent=2), file=sys.stderr)
    print(json.dumps(figures, separators=(",", ":")))


if __name__ == "__main__":
    main()
