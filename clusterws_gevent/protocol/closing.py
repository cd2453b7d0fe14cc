"""What a broken WebSocket becomes, in one place for both engines: the
:class:`~clusterws_gevent.exceptions.ProtocolError` an engine's failure stands for,
and the close frame that reports it (websockets does the same once, in ``Protocol.parse``).
"""
from __future__ import annotations

from typing import Optional, Tuple

from ..exceptions import InvalidData, ProtocolError

__all__ = ["as_protocol_error", "close_for", "MAX_REASON_BYTES"]

#: A close frame's reason is at most 123 bytes of UTF-8 (RFC 6455 §5.5: 125 with the code).
MAX_REASON_BYTES = 123


def as_protocol_error(exc: BaseException, where: str = "a text message") -> Optional[ProtocolError]:
    """The :class:`ProtocolError` that ``exc``, raised while reading, stands for; None for
    the end of the stream (the close event then says 1006).

    Ours pass through; invalid UTF-8 (in ``where``) is :class:`InvalidData` (1007); any
    other error of an engine's parser (websockets', gevent-websocket's) is a ProtocolError (1002).
    """
    if isinstance(exc, ProtocolError):
        return exc
    if isinstance(exc, UnicodeError):
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        return InvalidData(f"invalid UTF-8 in {where}: {reason}")
    if isinstance(exc, EOFError):
        return None
    return ProtocolError(str(exc) or "protocol error")


def close_for(error: ProtocolError) -> Tuple[int, str]:
    """The ``(code, reason)`` of the close frame that fails a connection with ``error``
    (RFC 6455 §7.1.7): its ``close_code``, and its words cut to 123 bytes of UTF-8."""
    reason = str(error).encode("utf-8")[:MAX_REASON_BYTES].decode("utf-8", "ignore")
    return error.close_code, reason
