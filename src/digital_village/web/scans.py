"""Scans of serialised items, and the signs of a copied label (issue 6, item 6).

Every time a browser opens the page of a serialised item (a bottle), one scan is stored: the
time, the client's network (IPv4 /24 or IPv6 /48 — a coarse place, never the address itself)
and, only if the reader chose to share it, a location rounded to 0.1° (about 10 km). The page
offers that choice with a button; the browser's geolocation is asked for only after a tap, and
the page then reloads itself with ``?geo=<lat>,<lon>``. The same network opening the same item
again within ``REPEAT_WINDOW`` counts once (a reload, the geolocation round trip); the repeat
only adds a location the first one lacked.

A label is flagged as probably copied when

* it was scanned more than ``MAX_PLAUSIBLE_SCANS`` times, or from more than
  ``MAX_PLAUSIBLE_NETWORKS`` networks: a bottle of oil is scanned in the shop, at home, by a
  few relatives — a copied label printed on a thousand fakes is scanned everywhere; or
* two scans with a location are more than ``FAR_KM`` apart and closer in time than travel at
  ``MAX_TRAVEL_KMH`` allows (one bottle cannot be in Deyang and Guangzhou the same afternoon).

Networks alone cannot place a scan (that would need a GeoIP database, which this project
does not ship), so the distance rule uses consented locations only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from digital_village.errors import DomainError
from digital_village.web.models import Scan

REPEAT_WINDOW: Final = dt.timedelta(minutes=10)
MAX_PLAUSIBLE_SCANS: Final = 30
MAX_PLAUSIBLE_NETWORKS: Final = 12
FAR_KM: Final = 50.0
MAX_TRAVEL_KMH: Final = 250.0
GEO_DECIMALS: Final = 1
# Pairs of located scans compared: the newest this many (a flood of scans needs no more).
LOCATED_COMPARED: Final = 200
EARTH_RADIUS_KM: Final = 6371.0088


class BadGeo(DomainError):
    """A ``geo`` parameter that is not ``<lat>,<lon>`` in degrees."""

    status = 400
    title = "Bad request"


def network_of(address: str | None) -> str | None:
    """The client's network, coarse enough not to identify anyone: IPv4 /24, IPv6 /48."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def parse_geo(value: str) -> tuple[float, float]:
    """``"31.13,104.40"`` → (lat, lon) rounded to 0.1°; BadGeo naming what is wrong."""
    parts = value.split(",")
    if len(parts) != 2:
        raise BadGeo(f"geo must be '<lat>,<lon>' in degrees, got {value!r}", field="geo")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise BadGeo(f"geo must be two numbers '<lat>,<lon>', got {value!r}", field="geo") from None
    if not (math.isfinite(lat) and math.isfinite(lon)) or not -90 <= lat <= 90:
        raise BadGeo(f"geo latitude must be within -90..90, got {value!r}", field="geo")
    if not -180 <= lon <= 180:
        raise BadGeo(f"geo longitude must be within -180..180, got {value!r}", field="geo")
    return round(lat, GEO_DECIMALS), round(lon, GEO_DECIMALS)


def record_scan(
    *,
    session: Session,
    gtin: str,
    serial: str,
    network: str | None,
    geo: tuple[float, float] | None,
    now: dt.datetime,
) -> bool:
    """Store one scan, or fold a repeat from the same network into the recent one.

    Returns whether the reader's scan now carries a location. Core statements: this runs on
    every view of a bottle's page.
    """
    recent = None
    if network is not None:
        recent = session.execute(
            select(Scan.id, Scan.lat)
            .where(
                Scan.gtin == gtin,
                Scan.serial == serial,
                Scan.network == network,
                Scan.scanned_at > now - REPEAT_WINDOW,
            )
            .order_by(Scan.scanned_at.desc())
            .limit(1)
        ).first()
    if recent is not None:
        if geo is not None and recent.lat is None:
            session.execute(update(Scan).where(Scan.id == recent.id).values(lat=geo[0], lon=geo[1]))
        return geo is not None or recent.lat is not None
    session.execute(
        insert(Scan).values(
            gtin=gtin,
            serial=serial,
            scanned_at=now,
            network=network,
            lat=geo[0] if geo else None,
            lon=geo[1] if geo else None,
        )
    )
    return geo is not None


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points (haversine, mean Earth radius)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class Impossible:
    """Two located scans too far apart for the time between them."""

    km: float
    hours: float


@dataclass(frozen=True)
class ScanSummary:
    """What the item's page says about its scans."""

    count: int
    networks: int
    first: dt.datetime
    too_many: bool
    impossible: Impossible | None
    has_geo: bool  # the reader's own scan carries a location

    def flags(self) -> list[tuple[str, dict[str, str]]]:
        """(message key, values) of each sign of a copied label."""
        found: list[tuple[str, dict[str, str]]] = []
        if self.too_many:
            found.append(
                ("flag_scans_many", {"count": str(self.count), "networks": str(self.networks)})
            )
        if self.impossible is not None:
            found.append(
                (
                    "flag_scans_far",
                    {
                        "km": f"{self.impossible.km:.0f}",
                        "hours": f"{self.impossible.hours:.1f}",
                    },
                )
            )
        return found


def impossible_travel(located: list[tuple[dt.datetime, float, float]]) -> Impossible | None:
    """The farthest pair of located scans that no traveller could have made, if any."""
    worst: Impossible | None = None
    ordered = sorted(located)[-LOCATED_COMPARED:]
    for i, (time_a, lat_a, lon_a) in enumerate(ordered):
        for time_b, lat_b, lon_b in ordered[i + 1 :]:
            km = distance_km((lat_a, lon_a), (lat_b, lon_b))
            if km <= FAR_KM:
                continue
            hours = (time_b - time_a).total_seconds() / 3600
            if km > MAX_TRAVEL_KMH * hours and (worst is None or km > worst.km):
                worst = Impossible(km=km, hours=hours)
    return worst


def summary(
    *, session: Session, gtin: str, serial: str, has_geo: bool = False
) -> ScanSummary | None:
    """Counts and flags of an item's scans (None when it was never scanned)."""
    count, networks, first, with_geo = session.execute(
        select(
            func.count(),
            func.count(func.distinct(Scan.network)),
            func.min(Scan.scanned_at),
            func.count(Scan.lat),
        ).where(Scan.gtin == gtin, Scan.serial == serial)
    ).one()
    if not count:
        return None
    located: Sequence[Any] = []
    if with_geo >= 2:  # a distance needs a pair
        located = session.execute(
            select(Scan.scanned_at, Scan.lat, Scan.lon)
            .where(Scan.gtin == gtin, Scan.serial == serial, Scan.lat.is_not(None))
            .order_by(Scan.scanned_at.desc())
            .limit(LOCATED_COMPARED)
        ).all()
    return ScanSummary(
        count=int(count),
        networks=int(networks),
        first=first if first.tzinfo else first.replace(tzinfo=dt.UTC),
        too_many=count > MAX_PLAUSIBLE_SCANS or networks > MAX_PLAUSIBLE_NETWORKS,
        impossible=impossible_travel(
            [
                (row[0], row[1], row[2])
                for row in located
                if row[1] is not None and row[2] is not None
            ]
        ),
        has_geo=has_geo,
    )
