"""``dv trace``: products, EPCIS capture, trace graphs, exports and 承诺达标合格证."""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from digital_village.auth.actor import Actor
from digital_village.cli.common import (
    china_time,
    console,
    fail,
    load_settings,
    print_json,
    transaction,
)
from digital_village.ledger.log import Ledger
from digital_village.regions import service as regions
from digital_village.trace import capture, product_changes, products, tracing
from digital_village.trace.epcis import EPCISParseError, parse_document

app = typer.Typer(help="The chain: products, EPCIS events, lots and trace.", no_args_is_help=True)
products_app = typer.Typer(help="Products under their GTINs.", no_args_is_help=True)
app.add_typer(products_app, name="products")


def _ledger() -> Ledger:
    settings = load_settings()
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


@products_app.command("add")
def add_product(
    gtin: Annotated[str, typer.Argument(help="GTIN-8, 12, 13 or 14, with its check digit.")],
    name: Annotated[str, typer.Argument(help="What the label says, e.g. 天府菜油 5 L.")],
    category: Annotated[
        str, typer.Option(help=f"One of: {', '.join(products.CATEGORIES)}.")
    ] = "other",
    cooperative: Annotated[
        str, typer.Option(help="Owning cooperative: 统一社会信用代码 or id.")
    ] = "",
    net: Annotated[
        str | None, typer.Option(help="Content of one item for packaged goods, e.g. '5 LTR'.")
    ] = None,
) -> None:
    """Register a product (recorded on the ledger)."""
    if not cooperative:
        fail("--cooperative is needed: the 统一社会信用代码 or id of the owning cooperative")
    net_quantity, net_unit = _net_content(net)
    settings = load_settings()
    ledger = _ledger()
    with transaction(settings) as session:
        coop = regions.find_cooperative(session=session, key=cooperative)
        product = products.register_product(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            gtin=gtin,
            name=name,
            category=category,
            cooperative_id=coop.id,
            net_quantity=net_quantity,
            net_unit=net_unit,
        )
        line = f"registered {product.gtin} {product.name} ({product.category}, {product.unit})"
        line += f" for {coop.name}; ledger entry {product.ledger_seq}"
    console.print(line, highlight=False)


def _net_content(net: str | None) -> tuple[float | None, str | None]:
    """``--net '5 LTR'`` as (5.0, 'LTR'); (None, None) when not given."""
    if net is None:
        return None, None
    amount, _, unit = net.strip().partition(" ")
    try:
        return float(amount), unit.strip().upper()
    except ValueError:
        fail(f"--net must look like '5 LTR', not {net!r}")


@products_app.command("edit")
def edit_product(
    gtin: Annotated[str, typer.Argument(help="The product's GTIN.")],
    name: Annotated[str | None, typer.Option(help="The new name.")] = None,
    category: Annotated[
        str | None, typer.Option(help=f"One of: {', '.join(products.CATEGORIES)}.")
    ] = None,
    unit: Annotated[
        str | None, typer.Option(help="KGM, LTR or H87; only while the product has no lots.")
    ] = None,
    net: Annotated[
        str | None, typer.Option(help="Content of one item for packaged goods, e.g. '5 LTR'.")
    ] = None,
    no_net: Annotated[bool, typer.Option("--no-net", help="Remove the net content.")] = False,
) -> None:
    """Change a product's name, category, unit or net content (recorded on the ledger as a
    trace.product.changed entry; nothing when nothing differs)."""
    net_quantity, net_unit = _net_content(net)
    settings = load_settings()
    ledger = _ledger()
    with transaction(settings) as session:
        before = products.get_product(session=session, gtin=gtin).ledger_seq
        product = product_changes.change_product(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            gtin=gtin,
            name=name,
            category=category,
            unit=unit,
            net_quantity=net_quantity,
            net_unit=net_unit,
            clear_net_content=no_net,
        )
        line = f"{product.gtin} {product.name} ({product.category}, {product.unit}"
        if product.net_quantity is not None:
            line += f", {product.net_quantity:g} {product.net_unit}"
        line += ")"
        if product.ledger_seq == before:
            line += f": unchanged; ledger entry {before}"
        else:
            line += f" changed; ledger entry {product.ledger_seq}"
    console.print(line, highlight=False)


