"""HTTP routes of the EPCIS 2.0 interface's named queries and their subscriptions (GS1's REST
binding, under ``/api/v1/epcis/queries``): create, read and delete a named query, its events,
webhook subscriptions, and WebSocket subscriptions on the query's events path. The event query
itself and capture are :mod:`digital_village.trace.epcis_routes`."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Request, Response, WebSocket
from starlette.concurrency import run_in_threadpool

from digital_village.api.deps import SessionDep
from digital_village.auth import service as auth
from digital_village.auth.dependencies import ActorDep
from digital_village.db import Database, utcnow
from digital_village.errors import (
    DomainError,
    Invalid,
    Unauthorized,
)
from digital_village.trace import (
    epcis_query,
    epcis_query_run,
)
from digital_village.trace.epcis_query import SimpleEventQuery
from digital_village.trace.epcis_routes import (
    EPCIS_HEADERS,
    EVENTS_RESPONSES,
    ROOT,
    PageKeyDep,
    PageToken,
    PerPage,
    events_answer,
    json_or_xml,
    next_link,
    only_paging,
    query_of,
)
from digital_village.trace.subscriptions import delivery
from digital_village.trace.subscriptions import schedule as schedules
from digital_village.trace.subscriptions import service as subscriptions
from digital_village.trace.subscriptions.schemas import (
    NamedQueryIn,
    NamedQueryOut,
    SubscriptionIn,
    SubscriptionOut,
)

queries_router = APIRouter(prefix=ROOT, tags=["epcis"], dependencies=[Depends(json_or_xml)])


@queries_router.post("/queries", status_code=201, response_model_by_alias=True)
def create_query(
    body: NamedQueryIn, session: SessionDep, actor: ActorDep, response: Response
) -> NamedQueryOut:
    """Keep a query under a name; read its events at ``/queries/{name}/events``."""
    row = subscriptions.create_query(session=session, actor=actor, name=body.name, query=body.query)
    response.headers.update({**EPCIS_HEADERS, "Location": f"{ROOT}/queries/{row.name}"})
    return NamedQueryOut.of(row)


@queries_router.get("/queries", response_model_by_alias=True)
def list_queries(
    request: Request,
    session: SessionDep,
    actor: ActorDep,
    key: PageKeyDep,
    response: Response,
    per_page: PerPage = epcis_query.DEFAULT_PER_PAGE,
    next_page_token: PageToken = None,
) -> list[NamedQueryOut]:
    """The named queries this token may read, by name."""
    only_paging(request)
    after = None
    if next_page_token:
        after = epcis_query_run.read_token(key, next_page_token, fingerprint="queries")["k"]
    rows = subscriptions.list_queries(session=session, actor=actor, after=after, limit=per_page + 1)
    headers = dict(EPCIS_HEADERS)
    if len(rows) > per_page:
        rows = rows[:per_page]
        token = epcis_query_run.sign_token(key, {"f": "queries", "k": rows[-1].name, "n": 0})
        next_link(request, token, headers)
    response.headers.update(headers)
    return [NamedQueryOut.of(row) for row in rows]


@queries_router.get("/queries/{name}", response_model_by_alias=True)
def get_query(name: str, session: SessionDep, actor: ActorDep, response: Response) -> NamedQueryOut:
    """A named query."""
    response.headers.update(EPCIS_HEADERS)
    return NamedQueryOut.of(subscriptions.get_query(session=session, actor=actor, name=name))


@queries_router.delete("/queries/{name}", status_code=204)
def delete_query(name: str, session: SessionDep, actor: ActorDep) -> Response:
    """Remove a named query, its subscriptions and their undelivered deliveries."""
    subscriptions.delete_query(session=session, actor=actor, name=name)
    return Response(status_code=204, headers=EPCIS_HEADERS)


@queries_router.get("/queries/{name}/events", responses=EVENTS_RESPONSES)
def named_query_events(
    name: str, request: Request, session: SessionDep, actor: ActorDep, key: PageKeyDep
) -> Response:
    """The named query's events, paged; a WebSocket upgrade on this path subscribes instead."""
    only_paging(request)
    row = subscriptions.get_query(session=session, actor=actor, name=name)
    stored = epcis_query.as_params(subscriptions.stored_query(row))
    query = query_of(request, stored)
    return events_answer(request, session, actor, key, query, query_name=name)


@queries_router.post("/queries/{name}/subscriptions", status_code=201, response_model_by_alias=True)
def subscribe(
    name: str, body: SubscriptionIn, session: SessionDep, actor: ActorDep, response: Response
) -> SubscriptionOut:
    """Subscribe a webhook (``dest``) to a named query: ``stream`` on each capture, or on a
    ``schedule``; deliveries are signed with ``signatureToken`` (GS1-Signature header)."""
    row = subscriptions.subscribe(
        session=session,
        actor=actor,
        name=name,
        wanted=subscriptions.SubscriptionIn(
            dest=body.dest,
            signature_token=body.signature_token,
            report_if_empty=body.report_if_empty,
            stream=body.stream,
            schedule=body.schedule,
            initial_record_time=body.initial_record_time,
        ),
        now=utcnow(),
    )
    location = f"{ROOT}/queries/{name}/subscriptions/{row.id}"
    response.headers.update({**EPCIS_HEADERS, "Location": location})
    return SubscriptionOut.of(row)


@queries_router.get("/queries/{name}/subscriptions", response_model_by_alias=True)
def list_subscriptions(
    name: str, session: SessionDep, actor: ActorDep, response: Response
) -> list[SubscriptionOut]:
    """The subscriptions of a named query."""
    response.headers.update(EPCIS_HEADERS)
    rows = subscriptions.list_subscriptions(session=session, actor=actor, name=name)
    return [SubscriptionOut.of(row) for row in rows]


