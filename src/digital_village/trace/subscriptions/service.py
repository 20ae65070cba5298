"""Named queries, subscriptions and the delivery journal: every query of their tables.

Services never commit: the request (or the delivery worker's transaction) does.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from digital_village.auth import service as auth
from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.errors import Conflict, Forbidden, Invalid, NotFound
from digital_village.trace import epcis_query, epcis_query_run
from digital_village.trace.epcis_query_run import ReadScope
from digital_village.trace.subscriptions import schedule as schedules
from digital_village.trace.subscriptions.models import Delivery, NamedQuery, Subscription

NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.~-]{0,199}$")
# Events one webhook delivery carries at most; more make several deliveries.
MAX_EVENTS_PER_DELIVERY: Final = 1000
# Retry delays after a failed attempt: 1 s doubling, at most 10 minutes; never given up while
# the subscription exists (at least once).
FIRST_RETRY_SECONDS: Final = 1.0
MAX_RETRY_SECONDS: Final = 600.0


def _scope_columns(actor: Actor) -> dict[str, Any]:
    scope = ReadScope.of(actor)
    return {
        "token_public_id": actor.token_public_id,
        "role": scope.role.value,
        "cooperative_id": scope.cooperative_id,
        "household_id": scope.household_id,
    }


def scope_of(row: NamedQuery | Subscription) -> ReadScope:
    """The read scope a named query or a subscription was created with."""
    return ReadScope(Role(row.role), row.cooperative_id, row.household_id)


def _visible(actor: Actor, row: NamedQuery | Subscription) -> bool:
    if actor.is_admin:
        return True
    return (row.role, row.cooperative_id, row.household_id) == (
        actor.role.value,
        actor.cooperative_id,
        actor.household_id,
    )


# --- named queries --------------------------------------------------------------------------


def parse_stored(query: Mapping[str, Any]) -> epcis_query.SimpleEventQuery:
    """A named query's parameters as a query (its paging parameters are the reader's)."""
    return epcis_query.parse(epcis_query.as_params(query))


def create_query(
    *, session: Session, actor: Actor, name: str, query: Mapping[str, Any]
) -> NamedQuery:
    """Keep a query under a name; its parameters are checked as a GET would check them."""
    if not NAME_PATTERN.fullmatch(name):
        raise Invalid(
            f"query name {name!r}: 1-200 letters, digits, '_', '.', '~' or '-'", field="name"
        )
    for paging in sorted(epcis_query.PAGING & set(query)):
        raise Invalid(f"{paging} is not part of a named query; give it when reading", field=paging)
    parse_stored(query)
    columns = _scope_columns(actor)
    if session.get(NamedQuery, name) is not None:
        raise Conflict(f"a query named {name!r} exists already", name=name)
    row = NamedQuery(name=name, query=json.dumps(dict(query), ensure_ascii=False), **columns)
    session.add(row)
    session.flush()
    return row


def get_query(*, session: Session, actor: Actor, name: str) -> NamedQuery:
    """A named query the actor may read (404 for another reader's: names are not revealed)."""
    ReadScope.of(actor)
    row = session.get(NamedQuery, name)
    if row is None or not _visible(actor, row):
        raise NotFound(f"no named query {name!r}")
    return row


def list_queries(
    *, session: Session, actor: Actor, after: str | None, limit: int
) -> list[NamedQuery]:
    """The named queries the actor may read, by name, after ``after``."""
    ReadScope.of(actor)
    statement = select(NamedQuery).order_by(NamedQuery.name)
    if after is not None:
        statement = statement.where(NamedQuery.name > after)
    if not actor.is_admin:
        statement = statement.where(
            NamedQuery.role == actor.role.value,
            _same(NamedQuery.cooperative_id, actor.cooperative_id),
            _same(NamedQuery.household_id, actor.household_id),
        )
    return list(session.scalars(statement.limit(limit)))


def _same(column: Any, value: int | None) -> Any:
    return column.is_(None) if value is None else column == value


def stored_query(row: NamedQuery) -> dict[str, Any]:
    query: dict[str, Any] = json.loads(row.query)
    return query


def delete_query(*, session: Session, actor: Actor, name: str) -> None:
    """Remove a named query with its subscriptions and their pending deliveries."""
    row = get_query(session=session, actor=actor, name=name)
    _require_owner(actor, row)
    subscriptions = select(Subscription.id).where(Subscription.query_name == name)
    session.execute(delete(Delivery).where(Delivery.subscription_id.in_(subscriptions)))
    session.execute(delete(Subscription).where(Subscription.query_name == name))
    session.delete(row)
    session.flush()


def _require_owner(actor: Actor, row: NamedQuery | Subscription) -> None:
    if actor.is_admin or row.token_public_id == actor.token_public_id:
        return
    raise Forbidden("only the token that made it, or an admin, may delete it")


# --- subscriptions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionIn:
    """What a client asks for (``POST …/queries/{name}/subscriptions``)."""

    dest: str
    signature_token: str | None = None
    report_if_empty: bool = False
    stream: bool = False
    schedule: Mapping[str, Any] | None = None
    initial_record_time: dt.datetime | None = None


def _check_dest(dest: str) -> None:
    parts = urlsplit(dest)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise Invalid(f"dest {dest!r} is not an http(s) URL", field="dest")


def subscribe(
    *, session: Session, actor: Actor, name: str, wanted: SubscriptionIn, now: dt.datetime
) -> Subscription:
    """Subscribe ``dest`` to a named query: streamed on each capture, or on a schedule."""
    query = get_query(session=session, actor=actor, name=name)
    _check_dest(wanted.dest)
    if wanted.stream == (wanted.schedule is not None):
        raise Invalid(
            'a subscription needs either "stream": true or a "schedule", not both',
            field="stream",
        )
    next_run = None
    if wanted.schedule is not None:
        next_run = schedules.parse(wanted.schedule).next_after(now)
    if wanted.initial_record_time is not None:
        cursor = epcis_query_run.first_pk_recorded_since(session, wanted.initial_record_time)
    else:
        cursor = epcis_query_run.newest_event_pk(session)
    row = Subscription(
        id=str(uuid.uuid4()),
        query_name=query.name,
        dest=wanted.dest,
        signature_token=wanted.signature_token,
        report_if_empty=wanted.report_if_empty,
        stream=wanted.stream,
        schedule=json.dumps(dict(wanted.schedule)) if wanted.schedule is not None else None,
        next_run_at=next_run,
        initial_record_time=wanted.initial_record_time,
        cursor_pk=cursor,
        created_at=now,
        **_scope_columns(actor),
    )
    session.add(row)
    session.flush()
    return row


def list_subscriptions(*, session: Session, actor: Actor, name: str) -> list[Subscription]:
    get_query(session=session, actor=actor, name=name)
    rows = session.scalars(
        select(Subscription)
        .where(Subscription.query_name == name)
        .order_by(Subscription.created_at, Subscription.id)
    )
    return [row for row in rows if _visible(actor, row)]


def get_subscription(
    *, session: Session, actor: Actor, name: str, subscription_id: str
) -> Subscription:
    ReadScope.of(actor)
    row = session.get(Subscription, subscription_id)
    if row is None or row.query_name != name or not _visible(actor, row):
        raise NotFound(f"no subscription {subscription_id} of query {name!r}")
    return row


def unsubscribe(*, session: Session, actor: Actor, name: str, subscription_id: str) -> None:
    row = get_subscription(session=session, actor=actor, name=name, subscription_id=subscription_id)
    _require_owner(actor, row)
    session.execute(delete(Delivery).where(Delivery.subscription_id == row.id))
    session.delete(row)
    session.flush()


def deliveries_of(*, session: Session, subscription_id: str) -> list[Delivery]:
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.subscription_id == subscription_id)
            .order_by(Delivery.created_at, Delivery.id)
        )
    )


