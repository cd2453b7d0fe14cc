"""A broker's side of the horizontal hubs: one link per hub, and which hub owns a channel.

Each broker of a server with ``horizontal_scale_options`` keeps a :class:`HubLink` to
its own server's hub (``master_options``) and to every ``scalers_urls`` entry. The
links speak the broker protocol (``protocol/broker_wire.py``) over TCP, or TLS for
``wss://`` (the seed's spelling; this is not WebSocket), authenticated both ways with
HMAC over fresh nonces keyed by the shared ``key``, which never crosses the wire.

:class:`HubRouter` decides, for each channel, the one hub that carries it: a
rendezvous hash of the channel over the ids of the hubs that are up, the same on
every server, never round-robin, so the messages of a channel keep their order.
The broker declares each channel it has subscribers for to that hub and confirms a
worker's interest only once the hub confirmed (the route is live end to end); it
forwards its workers' publishes to that hub, and delivers what the hub forwards to
its own workers only. Links ping, and a hub silent past :data:`LINK_IDLE` is dropped
and reconnected with the capped backoff; what could not be sent is counted and logged.
"""
from __future__ import annotations

import hashlib
import ssl
from typing import Any, Callable, Dict, List, Optional, Sequence
from urllib.parse import urlsplit

import gevent
from gevent import socket

from ..exceptions import BrokerAuthError
from ..log import Log
from ..net.sockets import connect, set_nodelay
from ..protocol import broker_wire as wire
from .broker_client import BrokerLink

__all__ = ["HubLink", "HubRouter", "hub_key", "PING_INTERVAL", "LINK_IDLE"]

#: Seconds between two PINGs on a hub link...
PING_INTERVAL = 2.0
#: ... and without any frame from the hub before the link counts as dead.
LINK_IDLE = 6.0


def hub_key(key: str) -> bytes:
    """The HMAC key of the hub links, from ``horizontal_scale_options["key"]``."""
    return hashlib.sha256(b"clusterws-hub\0" + key.encode("utf-8")).digest()


class HubLink(BrokerLink):
    """A broker's link to one hub.

    Args:
        url: ``ws://host:port``, ``wss://host:port`` (TLS, the certificate checked against
            ``host``), or ``unix:PATH`` (the hub of this broker's own server).
        key: :func:`hub_key` of the shared key.
        broker_index: this broker's number on its server.
        server_id: this server's id (the hub never sends a message back to its server).
        on_frame: called with (kind, frame) for each PUBLISH and WORKERS the hub forwards.
        on_change: called when the link goes up or down (the channels' owners change).
        ssl_context: verifies the hubs' certificates for ``wss://``.
    """

    peer = "hub"
    key_name = "the horizontal key"
    read_timeout = LINK_IDLE

    def __init__(self, url: str, key: bytes, broker_index: int, server_id: bytes,
                 on_frame: Callable[[int, bytes], None], on_change: Callable[[], None], log: Log,
                 ssl_context: Optional[ssl.SSLContext] = None) -> None:
        parts = urlsplit(url)
        super().__init__(url, key, broker_index, lambda channel, messages: None, lambda message: None, log)
        self.local_path = url[len("unix:"):] if parts.scheme == "unix" else None
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "wss" else 80)
        self.tls = parts.scheme == "wss"
        self.server_id = server_id
        self._on_frame = on_frame
        self._on_change = on_change
        self._ssl_context = ssl_context
        self._pinger: Any = None

    def _open(self) -> Any:
        if self.local_path is not None:
            return connect(self.local_path, timeout=2.0)
        sock = socket.create_connection((self.host, self.port), timeout=2.0)
        set_nodelay(sock)
        if not self.tls:
            return sock
        context = self._ssl_context or ssl.create_default_context()
        try:
            tls = context.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLError as exc:
            sock.close()
            raise BrokerAuthError(f"TLS with the hub at {self.name} failed: {exc}") from None
        except OSError:
            sock.close()
            raise
        return tls

    def _on_up(self) -> None:
        self._pinger = gevent.spawn(self._ping)
        self._on_change()

    def _on_down(self) -> None:
        if self._pinger is not None:
            self._pinger.kill(block=False)
            self._pinger = None
        self._on_change()

    def _ping(self) -> None:
        while True:
            gevent.sleep(PING_INTERVAL)
            self.forward(wire.encode_ping())

    def _dispatch(self, kind: int, frame: bytes) -> None:
        if kind == wire.PUBLISH or kind == wire.WORKERS:
            self.received += 1
            self._on_frame(kind, frame)
        elif kind != wire.PONG:  # a PONG only proves the hub alive: the read deadline restarts
            super()._dispatch(kind, frame)

    def forward(self, frame: bytes) -> bool:
        """Send a frame as it is; False (counted) if the link is down or full."""
        outbox = self._outbox
        if outbox is None or not outbox.write(frame):
            self.dropped += 1
            return False
        return True


