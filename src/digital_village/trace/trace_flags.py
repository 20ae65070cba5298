"""The plausibility flags of a trace graph: yields per 亩, mass balances of transformations,
and harvests within a pesticide's 安全间隔期 (the checks themselves are ``trace/plausibility.py``).

Mixed into the tracer of ``trace/tracing.py``, which loads the rows these read.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy.orm import Session

from digital_village.trace import lineage, plausibility, store
from digital_village.trace.graph import Graph, lot_node_id
from digital_village.trace.identifiers import convert
from digital_village.trace.models import Event, Lot, LotParcel, Product
from digital_village.trace.vocab import SPRAYING


class PlausibilityChecks(ABC):
    """Adds the flags of the lots a trace shows to its graph; the tracer it is mixed into
    loads the rows (``load_lots``, ``load_events``)."""

    session: Session
    graph: Graph
    lots: dict[int, Lot]
    products: dict[int, Product]
    events: dict[int, Event]

    @abstractmethod
    def load_lots(self, ids: Iterable[int], *, known: Iterable[Lot] = ()) -> None:
        """Read these lots (and their products) into ``lots`` and ``products``."""

    @abstractmethod
    def load_events(self, pks: Iterable[int]) -> None:
        """Read these events into ``events``."""

    def _flags(self, lot_ids: set[int], harvests: Iterable[LotParcel]) -> None:
        flags: list[plausibility.Flag | None] = []
        areas: dict[int, float] = defaultdict(float)
        harvest_rows = list(harvests)
        for row in harvest_rows:
            if row.area_mu:
                areas[row.lot_id] += row.area_mu
        for lot_id, area in areas.items():
            lot = self.lots[lot_id]
            product = self.products[lot.product_id]
            flags.append(
                plausibility.yield_flag(
                    subject=lot_node_id(lot.gtin, lot.lot),
                    product=product.name,
                    kilograms=lot.produced,
                    area_mu=area,
                    low=product.yield_min_per_mu,
                    high=product.yield_max_per_mu,
                )
            )
        flags += self._mass_balance(lot_ids)
        flags += self._pre_harvest_intervals(harvest_rows)
        flags += self._repeat_harvests(harvest_rows)
        self.graph.flags.extend(flag.to_json() for flag in flags if flag is not None)

    def _mass_balance(self, lot_ids: set[int]) -> list[plausibility.Flag | None]:
        """Each product a transformation made, against everything it used up.

        Products are weighed separately: pressing gives oil and cake, and only the oil is
        measured against the product's oil-per-seed ratio (a product without a ratio is
        not checked).
        """
        makers = {
            flow.event_pk
            for flow in lineage.flows_of_lots(session=self.session, lot_ids=sorted(lot_ids))
            if flow.kind == "produce"
        }
        # Every flow of those events, also of lots outside the graph: a pressing of several
        # harvest lots is weighed against all of them, not only the one a recall started from.
        by_event: dict[int, list[tuple[int, str, float]]] = defaultdict(list)
        for flow in lineage.flows_of_events(session=self.session, event_pks=sorted(makers)):
            by_event[flow.event_pk].append((flow.lot_id, flow.kind, flow.quantity))
        self.load_lots({lot_id for flows in by_event.values() for lot_id, _, _ in flows})
        found: list[plausibility.Flag | None] = []
        for pk, flows in by_event.items():
            inputs = [(lot_id, q) for lot_id, kind, q in flows if kind == "consume"]
            if not inputs:  # a harvest or a commissioning: nothing to weigh against
                continue
            made: dict[int, float] = defaultdict(float)  # product id → quantity made
            for lot_id, kind, quantity in flows:
                if kind == "produce":
                    made[self.lots[lot_id].product_id] += quantity
            for product_id, out_total in made.items():
                product = self.products[product_id]
                if product.ratio_min is None and product.ratio_max is None:
                    continue
                out_unit = product.unit
                if product.net_quantity is not None and product.net_unit is not None:
                    out_total *= product.net_quantity
                    out_unit = in_unit = product.net_unit
                else:
                    in_unit = self.products[self.lots[inputs[0][0]].product_id].unit
                in_total = self._total(inputs, in_unit)
                if in_total is None:
                    continue
                self.load_events([pk])
                found.append(
                    plausibility.mass_balance_flag(
                        subject=self.events[pk].event_id,
                        product=product.name,
                        output=out_total,
                        input_=in_total,
                        unit_out=out_unit,
                        unit_in=in_unit,
                        low=product.ratio_min,
                        high=product.ratio_max,
                    )
                )
        return found

    def _repeat_harvests(self, harvests: list[LotParcel]) -> list[plausibility.Flag | None]:
        """A parcel harvested of the same crop twice within one season of it."""
        if not harvests:
            return []
        longest = dt.timedelta(days=max(plausibility.SEASON_DAYS.values()))
        nearby = lineage.harvests_on_parcels(
            session=self.session,
            dkbms=[row.dkbm for row in harvests],
            after=min(row.harvested_at for row in harvests) - longest,
            until=max(row.harvested_at for row in harvests),
        )
        self.load_lots({row.lot_id for row in nearby})
        found: list[plausibility.Flag | None] = []
        for row in harvests:
            lot = self.lots[row.lot_id]
            product = self.products[lot.product_id]
            earlier = [
                other
                for other in nearby
                if other.dkbm == row.dkbm
                and other.lot_id != row.lot_id
                and (other.harvested_at, other.id) < (row.harvested_at, row.id)
                and self.products[self.lots[other.lot_id].product_id].category == product.category
            ]
            if not earlier:
                continue
            last = earlier[-1]
            found.append(
                plausibility.repeat_harvest_flag(
                    subject=lot_node_id(lot.gtin, lot.lot),
                    product=product.name,
                    category=product.category,
                    dkbm=row.dkbm,
                    harvested=row.harvested_at,
                    earlier=last.harvested_at,
                    earlier_lot=self.lots[last.lot_id].lot,
                )
            )
        return found

    def _total(self, flows: list[tuple[int, float]], unit: str) -> float | None:
        """The sum of quantities of lots in one unit; None when one cannot be converted."""
        total = 0.0
        for lot_id, quantity in flows:
            converted = convert(quantity, self.products[self.lots[lot_id].product_id].unit, unit)
            if converted is None:
                return None
            total += converted
        return total

    def _pre_harvest_intervals(self, harvests: list[LotParcel]) -> list[plausibility.Flag | None]:
        """Spraying on a harvested parcel too soon before the harvest."""
        sprays = [
            event
            for event in self.events.values()
            if event.biz_step == SPRAYING.uri
            and event.erroneous_since is None
            and event.declares_pk is None
        ]
        if not sprays or not harvests:
            return []
        bodies = dict(
            zip(
                (e.id for e in sprays),
                store.event_json(session=self.session, events=sprays),
                strict=True,
            )
        )
        by_node = {event.event_id: event for event in sprays}
        on_parcel: dict[str, list[Event]] = defaultdict(list)
        for edge in self.graph.edges.values():
            if edge["type"] == "on" and edge["from"] in by_node:
                on_parcel[edge["to"]].append(by_node[edge["from"]])
        found: list[plausibility.Flag | None] = []
        for row in harvests:
            lot = self.lots[row.lot_id]
            for event in on_parcel.get(row.dkbm, []):
                body = bodies[event.id]
                days = body.get("dv:preHarvestIntervalDays")
                if not isinstance(days, int) or event.event_time > row.harvested_at:
                    continue
                found.append(
                    plausibility.pre_harvest_interval_flag(
                        subject=lot_node_id(lot.gtin, lot.lot),
                        pesticide=str(body.get("dv:pesticideName", "a pesticide")),
                        sprayed=event.event_time,
                        harvested=row.harvested_at,
                        interval_days=days,
                    )
                )
        return found
