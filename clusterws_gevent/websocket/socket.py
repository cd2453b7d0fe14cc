"""The ClusterWS socket: events, raw sends, channels and keepalive over one connection.

The listeners of a socket run one message after another, in the order the
client sent them, in a greenlet serving that socket alone while it runs (an
idle socket holds no greenlet: ``net/runners.py``). A listener may block on
I/O (a database query, an HTTP call): it delays only the later messages of its
own socket, never another socket.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Protocol, Set, Union, overload

from ..enums import ReadyState
from ..exceptions import ClusterWSError, IncorrectMessage, OverCapacity, ProtocolError
from ..listeners import add_listener, call_user_code
from ..log import Log
from ..net.memory import SMALL_MESSAGE, MessageMemory, decoded_cost
from ..options import WebSocketOptions
from ..protocol.messages import PONG, RECOVER, decode_message, encode_emit, encode_json
from ..pubsub.hub import LIVE, PLAIN
from ..typing import Data, Listener
from .connection import OPEN, SLOW_CONSUMER, Connection, ConnectionSink
from .stats import ServerStats

__all__ = ["Socket", "RESERVED_EVENTS"]

#: Events fired by the server itself; a client's ``["e", name, ...]`` cannot fire them.
RESERVED_EVENTS = frozenset(("message", "pong", "error", "close"))
_MISSING: Any = object()
_PONG_TEXT = PONG.decode("ascii")
#: How the v4 clients write a subscribe request (compact JSON); another spelling is checked once decoded.
_SUBSCRIBE_PREFIX = '["s","s",'


def too_many_channels(limit: int) -> IncorrectMessage:
    """The refusal of a subscribe request naming more than ``limit`` channels."""
    return IncorrectMessage(f"a subscribe request naming more than max_channels_per_socket ({limit}) channels; "
                            "refused whole")


class SocketServer(Protocol):
    """What a socket needs of its server (:class:`~clusterws_gevent.websocket.server.WebSocketServer`)."""

    log: Log
    stats: ServerStats
    options: WebSocketOptions

    def publish(self, channel: str, data: Data) -> None:
        """Publish ``data`` to every subscriber of ``channel``."""

    def subscribe(self, socket: Socket, channel: str) -> bool:
        """Subscribe ``socket`` without asking onSubscribe."""

    def unsubscribe(self, socket: Socket, channel: str) -> bool:
        """Unsubscribe ``socket`` and tell onUnsubscribe."""

    def handle_subscribe_request(self, socket: Socket, channels: Any) -> None:
        """A client's subscribe request: ask onSubscribe, then reply."""

    def handle_publish_request(self, socket: Socket, channel: str, data: Data) -> None:
        """A client's publish to a channel it is subscribed to: ask onPublish, then publish."""

    def handle_recover_request(self, socket: Socket, request: Any) -> None:
        """A subscribe with positions (the recovery extension): ask onSubscribe, recover, reply."""

    def forget(self, socket: Socket) -> None:
        """The socket closed."""


