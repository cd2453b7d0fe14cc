"""The WebSocket server of one worker process: the seed's ``this.wss``.

It keeps the open sockets, the ``connection`` listeners and the middleware,
runs the keepalive, and fronts the pub/sub hub.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Set, Tuple

import gevent
from gevent.event import Event

from ..enums import Middleware
from ..exceptions import Unavailable
from ..listeners import add_listener, call_user_code
from ..log import Log, quote
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..net.memory import MessageMemory
from ..net.runners import Runners
from ..options import ChannelOptions, WebSocketOptions
from ..protocol import json_codec
from ..protocol.frames import OP_BINARY, OP_TEXT, encode_frame
from ..protocol.messages import (
    PING,
    encode_config,
    encode_positioned_entry,
    encode_positioned_frame,
    encode_recover_reply,
    encode_subscribe_reply,
)
from ..pubsub.channels import channel_name_error
from ..pubsub.connector import Connector, LocalConnector
from ..pubsub.hub import PubSubHub, control_channel
from ..pubsub.presence import stats as presence_stats
from ..typing import Data, Listener
from .driver import Lot, start
from .socket import Socket, too_many_channels
from .stats import ServerStats

__all__ = ["WebSocketServer", "Decision", "History", "KEPT_ENVIRON_KEYS", "trim_environ"]

_PING_FRAME = encode_frame(OP_BINARY, PING)

#: The keys of the upgrade request's environ a socket keeps once its ``connection``
#: listeners ran (in Flask mode the request context, and so the environ, lives as long
#: as the socket: up to max_header_bytes of headers per idle connection otherwise).
#: ``flask.session`` was loaded when the context was pushed; read any other header in
#: verifyConnection or a connection listener.
KEPT_ENVIRON_KEYS = frozenset((
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
    "REMOTE_ADDR", "REMOTE_PORT", "HTTP_HOST", "HTTP_ORIGIN", "HTTP_USER_AGENT", "wsgi.url_scheme", "wsgi.version",
    "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.errors", "werkzeug.request",
))


def trim_environ(environ: Any) -> None:
    """Drop, in place, every key of ``environ`` a socket does not keep (``KEPT_ENVIRON_KEYS``)."""
    if isinstance(environ, dict):
        for key in [key for key in environ if key not in KEPT_ENVIRON_KEYS]:
            del environ[key]


class History(NamedTuple):
    """What ``wss.history(channel)`` returns."""

    #: ``(offset, data)`` oldest first.
    messages: List[Tuple[int, Any]]
    #: The channel's latest offset (0: nothing published in this epoch).
    offset: int
    #: Its stream's name: another epoch means the history was lost in between.
    epoch: str


def _position(asked: Any) -> Optional[Tuple[str, int]]:
    """A client's ``[epoch, offset]`` (None: no position yet, or not one)."""
    if (isinstance(asked, list) and len(asked) == 2 and isinstance(asked[0], str) and isinstance(asked[1], int)
            and not isinstance(asked[1], bool) and asked[1] >= 0):
        return asked[0], asked[1]
    return None


class Decision:
    """The ``next`` a middleware calls, maybe later and from another greenlet.

    ``next(True)`` accepts; ``next(False[, code, reason])`` refuses. The first
    call counts; later ones are ignored.
    """

    __slots__ = ("value", "args", "_event")

    def __init__(self) -> None:
        self.value: Optional[bool] = None
        self.args: Tuple[Any, ...] = ()
        self._event: Optional[Event] = None

    def __call__(self, accept: Any = True, *args: Any) -> None:
        if self.value is not None:
            return
        self.value = bool(accept)
        self.args = args
        if self._event is not None:
            self._event.set()

    def wait(self, timeout: float) -> Optional[bool]:
        """The decision, or None if none came within ``timeout`` seconds."""
        if self.value is None:
            self._event = Event()
            self._event.wait(timeout)
        return self.value


