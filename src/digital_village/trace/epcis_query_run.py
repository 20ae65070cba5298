"""Running an EPCIS query on the event store: SQL for what ``trace_event`` holds in columns,
the JSON checks of ``epcis_query_match`` for the rest, pages cut by a signed cursor.

The cursor (``nextPageToken``) is opaque to clients and tamper-evident: the sort key of the last
event returned, the number returned so far (for ``eventCountLimit``) and the query's
fingerprint, with an HMAC-SHA256 under a key derived from the server's signing key. A token
altered, forged or used with other query parameters is refused with 400.

Access: an admin reads every event, a manager its cooperative's, a farmer its household's
(:class:`ReadScope`; a subscription keeps its creator's scope).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.errors import Forbidden
from digital_village.trace import store
from digital_village.trace.epcis_query import (
    MATCH_FIELDS,
    Bound,
    QueryParameterError,
    QueryTooLarge,
    SimpleEventQuery,
)
from digital_village.trace.identifiers import canonical_epc
from digital_village.trace.models import Event, EventEpc

# Events read and checked at most per page when JSON checks reject most of them: a page may then
# hold fewer than perPage events and a nextPageToken to go on from where the scan stopped.
SCAN_LIMIT: Final = 20_000
# A key of ``SimpleEventQuery.matches`` naming an identifier in any field (``epcs/{epc}/events``).
ANY_FIELD: Final = "*"
_TOKEN_CONTEXT: Final = b"digital-village epcis nextPageToken v1\n"


@dataclass(frozen=True)
class ReadScope:
    """Whose events a reader sees: everything (admin), a cooperative's, or a household's."""

    role: Role
    cooperative_id: int | None = None
    household_id: int | None = None

    @classmethod
    def of(cls, actor: Actor) -> ReadScope:
        if actor.role is Role.DEVICE:
            raise Forbidden("a device token may not read events")
        return cls(actor.role, actor.cooperative_id, actor.household_id)

    def where(self, statement: Select[Any], *, residual: bool = False) -> Select[Any]:
        """Only the reader's events. ``residual``: checked on rows found by another index
        (``cooperative_id + 0`` keeps a planner without statistics, SQLite's, from walking the
        cooperative's index, every event of it, instead of the few an identifier names)."""
        if self.role is Role.ADMIN:
            return statement
        if self.role is Role.MANAGER:
            column: Any = Event.cooperative_id + 0 if residual else Event.cooperative_id
            return statement.where(column == self.cooperative_id)
        if self.role is Role.FARMER:
            return statement.where(Event.household_id == self.household_id)
        return statement.where(Event.id < 0)


@dataclass(frozen=True)
class Page:
    """Events of one page (rows and their EPCIS JSON, in order) and the next page's token."""

    events: list[Event]
    bodies: list[dict[str, Any]]
    next_token: str | None


def token_key(secret: bytes) -> bytes:
    """The page tokens' HMAC key, derived from a server secret (never the secret itself)."""
    return hmac.new(secret, _TOKEN_CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(key: bytes, payload: dict[str, Any]) -> str:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    tag = hmac.new(key, body, hashlib.sha256).digest()[:16]
    return f"{_b64(body)}.{_b64(tag)}"


def read_token(key: bytes, token: str, *, fingerprint: str) -> dict[str, Any]:
    """A token's payload, if this server signed it for a query with this fingerprint."""
    refused = QueryParameterError(
        "nextPageToken",
        f"nextPageToken {token[:40]!r} is not one this server handed out for this query "
        "(it was altered, or the other query parameters changed)",
    )
    try:
        body_text, tag_text = token.split(".")
        body, tag = _unb64(body_text), _unb64(tag_text)
    except (ValueError, binascii.Error):
        raise refused from None
    expected = hmac.new(key, body, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(tag, expected):
        raise refused
    payload: dict[str, Any] = json.loads(body)
    if payload.get("f") != fingerprint:
        raise refused
    return payload


# --- SQL ------------------------------------------------------------------------------------


def _bounds(column: Any, bounds: Sequence[Bound]) -> list[Any]:
    found = []
    for bound in bounds:
        if bound.op == "GE":
            found.append(column >= bound.value)
        elif bound.op == "GT":
            found.append(column > bound.value)
        elif bound.op == "LE":
            found.append(column <= bound.value)
        else:
            found.append(column < bound.value)
    return found


def filtered(query: SimpleEventQuery, scope: ReadScope) -> Select[tuple[Event]]:
    """The events the query's column conditions and the reader's scope allow."""
    statement = scope.where(select(Event), residual=bool(query.matches))
    conditions: list[Any] = [
        *_bounds(Event.event_time, query.event_time),
        *_bounds(Event.record_time, query.record_time),
    ]
    for column, values in (
        (Event.event_type, query.event_types),
        (Event.action, query.actions),
        (Event.biz_step, query.biz_steps),
        (Event.disposition, query.dispositions),
        (Event.read_point, query.read_points),
        (Event.biz_location, query.biz_locations),
        (Event.event_id, query.event_ids),
    ):
        if values:
            conditions.append(column.in_(sorted(set(values))))
    if query.exists_error_declaration:
        conditions.append(Event.declaration.is_(True))
    for name, values in query.matches.items():
        naming = select(EventEpc.event_pk).where(
            EventEpc.epc.in_(sorted({canonical_epc(value) for value in values}))
        )
        if name != ANY_FIELD:
            naming = naming.where(EventEpc.field.in_(MATCH_FIELDS[name]))
        conditions.append(Event.id.in_(naming))
    return statement.where(*conditions) if conditions else statement


def _sort_column(query: SimpleEventQuery) -> Any:
    if query.order_by == "eventTime":
        return Event.event_time
    if query.order_by == "recordTime":
        return Event.record_time
    return None


def ordered(statement: Select[Any], query: SimpleEventQuery) -> Select[Any]:
    column = _sort_column(query)
    if column is None:
        return statement.order_by(Event.id)
    if query.descending:
        return statement.order_by(column.desc(), Event.id.desc())
    return statement.order_by(column, Event.id)


def _key_of(event: Event, query: SimpleEventQuery) -> list[Any]:
    column = _sort_column(query)
    if column is None:
        return [None, event.id]
    moment: dt.datetime = getattr(event, column.key)
    return [moment.isoformat(), event.id]


def _after(statement: Select[Any], query: SimpleEventQuery, key: Sequence[Any]) -> Select[Any]:
    column = _sort_column(query)
    last_id = int(key[1])
    if column is None:
        return statement.where(Event.id > last_id)
    value = dt.datetime.fromisoformat(str(key[0]))
    if query.descending:
        return statement.where(or_(column < value, and_(column == value, Event.id < last_id)))
    return statement.where(or_(column > value, and_(column == value, Event.id > last_id)))


def _scan(
    session: Session,
    statement: Select[Any],
    query: SimpleEventQuery,
    *,
    want: int,
    key: Sequence[Any] | None,
    scan_limit: int = SCAN_LIMIT,
) -> tuple[list[tuple[Event, dict[str, Any]]], Event | None, bool]:
    """Up to ``want`` + 1 matching events after ``key``; the last event read; whether the scan
    stopped early (at ``scan_limit``) with events left unread."""
    chunk = want + 1 if not query.needs_json else max(4 * (want + 1), 200)
    found: list[tuple[Event, dict[str, Any]]] = []
    last: Event | None = None
    scanned = 0
    while True:
        page = statement if key is None else _after(statement, query, key)
        rows = list(session.scalars(ordered(page, query).limit(chunk)))
        if not rows:
            return found, last, False
        bodies = store.event_json(session=session, events=rows, flag_hash_mismatch=True)
        for row, body in zip(rows, bodies, strict=True):
            scanned += 1
            last = row
            if all(check(body) for check in query.checks):
                found.append((row, body))
                if len(found) > want:
                    return found, last, False
        if len(rows) < chunk:
            return found, last, False
        if scanned >= scan_limit:
            return found, last, True
        key = _key_of(rows[-1], query)


def run(*, session: Session, query: SimpleEventQuery, scope: ReadScope, key: bytes) -> Page:
    """One page of the query's events, and the token of the next page (None at the end)."""
    fingerprint = query.fingerprint()
    cursor: Sequence[Any] | None = None
    returned = 0
    if query.next_page_token:
        payload = read_token(key, query.next_page_token, fingerprint=fingerprint)
        cursor, returned = payload["k"], int(payload["n"])
    statement = filtered(query, scope)
    if query.max_event_count is not None and cursor is None:
        _refuse_if_too_many(session, statement, query)
    want = query.per_page
    if query.event_count_limit is not None:
        want = max(0, min(want, query.event_count_limit - returned))
    if want == 0:
        return Page([], [], None)
    found, last, stopped = _scan(session, statement, query, want=want, key=cursor)
    more = len(found) > want
    found = found[:want]
    count = returned + len(found)
    limit_reached = query.event_count_limit is not None and count >= query.event_count_limit
    next_token = None
    resume = found[-1][0] if more else (last if stopped else None)
    if resume is not None and not limit_reached:
        next_token = sign_token(key, {"f": fingerprint, "k": _key_of(resume, query), "n": count})
    return Page([row for row, _ in found], [body for _, body in found], next_token)


def _refuse_if_too_many(session: Session, statement: Select[Any], query: SimpleEventQuery) -> None:
    assert query.max_event_count is not None
    if not query.needs_json:
        count = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    else:
        found, _, _ = _scan(
            session, statement, query, want=query.max_event_count, key=None, scan_limit=10**9
        )
        count = len(found)
    if count > query.max_event_count:
        raise QueryTooLarge(
            f"more than maxEventCount={query.max_event_count} events match "
            f"({count if not query.needs_json else 'at least ' + str(count)}); "
            "narrow the query or page through it without maxEventCount"
        )


def matching_between(
    *,
    session: Session,
    query: SimpleEventQuery,
    scope: ReadScope,
    after_pk: int,
    upto_pk: int,
    limit: int,
) -> list[int]:
    """Ids of matching events with ``after_pk`` < id ≤ ``upto_pk`` in record order, at most
    ``limit`` (a subscription's next delivery)."""
    statement = filtered(query, scope).where(Event.id > after_pk, Event.id <= upto_pk)
    if not query.needs_json:
        ids = session.scalars(statement.with_only_columns(Event.id).order_by(Event.id).limit(limit))
        return [int(pk) for pk in ids]
    record_order = SimpleEventQuery(checks=query.checks)
    found, _, _ = _scan(
        session,
        statement,
        record_order,
        want=limit - 1,
        key=None,
        scan_limit=10**9,
    )
    return [row.id for row, _ in found]


def newest_event_pk(session: Session) -> int:
    """The id of the newest event recorded (0 when there is none)."""
    return int(session.scalar(select(func.max(Event.id))) or 0)


def first_pk_recorded_since(session: Session, moment: dt.datetime) -> int:
    """The id just before the first event recorded at or after ``moment``."""
    first = session.scalar(select(func.min(Event.id)).where(Event.record_time >= moment))
    return int(first) - 1 if first is not None else newest_event_pk(session)


def bodies_of(session: Session, pks: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The EPCIS JSON of events by id."""
    events = list(store.events_by_pk(session=session, pks=pks).values())
    bodies = store.event_json(session=session, events=events, flag_hash_mismatch=True)
    return {event.id: body for event, body in zip(events, bodies, strict=True)}


# --- top-level resources --------------------------------------------------------------------

TOP_LEVEL: Final = {
    "eventTypes": Event.event_type,
    "bizSteps": Event.biz_step,
    "bizLocations": Event.biz_location,
    "readPoints": Event.read_point,
    "dispositions": Event.disposition,
}


def distinct_values(
    *,
    session: Session,
    resource: str,
    scope: ReadScope,
    per_page: int,
    token: str | None,
    key: bytes,
) -> tuple[list[str], str | None]:
    """One page of the distinct values of a top-level resource the reader's events use."""
    after = read_token(key, token, fingerprint=resource)["k"] if token else None
    if resource == "epcs":
        column: Any = EventEpc.epc
        statement = scope.where(select(EventEpc.epc).join(Event, Event.id == EventEpc.event_pk))
    else:
        column = TOP_LEVEL[resource]
        statement = scope.where(select(column)).where(column.is_not(None))
    if after is not None:
        statement = statement.where(column > after)
    values = list(session.scalars(statement.distinct().order_by(column).limit(per_page + 1)))
    next_token = None
    if len(values) > per_page:
        values = values[:per_page]
        next_token = sign_token(key, {"f": resource, "k": values[-1], "n": 0})
    return [str(value) for value in values], next_token