class Socket(ConnectionSink):
    """One client connection, as the ClusterWS ``socket``.

    Created by the server; get it from the ``connection`` event. Do not change :attr:`id`.
    """

    __slots__ = ("id", "user", "_conn", "_server", "_listeners", "_channels", "_positions", "awaiting_pong", "busy",
                 "__weakref__")

    def __init__(self, id: str, connection: Connection, server: SocketServer) -> None:
        #: A unique id of this socket (used in logs).
        self.id = id
        #: Who this socket is, for presence (``info["user"]``): None until the app says, in a
        #: ``connection`` listener or through ``verifyConnection``'s ``info.user``. Any JSON value.
        self.user: Any = None
        self._conn = connection
        self._server = server
        self._listeners: Dict[str, List[Listener]] = {}
        self._channels: Optional[Set[str]] = None
        self._positions: Optional[Dict[str, Any]] = None  # channels it gets positions of: LIVE, or a recovery buffer
        #: A ping was sent and no pong came back yet (keepalive).
        self.awaiting_pong = False
        #: A listener of this socket is running (keepalive spares a busy socket).
        self.busy = False

    def __repr__(self) -> str:
        return f"<Socket {self.id} {self.ready_state.name}>"

    # -- the seed's API ----------------------------------------------------------------------------

    @property
    def ready_state(self) -> ReadyState:
        """0 connecting, 1 open, 2 closing, 3 closed (the seed's ``readyState``)."""
        return self._conn.ready_state

    @overload
    def on(self, event: str) -> Callable[[Listener], Listener]: ...

    @overload
    def on(self, event: str, listener: Listener) -> Listener: ...

    def on(self, event: str, listener: Optional[Listener] = None) -> Any:
        """Call ``listener`` on ``event``; without a listener, a decorator.

        Events from the client (``send(event, data)`` in the JS client) call
        ``listener(data)``. Reserved events: ``message(msg)`` (intercepts every
        frame; call :meth:`process_message` to go on), ``pong()``,
        ``error(err)``, ``close(code, reason)``. Several listeners of one event
        run in the order they were added.
        """
        if not isinstance(event, str):
            raise TypeError(f"event name must be a string, got {event!r}")
        return add_listener(self._listeners.setdefault(event, []), listener, f"listener of {event!r}")

    def send(self, event_or_raw: Union[str, bytes, bytearray, memoryview], data: Data = _MISSING) -> bool:
        """``send(event, data)`` emits ``["e", event, data]``; ``send(raw)`` sends
        a str as a text frame or bytes as a binary frame, as they are.

        Returns immediately: the frame is handed to the socket's outbox.

        Returns:
            False when the socket is not open (nothing is sent) or its outbox is full.

        Raises:
            TypeError: ``raw`` is neither str nor bytes, or ``data`` is not JSON serializable.
        """
        self._server.stats.messages_out += 1
        if data is _MISSING:
            if isinstance(event_or_raw, str):
                return self._conn.send_text(event_or_raw.encode("utf-8"))
            if isinstance(event_or_raw, (bytes, bytearray, memoryview)):
                return self._conn.send_binary(bytes(event_or_raw))
            raise TypeError("send(raw) takes str or bytes; to emit an event, call send(event, data)")
        if not isinstance(event_or_raw, str):
            raise TypeError(f"event name must be a string, got {event_or_raw!r}")
        return self._conn.send_text(encode_emit(event_or_raw, data))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with the close handshake; the close frame carries ``code`` and ``reason``.

        Raises:
            ValueError: a code that may not be sent, or a reason over 123 bytes.
        """
        self._conn.close(code, reason)

    def terminate(self) -> None:
        """Drop the connection at once, without a close handshake."""
        self._conn.terminate()

    def process_message(self, message: Union[str, bytes, List[Any]]) -> None:
        """Run the ClusterWS protocol on ``message`` (str, bytes or an already decoded list).

        The server calls it for every frame, unless a ``message`` listener
        intercepts frames: then that listener calls it for the frames it lets through.
        """
        if message in (PONG, _PONG_TEXT):
            self._on_pong()
            return
        if isinstance(message, str) and message.startswith(_SUBSCRIBE_PREFIX) and (
                message.count(",") - 1 > self._server.options.max_channels_per_socket):
            # more names than a socket may hold: refused whole, before a byte is decoded
            self.refuse(too_many_channels(self._server.options.max_channels_per_socket))
            return
        try:
            kind, param, data = decode_message(message)
        except IncorrectMessage as error:
            self.refuse(error)
            return
        if kind == "e":
            if isinstance(param, str) and param not in RESERVED_EVENTS:
                self._fire(param, data)
        elif kind == "p":
            if isinstance(param, str) and self._channels is not None and param in self._channels:
                self._server.handle_publish_request(self, param, data)
        elif kind == "s":
            if param == "s":
                self._server.handle_subscribe_request(self, data)
            elif param == RECOVER:
                self._server.handle_recover_request(self, data)
            elif param == "u" and isinstance(data, str) and self.is_subscribed(data):
                self._server.unsubscribe(self, data)
        # other message types are ignored, as in the original

    # -- channels (server code may subscribe a socket) --------------------------------------------

    @property
    def channels(self) -> FrozenSet[str]:
        """The channels this socket is subscribed to."""
        return frozenset(self._channels or ())

    def subscribe(self, channels: Union[str, Iterable[str]]) -> Dict[str, bool]:
        """Subscribe this socket to ``channels`` (onSubscribe is not asked: the server decides).

        Returns:
            ``{channel: True}`` for each new subscription, False where it already was.
        """
        if isinstance(channels, str):
            channels = [channels]
        return {channel: self._server.subscribe(self, channel) for channel in channels}

    def unsubscribe(self, channel: str) -> bool:
        """Unsubscribe this socket from ``channel``; False if it was not subscribed."""
        return self._server.unsubscribe(self, channel)

    # -- used by the server ---------------------------------------------------------------------

    def emit(self, event: str, *args: Any) -> None:
        """Deprecated: calls this socket's own server-side listeners of ``event``, and sends
        nothing to the client. To send an event to the client, call ``send(event, data)``."""
        warnings.warn("Socket.emit() calls the server-side listeners only and sends nothing to the client; "
                      "use socket.send(event, data) to reach the client", DeprecationWarning, stacklevel=2)
        self._fire(event, *args)

    def _fire(self, event: str, *args: Any) -> None:
        """Call the listeners of ``event``; an exception in one is logged with the socket id
        and given to the ``error`` listeners (as Flask-SocketIO's error handlers get it)."""
        listeners = self._listeners.get(event)
        if not listeners:
            return
        for listener in tuple(listeners):
            error = call_user_code(self._server.log, listener, args, "socket %s: listener of %r failed", self.id, event)
            if error is not None and event != "error":
                self._fire("error", error)

    def send_frame(self, frame: bytes) -> bool:
        """Write an already encoded frame (fan-out and keepalive)."""
        return self._conn.send_frame(frame)

    @property
    def deflate(self) -> Any:
        """What permessage-deflate agreed for this socket (``protocol/deflate.py``), or None."""
        return self._conn.deflate

    def channel_count(self) -> int:
        """How many channels this socket is subscribed to."""
        return len(self._channels) if self._channels is not None else 0

    def is_subscribed(self, channel: str) -> bool:
        """Whether this socket is subscribed to ``channel``."""
        return self._channels is not None and channel in self._channels

    def add_channel(self, channel: str) -> bool:
        """Record a subscription; False if already subscribed."""
        if self._channels is None:
            self._channels = set()
        elif channel in self._channels:
            return False
        self._channels.add(channel)
        return True

    def remove_channel(self, channel: str) -> bool:
        """Forget a subscription; False if there was none."""
        if self._channels is None or channel not in self._channels:
            return False
        if self._positions is not None:
            self._positions.pop(channel, None)
        self._channels.discard(channel)
        return True

    def take_channels(self) -> List[str]:
        """Forget every subscription and return them (the socket closed)."""
        channels, self._channels = self._channels, None
        self._positions = None
        return list(channels or ())

    # -- positions (the recovery extension: docs/protocol.md) -------------------------------------

    def position_of(self, channel: str) -> Any:
        """PLAIN (an original client's frames), LIVE (positioned frames), or, while it recovers,
        the list its share of ``channel``'s numbered messages is kept in (``pubsub/hub.py``)."""
        positions = self._positions
        return PLAIN if positions is None else positions.get(channel, PLAIN)

    def begin_recovery(self, channel: str) -> None:
        """Keep ``channel``'s numbered messages aside until :meth:`end_recovery`."""
        if self._positions is None:
            self._positions = {}
        self._positions[channel] = []

    def end_recovery(self, channel: str) -> List[Any]:
        """Get positioned frames of ``channel`` from now on; returns what was kept aside
        (``(epoch, first offset, messages)`` each)."""
        if self._positions is None:
            self._positions = {}
        kept = self._positions.get(channel)
        self._positions[channel] = LIVE
        return kept if isinstance(kept, list) else []

    def presence_info(self) -> bytes:
        """What presence says of this socket (``{"user": ...}``), as JSON."""
        return encode_json({"user": self.user})

    @property
    def connection(self) -> Connection:
        """The WebSocket connection under this socket (the engine's)."""
        return self._conn

    def is_open(self) -> bool:
        """Whether messages can still be sent."""
        return self._conn.state is OPEN

    # -- ConnectionSink ---------------------------------------------------------------------------

    def _on_text(self, text: str) -> None:
        self._receive(text)

    def _on_binary(self, data: bytes) -> None:
        if data == PONG:  # the client's keepalive answer never reaches message listeners
            self._on_pong()
            return
        self._receive(data)

    def _receive(self, message: Union[str, bytes]) -> None:
        """A frame from the client: to the ``message`` listeners if any, else to the protocol.

        A large message first reserves what decoding and handling it will hold in the
        worker's budget (``net/memory.py``), until its listeners returned; one that does not
        fit closes the socket with 1013."""
        self._server.stats.messages_in += 1
        cost = 0
        memory = self._conn.memory
        if memory is not None and len(message) > SMALL_MESSAGE:
            cost = decoded_cost(message)
            if not memory.take(cost):
                self._over_capacity(cost, memory)
                return
        self.busy = True
        try:
            if "message" in self._listeners:
                self._fire("message", message)
            else:
                self.process_message(message)
        except Exception as exc:  # a bug or a limit deep in the dispatch: this socket's problem only
            self._server.log.exception("socket %s: handling a message failed", self.id)
            self._fire("error", exc)
        finally:
            self.busy = False
            if cost:
                memory.give(cost)  # type: ignore[union-attr]

    def _over_capacity(self, cost: int, memory: MessageMemory) -> None:
        stats = self._server.stats
        stats.refuse("message-memory")
        self._server.log.refusal("message-memory", "socket %s: a message of about %d decoded bytes does not fit "
                                 "max_message_memory (%d of %d in use); closing it with 1013", self.id, cost,
                                 memory.used, memory.limit)
        self._on_protocol_error(OverCapacity("the worker's incoming messages hold max_message_memory: try again "
                                             "later"))
        self._conn.close(1013, "message memory exhausted: try again later")

    def _on_pong(self) -> None:
        self.awaiting_pong = False
        self._fire("pong")

    def _on_protocol_error(self, error: ProtocolError) -> None:
        if "error" in self._listeners:
            self._fire("error", error)
        else:
            self._server.log.info("socket %s: closing with %d: %s", self.id, error.close_code, error)

    def _on_close(self, code: int, reason: str) -> None:
        stats = self._server.stats
        stats.dropped += self._conn.dropped
        if reason == SLOW_CONSUMER:
            stats.slow_consumer_closes += 1
        self._server.forget(self)
        self._fire("close", code, reason)

    def refuse(self, error: ClusterWSError) -> None:
        """A bad ClusterWS message: the ``error`` listeners decide; without one, log and terminate."""
        if "error" in self._listeners:
            self._fire("error", error)
            return
        detail = getattr(error, "detail", "")
        self._server.log.warning("socket %s: %s%s; terminating it (add an 'error' listener to decide otherwise)",
                                 self.id, error, f" ({detail})" if detail else "")
        self.terminate()
