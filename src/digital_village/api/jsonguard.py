"""What every JSON request body must be before any route parses it: UTF-8 text whose strings are
Unicode (no lone UTF-16 surrogate written as an escape, RFC 7493 I-JSON), nested no deeper than
a limit (checked before any parser recurses into it). Anything else is a 422 problem+json naming
the fault, for every route at once: Python's own JSON parser accepts ``"\\ud800"`` and hands on a
string that no encoder can write (the event hash, the ledger, the database), and it is too late
to catch that in each of them."""

from __future__ import annotations

import re

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digital_village.api.problems import problem

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
# A \u escape of a surrogate, with the backslashes before it (an even number of them more is an
# escaped backslash followed by plain text "u…").
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u([dD][89a-fA-F][0-9a-fA-F]{2})")
_STEP = np.zeros(256, dtype=np.int8)
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')


def max_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in a JSON text (brackets in strings ignored).

    Vectorised so a large telemetry batch costs a fraction of a millisecond, not a Python loop
    per byte.
    """
    if b"\\" not in body:
        # Without escapes every quote opens or closes a string, so a bracket lies outside strings
        # when an even number of quotes precede it. Keep only quotes and brackets (a C loop over
        # the body), drop adjacent pairs of quotes (strings without brackets; each drop removes
        # two quotes, so no bracket changes sides), and split what little is left.
        kept = body.translate(None, _NOT_STRUCTURE).replace(b'""', b"")
        structure = b"".join(kept.split(b'"')[0::2]) if b'"' in kept else kept
    else:
        structure = _STRING.sub(b"", body)
    if not structure:
        return 0
    steps = _STEP[np.frombuffer(structure, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def unicode_fault(body: bytes) -> str | None:
    """Why a JSON body is not Unicode text (invalid UTF-8, a lone surrogate escape), or None."""
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as error:
            return (
                f"the JSON body is not UTF-8: byte {error.start} "
                f"(0x{body[error.start]:02x}) {error.reason}"
            )
    if b"\\u" not in body:
        return None
    pending_high: tuple[int, str] | None = None  # a high surrogate escape awaiting its low half
    for match in _SURROGATE_ESCAPE.finditer(body):
        if len(match.group(1)) % 2 == 0:
            continue  # an escaped backslash, then the letter u: plain text
        code = match.group(2).decode().lower()
        high = code[1] in "89ab"
        if pending_high is not None:
            end, first = pending_high
            pending_high = None
            if not high and match.start() == end:
                continue  # the low half right after its high half: a pair
            return _lone(first, end - 6)
        if high:
            pending_high = (match.end(), code)
        else:
            return _lone(code, match.start() + len(match.group(1)) - 1)
    if pending_high is not None:
        end, first = pending_high
        return _lone(first, end - 6)
    return None


def _lone(code: str, at: int) -> str:
    return (
        f"the JSON body holds a lone surrogate \\u{code} at byte {at}: JSON text must be "
        "Unicode, and a surrogate escape only encodes a character as half of a pair (RFC 7493)"
    )


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class JsonGuardMiddleware:
    """Refuse JSON bodies that are not Unicode text, or nested deeper than a limit, with a 422
    naming the fault."""

    def __init__(self, app: ASGIApp, max_depth: int) -> None:
        self.app = app
        self.limit = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        fault = unicode_fault(body)
        if fault is not None:
            await problem(422, fault)(scope, receive, send)
            return
        depth = max_depth(body)
        if depth > self.limit:
            await problem(
                422, f"JSON nested {depth} levels deep; the limit is {self.limit}", limit=self.limit
            )(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
