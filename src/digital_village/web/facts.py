"""The facts a page shows, each paired with the ledger entry that records it.

A :class:`Fact` names an entry (its index) and, as *claims*, the values the page shows from it
by where the entry records each (RFC 6901 JSON pointers). A template writes
``<dd{{ fact | fact_attrs }}>…</dd>``; the page's verification panel (static/verify-panel.js)
fetches every named entry with its inclusion proof in one request, proves them all against one
signed checkpoint and compares each claim with its entry, marking a fact that fails where it
stands. So a row edited behind the application's back shows as "not verified" in the reader's
browser, as an entry edited, removed, or not covered by the checkpoint the server serves does.

A fact recorded before the ledger carried such facts is shown with "cannot be checked" and the
page never says "verified" while one is on it: ``Fact(seq, recorded=False)`` names the entry
that would have recorded it (its inclusion is still checked: an edited entry fails), and
:data:`UNBOUND` names none.

Facts come from rows the audit binds to entries (``trace/recorded.py``,
``parcels/recorded.py`` say which field of which entry) or from entry bodies themselves, which
never change: building them reads a handful of entries, and a view made of them stays valid
until a chain it shows gets a new entry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup


@dataclass(frozen=True)
class Fact:
    """Something a page shows: the entry that records it and what the page claims it holds."""

    seq: int | None
    claims: Mapping[str, Any] = field(default_factory=dict)
    # False: the entry was made before the ledger recorded this kind of fact.
    recorded: bool = True
    # More entries the fact rests on (a chart drawn from many seals): each must be proven.
    more: tuple[int, ...] = ()


UNBOUND = Fact(None, recorded=False)


def of(seq: int | None, claims: Mapping[str, Any] | None = None) -> Fact:
    """A fact of entry ``seq`` with the given claims (None: no entry records it)."""
    return Fact(seq, dict(claims or {}), recorded=seq is not None)


def of_entries(seqs: Sequence[int]) -> Fact:
    """A fact drawn from several entries (no claims: the page shows what they record)."""
    if not seqs:
        return UNBOUND
    return Fact(seqs[0], more=tuple(seqs[1:]))


def unrecorded(seq: int | None) -> Fact:
    """A fact entry ``seq`` is about but does not record (it was made before it did)."""
    return Fact(seq, recorded=False)


def attrs(fact: Fact | None) -> Markup:
    """The attributes that mark an element as showing ``fact`` (nothing for None)."""
    if fact is None:
        return Markup("")
    index = "" if fact.seq is None else " ".join(map(str, (fact.seq, *fact.more)))
    marked = Markup(' data-fact="{}"').format(index)
    if not fact.recorded:
        marked += Markup(" data-fact-unrecorded")
    if fact.claims:
        claims = json.dumps(dict(fact.claims), ensure_ascii=False, separators=(",", ":"))
        marked += Markup(' data-fact-claims="{}"').format(claims)
    return marked
