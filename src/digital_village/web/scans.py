"""Scans of serialised items, and the signs of a copied label (issue 6, item 6).

Every time a browser opens the page of a serialised item (a bottle), one scan is stored: the
time, the client's network (IPv4 /24 or IPv6 /48 — a coarse place, never the address itself)
and, only if the reader chose to share it, a location rounded to 0.1° (about 10 km). The page
offers that choice with a button; the browser's geolocation is asked for only after a tap, and
the page then reloads itself with ``?geo=<lat>,<lon>``. The same network opening the same item
again within ``REPEAT_WINDOW`` counts once (a reload, the geolocation round trip); the repeat
only adds a location the first one lacked.

A label is flagged as probably copied when many independent networks scanned it over several
days, recently: a bottle of oil is scanned in the shop, at home, by a few relatives — a copied
label printed on a thousand fakes is scanned everywhere, day after day. Precisely: of the
networks that scanned it within ``FLAG_WINDOW``, each China day counts at most
``NETWORKS_PER_DAY`` new ones, and more than ``MAX_PLAUSIBLE_NETWORKS`` must add up. So

* one source is never enough: a reader reloading the page adds no network, and a phone that
  toggles its mobile data (or a script) gets many addresses in an afternoon but counts
  ``NETWORKS_PER_DAY`` a day; forging the warning takes several days of work from many networks;
* it decays: scans older than ``FLAG_WINDOW`` no longer count, so a label that stopped being
  scanned everywhere loses the warning;
* the page says why: how many networks on how many days within the window.

Locations are what the reader's phone claims, so they are hints, never evidence: two scans
more than ``FAR_KM`` apart and closer in time than travel at ``MAX_TRAVEL_KMH`` allows are
mentioned beside a warning the networks already justify, and flag nothing alone (anyone can
open the page with any ``?geo=``). Networks alone cannot place a scan (that would need a GeoIP
database, which this project does not ship).

Scans are stored by one background writer per process (``web/scan_writer.py``); recording a
scan never fails a page.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from digital_village.errors import DomainError
from digital_village.web.models import Scan

log = logging.getLogger(__name__)

REPEAT_WINDOW: Final = dt.timedelta(minutes=10)
MAX_PLAUSIBLE_NETWORKS: Final = 12
NETWORKS_PER_DAY: Final = 5
FLAG_WINDOW: Final = dt.timedelta(days=30)
# Networks of one item read for the rule at most (a copied label past this is flagged anyway).
NETWORKS_READ: Final = 2000
CHINA_TIME: Final = ZoneInfo("Asia/Shanghai")
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


# Built once: the statements run on every view of a bottle's page, and composing them anew
# cost more than running them. Executed on the session's connection (Core, no ORM layer).
_RECENT: Final = (
    select(Scan.id, Scan.lat)
    .where(
        Scan.gtin == bindparam("gtin"),
        Scan.serial == bindparam("serial"),
        Scan.network == bindparam("network"),
        Scan.scanned_at > bindparam("since"),
    )
    .order_by(Scan.scanned_at.desc())
    .limit(1)
)
_LOCATE: Final = (
    update(Scan)
    .where(Scan.id == bindparam("scan_id"))
    .values(lat=bindparam("new_lat"), lon=bindparam("new_lon"))
)
_INSERT: Final = insert(Scan)
_COUNTS: Final = select(
    func.count(),
    func.count(func.distinct(Scan.network)),
    func.min(Scan.scanned_at),
    func.count(Scan.lat),
).where(Scan.gtin == bindparam("gtin"), Scan.serial == bindparam("serial"))
_NETWORKS_SINCE: Final = (
    select(Scan.network, func.min(Scan.scanned_at))
    .where(
        Scan.gtin == bindparam("gtin"),
        Scan.serial == bindparam("serial"),
        Scan.scanned_at > bindparam("since"),
        Scan.network.is_not(None),
    )
    .group_by(Scan.network)
    .limit(NETWORKS_READ)
)
_LOCATED: Final = (
    select(Scan.scanned_at, Scan.lat, Scan.lon)
    .where(
        Scan.gtin == bindparam("gtin"),
        Scan.serial == bindparam("serial"),
        Scan.scanned_at > bindparam("since"),
        Scan.lat.is_not(None),
    )
    .order_by(Scan.scanned_at.desc())
    .limit(LOCATED_COMPARED)
)


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
    connection = session.connection()
    recent = None
    if network is not None:
        recent = connection.execute(
            _RECENT,
            {"gtin": gtin, "serial": serial, "network": network, "since": now - REPEAT_WINDOW},
        ).first()
    if recent is not None:
        if geo is not None and recent.lat is None:
            connection.execute(
                _LOCATE, {"scan_id": recent.id, "new_lat": geo[0], "new_lon": geo[1]}
            )
        return geo is not None or recent.lat is not None
    connection.execute(
        _INSERT,
        {
            "gtin": gtin,
            "serial": serial,
            "scanned_at": now,
            "network": network,
            "lat": geo[0] if geo else None,
            "lon": geo[1] if geo else None,
        },
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
class NetworkEvidence:
    """The independent networks that scanned an item within ``FLAG_WINDOW``."""

    networks: int  # distinct networks
    days: int  # China days on which they first scanned it
    counted: int  # networks counted, at most NETWORKS_PER_DAY a day

    @property
    def copied(self) -> bool:
        return self.counted > MAX_PLAUSIBLE_NETWORKS


def network_evidence(first_seen: Sequence[dt.datetime]) -> NetworkEvidence:
    """What the first scan of each network within the window says (pure)."""
    per_day: dict[dt.date, int] = {}
    for moment in first_seen:
        day = _aware(moment).astimezone(CHINA_TIME).date()
        per_day[day] = per_day.get(day, 0) + 1
    return NetworkEvidence(
        networks=len(first_seen),
        days=len(per_day),
        counted=sum(min(n, NETWORKS_PER_DAY) for n in per_day.values()),
    )


@dataclass(frozen=True)
class ScanSummary:
    """What the item's page says about its scans."""

    count: int
    networks: int
    first: dt.datetime
    evidence: NetworkEvidence | None  # None when too few networks ever scanned it
    impossible: Impossible | None  # a hint from claimed locations, not evidence
    has_geo: bool  # the reader's own scan carries a location

    @property
    def copied(self) -> bool:
        return self.evidence is not None and self.evidence.copied

    def flags(self) -> list[tuple[str, dict[str, str]]]:
        """(message key, values) of the copied-label warning and what it rests on."""
        if self.evidence is None or not self.evidence.copied:
            return []
        found = [
            (
                "flag_scans_many",
                {
                    "networks": str(self.evidence.networks),
                    "days": str(self.evidence.days),
                    "window": str(FLAG_WINDOW.days),
                },
            )
        ]
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


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
    *,
    session: Session,
    gtin: str,
    serial: str,
    has_geo: bool = False,
    now: dt.datetime | None = None,
) -> ScanSummary | None:
    """Counts and the copied-label evidence of an item's scans as of ``now`` (default: the
    present); None when it was never scanned."""
    connection = session.connection()
    item = {"gtin": gtin, "serial": serial}
    count, networks, first, with_geo = connection.execute(_COUNTS, item).one()
    if not count:
        return None
    since = {**item, "since": (now or dt.datetime.now(dt.UTC)) - FLAG_WINDOW}
    evidence = None
    if networks > MAX_PLAUSIBLE_NETWORKS:  # fewer can never add up to a warning
        evidence = network_evidence([row[1] for row in connection.execute(_NETWORKS_SINCE, since)])
    located: Sequence[Any] = []
    if with_geo >= 2:  # a distance needs a pair
        located = connection.execute(_LOCATED, since).all()
    impossible = impossible_travel(
        [(_aware(row[0]), row[1], row[2]) for row in located if row[2] is not None]
    )
    return ScanSummary(
        count=int(count),
        networks=int(networks),
        first=_aware(first),
        evidence=evidence,
        impossible=impossible,
        has_geo=has_geo,
    )


@dataclass(frozen=True)
class ScanIn:
    """One scan to store: the item, when, from which network, and the location if shared."""

    gtin: str
    serial: str
    network: str | None
    geo: tuple[float, float] | None
    at: dt.datetime


def store(session: Session, scan: ScanIn) -> ScanSummary:
    """Record one scan and return the item's summary as it now stands (in one transaction)."""
    located = record_scan(
        session=session,
        gtin=scan.gtin,
        serial=scan.serial,
        network=scan.network,
        geo=scan.geo,
        now=scan.at,
    )
    found = summary(
        session=session, gtin=scan.gtin, serial=scan.serial, has_geo=located, now=scan.at
    )
    assert found is not None  # this scan was just stored
    return found
