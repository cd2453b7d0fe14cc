"""A Python ClusterWS client, gevent-friendly and blocking in style, like the server.

It speaks the v4 protocol as the JavaScript client does: events, channels with
``watch``/``publish``/``unsubscribe``, the answer to the server's keep-alive
ping, and optional reconnection with resubscription::

    from clusterws_gevent.client import Client

    client = Client("ws://127.0.0.1:3000/", auto_reconnect=True)
    client.on("hello", print)
    client.send("hello", {"from": "python"})
    news = client.subscribe("news")
    news.watch(lambda message: print("news:", message))
    news.wait_subscribed(timeout=5)
    news.publish("hi")

Listeners and watchers run in the client's reader greenlet, in the order the
server sent the messages. Everything blocks only the calling greenlet, so it
works in a gevent server (a worker talking to another service) and in a plain
script (the gevent hub runs while you wait).
"""
from __future__ import annotations

import logging
import random
import ssl as ssl_module
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import gevent
from gevent import socket as gsocket
from gevent.event import Event
from gevent.lock import Semaphore
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import CLOSED, CLOSING, OPEN
from websockets.uri import parse_uri

from .exceptions import ClusterWSError, ConnectionClosedError
from .listeners import add_listener, call_user_code
from .net.fairness import MESSAGE_COST, ReadBudget
from .net.sockets import shutdown
from .protocol.messages import PING, PONG, POSITIONED, RECOVER, decode_message, encode_emit, encode_json

__all__ = ["Client", "Channel", "ConnectError"]

Listener = Callable[..., Any]
_RESERVED = ("open", "close", "error", "message", "ping")
#: Where a failing listener of a client is logged.
_LOG = logging.getLogger("clusterws_gevent.client")


class ConnectError(ClusterWSError):
    """The connection or its opening handshake failed (``status`` is the HTTP status, if any)."""

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status


class _Emitter:
    def __init__(self) -> None:
        self._listeners: Dict[str, List[Listener]] = {}

    def on(self, event: str, listener: Optional[Listener] = None) -> Any:
        """Call ``listener`` on ``event``; without a listener, a decorator."""
        return add_listener(self._listeners.setdefault(event, []), listener, f"listener of {event!r}")

    def _emit(self, event: str, *args: Any) -> bool:
        listeners = self._listeners.get(event)
        if not listeners:
            return False
        for listener in tuple(listeners):
            call_user_code(_LOG, listener, args, "listener of %r failed", event)
        return True