# --- the journal ----------------------------------------------------------------------------


def has_work(session: Session, now: dt.datetime) -> bool:
    """Whether planning or sending has anything to do (a cheap read, no write lock)."""
    newest = epcis_query_run.newest_event_pk(session)
    behind = session.scalar(
        select(func.count())
        .select_from(Subscription)
        .where(
            or_(
                Subscription.stream.is_(True) & (Subscription.cursor_pk < newest),
                Subscription.next_run_at <= now,
            )
        )
    )
    if behind:
        return True
    due = session.scalar(
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.delivered_at.is_(None), Delivery.next_attempt_at <= now)
    )
    return bool(due)


def _new_delivery(subscription: Subscription, pks: Sequence[int], now: dt.datetime) -> Delivery:
    return Delivery(
        id=str(uuid.uuid4()),
        subscription_id=subscription.id,
        event_pks=json.dumps(list(pks)),
        event_count=len(pks),
        created_at=now,
        next_attempt_at=now,
    )


def plan(session: Session, now: dt.datetime) -> int:
    """Journal the deliveries that new events (stream) and due schedules call for, moving each
    subscription's cursor in the same transaction. Returns how many deliveries were made."""
    newest = epcis_query_run.newest_event_pk(session)
    due = session.scalars(
        select(Subscription)
        .where(
            or_(
                Subscription.stream.is_(True) & (Subscription.cursor_pk < newest),
                Subscription.next_run_at <= now,
            )
        )
        .order_by(Subscription.id)
    ).all()
    made = 0
    revoked = _revoked_tokens(session) if due else set()
    for subscription in due:
        query = parse_stored(stored_query(session.get_one(NamedQuery, subscription.query_name)))
        scope = scope_of(subscription)
        cursor = subscription.cursor_pk
        batches: list[list[int]] = []
        if subscription.token_public_id in revoked:
            # Its creator may read nothing any more: the events pass it by.
            cursor = newest
        while cursor < newest:
            pks = epcis_query_run.matching_between(
                session=session,
                query=query,
                scope=scope,
                after_pk=cursor,
                upto_pk=newest,
                limit=MAX_EVENTS_PER_DELIVERY,
            )
            if pks:
                batches.append(pks)
            cursor = newest if len(pks) < MAX_EVENTS_PER_DELIVERY else pks[-1]
        if not subscription.stream:
            if not batches and subscription.report_if_empty:
                batches.append([])
            assert subscription.schedule is not None
            rule = schedules.parse(json.loads(subscription.schedule))
            subscription.next_run_at = rule.next_after(now)
        for pks in batches:
            session.add(_new_delivery(subscription, pks, now))
            made += 1
        subscription.cursor_pk = cursor
    session.flush()
    return made


