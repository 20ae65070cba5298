"""Capture jobs: what the EPCIS capture interface does with a document it receives.

A document (EPCIS 2.0 JSON-LD, or EPCIS 2.0/1.2 XML) is read, its events captured all or
nothing (:func:`digital_village.trace.capture.capture`), and the job recorded under a new
capture ID either way: a success with its events, or the errors that refused them, each
naming its fault by JSON pointer (XML: by line). The route only shapes the HTTP answer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.db import utcnow
from digital_village.errors import DomainError, Invalid
from digital_village.ledger.log import Ledger
from digital_village.trace import capture, epcis_xml, store
from digital_village.trace.epcis import EPCISParseError, parse_document
from digital_village.trace.rules import DEFAULT_MAX_QUANTITY


@dataclass(frozen=True)
class CaptureJob:
    """A captured document: its events, or the error that refused them all (as recorded)."""

    capture_id: str
    result: capture.CaptureResult | None
    error: DomainError | None = None
    errors: tuple[dict[str, Any], ...] = ()


def parse_errors(error: EPCISParseError) -> Invalid:
    """The refusal of a document or event that is not EPCIS 2.0, naming each fault."""
    problems = [{"pointer": p.pointer, "message": p.message} for p in error.problems]
    first = error.problems[0] if error.problems else None
    detail = f"{first.pointer or '/'}: {first.message}" if first else "not an EPCIS document"
    return Invalid(f"not a valid EPCIS 2.0 document: {detail}", errors=problems)


def read_capture(media_type: str, body: bytes) -> tuple[list[Any], Any, Any]:
    """The events and @context of a captured body: EPCIS JSON-LD, or EPCIS 2.0/1.2 XML."""
    if epcis_xml.is_xml(media_type):
        try:
            read = epcis_xml.read_document(body)
        except epcis_xml.XMLInputError as error:
            where = f"line {error.line}" if error.line else "the document"
            raise DomainError(
                f"{where}: {error}", errors=[{"pointer": where, "message": str(error)}]
            ) from None
        except EPCISParseError as error:
            raise parse_errors(error) from None
        count = len(read.document["epcisBody"]["eventList"])
        if count > capture.CAPTURE_EVENT_LIMIT:
            capture.check_limit(count)
        try:
            parsed = parse_document(read.document)
        except EPCISParseError as error:
            raise parse_errors(read.locate(error)) from None
        return parsed.epcis_body.event_list, parsed.context, read
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise DomainError(
            f"not valid JSON: {error}", errors=[{"pointer": "", "message": str(error)}]
        ) from None
    event_list = (document.get("epcisBody") or {}).get("eventList") if isinstance(
        document, dict
    ) else None  # fmt: skip
    if isinstance(event_list, list) and len(event_list) > capture.CAPTURE_EVENT_LIMIT:
        capture.check_limit(len(event_list))
    try:
        parsed = parse_document(document)
    except EPCISParseError as error:
        raise parse_errors(error) from None
    return parsed.epcis_body.event_list, parsed.context, None


def capture_document(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    media_type: str,
    body: bytes,
    base_url: str,
    strict_hash: bool = False,
    max_quantity: float = DEFAULT_MAX_QUANTITY,
    reader: Session | None = None,
) -> CaptureJob:
    """Capture a received document as a capture job: every event is stored, or none.

    Either way the job is recorded; a refused document leaves only that record: the session
    is rolled back to before the capture, then the job with its errors is added (the caller
    commits it). ``reader``: see :func:`digital_village.trace.capture.capture`.
    """
    capture_id = uuid.uuid4().hex
    started = utcnow()
    count = 0
    try:
        events, context, _ = read_capture(media_type, body)
        count = len(events)
        result = capture.capture(
            session=session,
            ledger=ledger,
            actor=actor,
            events=events,
            base_url=base_url,
            context=context,
            capture_id=capture_id,
            strict_hash=strict_hash,
            max_quantity=max_quantity,
            reader=reader,
        )
    except DomainError as error:
        session.rollback()
        errors = error.extra.get("errors") or [{"pointer": "", "message": error.detail}]
        store.add_capture(
            session=session,
            capture_id=capture_id,
            success=False,
            event_count=count,
            actor=actor,
            started_at=started,
            errors=errors,
        )
        return CaptureJob(capture_id, None, error, tuple(errors))
    return CaptureJob(capture_id, result)