class WebSocketServer:
    """The WebSocket server of a worker (``w.wss``).

    Args:
        options: the WebSocket options.
        log: where to log.
        connector: carries pub/sub to other processes (none in ``Mode.Single``).
        channels: the channels' history and presence options (``channel_options``).
    """

    def __init__(self, options: WebSocketOptions, log: Log, connector: Optional[Connector] = None,
                 channels: Optional[ChannelOptions] = None) -> None:
        self.options = options
        #: History, recovery and presence per channel (``channel_options``).
        self.channels = channels or ChannelOptions()
        self.log = log
        self._connection_listeners: List[Listener] = []
        self._middleware: Dict[Middleware, Callable[..., Any]] = {}
        self._sockets: Set[Socket] = set()
        #: Counters for monitoring (``process/metrics.py``).
        self.stats = ServerStats()
        #: What a socket gets first, in the same write as the handshake's 101 (the configuration
        #: message, unless turned off): one system call and one TCP segment less per connection.
        self.opening_frames = (encode_frame(OP_TEXT, encode_config(options.auto_ping, options.ping_interval))
                               if options.send_configuration_message else b"")
        self.hub = PubSubHub(log, connector or LocalConnector(self.channels), on_channel_open=self._channel_opened,
                             on_channel_close=self._channel_closed, on_worker_message=self._worker_message,
                             channels=self.channels)
        self.hub.deflating = options.compression
        self._keepalive: Any = None
        self._drained = Event()
        #: Greenlets lent to parked sockets with something to do.
        self.runners = Runners()
        #: What incoming messages of every socket may hold at once (``net/memory.py``).
        self.memory = MessageMemory(options.max_message_memory)

    # -- the seed's API -----------------------------------------------------------------------

    def on(self, event: str, listener: Optional[Listener] = None) -> Any:
        """``on("connection", fn)``: call ``fn(socket, environ)`` for each new socket.

        Without ``fn``, a decorator. ``environ`` is the WSGI environ of the upgrade
        request (the seed's ``upgReq``).
        """
        if event != "connection":
            raise ValueError(f"the server has one event, 'connection'; got {event!r}")
        return add_listener(self._connection_listeners, listener, "connection listener")

    def add_middleware(self, kind: Middleware, fn: Callable[..., Any]) -> None:
        """Install ``fn`` as the middleware ``kind`` (one per kind; a second replaces the first).

        Signatures, as in the seed: ``verifyConnection(info, next)``,
        ``onSubscribe(socket, channel, next)``, ``onUnsubscribe(socket, channel)``,
        ``onChannelOpen(channel)``, ``onChannelClose(channel)``, ``onWorkerMessage(message)``;
        and ours, ``onPublish(socket, channel, message, next)`` for a client's publish.
        ``next`` may be called later, from any greenlet.
        """
        if not isinstance(kind, Middleware):
            try:
                kind = Middleware(kind)
            except ValueError:
                valid = ", ".join(m.value for m in dict.fromkeys(Middleware))
                raise ValueError(f"unknown middleware {kind!r}; valid: {valid}") from None
        if not callable(fn):
            raise TypeError(f"middleware {kind.value} must be callable, got {fn!r}")
        self._middleware[kind] = fn

    def middleware(self, kind: Middleware) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator form of :meth:`add_middleware`."""
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            self.add_middleware(kind, fn)
            return fn
        return decorator

    def publish(self, channel: str, data: Data) -> None:
        """Publish ``data`` to every subscriber of ``channel``, on every worker.

        Raises:
            TypeError: ``channel`` is not a string or ``data`` is not JSON serializable.
            ValueError: ``channel`` is not a valid channel name (``channel_name_error``), or
                ``data`` holds NaN or an infinity.
        """
        self._check_channel(channel)
        self.hub.publish(channel, data)

    def publish_to_workers(self, message: Data) -> None:
        """Send ``message`` (any JSON value) to onWorkerMessage of every other worker."""
        self.hub.publish_to_workers(message)

    @property
    def sockets(self) -> Set[Socket]:
        """The open sockets of this worker (a copy)."""
        return set(self._sockets)

    def __len__(self) -> int:
        return len(self._sockets)

    # -- subscriptions ----------------------------------------------------------------------------

    def subscribe(self, socket: Socket, channel: str) -> bool:
        """Subscribe ``socket`` to ``channel`` without asking onSubscribe.

        Returns:
            False when already subscribed, the socket is closed, or it holds
            ``max_channels_per_socket`` channels already.

        Raises:
            TypeError, ValueError: ``channel`` is not a valid channel name.
        """
        self._check_channel(channel)
        return self._join(socket, channel)

    def _join(self, socket: Socket, channel: str) -> bool:
        """Subscribe ``socket`` to a channel whose name is known to be valid."""
        if not socket.is_open() or socket.channel_count() >= self.options.max_channels_per_socket:
            return False
        return self.hub.subscribe(socket, channel)

    def _check_channel(self, channel: Any) -> None:
        rule = channel_name_error(channel, self.options.max_channel_length)
        if rule is not None:
            if not isinstance(channel, str):
                raise TypeError(f"channel must be a string, got {channel!r}")
            raise ValueError(f"invalid channel name {channel[:64]!r}: {rule}")

    def unsubscribe(self, socket: Socket, channel: str) -> bool:
        """Unsubscribe ``socket`` from ``channel`` and tell onUnsubscribe."""
        if not self.hub.unsubscribe(socket, channel):
            return False
        self._call_middleware(Middleware.onUnsubscribe, socket, channel)
        return True

    def handle_subscribe_request(self, socket: Socket, channels: Any) -> None:
        """``["s","s",[channels]]``: ask onSubscribe for each channel, then reply
        ``["s","s",{channel: bool}]`` once every decision is known."""
        if isinstance(channels, str):
            channels = [channels]
        if not isinstance(channels, list):
            self.log.debug("socket %s: subscribe request without a list of channels; ignored", socket.id)
            return
        if len(channels) > self.options.max_channels_per_socket:
            socket.refuse(too_many_channels(self.options.max_channels_per_socket))
            return
        results = self._subscribe_many(socket, channels, self._join)
        socket.send_frame(encode_frame(OP_TEXT, encode_subscribe_reply(results)))

    def handle_recover_request(self, socket: Socket, request: Any) -> None:
        """``["s","r",{channel: [epoch, offset] | null}]`` (the recovery extension,
        ``docs/protocol.md``): subscribe as ``["s","s"]`` does (onSubscribe decides), with
        positions; with ``[epoch, offset]``, what was published since that position is sent
        first, in the reply, if the channel's history still holds all of it (``recovered``).

        Exact, as Centrifugo's: the socket's live messages of the channel are kept aside from
        before its route is live until the reply went out; the history is read once the
        route is live; what was kept aside goes out after the reply, without what the
        history already held (by offset). Nothing is lost in between, nothing comes twice.
        A socket subscribed already (a client that saw a gap in the offsets) recovers again."""
        if not isinstance(request, dict):
            self.log.debug("socket %s: recover request without an object of channels; ignored", socket.id)
            return
        if len(request) > self.options.max_channels_per_socket:
            socket.refuse(too_many_channels(self.options.max_channels_per_socket))
            return
        positions = {channel: _position(asked) for channel, asked in request.items()}
        answers: Dict[str, Any] = {}

        def join(socket: Socket, channel: str) -> bool:
            answer = answers[channel] = self._recover(socket, channel, positions[channel])
            return answer is not False

        self._subscribe_many(socket, list(request), join, again=True)
        socket.send_frame(encode_frame(OP_TEXT, encode_recover_reply({ch: answers.get(ch, False) for ch in request})))
        for channel, answer in answers.items():
            if answer:
                self._release_kept(socket, channel, answer)

    def _recover(self, socket: Socket, channel: str, asked: Optional[Tuple[str, int]]) -> Any:
        """Join ``channel`` (again) keeping its live messages aside, and read its history:
        the recovery answer, or False if the subscription failed."""
        socket.begin_recovery(channel)
        if not socket.is_subscribed(channel) and not self._join(socket, channel):
            socket.end_recovery(channel)
            return False
        if self.channels.policy(channel).join_leave:
            self._join(socket, control_channel(channel))
        if not self.channels.policy(channel).history:
            return {"epoch": None, "offset": 0, "recovered": False, "publications": []}
        try:
            read = self.hub.connector.history(channel, asked[1] if asked else None, None if asked else 0)
        except Unavailable as exc:
            self.log.refusal("history", "socket %s: the history of %s could not be read (%s); not recovered",
                             socket.id, quote(channel, 64), exc)
            return {"epoch": None, "offset": 0, "recovered": False, "publications": []}
        recovered = asked is not None and asked[0] == read.epoch and asked[1] <= read.offset and (
            asked[1] == read.offset or bool(read.messages) and read.messages[0][0] == asked[1] + 1)
        return {"epoch": read.epoch, "offset": read.offset, "recovered": recovered,
                "publications": read.messages if recovered else []}

    def _release_kept(self, socket: Socket, channel: str, answer: Dict[str, Any]) -> None:
        """After the recovery reply: what was kept aside, but what the history already held."""
        for epoch, first, messages in socket.end_recovery(channel):
            if epoch == answer["epoch"] and first <= answer["offset"]:
                messages, first = messages[answer["offset"] + 1 - first:], answer["offset"] + 1
            if messages:
                socket.send_frame(encode_frame(OP_TEXT, encode_positioned_frame(
                    [encode_positioned_entry(channel, epoch, first, list(messages))])))

    def _subscribe_many(self, socket: Socket, channels: List[Any], join: Callable[[Socket, str], bool],
                        again: bool = False) -> Dict[str, bool]:
        """Ask onSubscribe for each channel and ``join`` those accepted, once every decision
        is known; a socket subscribed already is joined at once (``again``) or refused."""
        results: Dict[str, bool] = {}
        waiting: List[Tuple[str, Decision]] = []
        check = self._middleware.get(Middleware.onSubscribe)
        refused_count, first_refused = 0, None
        spend = ReadBudget().spend  # a request may hold thousands of names: take turns
        for channel in channels:
            if not isinstance(channel, str) or channel in results:
                continue
            spend(MESSAGE_COST)
            rule = self._subscription_refusal(socket, channel, len(waiting))
            if rule is not None:
                results[channel] = False
                refused_count += 1
                first_refused = first_refused or (channel, rule)
                continue
            if check is None or socket.is_subscribed(channel):
                results[channel] = join(socket, channel) if again or not socket.is_subscribed(channel) else False
                continue
            results[channel] = False
            decision = Decision()
            if call_user_code(self.log, check, (socket, channel, decision), "socket %s: onSubscribe failed for %r; "
                              "declined", socket.id, channel) is not None:
                continue
            waiting.append((channel, decision))
        deadline = time.monotonic() + self.options.middleware_timeout
        for channel, decision in waiting:
            accepted = decision.wait(max(0.0, deadline - time.monotonic()))
            if accepted is None:
                self.log.warning("socket %s: onSubscribe did not call next() within %.1fs for %r; declined",
                                 socket.id, self.options.middleware_timeout, channel)
            results[channel] = bool(accepted) and join(socket, channel)
        if first_refused is not None:
            channel, rule = first_refused
            self.log.debug("socket %s: %d subscription(s) refused; the first, %s: %s", socket.id, refused_count,
                           quote(channel, 64), rule)
        return results

    # -- history and presence ---------------------------------------------------------------------

    def history(self, channel: str, limit: Optional[int] = None) -> History:
        """The channel's kept messages, oldest first (the last ``limit`` of them), its latest
        offset and its epoch, over every worker (from the channel's owner: this process, its
        broker, or Redis).

        Raises:
            TypeError, ValueError: a bad channel name.
            Unavailable: the owner did not answer.
        """
        self._check_channel(channel)
        read = self.hub.connector.history(channel, None, limit)
        return History([(offset, json_codec.decode(message.decode("utf-8"))) for offset, message in read.messages],
                       read.offset, read.epoch)

    def presence(self, channel: str) -> Dict[str, Any]:
        """``{socket id: {"user": ...}}`` of every socket subscribed to ``channel`` (with
        presence in ``channel_options``), over every worker and server.

        Raises:
            TypeError, ValueError: a bad channel name.
            Unavailable: the owner did not answer.
        """
        self._check_channel(channel)
        return {socket_id: json_codec.decode(info.decode("utf-8"))
                for socket_id, info in self.hub.connector.presence(channel).items()}

    def presence_stats(self, channel: str) -> Dict[str, int]:
        """``{"clients": n, "users": m}`` of ``channel``: its sockets, and its distinct users
        (sockets with no user are not counted among them)."""
        return presence_stats(self.presence(channel))

    def handle_publish_request(self, socket: Socket, channel: str, data: Data) -> None:
        """``["p",channel,data]`` from a socket subscribed to ``channel``: published once
        onPublish allowed it (it may answer later, from any greenlet; this socket's later
        messages wait for the answer, in order); without onPublish, at once."""
        check = self._middleware.get(Middleware.onPublish)
        if check is not None:
            decision = Decision()
            if call_user_code(self.log, check, (socket, channel, data, decision),
                              "socket %s: onPublish failed for %s; refused", socket.id, quote(channel, 64)) is not None:
                return
            allowed = decision.wait(self.options.middleware_timeout)
            if not allowed:
                if allowed is None:
                    self.log.warning("socket %s: onPublish did not call next() within %.1fs for %s; refused",
                                     socket.id, self.options.middleware_timeout, quote(channel, 64))
                self.stats.refuse("publish")
                return
        self.hub.publish(channel, data)

    def _subscription_refusal(self, socket: Socket, channel: str, waiting: int) -> Optional[str]:
        """The rule that refuses ``channel`` to ``socket`` in a subscribe request, or None."""
        limit = self.options.max_channels_per_socket
        rule = channel_name_error(channel, self.options.max_channel_length)
        if rule is not None:
            return rule
        if not socket.is_subscribed(channel) and socket.channel_count() + waiting >= limit:
            return f"the socket holds max_channels_per_socket ({limit}) channels"
        return None

    # -- connections (called by the WSGI handler) ---------------------------------------------------

    def verify(self, info: Any) -> Tuple[Any, ...]:
        """Run verifyConnection on ``info``: ``(True,)`` or ``(False, code, reason)``."""
        check = self._middleware.get(Middleware.verifyConnection)
        if check is None:
            return (True,)
        decision = Decision()
        if call_user_code(self.log, check, (info, decision), "verifyConnection failed; connection refused") is not None:
            return (False, 500, "verifyConnection failed")
        accepted = decision.wait(self.options.middleware_timeout)
        if accepted is None:
            self.log.warning("verifyConnection did not call next() within %.1fs; connection refused",
                             self.options.middleware_timeout)
            return (False, 401, "")
        if accepted:
            return (True,)
        code = decision.args[0] if decision.args and isinstance(decision.args[0], int) else 401
        reason = decision.args[1] if len(decision.args) > 1 and isinstance(decision.args[1], str) else ""
        return (False, code, reason)

    def serve(self, socket: Socket, environ: Mapping[str, Any], lot: Lot) -> None:
        """Serve an accepted socket (its configuration message went out with the 101:
        :attr:`opening_frames`): ``connection`` listeners, then the driver
        (``websocket/driver.py``): parked, this returns once the socket waits for bytes."""
        self._sockets.add(socket)
        for listener in tuple(self._connection_listeners):
            call_user_code(self.log, listener, (socket, environ), "socket %s: connection listener failed", socket.id)
        trim_environ(environ)
        del environ  # held by this frame for the socket's lifetime otherwise
        start(socket.connection, socket, lot)

    def forget(self, socket: Socket) -> None:
        """A socket closed: drop it and its subscriptions (telling onUnsubscribe)."""
        self._sockets.discard(socket)
        for channel in self.hub.unsubscribe_all(socket):
            self._call_middleware(Middleware.onUnsubscribe, socket, channel)
        if not self._sockets:
            self._drained.set()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pub/sub hub and the keepalive."""
        self.hub.start()
        if self.options.auto_ping and self._keepalive is None:
            self._keepalive = gevent.spawn(self._run_keepalive)

    def close_all(self, code: int = 1001, reason: str = "server shutting down", timeout: float = 5.0) -> int:
        """Close every socket with ``code`` and wait (at most ``timeout`` s) until they are gone.

        Returns:
            how many sockets were still open at the deadline (they are terminated).
        """
        if self._keepalive is not None:
            self._keepalive.kill(block=False)
            self._keepalive = None
        self._drained.clear()
        for socket in tuple(self._sockets):
            socket.close(code, reason)
        if self._sockets:
            self._drained.wait(timeout)
        left = tuple(self._sockets)
        for socket in left:
            socket.terminate()
        self.hub.stop()
        return len(left)

    def _run_keepalive(self) -> None:
        """Ping every socket each ``ping_interval``; terminate those that did not answer the last
        ping. A round takes turns with the other greenlets (a write per socket: 15,000 sockets
        would hold the event loop for tens of milliseconds)."""
        interval = self.options.ping_interval / 1000.0
        next_at = time.monotonic() + interval
        while True:
            gevent.sleep(max(0.0, next_at - time.monotonic()))
            # Fixed ticks: a slow round does not push later pings late (clients
            # close with 4001 when a ping is over 500 ms late).
            next_at += interval
            if next_at < time.monotonic():
                next_at = time.monotonic() + interval
            spend = ReadBudget().spend
            for socket in tuple(self._sockets):
                spend(MESSAGE_COST)
                if socket.awaiting_pong and not socket.busy:
                    self.log.debug("socket %s: no pong since the last ping; terminating", socket.id)
                    socket.terminate()
                    continue
                socket.awaiting_pong = True
                socket.send_frame(_PING_FRAME)

    # -- middleware hooks ------------------------------------------------------------------------

    def _call_middleware(self, kind: Middleware, *args: Any) -> None:
        fn = self._middleware.get(kind)
        if fn is not None:
            call_user_code(self.log, fn, args, "%s middleware failed", kind.value)

    def _channel_opened(self, channel: str) -> None:
        self._call_middleware(Middleware.onChannelOpen, channel)

    def _channel_closed(self, channel: str) -> None:
        self._call_middleware(Middleware.onChannelClose, channel)

    def _worker_message(self, message: Any) -> None:
        self._call_middleware(Middleware.onWorkerMessage, message)
