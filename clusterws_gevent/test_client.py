"""A test client for apps: the app's worker in the test's own process, a real connection to it.

    def test_chat(app):                                   # app: the Flask app
        cws = app.extensions["clusterws"]
        flask_client = app.test_client()
        flask_client.post("/login", data={"name": "ann"})  # a logged-in session
        with cws.test_client(flask_test_client=flask_client) as ann:
            ann.subscribe("chat")
            ann.emit("say", "hello")
            assert ann.get_received()[-1] == {"channel": "chat", "data": {"name": "ann", "text": "hello"}}

As Flask-SocketIO's ``socketio.test_client(app, flask_test_client=...)``: the WebSocket
carries the Flask test client's cookies, so ``verifyConnection`` and the listeners see
its session. The worker (the app's worker function and its middleware) serves on an
ephemeral loopback port in this process, in ``Mode.Single``; every test client of one
ClusterWS shares it (two users can chat), and it stops when the last one closes. The
test must let gevent run, which every method here does while it waits.
"""
from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable, Dict, List, Optional

from .client import Client
from .enums import Mode
from .exceptions import ClusterWSError
from .protocol.messages import decode_message

__all__ = ["TestClient"]

_ids = itertools.count(1)


class _SharedWorker:
    """The in-process worker of one ClusterWS, shared by its test clients."""

    def __init__(self, cws: Any) -> None:
        from .log import make_log
        from .process.worker import Worker

        options = dataclasses.replace(cws.options, port=0, host="127.0.0.1", mode=Mode.Single)
        self.worker = Worker(options, make_log(options.logger_options.logger, options.logger_options.log_level))
        self.worker.start()
        self.port = self.worker.server.address[1]
        self.users = 0

    def stop(self) -> None:
        self.worker.stop(timeout=1.0)


class TestClient:
    """A connected client of the app's worker (see the module docstring).

    Args:
        cws: the ClusterWS whose worker serves.
        flask_test_client: a Flask test client whose cookies the connection carries.
        path: the request path and query of the upgrade (``/?room=1``).
        headers: extra headers of the upgrade request.
        timeout: seconds a wait may take.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, cws: Any, flask_test_client: Any = None, path: str = "/",
                 headers: Optional[Dict[str, str]] = None, timeout: float = 5.0) -> None:
        shared = cws.__dict__.get("_test_worker")
        if shared is None:
            shared = cws.__dict__["_test_worker"] = _SharedWorker(cws)
        self._cws = cws
        self._shared = shared
        self.timeout = timeout
        self._received: List[Dict[str, Any]] = []
        all_headers = dict(headers or {})
        cookie = _cookie_header(flask_test_client)
        if cookie:
            all_headers["Cookie"] = cookie
        self._client = Client(f"ws://127.0.0.1:{shared.port}{path}", headers=all_headers, connect=False,
                              timeout=timeout)
        self._client.on("message", self._record)
        self._pongs: List[bytes] = []
        self._client.on("pong", self._pongs.append)
        shared.users += 1
        try:
            self._client.connect()
        except BaseException:
            self._leave()
            raise

    # -- Flask-SocketIO's test client API, in ClusterWS terms ------------------------------------

    def emit(self, event: str, data: Any = None) -> None:
        """Send an event to the server (the JS client's ``send(event, data)``)."""
        self._client.send(event, data)

    def send(self, event: str, data: Any = None) -> None:
        """The same as :meth:`emit` (the ClusterWS client's name)."""
        self._client.send(event, data)

    def subscribe(self, channel: str) -> bool:
        """Subscribe to ``channel``; whether the server accepted (onSubscribe decides)."""
        return bool(self._client.subscribe(channel).wait_subscribed(self.timeout))

    def unsubscribe(self, channel: str) -> None:
        """Leave ``channel``."""
        subscription = self._client.get_channel_by_name(channel)
        if subscription is not None:
            subscription.unsubscribe()

    def publish(self, channel: str, data: Any) -> None:
        """Publish to ``channel``, as the client does (it must be subscribed to it)."""
        subscription = self._client.get_channel_by_name(channel)
        if subscription is None:
            raise ValueError(f"subscribe to {channel!r} before publishing to it (the protocol's rule)")
        subscription.publish(data)

    def get_received(self) -> List[Dict[str, Any]]:
        """What the server sent since the last call, once it handled everything sent before:
        ``{"event": name, "data": data}`` per event and ``{"channel": name, "data": message}``
        per published message, in order (publishes wait for the hub's 5 ms batching)."""
        self.sync()
        received, self._received = self._received, []
        return received

    def sync(self) -> None:
        """Wait until the server handled everything sent so far and its publish batches went out."""
        from .testing import wait_until

        assert self._shared is not None, "the test client is closed"
        for step in (b"handled", b"flushed"):
            token = str(next(_ids)).encode() + step
            self._client.ping(token)  # answered once everything sent before it was handled
            wait_until(self._ponged(token), self.timeout, interval=0.001, message="the server's pong")
            if step == b"handled":
                self._shared.worker.wss.hub.flush()  # what those messages published, now, not in 5 ms

    def _ponged(self, token: bytes) -> Callable[[], bool]:
        return lambda: token in self._pongs

    def is_connected(self) -> bool:
        """Whether the connection is open."""
        return self._client.ready_state == 1

    def close(self) -> None:
        """Close the connection (the shared worker stops with its last client)."""
        if self._shared is None:
            return
        self._client.close(timeout=1)
        self._leave()

    def _leave(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            shared.users -= 1
            if not shared.users:
                shared.stop()
                self._cws.__dict__.pop("_test_worker", None)

    def __enter__(self) -> TestClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- receiving ------------------------------------------------------------------------------

    def _record(self, raw: Any) -> None:
        if isinstance(raw, str):
            try:
                kind, param, data = decode_message(raw)
            except ClusterWSError:
                kind = ""
            if kind == "e":
                self._received.append({"event": param, "data": data})
            elif kind == "p":
                for channel, messages in data.items():
                    self._received.extend({"channel": channel, "data": message} for message in messages)
        self._client.process_message(raw)


def _cookie_header(flask_test_client: Any) -> str:
    """The ``Cookie`` header a Flask (Werkzeug) test client would send."""
    if flask_test_client is None:
        return ""
    cookies = getattr(flask_test_client, "_cookies", None)  # Werkzeug >= 2.3
    if isinstance(cookies, dict):
        pairs = [(cookie.key, cookie.value) for cookie in cookies.values()]
    else:
        jar = getattr(flask_test_client, "cookie_jar", None) or []
        pairs = [(cookie.name, cookie.value) for cookie in jar]
    return "; ".join(f"{key}={value}" for key, value in pairs)
