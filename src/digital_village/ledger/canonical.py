"""RFC 8785 (JCS) canonical JSON bytes, fast.

The ledger hashes every entry as its RFC 8785 bytes. The ``rfc8785`` package is the reference
and is pure Python: at county scale (a capture of 1,000 events) it was a tenth of the capture's
time. For the values entries are made of, orjson with sorted keys writes the same bytes, except
where the two rules differ:

- numbers: JCS writes a float as ECMAScript does (``2`` for 2.0, ``1e+21``); such a float is
  handed to orjson as a :class:`orjson.Fragment` holding the reference's text for it;
- integers beyond ±(2**53 - 1) are not allowed in JCS;
- key order: JCS sorts keys by UTF-16 code units, orjson by code points. The two agree unless a
  key holds a character at or above U+E000 (where astral characters, as surrogates, sort lower).

:func:`dumps` walks the value once, rewriting floats and checking the rest; anything outside the
fast path (big integers, such keys, non-string keys, types JSON does not have) goes to
``rfc8785`` itself, which gives its answer or its error. A property test holds the two to the
same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

import orjson
import rfc8785

CanonicalizationError: Final = rfc8785.CanonicalizationError

_INT_LIMIT: Final = 2**53 - 1
_SURROGATE_ORDER: Final = "\ue000"  # keys with a character at or above this go the slow way


class _Reference(Exception):
    """The value needs the reference implementation."""


def _number(value: float) -> bytes:
    # Between 1e-4 and 1e16 Python's shortest repr has no exponent and is ECMAScript's text,
    # but for the ".0" of an integral value; elsewhere the reference writes it.
    if 1e-4 <= abs(value) < 1e16:
        text = repr(value)
        return (text[:-2] if text.endswith(".0") else text).encode()
    return rfc8785.dumps(value)


def _prepare(value: Any) -> Any:
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is int:
        if -_INT_LIMIT <= value <= _INT_LIMIT:
            return value
        raise _Reference
    if kind is float:
        return orjson.Fragment(_number(value))
    if kind is dict:
        prepared = {}
        for key, item in value.items():
            if type(key) is not str or (key and max(key) >= _SURROGATE_ORDER):
                raise _Reference
            prepared[key] = _prepare(item)
        return prepared
    if kind is list or kind is tuple:
        return [_prepare(item) for item in value]
    raise _Reference


def dumps(value: Any) -> bytes:
    """The RFC 8785 canonical bytes of a JSON value (raises ``CanonicalizationError``)."""
    try:
        return orjson.dumps(_prepare(value), option=orjson.OPT_SORT_KEYS)
    except (_Reference, orjson.JSONEncodeError):
        return rfc8785.dumps(value)


# Where orjson's bytes may differ from RFC 8785's though they equal the entry's: a float
# orjson writes with ".0" or an exponent (JCS writes 2.0 as "2", 1e16 in full, 2.5e-6 as
# "0.0000025"; every other float the same), and a character at or above U+E000 (keys sort
# otherwise). Strings may match too: such entries only take the longer way.
_INTEGRAL_FLOAT: Final = re.compile(rb"\.0(?:[,}\]]|\Z)")
_LONG_INTEGER: Final = re.compile(rb"[0-9]{20}")
_EXPONENT: Final = re.compile(rb"[0-9][eE][-+][0-9]+(?:[,}\]]|\Z)")
# Whether to look for one at all: "e+" or "e-" anywhere (a search by its first byte, several
# times quicker than the one above, which tries every digit).
_SIGNED_EXPONENT: Final = re.compile(rb"e[-+]")


def _orjson_may_differ(body: bytes) -> bool:
    return (
        _INTEGRAL_FLOAT.search(body) is not None
        or (_SIGNED_EXPONENT.search(body) is not None and _EXPONENT.search(body) is not None)
        or (not body.isascii() and max(body) >= 0xEE)
    )


def parse_canonical(body: bytes) -> tuple[Any, bool] | None:
    """An entry's bytes parsed, and whether they are its RFC 8785 form; None if not JSON.

    Bytes that orjson, sorting keys, writes back unchanged are canonical unless they hold what
    orjson writes otherwise than RFC 8785 (``_orjson_may_differ``, integers past 2**53); those,
    and bytes orjson writes otherwise, are decided by :func:`dumps`."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        value = _JSON_ONLY  # what only the standard library reads (NaN, lone surrogates)
    try:
        if value is not _JSON_ONLY and not _orjson_may_differ(body):
            try:
                if orjson.dumps(value, option=_SORTED) == body:
                    return value, True
            except orjson.JSONEncodeError:
                pass
        # orjson reads an integer past 2**64 as a float, which it writes back with a "." or an
        # exponent, never as the integer's digits: such bytes never pass the test above. The
        # standard library keeps the integer whole, as the reference reads it.
        if value is _JSON_ONLY or _LONG_INTEGER.search(body):
            value = json.loads(body)
        return value, dumps(value) == body
    except (ValueError, CanonicalizationError):
        return None


def all_canonical(bodies: Sequence[bytes], values: Sequence[Any]) -> bool:
    """Whether each of ``bodies``, which orjson read one by one as ``values``, is canonical as
    :func:`parse_canonical` would say, decided for all at once; False: ask it of each.

    Each body passes parse_canonical's first test when orjson writes the list of values as the
    list of bodies: each body is one JSON text, and no JSON text is a value followed by ", …",
    so each value's bytes end where its body does. What ``_orjson_may_differ`` looks for shows
    in the joined bytes exactly where it shows in one body (the separators add none of it)."""
    joined = b"[" + b",".join(bodies) + b"]"
    if _orjson_may_differ(joined):
        return False
    try:
        return orjson.dumps(list(values), option=_SORTED) == joined
    except orjson.JSONEncodeError:
        return False


_JSON_ONLY: Final = object()
_SORTED: Final = orjson.OPT_SORT_KEYS | orjson.OPT_STRICT_INTEGER
