"""Names for the types shared across the package."""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["Data", "Listener"]

#: Any JSON value: what ``send(event, data)`` and ``publish(channel, data)`` carry.
Data = Any
#: A listener registered with ``on(event, fn)``.
Listener = Callable[..., Any]
