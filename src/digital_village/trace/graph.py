"""The trace graph: nodes by id, edges without duplicates, plausibility flags.

Node ids are a DKBM for parcels, the Digital Link path ``01/<GTIN>/10/<lot>`` for lots,
``01/<GTIN>/21/<serial>`` for items, the eventID for events and the 承包方编码 for households.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["backward", "forward"]


def lot_node_id(gtin: str, lot: str) -> str:
    return f"01/{gtin}/10/{lot}"


def unit_node_id(gtin: str, serial: str) -> str:
    return f"01/{gtin}/21/{serial}"


def time_text(moment: dt.datetime) -> str:
    """A time as the graph writes it: RFC 3339 in UTC."""
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Graph:
    """Nodes by id, edges without duplicates, and plausibility flags."""

    base_url: str
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    truncated: dict[str, int] | None = None

    def node(self, kind: str, node_id: str, **attributes: Any) -> str:
        if node_id not in self.nodes:
            self.nodes[node_id] = {"type": kind, "id": node_id, **attributes}
        return node_id

    def edge(self, source: str, target: str, kind: str, **attributes: Any) -> None:
        self.edges.setdefault(
            (source, target, kind), {"from": source, "to": target, "type": kind, **attributes}
        )

    def to_json(self, *, root: str, direction: Direction) -> dict[str, Any]:
        body: dict[str, Any] = {
            "root": root,
            "direction": direction,
            "nodes": list(self.nodes.values()),
            "edges": list(self.edges.values()),
            "flags": self.flags,
        }
        if self.truncated:
            # A recall of thousands of bottles lists their lots in full; items are listed up
            # to MAX_UNITS, and the lot pages and EPCIS query page through the rest.
            body["truncated"] = self.truncated
        return body