class Channel(_Emitter):
    """A channel of a :class:`Client` (``client.subscribe(name)``).

    Events: ``subscribed`` (the server accepted), ``canceled`` (it declined, or the
    client was already subscribed). ``watch(fn)`` receives each published message.

    With ``subscribe(name, recover=True)`` (the recovery extension, ``docs/protocol.md``;
    the channel needs a history on the server, ``channel_options``) the channel keeps the
    position of the last message it delivered (``epoch``, ``offset``), and each later
    subscription (after a reconnection, or when the offsets show a gap) asks for what it
    missed: every missed message is delivered, in order, before any newer one, and
    ``recovered`` is True; or it could not be (the history lost or no longer reaching back)
    and ``recovered`` is False: the app reloads its state. A ``recovered`` event fires with the
    value. ``join``/``leave`` events (``socket_id, info``) come when the channel has
    ``join_leave``.
    """

    def __init__(self, client: Client, name: str, recover: bool = False) -> None:
        super().__init__()
        self.client = client
        self.name = name
        #: True once the server accepted the subscription (and until unsubscribe or a disconnect).
        self.subscribed = False
        #: Whether this channel asks for what it missed on each resubscription.
        self.recover = recover
        #: The stream of the last message delivered (None before the first answer).
        self.epoch: Optional[str] = None
        #: The offset of the last message delivered (0: none yet).
        self.offset = 0
        #: None until a resubscription asked for missed messages; then whether all came.
        self.recovered: Optional[bool] = None
        self._asking = False  # a recovery request is out: positioned messages wait for its reply
        self._answered = Event()
        self._watchers: List[Listener] = []

    def watch(self, watcher: Listener) -> Listener:
        """Call ``watcher(message)`` for every message published to this channel."""
        self._watchers.append(watcher)
        return watcher

    def publish(self, data: Any) -> None:
        """Publish ``data`` to everyone subscribed to the channel (this client included)."""
        self.client._send_raw(encode_json(["p", self.name, data]))

    def unsubscribe(self) -> None:
        """Leave the channel."""
        self.subscribed = False
        self.client._forget_channel(self)
        if self.client.ready_state == OPEN:
            self.client._send_raw(encode_json(["s", "u", self.name]))

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        """Block until the server answered the subscription; True if it accepted."""
        if not self._answered.wait(timeout):
            raise TimeoutError(f"no answer to the subscription of {self.name!r} within {timeout}s")
        return self.subscribed

    def _answer(self, accepted: bool) -> None:
        self.subscribed = accepted
        self._answered.set()
        self._emit("subscribed" if accepted else "canceled")

    def _deliver(self, messages: Iterable[Any]) -> None:
        watchers = self._watchers
        for message in messages:
            for watcher in tuple(watchers):  # one that raises is logged; the others and the reader go on
                call_user_code(_LOG, watcher, (message,), "watcher of channel %r failed", self.name)

    def _position(self) -> Optional[List[Any]]:
        """What a recovery request says of this channel: ``[epoch, offset]``, or None (nothing yet)."""
        return [self.epoch, self.offset] if self.recover and self.epoch is not None else None

    def _recovery_answer(self, answer: Any) -> None:
        """The server's answer to a recovery request (``["s","r",...]``)."""
        self._asking = False
        if not isinstance(answer, dict):
            self._answer(False)
            return
        asked = self.epoch is not None
        epoch, offset = answer.get("epoch"), answer.get("offset")
        recovered = bool(answer.get("recovered"))
        if recovered:
            for item in answer.get("publications") or ():
                if isinstance(item, list) and len(item) == 2 and isinstance(item[0], int) and item[0] > self.offset:
                    self.offset = item[0]
                    self._deliver((item[1],))
        if isinstance(epoch, str) and isinstance(offset, int):
            self.epoch, self.offset = epoch, offset
        else:  # no position to hold (no history, or it could not be read): the next message gives one
            self.epoch, self.offset = None, 0
        self._answer(True)
        if asked:
            self.recovered = recovered
            self._emit("recovered", recovered)

    def _positioned(self, entry: Any) -> None:
        """``[epoch, first offset, [messages]]`` from a positioned publish frame: delivered
        past the last offset (a message that came in the recovery reply is not delivered
        again); a skipped offset or a new epoch asks the server for what is missing."""
        if self._asking or not (isinstance(entry, list) and len(entry) == 3):
            return  # the reply to the request out carries these (from the history, or kept aside)
        epoch, first, messages = entry
        if not isinstance(first, int) or not isinstance(messages, list):
            return
        if self.epoch is None:  # nothing to follow on from: this message's position is ours
            self.epoch, self.offset = epoch, first - 1
        elif epoch != self.epoch or first > self.offset + 1:
            _LOG.debug("channel %r: a gap before offset %s (at %s of %s); recovering", self.name, first,
                       self.offset, self.epoch)
            self.client._ask_recovery([self])
            return
        skip = self.offset + 1 - first
        if skip < len(messages):
            self.offset = first + len(messages) - 1
            self._deliver(messages[skip:] if skip > 0 else messages)

    def __repr__(self) -> str:
        return f"<Channel {self.name!r} subscribed={self.subscribed}>"


