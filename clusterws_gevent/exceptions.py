"""The one error tree of clusterws_gevent.

::

    ClusterWSError
    ├── OptionError (also ValueError)       a bad option; the message names it
    │   └── OptionTypeError (also TypeError)   an option of the wrong type
    ├── HandshakeError                      an HTTP upgrade we refuse (carries the HTTP status)
    ├── ProtocolError                       the peer broke RFC 6455 (carries the close code)
    │   ├── InvalidData                     invalid UTF-8 in a text message (1007)
    │   ├── MessageTooBig                   a message over ``max_message_size`` (1009)
    │   └── OverCapacity                    the worker's message memory is full (1013)
    ├── IncorrectMessage                    a frame that is not a ClusterWS message
    ├── BrokerAuthError                     a broker's address answered without our cluster key
    ├── Unavailable                         history or presence could not be read (the owner is down)
    └── ConnectionClosedError               a write to a socket that is no longer open

    HaltServer (BaseException)              a process must exit with ``exit_code``

Errors become WebSocket close codes in one place only: ``protocol/closing.py``
(``close_for``: the close frame of a :class:`ProtocolError`, ``as_protocol_error``:
what an engine's parser error stands for), which both engines' read steps call when
the client breaks a rule: no exception of this tree crosses a read step.
"""
from __future__ import annotations

from typing import Optional

__all__ = [
    "ClusterWSError",
    "OptionError",
    "OptionTypeError",
    "HandshakeError",
    "ProtocolError",
    "InvalidData",
    "MessageTooBig",
    "OverCapacity",
    "IncorrectMessage",
    "BrokerAuthError",
    "Unavailable",
    "ConnectionClosedError",
    "HaltServer",
]


class ClusterWSError(Exception):
    """Root of every error raised by clusterws_gevent."""


class OptionError(ClusterWSError, ValueError):
    """A constructor or command-line option is invalid.

    Args:
        option: the option's dotted name, e.g. ``websocket_options.ping_interval``.
        message: what is wrong with it.
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class OptionTypeError(OptionError, TypeError):
    """An option has the wrong type (a non-callable worker, say)."""


class HandshakeError(ClusterWSError):
    """An HTTP upgrade request that is refused with ``status``.

    Args:
        status: the HTTP status code of the refusal.
        message: a short reason, sent as the response body.
        headers: extra response headers.
    """

    def __init__(self, status: int, message: str, headers: Optional[list[tuple[str, str]]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or []


class BrokerAuthError(ClusterWSError):
    """The process at a broker's address did not prove it holds the cluster key
    (another process took the address): the worker sends it nothing."""


class ProtocolError(ClusterWSError):
    """The peer broke the WebSocket protocol; the connection closes with ``close_code``."""

    close_code = 1002


class InvalidData(ProtocolError):
    """A text message is not valid UTF-8 (RFC 6455 §8.1)."""

    close_code = 1007


class MessageTooBig(ProtocolError):
    """A message is larger than ``max_message_size``."""

    close_code = 1009


class OverCapacity(ProtocolError):
    """The worker cannot take this message now: the messages of all sockets hold
    ``max_message_memory`` already. The socket closes with 1013 (try again later)."""

    close_code = 1013


class IncorrectMessage(ClusterWSError):
    """A message that is not a ClusterWS protocol message.

    ``str(error)`` is ``processMessage received incorrect message``, the wording
    of the original server; ``detail`` says what exactly was wrong.
    """

    MESSAGE = "processMessage received incorrect message"

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.MESSAGE)
        self.detail = detail


class Unavailable(ClusterWSError):
    """A channel's history or presence could not be read: its owner (a broker, Redis) did not
    answer in time, or the link to it is down."""


class ConnectionClosedError(ClusterWSError):
    """The socket is not open, so the message was not sent."""


class HaltServer(BaseException):
    """A process must stop now with ``exit_code``.

    A BaseException, so that application code catching ``Exception`` cannot
    swallow it (gunicorn's ``HaltServer``).
    """

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code