def _revoked_tokens(session: Session) -> set[str]:
    return {
        token.public_id
        for token in auth.list_tokens(session=session, include_revoked=True)
        if token.revoked_at is not None
    }


@dataclass(frozen=True)
class Outgoing:
    """A delivery claimed for sending, with what the sender needs."""

    delivery_id: str
    subscription_id: str
    query_name: str
    dest: str
    signature_token: str | None
    event_pks: list[int]
    attempt: int
    # When it was journaled: the document's creationDate, so every attempt sends the same bytes.
    created_at: dt.datetime


def claim_due(session: Session, now: dt.datetime, *, limit: int, lease: float) -> list[Outgoing]:
    """Claim due deliveries (oldest first): each is not due again for ``lease`` seconds, so
    another worker does not send it meanwhile; a worker that dies leaves it due again."""
    rows = session.execute(
        select(Delivery, Subscription)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(Delivery.delivered_at.is_(None), Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.created_at)
        .limit(limit)
    ).all()
    claimed: list[Outgoing] = []
    until = now + dt.timedelta(seconds=lease)
    for delivery, subscription in rows:
        delivery.attempts += 1
        delivery.next_attempt_at = until
        claimed.append(
            Outgoing(
                delivery_id=delivery.id,
                subscription_id=subscription.id,
                query_name=subscription.query_name,
                dest=subscription.dest,
                signature_token=subscription.signature_token,
                event_pks=json.loads(delivery.event_pks),
                attempt=delivery.attempts,
                created_at=delivery.created_at,
            )
        )
    session.flush()
    return claimed


def retry_delay(attempt: int) -> float:
    return float(min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** max(0, attempt - 1)))


def record_results(
    session: Session,
    now: dt.datetime,
    sent: Sequence[tuple[Outgoing, str | None]],
) -> None:
    """Mark sent deliveries delivered, and failed ones due again after their back-off."""
    for outgoing, error in sent:
        if error is None:
            session.execute(
                update(Delivery)
                .where(Delivery.id == outgoing.delivery_id)
                .values(delivered_at=now, last_error=None)
            )
            session.execute(
                update(Subscription)
                .where(Subscription.id == outgoing.subscription_id)
                .values(last_notified_at=now)
            )
        else:
            session.execute(
                update(Delivery)
                .where(Delivery.id == outgoing.delivery_id)
                .values(
                    next_attempt_at=now + dt.timedelta(seconds=retry_delay(outgoing.attempt)),
                    last_error=error[:1000],
                )
            )


def release(session: Session, now: dt.datetime, delivery_ids: Sequence[str]) -> None:
    """Make claimed deliveries that were never sent due again at once (a worker stopping)."""
    if delivery_ids:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(list(delivery_ids)), Delivery.delivered_at.is_(None))
            .values(next_attempt_at=now)
        )