class HubRouter:
    """The hub links of one broker, and which one carries each channel.

    Args:
        urls: the hubs (the server's own first, if it runs one).
        key, broker_index, server_id, ssl_context: as :class:`HubLink`.
        deliver: called with (kind, frame) for what a hub forwards (to this broker's workers).
    """

    def __init__(self, urls: Sequence[str], key: bytes, broker_index: int, server_id: bytes,
                 deliver: Callable[[int, bytes], None], log: Log, ssl_context: Optional[ssl.SSLContext] = None
                 ) -> None:
        self.log = log
        #: Where what the hubs forward goes (the broker sets it to its own delivery).
        self.deliver = deliver
        self.links = [HubLink(url, key, broker_index, server_id, self._delivered, self._rehash, log, ssl_context)
                      for url in urls]
        #: Channels this broker has subscribers for, and the link each is declared on.
        self.owners: Dict[str, Optional[HubLink]] = {}
        #: Messages for the other servers dropped (no hub link up, or it was full): ``hub_link_down``.
        self.dropped = 0

    def start(self) -> None:
        for link in self.links:
            link.start()

    def stop(self) -> None:
        for link in self.links:
            link.stop()

    def owner(self, channel: str) -> Optional[HubLink]:
        """The hub link that carries ``channel`` now (None: no hub is up)."""
        up = [link for link in self.links if link.connected.is_set()]
        if not up:
            return None
        return up[wire.rendezvous(channel, [link.node_id for link in up])]

    def declare(self, channels: List[str]) -> None:
        """This broker has subscribers of ``channels`` now; returns once their hubs confirmed
        (or at once for a channel no hub is up for: a fault, counted as drops)."""
        waits = []
        for channel in channels:
            link = self.owners[channel] = self.owner(channel)
            if link is not None:
                waits.append(gevent.spawn(link.add_interest, channel))
        gevent.joinall(waits)

    def drop(self, channel: str) -> None:
        """This broker has no subscriber of ``channel`` left."""
        link = self.owners.pop(channel, None)
        if link is not None:
            link.drop_interest(channel)

    def forward(self, channel: str, frame: bytes) -> None:
        """A local worker's publish: to the hub that carries its channel."""
        link = self.owner(channel)
        if link is None or not link.forward(frame):
            self._drop(frame, "no hub link up" if link is None else f"hub link {link.name} down or full")

    def forward_to_workers(self, frame: bytes) -> None:
        """A local publish_to_workers: to one hub (it reaches every other server it links)."""
        link = self.owner("")
        if link is None or not link.forward(frame):
            self._drop(frame, "no hub link up" if link is None else f"hub link {link.name} down or full")

    def _drop(self, frame: bytes, why: str) -> None:
        count = wire.message_count(frame)
        self.dropped += count
        self.log.refusal("hub dropped", "dropped %d message(s) for the other servers: %s (%d in all)", count, why,
                         self.dropped)

    def _delivered(self, kind: int, frame: bytes) -> None:
        self.deliver(kind, frame)

    def _rehash(self) -> None:
        """A hub went up or down: move each channel whose owner changed."""
        for channel, old in list(self.owners.items()):
            new = self.owner(channel)
            if new is old:
                continue
            if old is not None:
                old.drop_interest(channel)
            self.owners[channel] = new
            if new is not None:
                new.declare(channel)