@products_app.command("list")
def list_products(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List registered products with the cooperative that owns each."""
    with transaction(load_settings()) as session:
        cooperatives = {c.id: c for c in regions.list_cooperatives(session=session)}
        rows: list[dict[str, str | None]] = [
            {
                "gtin": p.gtin,
                "name": p.name,
                "category": p.category,
                "unit": p.unit,
                "cooperative": cooperatives[p.cooperative_id].name,
                "cooperative_uscc": cooperatives[p.cooperative_id].uscc,
            }
            for p in products.list_products(session=session)
        ]
    if as_json:
        print_json(rows)
        return
    table = Table(
        Column("GTIN", min_width=14),
        Column("name", overflow="fold"),
        "category",
        "unit",
        Column("cooperative", min_width=18, overflow="fold"),
    )
    for row in rows:
        owner = f"{row['cooperative']}\n{row['cooperative_uscc']}"
        table.add_row(row["gtin"], row["name"], row["category"], row["unit"], owner)
    console.print(table)


@app.command("example-season")
def example_season(
    out: Annotated[Path, typer.Option("--out", "-o", help="Write the EPCIS document here.")],
    coop: Annotated[
        str | None,
        typer.Option(help="The cooperative's 统一社会信用代码 (default: the products' owner)."),
    ] = None,
) -> None:
    """Write an example season to edit and capture with `dv trace capture`.

    Rapeseed sown on three fields the cooperative's members hold, sprayed, harvested, pressed,
    bottled into twelve 5 L bottles and four of them packed into a case: an EPCIS 2.0
    document made for this database (the demo's products, fields not yet harvested this
    season, lot numbers not yet used), so it captures as it is.
    """
    from digital_village.demo import example_season as examples
    from digital_village.parcels import service as parcels

    settings = load_settings()
    with transaction(settings) as session:
        cooperative = regions.find_cooperative(session=session, key=coop) if coop else None
        example = examples.build(
            session=session,
            cooperative=cooperative,
            base_url=settings.public_base_url,
            today=parcels.today(),
        )
        owner = regions.named(example.cooperative)
    text = json.dumps(example.document, ensure_ascii=False, indent=2) + "\n"
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {out}: {error.strerror}")
    count = len(example.document["epcisBody"]["eventList"])
    console.print(f"wrote {count} events of {owner} to {out}", highlight=False)
    console.print(f"  fields   {', '.join(example.fields)}", highlight=False, soft_wrap=False)
    for what, (gtin, lot) in example.lots.items():
        console.print(f"  {what:<8} {gtin} {lot}", highlight=False)
    console.print(f"  case     SSCC {example.case}", highlight=False)
    console.print(f"record it with: dv trace capture {out}", highlight=False)


@app.command("capture")
def capture_file(
    file: Annotated[Path, typer.Argument(help="An EPCIS 2.0 document (JSON); - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Capture an EPCIS document: every event is checked and recorded, or none is."""
    raw = sys.stdin.buffer.read() if str(file) == "-" else _read(file)
    try:
        document = parse_document(raw)
    except EPCISParseError as error:
        fail("not a valid EPCIS 2.0 document:\n" + "\n".join(f"  {p}" for p in error.problems))
    settings = load_settings()
    ledger = _ledger()
    with transaction(settings) as session:
        result = capture.capture(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            events=document.epcis_body.event_list,
            base_url=settings.public_base_url,
            context=document.context,
            capture_id=uuid.uuid4().hex,
            strict_hash=settings.epcis_strict_hash,
        )
    if as_json:
        print_json(
            {
                "captureID": result.capture_id,
                "events": [
                    {"eventID": e.event_id, "ledgerSeq": e.ledger_seq, "lots": list(e.lots)}
                    | ({"computedEventID": e.computed_event_id} if e.computed_event_id else {})
                    for e in result.events
                ],
            }
        )
        return
    console.print(f"captured {len(result.events)} events (capture {result.capture_id})")
    for event in result.events:
        made = f" → {', '.join(event.lots)}" if event.lots else ""
        step = (event.biz_step or event.event_type).rsplit("/", 1)[-1]
        console.print(f"  #{event.ledger_seq:<6} {step}{made}", highlight=False)
        if event.computed_event_id:
            console.print(
                f"          eventID {event.event_id} kept as sent; its CBV 2.0 hash is "
                f"{event.computed_event_id}",
                highlight=False,
            )


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror}")


@app.command("show")
def show(
    gtin: Annotated[str, typer.Argument(help="The product's GTIN.")],
    lot: Annotated[str, typer.Argument(help="The lot number (AI 10).")],
    forward: Annotated[
        bool, typer.Option("--forward", help="Everything made from the lot (recall).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph as JSON.")] = False,
) -> None:
    """Trace a lot back to its fields, or forward to everything made from it."""
    settings = load_settings()
    with transaction(settings) as session:
        graph = tracing.trace_lot(
            session=session,
            gtin=gtin,
            lot=lot,
            direction="forward" if forward else "backward",
            base_url=settings.public_base_url,
        )
    if as_json:
        print_json(graph)
        return
    _print_graph(graph)


