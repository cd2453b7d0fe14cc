"""Names for the types shared across the package."""
from __future__ import annotations

from typing import Any, Callable, Protocol, Union

__all__ = ["Data", "Listener", "LoggerLike", "RawMessage"]

#: Any JSON value: what ``send(event, data)`` and ``publish(channel, data)`` carry.
Data = Any
#: A listener registered with ``on(event, fn)``.
Listener = Callable[..., Any]
#: What a ``message`` listener receives: the frame as text or bytes.
RawMessage = Union[str, bytes]


class LoggerLike(Protocol):
    """Any logger with these four methods (``logging.Logger``, structlog, loguru...)."""

    def debug(self, msg: str, *args: Any) -> Any: ...

    def info(self, msg: str, *args: Any) -> Any: ...

    def warning(self, msg: str, *args: Any) -> Any: ...

    def error(self, msg: str, *args: Any) -> Any: ...
