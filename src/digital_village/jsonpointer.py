"""RFC 6901 JSON pointers: how pages and the audit name a field inside a ledger entry."""

from __future__ import annotations

import re
from typing import Any

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


class _Missing:
    """What a document holds where it holds nothing."""

    def __repr__(self) -> str:
        return "nothing"


MISSING = _Missing()


def pointer(*tokens: str) -> str:
    """The pointer to ``tokens`` (``~`` and ``/`` inside a token escaped)."""
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in tokens)


def resolve(document: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at ``path`` in a parsed JSON document."""
    node = document
    if path == "":
        return True, node
    if not path.startswith("/"):
        return False, None
    for raw in path[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(node):
                return False, None
            node = node[int(token)]
        elif isinstance(node, dict) and token in node:
            node = node[token]
        else:
            return False, None
    return True, node
