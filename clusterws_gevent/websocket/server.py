"""The WebSocket server of one worker process: the seed's ``this.wss``.

It keeps the open sockets, the ``connection`` listeners and the middleware,
runs the keepalive, and fronts the pub/sub hub.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Set, Tuple

import gevent
from gevent.event import Event

from ..enums import Middleware
from ..listeners import add_listener, call_user_code
from ..log import Log
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..net.runners import Runners
from ..options import WebSocketOptions
from ..protocol.frames import OP_BINARY, OP_TEXT, encode_frame
from ..protocol.messages import PING, encode_config, encode_subscribe_reply
from ..pubsub.channels import channel_name_error
from ..pubsub.connector import Connector
from ..pubsub.hub import PubSubHub
from ..typing import Data, Listener
from .driver import Lot, start
from .socket import Socket
from .stats import ServerStats

__all__ = ["WebSocketServer", "Decision", "KEPT_ENVIRON_KEYS", "trim_environ"]

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
    """

    def __init__(self, options: WebSocketOptions, log: Log, connector: Optional[Connector] = None) -> None:
        self.options = options
        self.log = log
        self._connection_listeners: List[Listener] = []
        self._middleware: Dict[Middleware, Callable[..., Any]] = {}
        self._sockets: Set[Socket] = set()
        #: Counters for monitoring (``process/metrics.py``).
        self.stats = ServerStats()
        self._config_frame = encode_frame(OP_TEXT, encode_config(options.auto_ping, options.ping_interval))
        self.hub = PubSubHub(log, connector, on_channel_open=self._channel_opened,
                             on_channel_close=self._channel_closed, on_worker_message=self._worker_message)
        self._keepalive: Any = None
        self._drained = Event()
        #: Greenlets lent to parked sockets with something to do.
        self.runners = Runners()

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
        ``onChannelOpen(channel)``, ``onChannelClose(channel)``, ``onWorkerMessage(message)``.
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
        results: Dict[str, bool] = {}
        waiting: List[Tuple[str, Decision]] = []
        check = self._middleware.get(Middleware.onSubscribe)
        refused: List[Tuple[str, str]] = []
        spend = ReadBudget().spend  # a request may hold thousands of names: take turns
        for channel in channels:
            if not isinstance(channel, str) or channel in results:
                continue
            spend(MESSAGE_COST)
            rule = self._subscription_refusal(socket, channel, len(results), len(waiting))
            if rule is not None:
                results[channel] = False
                refused.append((channel, rule))
                continue
            if check is None or socket.is_subscribed(channel):
                results[channel] = self._join(socket, channel)  # the name was checked just above
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
            results[channel] = bool(accepted) and self._join(socket, channel)
        if refused:
            channel, rule = refused[0]
            self.log.debug("socket %s: %d subscription(s) refused; the first, %r: %s", socket.id, len(refused),
                           channel[:64], rule)
        socket.send_frame(encode_frame(OP_TEXT, encode_subscribe_reply(results)))

    def _subscription_refusal(self, socket: Socket, channel: str, asked: int, waiting: int) -> Optional[str]:
        """The rule that refuses ``channel`` to ``socket`` in a subscribe request, or None."""
        limit = self.options.max_channels_per_socket
        if asked >= limit:
            return f"more names in one request than max_channels_per_socket ({limit})"
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
        """Serve an accepted socket: config message, ``connection`` listeners, then the
        driver (``websocket/driver.py``): parked, this returns once the socket waits for bytes."""
        self._sockets.add(socket)
        if self.options.send_configuration_message:
            socket.send_frame(self._config_frame)
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
        """Ping every socket each ``ping_interval``; terminate those that did not answer the last ping."""
        interval = self.options.ping_interval / 1000.0
        next_at = time.monotonic() + interval
        while True:
            gevent.sleep(max(0.0, next_at - time.monotonic()))
            # Fixed ticks: a slow round does not push later pings late (clients
            # close with 4001 when a ping is over 500 ms late).
            next_at += interval
            if next_at < time.monotonic():
                next_at = time.monotonic() + interval
            for socket in tuple(self._sockets):
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
