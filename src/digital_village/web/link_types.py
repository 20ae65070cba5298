"""The link types the resolver serves: one row each in :data:`LINK_TYPES`.

A row says at which identification level an item has the link type (the product, a lot, a
serialised item; some only for a lot with certificates) and where its targets are: the
consumer page (``gs1:pip``), the public trace graph, the lot's EPCIS document, its
certificates. The resolver (``web/resolver.py``) redirects (307) to a target, or answers the
linkset, which lists the rows of every level of the request, finest first. A level's
``gs1:defaultLink`` is its first ``gs1:pip`` target without optional attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import quote

from digital_village.gs1.digital_link import DigitalLink
from digital_village.web import linkset
from digital_village.web.items import Facts
from digital_village.web.linkset import LinkContext, Target

Level = Literal["product", "lot", "serial"]

# Where the consumer, lot and product pages are: the Digital Link path under this prefix.
PAGE_PREFIX: Final = "/page"


def page_uri(base: str, link: DigitalLink) -> str:
    """The page of an item (``gs1:pip``): ``<base>/page/01/<GTIN>[/10/<lot>[/21/<serial>]]``."""
    return f"{base}{PAGE_PREFIX}{link.path}"


def _lot_path(gtin: str, lot: str) -> str:
    return f"{gtin}/{quote(lot, safe='')}"


def _pip(base: str, link: DigitalLink, level: Level) -> list[Target]:
    page = page_uri(base, link)
    titles = {
        "product": ("产品信息", "About this product"),
        "lot": ("产品溯源信息", "Where this lot comes from"),
        "serial": ("产品溯源信息", "Where this product comes from"),
    }[level]
    return [
        Target(page, titles[0], "text/html", ("zh-CN",)),
        Target(linkset.with_query(page, lang="en"), titles[1], "text/html", ("en",)),
    ]


def _traceability(base: str, link: DigitalLink, level: Level) -> list[Target]:
    assert link.lot is not None
    path = f"{base}/api/v1/trace/{_lot_path(link.gtin, link.lot)}"
    if level == "serial":
        assert link.serial is not None
        path += f"/{quote(link.serial, safe='')}"
    return [Target(path, "Trace graph: parcels, lots, events", "application/json")]


def _epcis(base: str, link: DigitalLink, level: Level) -> list[Target]:
    assert link.lot is not None
    href = f"{base}/api/v1/lots/{_lot_path(link.gtin, link.lot)}/epcis"
    return [Target(href, "EPCIS 2.0 events of the lot", "application/ld+json")]


def _certification_info(base: str, link: DigitalLink, level: Level) -> list[Target]:
    assert link.lot is not None
    href = f"{base}/api/v1/lots/{_lot_path(link.gtin, link.lot)}/certificates"
    return [Target(href, "承诺达标合格证", "application/json")]


@dataclass(frozen=True)
class LinkType:
    """One link type: at which levels an item has it, and its targets there."""

    name: str
    levels: frozenset[Level]
    targets: Callable[[str, DigitalLink, Level], list[Target]]
    certified_only: bool = False  # only a lot with a 合格证 (its own or its inputs')

    def held(self, level: Level, *, certified: bool) -> bool:
        return level in self.levels and (certified or not self.certified_only)


_EVERY: Final = frozenset[Level]({"product", "lot", "serial"})
_LOTS: Final = frozenset[Level]({"lot", "serial"})

# In the order a linkset lists them; gs1:defaultLink (the first page target) comes last.
LINK_TYPES: Final[Mapping[str, LinkType]] = {
    row.name: row
    for row in (
        LinkType(linkset.PIP, _EVERY, _pip),
        LinkType(linkset.TRACEABILITY, _LOTS, _traceability),
        LinkType(linkset.EPCIS, frozenset({"lot"}), _epcis),
        LinkType(
            linkset.CERTIFICATION_INFO,
            frozenset({"lot"}),
            _certification_info,
            certified_only=True,
        ),
    )
}


def titles(facts: Facts, lot: str | None, serial: str | None) -> str:
    text = facts.product
    if lot is not None:
        text += f", lot {lot}"
    if serial is not None:
        text += f", serial {serial}"
    return text


def item_links(
    base: str, link: DigitalLink, level: Level, *, certified: bool
) -> dict[str, list[Target]]:
    """The links a linkset lists at one level, by link type (the default link last)."""
    links: dict[str, list[Target]] = {}
    for row in LINK_TYPES.values():
        if row.held(level, certified=certified):
            links[row.name] = row.targets(base, link, level)
    links[linkset.DEFAULT_LINK] = [links[linkset.PIP][0].plain()]
    return links


def levels(facts: Facts, canonical: DigitalLink) -> list[tuple[Level, DigitalLink]]:
    """The identification levels of a request, finest first (serial, lot, product)."""
    found: list[tuple[Level, DigitalLink]] = []
    if canonical.serial is not None and facts.lot is not None:
        found.append(("serial", DigitalLink(facts.gtin, lot=facts.lot, serial=canonical.serial)))
    if facts.lot is not None:
        found.append(("lot", DigitalLink(facts.gtin, lot=facts.lot)))
    found.append(("product", DigitalLink(facts.gtin)))
    return found


def link_contexts(
    facts: Facts, canonical: DigitalLink, base: str, *, certified: bool
) -> list[LinkContext]:
    """One link context per level of the request, finest first (serial, lot, product)."""
    return [
        LinkContext(
            anchor=level_link.uri(base),
            description=titles(facts, level_link.lot, level_link.serial),
            links=item_links(base, level_link, level, certified=certified),
        )
        for level, level_link in levels(facts, canonical)
    ]


def default_target(facts: Facts, canonical: DigitalLink, base: str) -> Target:
    """Where a plain request goes: the page of the finest level."""
    level, level_link = levels(facts, canonical)[0]
    return _pip(base, level_link, level)[0].plain()


def targets_of(
    name: str, facts: Facts, canonical: DigitalLink, base: str, *, certified: bool
) -> list[Target]:
    """The targets of a link type at the finest level that has it ([]: none has it)."""
    if name == linkset.DEFAULT_LINK:
        return [default_target(facts, canonical, base)]
    row = LINK_TYPES.get(name)
    if row is None:
        return []
    for level, level_link in levels(facts, canonical):
        if row.held(level, certified=certified):
            return row.targets(base, level_link, level)
    return []
