"""Showing what a client sent, in a log line or a response, without letting it write either."""
from __future__ import annotations

from typing import Any

__all__ = ["quote", "QUOTE_LIMIT"]

#: Characters of a value a client sent that a log line or a response shows.
QUOTE_LIMIT = 200


def quote(value: Any, limit: int = QUOTE_LIMIT) -> str:
    """A value a client sent (a header, a path, a channel name), as a log line or a response
    may show it: every control character (CR, LF...) escaped by ``repr``, at most ``limit``
    characters of that, and how much of the value was left out."""
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("latin-1")
    text = value if isinstance(value, str) else str(value)
    shown = repr(text[:limit])
    if len(shown) > limit:  # the escapes made it longer
        shown = shown[:limit] + "..."
    left = len(text) - limit
    return shown + (f" ({left} more characters)" if left > 0 else "")