class Client(_Emitter):
    """A ClusterWS client connection.

    Args:
        url: ``ws://host:port/path`` or ``wss://...``.
        auto_reconnect: reconnect when the connection is lost (not after :meth:`close`).
        reconnect_attempts: give up after this many failed attempts in a row (0: never).
        reconnect_min_interval: seconds, the shortest wait before an attempt.
        reconnect_max_interval: seconds, the longest (each wait is random in between, as the JS client).
        auto_resubscribe: after a reconnection, subscribe again to every channel.
        headers: extra HTTP headers for the upgrade (a Cookie, an Authorization...).
        ssl_context: for ``wss://``; default: the system's trust store.
        connect: connect now (blocking until open, or ConnectError).
        timeout: seconds for connecting and the opening handshake.
        max_message_size: largest message accepted from the server.

    Events (``on``): ``open()``, ``close(code, reason)``, ``error(exc)``, ``ping()``, ``pong(payload)``,
    ``message(raw)`` (intercepts every frame), and the server's own events.
    """

    def __init__(self, url: str, *, auto_reconnect: bool = False, reconnect_attempts: int = 0,
                 reconnect_min_interval: float = 0.5, reconnect_max_interval: float = 2.0,
                 auto_resubscribe: bool = True, headers: Optional[Dict[str, str]] = None,
                 ssl_context: Optional[ssl_module.SSLContext] = None, connect: bool = True,
                 timeout: float = 10.0, max_message_size: Optional[int] = 64 << 20, compression: bool = False) -> None:
        super().__init__()
        self.url = url
        self.auto_reconnect = auto_reconnect
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_min_interval = reconnect_min_interval
        self.reconnect_max_interval = reconnect_max_interval
        self.auto_resubscribe = auto_resubscribe
        self.headers = dict(headers or {})
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.max_message_size = max_message_size
        #: Offer permessage-deflate (the server uses it when its ``websocket_options.compression`` is on).
        self.compression = compression
        #: What the server agreed (its ``Sec-WebSocket-Extensions``), or None: uncompressed.
        self.extensions: Optional[str] = None
        #: The server's configuration message (``{"autoPing": ..., "pingInterval": ...}``), once received.
        self.config: Optional[Dict[str, Any]] = None
        self._channels: Dict[str, Channel] = {}
        self._proto: Optional[ClientProtocol] = None
        self._sock: Any = None
        self._lock = Semaphore()
        self._reader: Any = None
        self._watchdog: Any = None
        self._last_ping = 0.0
        self._closing = False  # close() was called: do not reconnect
        self._opened = Event()
        self._pending_events: List[Any] = []  # frames that came with the 101 response
        if connect:
            self.connect()

    # -- the JS client's API ----------------------------------------------------------------------

    @property
    def ready_state(self) -> int:
        """0 connecting, 1 open, 2 closing, 3 closed."""
        if self._proto is None:
            return 0 if not self._closing else 3
        return int(self._proto.state)

    def connect(self) -> None:
        """Open the connection (blocking); resubscribes known channels.

        Raises:
            ConnectError: the server could not be reached or refused the upgrade.
        """
        self._closing = False
        uri = parse_uri(self.url)
        try:
            sock = gsocket.create_connection((uri.host, uri.port), timeout=self.timeout)
            sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)
            if uri.secure:
                context = self.ssl_context or ssl_module.create_default_context()
                from gevent.ssl import SSLSocket

                sock = SSLSocket(sock=sock, server_hostname=uri.host, _context=context)
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.url}: {exc}") from exc
        extensions = [ClientPerMessageDeflateFactory(server_no_context_takeover=True,
                                                     client_no_context_takeover=True)] if self.compression else None
        proto = ClientProtocol(uri, max_size=self.max_message_size, extensions=extensions)
        request = proto.connect()
        for name, value in self.headers.items():
            request.headers[name] = value
        proto.send_request(request)
        try:
            for data in proto.data_to_send():
                sock.sendall(data)
            response = self._read_response(sock, proto)
        except (OSError, gevent.Timeout) as exc:
            sock.close()
            raise ConnectError(f"opening handshake with {self.url} failed: {exc}") from exc
        if proto.handshake_exc is not None:
            sock.close()
            raise ConnectError(f"{self.url} refused the connection: {proto.handshake_exc}",
                               response.status_code if response is not None else None)
        sock.settimeout(None)
        self.extensions = response.headers.get("Sec-WebSocket-Extensions") if response is not None else None
        self._proto, self._sock = proto, sock
        self._last_ping = time.monotonic()
        self._reader = gevent.spawn(self._read_loop, proto, sock)
        self._opened.set()
        self._emit("open")
        if self.auto_resubscribe and self._channels:
            for channel in self._channels.values():
                channel._answered.clear()
            plain = [name for name, channel in self._channels.items() if not channel.recover]
            if plain:
                self._send_raw(encode_json(["s", "s", plain]))
            self._ask_recovery([channel for channel in self._channels.values() if channel.recover])

    def send(self, event_or_raw: Union[str, bytes], data: Any = ...) -> None:
        """``send(event, data)`` emits ``["e", event, data]``; ``send(raw)`` sends text or bytes as they are.

        Raises:
            ConnectionClosedError: not open.
        """
        if data is ...:
            if isinstance(event_or_raw, str):
                self._send_frame(Opcode.TEXT, event_or_raw.encode("utf-8"))
            else:
                self._send_frame(Opcode.BINARY, bytes(event_or_raw))
            return
        self._send_raw(encode_emit(str(event_or_raw), data))

    def subscribe(self, name: str, recover: bool = False, since: Optional[Tuple[str, int]] = None) -> Channel:
        """The channel ``name``, subscribing to it (again, if it already exists).

        With ``recover``, the channel asks for what it missed on every resubscription (see
        :class:`Channel`): the server must keep the channel's history (``channel_options``).
        ``since`` (``(epoch, offset)``, e.g. from ``wss.history``; implies ``recover``) asks
        for what came after that position on the first subscription too.
        """
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = Channel(self, name, recover)
        channel.recover = channel.recover or recover or since is not None
        if since is not None:
            channel.epoch, channel.offset = since[0], int(since[1])
        channel._answered.clear()
        if self.ready_state == OPEN:
            if channel.recover:
                self._ask_recovery([channel])
            else:
                self._send_raw(encode_json(["s", "s", [name]]))
        return channel

    def get_channel_by_name(self, name: str) -> Optional[Channel]:
        """The channel ``name`` if this client subscribed to it."""
        return self._channels.get(name)

    def close(self, code: int = 1000, reason: str = "", timeout: float = 5.0) -> None:
        """Close the connection (no reconnection) and wait for the close handshake."""
        self._closing = True
        proto = self._proto
        if proto is not None and proto.state is OPEN:
            with self._lock:
                proto.send_close(code, reason)
                self._flush(proto)
        if self._reader is gevent.getcurrent():
            return  # called from a listener: the reader finishes the close handshake itself
        if self._reader is not None:
            self._reader.join(timeout)
            if not self._reader.dead:
                self._reader.kill()
        if self._watchdog is not None:
            self._watchdog.kill(block=False)
        if self._sock is not None:
            self._sock.close()

    def wait_open(self, timeout: float = 10.0) -> None:
        """Block until the connection is open (useful with ``connect=False`` or reconnection)."""
        if not self._opened.wait(timeout):
            raise TimeoutError(f"not connected to {self.url} within {timeout}s")

    def process_message(self, message: Union[str, bytes, List[Any]]) -> None:
        """Run the protocol on a frame a ``message`` listener let through."""
        if isinstance(message, (bytes, bytearray)) and bytes(message) == PING:
            self._answer_ping()
            return
        try:
            kind, param, data = decode_message(message)
        except ClusterWSError as exc:
            self._emit("error", exc)
            return
        if kind == "e":
            if isinstance(param, str) and param not in _RESERVED:
                self._emit(param, data)
        elif kind == "p" and isinstance(data, dict):
            positioned = param == POSITIONED
            for name, messages in data.items():
                channel = self._channels.get(name)
                if channel is None:
                    continue
                if positioned:
                    channel._positioned(messages)
                elif isinstance(messages, list):
                    channel._deliver(messages)
        elif kind == "s":
            if param == "s" and isinstance(data, dict):
                for name, accepted in data.items():
                    channel = self._channels.get(name)
                    if channel is not None:
                        channel._answer(bool(accepted))
            elif param == RECOVER and isinstance(data, dict):
                for name, answer in data.items():
                    channel = self._channels.get(name)
                    if channel is not None:
                        channel._recovery_answer(answer)
            elif param in ("j", "l") and isinstance(data, list) and len(data) == 3:
                channel = self._channels.get(data[0]) if isinstance(data[0], str) else None
                if channel is not None:
                    channel._emit("join" if param == "j" else "leave", data[1], data[2])
            elif param == "c" and isinstance(data, dict):
                self.config = data
                if data.get("autoPing") and self._watchdog is None:
                    self._watchdog = gevent.spawn(self._watch_pings)

    # -- internals --------------------------------------------------------------------------------

    def _read_response(self, sock: Any, proto: ClientProtocol) -> Optional[Response]:
        deadline = gevent.Timeout(self.timeout)
        deadline.start()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    proto.receive_eof()
                else:
                    proto.receive_data(data)
                events = proto.events_received()
                for index, event in enumerate(events):
                    if isinstance(event, Response):  # frames read with it come after it, in this list
                        self._pending_events = events[index + 1:] + proto.events_received()
                        return event
                if not data:
                    return None
        finally:
            deadline.close()

    def _send_raw(self, payload: bytes) -> None:
        self._send_frame(Opcode.TEXT, payload)

    def ping(self, payload: bytes = b"") -> None:
        """Send a protocol-level ping; the server answers with a pong (``on("pong")``) once it
        has handled everything sent before it."""
        self._send_frame(Opcode.PING, payload)

    def _send_frame(self, opcode: Opcode, payload: bytes) -> None:
        proto = self._proto
        if proto is None or proto.state is not OPEN:
            raise ConnectionClosedError(f"the connection to {self.url} is not open")
        with self._lock:
            if opcode is Opcode.TEXT:
                proto.send_text(payload)
            elif opcode is Opcode.PING:
                proto.send_ping(payload)
            else:
                proto.send_binary(payload)
            self._flush(proto)

    def _flush(self, proto: ClientProtocol) -> None:
        for data in proto.data_to_send():
            if data:
                self._sock.sendall(data)
            else:
                shutdown(self._sock, gsocket.SHUT_WR)

    def _answer_ping(self) -> None:
        self._last_ping = time.monotonic()
        self._emit("ping")
        try:
            self._send_frame(Opcode.BINARY, PONG)
        except (ConnectionClosedError, OSError):
            pass

    def _read_loop(self, proto: ClientProtocol, sock: Any) -> None:
        code, reason = 1006, ""
        spend = ReadBudget().spend
        try:
            events, self._pending_events = self._pending_events, []
            while True:
                for frame in events:
                    self._handle_frame(frame)
                    spend(MESSAGE_COST)
                with self._lock:
                    self._flush(proto)
                if proto.state is CLOSED:
                    break
                data = sock.recv(65536)
                spend(len(data))
                if data:
                    proto.receive_data(data)
                else:
                    proto.receive_eof()
                events = proto.events_received()
                if not data and not events:
                    with self._lock:
                        self._flush(proto)
                    break
        except OSError as exc:
            if not self._closing:
                self._emit("error", exc)
        finally:
            if proto.close_rcvd is not None:
                code, reason = proto.close_rcvd.code, proto.close_rcvd.reason
            elif proto.close_sent is not None:
                code, reason = proto.close_sent.code, proto.close_sent.reason
            self._disconnected(sock, code, reason)

    def _handle_frame(self, frame: Any) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            message: Union[str, bytes] = frame.data.decode("utf-8") if opcode is Opcode.TEXT else bytes(frame.data)
            if opcode is Opcode.BINARY and message == PING:
                self._answer_ping()  # never reaches message listeners (as on the server)
                return
            if not self._emit("message", message):
                self.process_message(message)
        elif opcode is Opcode.PONG:
            self._emit("pong", bytes(frame.data))

    def _disconnected(self, sock: Any, code: int, reason: str) -> None:
        self._opened.clear()
        for channel in self._channels.values():
            channel.subscribed = channel._asking = False
        try:
            sock.close()
        except OSError:
            pass
        if self._watchdog is not None and self._watchdog is not gevent.getcurrent():
            self._watchdog.kill(block=False)
        self._watchdog = None
        self._emit("close", code, reason)
        if self.auto_reconnect and not self._closing:
            gevent.spawn(self._reconnect)

    def _reconnect(self) -> None:
        failures = 0
        while not self._closing:
            gevent.sleep(random.uniform(self.reconnect_min_interval, self.reconnect_max_interval))
            if self._closing:
                return
            try:
                self.connect()
                return
            except ConnectError as exc:
                failures += 1
                self._emit("error", exc)
                if self.reconnect_attempts and failures >= self.reconnect_attempts:
                    return

    def _watch_pings(self) -> None:
        """Close with 4001 when no ping came within pingInterval + 500 ms (as the JS client)."""
        while True:
            config = self.config or {}
            allowed = config.get("pingInterval", 20000) / 1000.0 + 0.5
            late = time.monotonic() - self._last_ping
            if late > allowed:
                proto = self._proto
                if proto is not None and proto.state is OPEN:
                    with self._lock:
                        proto.send_close(4001, "no ping from the server")
                        self._flush(proto)
                    # the close handshake may never finish with a dead server: drop the socket
                    gevent.spawn_later(1.0, self._abort_if_closing, proto)
                return
            gevent.sleep(allowed - late + 0.01)

    def _abort_if_closing(self, proto: ClientProtocol) -> None:
        if proto is self._proto and proto.state is CLOSING:
            shutdown(self._sock)

    def _ask_recovery(self, channels: List[Channel]) -> None:
        """Subscribe ``channels`` with their positions (``["s","r",...]``): the server answers
        with what each missed, or that it cannot."""
        if not channels or self.ready_state != OPEN:
            return
        for channel in channels:
            channel._asking = True
        try:
            self._send_raw(encode_json(["s", RECOVER, {channel.name: channel._position() for channel in channels}]))
        except (ConnectionClosedError, OSError):
            pass  # the reconnection asks again

    def _forget_channel(self, channel: Channel) -> None:
        if self._channels.get(channel.name) is channel:
            del self._channels[channel.name]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.url} ready_state={self.ready_state}>"