@queries_router.get("/queries/{name}/subscriptions/{subscription_id}", response_model_by_alias=True)
def get_subscription(
    name: str, subscription_id: str, session: SessionDep, actor: ActorDep, response: Response
) -> SubscriptionOut:
    """One subscription (its signatureToken is never answered back)."""
    response.headers.update(EPCIS_HEADERS)
    row = subscriptions.get_subscription(
        session=session, actor=actor, name=name, subscription_id=subscription_id
    )
    return SubscriptionOut.of(row)


@queries_router.delete("/queries/{name}/subscriptions/{subscription_id}", status_code=204)
def unsubscribe(name: str, subscription_id: str, session: SessionDep, actor: ActorDep) -> Response:
    """End a subscription; its undelivered deliveries are dropped."""
    subscriptions.unsubscribe(
        session=session, actor=actor, name=name, subscription_id=subscription_id
    )
    return Response(status_code=204, headers=EPCIS_HEADERS)


# WebSocket subscriptions: parameters of the upgrade request besides the query's own.
_SCHEDULE_FIELDS = tuple(name for name, _, _ in schedules.FIELDS)
_SOCKET_PARAMETERS = frozenset({"stream", "reportIfEmpty", "initialRecordTime", *_SCHEDULE_FIELDS})
SOCKET_POLL_SECONDS = 0.1


@queries_router.websocket("/queries/{name}/events")
async def named_query_socket(websocket: WebSocket, name: str) -> None:
    """Subscribe by WebSocket: each new matching event (``stream=true``) or each run of a
    schedule (``second``, ``minute``, … parameters) arrives as an EPCISQueryDocument text
    message. The bearer token goes in the Authorization header of the upgrade request."""
    database: Database = websocket.app.state.db
    try:
        plan = await run_in_threadpool(_socket_plan, database, websocket, name)
    except DomainError as error:
        await websocket.close(code=1008, reason=error.detail[:120])
        return
    await websocket.accept()
    subscription_id = f"ws:{uuid.uuid4()}"
    cursor = plan.cursor
    next_run = plan.schedule.next_after(utcnow()) if plan.schedule is not None else None
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout=SOCKET_POLL_SECONDS)
        except TimeoutError:
            message = None
        if message is not None and message["type"] == "websocket.disconnect":
            return
        if next_run is not None:
            if utcnow() < next_run:
                continue
            assert plan.schedule is not None
            next_run = plan.schedule.next_after(utcnow())
        cursor, document = await run_in_threadpool(
            _socket_batch, database, plan, cursor, name, subscription_id
        )
        if document is not None:
            await websocket.send_text(document)


@dataclass(frozen=True)
class _SocketPlan:
    query: SimpleEventQuery
    scope: epcis_query_run.ReadScope
    cursor: int
    schedule: schedules.Schedule | None
    report_if_empty: bool


def _socket_plan(database: Database, websocket: WebSocket, name: str) -> _SocketPlan:
    """Check the upgrade request: token, named query, stream or schedule."""
    authorization = websocket.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("this WebSocket needs a bearer token (Authorization: Bearer dv_…)")
    params = websocket.query_params
    for parameter in params:
        if parameter not in _SOCKET_PARAMETERS:
            raise epcis_query.QueryParameterError(parameter, f"unknown parameter {parameter!r}")
    stream = params.get("stream", "").lower() == "true"
    fields = {field: params[field] for field in _SCHEDULE_FIELDS if field in params}
    if stream == bool(fields):
        raise Invalid("give either stream=true or a schedule (second, minute, …)", field="stream")
    with database.session() as session:
        actor = auth.authenticate(session=session, token=token)
        row = subscriptions.get_query(session=session, actor=actor, name=name)
        query = subscriptions.parse_stored(subscriptions.stored_query(row))
        initial = params.get("initialRecordTime")
        if initial:
            start = epcis_query.parse_time("initialRecordTime", initial)
            cursor = epcis_query_run.first_pk_recorded_since(session, start)
        else:
            cursor = epcis_query_run.newest_event_pk(session)
    return _SocketPlan(
        query=query,
        scope=epcis_query_run.ReadScope.of(actor),
        cursor=cursor,
        schedule=schedules.parse(fields) if fields else None,
        report_if_empty=params.get("reportIfEmpty", "").lower() == "true",
    )


def _socket_batch(
    database: Database, plan: _SocketPlan, cursor: int, name: str, subscription_id: str
) -> tuple[int, str | None]:
    """The next message of a WebSocket subscription (None: nothing to send) and its cursor."""
    with database.session() as session:
        newest = epcis_query_run.newest_event_pk(session)
        pks = epcis_query_run.matching_between(
            session=session,
            query=plan.query,
            scope=plan.scope,
            after_pk=cursor,
            upto_pk=newest,
            limit=subscriptions.MAX_EVENTS_PER_DELIVERY,
        )
        if len(pks) == subscriptions.MAX_EVENTS_PER_DELIVERY:
            newest = pks[-1]
        if not pks and not (plan.schedule is not None and plan.report_if_empty):
            return max(cursor, newest), None
        bodies = epcis_query_run.bodies_of(session, pks)
        document = delivery.query_document(
            events=[bodies[pk] for pk in pks],
            query_name=name,
            subscription_id=subscription_id,
            document_id=f"urn:uuid:{uuid.uuid4()}",
            created=utcnow(),
        )
    return max(cursor, newest), json.dumps(document, ensure_ascii=False)


# --- top-level resources ----------------------------------------------------------------------

# Each resource and the query parameter its /{value}/events adds.