@app.command("recall")
def recall(
    dkbm: Annotated[str, typer.Argument(help="The parcel's 19-digit 地块编码.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the graph as JSON.")] = False,
) -> None:
    """Everything harvested on a parcel and made from it: lots, items, cases."""
    settings = load_settings()
    with transaction(settings) as session:
        graph = tracing.trace_parcel(session=session, dkbm=dkbm, base_url=settings.public_base_url)
    if as_json:
        print_json(graph)
        return
    _print_graph(graph)


def _print_graph(graph: dict[str, Any]) -> None:
    nodes = graph["nodes"]
    counts = Counter(node["type"] for node in nodes)
    summary = ", ".join(f"{count} {kind}s" for kind, count in sorted(counts.items()))
    console.print(f"[bold]{graph['direction']}[/] from {graph['root']}: {summary}", soft_wrap=False)
    lots = Table("lot", "product", "made", "left", "on (CST)")
    for node in nodes:
        if node["type"] == "lot":
            produced = node.get("produced_at")
            lots.add_row(
                node["lot"],
                node["product"],
                f"{node['quantity']:g} {node['uom']}",
                f"{node['remaining']:g}",
                china_time(produced)[:10] if produced else "",
            )
    console.print(lots)
    parcels = [node["id"] for node in nodes if node["type"] == "parcel"]
    if parcels:
        console.print("parcels: " + ", ".join(parcels), highlight=False, soft_wrap=False)
    events = sorted(
        (node for node in nodes if node["type"] == "event"), key=lambda n: n["event_time"]
    )
    if events:
        console.print("events (China Standard Time, +08:00):")
    for node in events:
        step = str(node["biz_step"] or node["event_type"]).rsplit("/", 1)[-1]
        mark = " [red](declared erroneous)[/]" if node.get("declared_erroneous") else ""
        mark += " [yellow](error declaration)[/]" if node.get("error_declaration") else ""
        when = china_time(node["event_time"])
        console.print(f"  {when}  {step:<14} #{node['ledger_seq']}{mark}", highlight=False)
    for flag in graph["flags"]:
        console.print(
            f"[yellow]flag[/] {flag['kind']}: {flag['message']}", highlight=False, soft_wrap=False
        )


@app.command("export")
def export(
    gtin: Annotated[str, typer.Argument(help="The product's GTIN.")],
    lot: Annotated[str, typer.Argument(help="The lot number (AI 10).")],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """A lot's history as an EPCIS 2.0 document (every event of its backward trace)."""
    settings = load_settings()
    with transaction(settings) as session:
        document = tracing.lot_document(
            session=session, gtin=gtin, lot=lot, base_url=settings.public_base_url
        )
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")
    count = len(document["epcisBody"]["eventList"])
    console.print(f"wrote {count} events to {output}")


@app.command("certificate")
def certificate(
    gtin: Annotated[str, typer.Argument(help="The product's GTIN.")],
    lot: Annotated[str, typer.Argument(help="The lot number (AI 10).")],
    contact: Annotated[str, typer.Option(help="The issuer's phone number.")],
    basis: Annotated[
        list[str], typer.Option(help=f"承诺依据 (repeatable): {', '.join(products.BASIS)}.")
    ],
    quantity: Annotated[float | None, typer.Option(help="Default: what is left.")] = None,
    origin: Annotated[str | None, typer.Option(help="产地; default from the parcels.")] = None,
) -> None:
    """Issue a 承诺达标合格证 for a lot (recorded on the ledger)."""
    settings = load_settings()
    ledger = _ledger()
    with transaction(settings) as session:
        row = products.get_lot(session=session, gtin=gtin, lot=lot)
        issued = products.issue_certificate(
            session=session,
            ledger=ledger,
            actor=Actor.operator(),
            gtin=gtin,
            lot=lot,
            contact=contact,
            basis=basis,
            origin=origin or tracing.origin_of_lot(session=session, lot=row),
            issued_on=tracing.china_today(),
            quantity=quantity,
        )
        line = (
            f"承诺达标合格证 {issued.number}: {issued.product_name} {issued.quantity:g} "
            f"{issued.unit}, 产地 {issued.origin}, {issued.issued_on:%Y-%m-%d}"
        )
        qr = products.certificate_uri(settings.public_base_url, issued.number)
    console.print(line, highlight=False)
    console.print(f"QR: {qr}", highlight=False)
