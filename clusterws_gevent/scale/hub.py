"""The horizontal scaler hub: joins the brokers of several servers (``master_options``).

A hub is a broker whose links are brokers of servers, each carrying its server's
id (sent in HELLO, covered by the HMAC proof). It routes a PUBLISH to the links
that declared interest in its channel, except those of the server it came from.
Channels are sharded over the brokers of a server by name, so one link per server
holds a channel's interest: each remote server receives each message once,
whatever its number of brokers. A ``publish_to_workers`` message goes to one link
of every other server (that broker reaches every worker of its server).

It listens on ``master_options["port"]`` (on the server's host), with TLS when
``master_options["tls_options"]`` is given: other servers' brokers join there, and
check its certificate against the name in their ``scalers_urls`` entry. Its own
server's brokers join it on a Unix socket in the master's private directory instead,
so no certificate needs to name 127.0.0.1. Before a link proves it holds the key it
is held to the broker's limits (73-byte frames, 64 handshakes at once and 8 from one
address, 5 s including the TLS handshake); a link that sends nothing (not even its
PINGs) for ``LINK_IDLE`` seconds is dropped.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Dict, List, Optional

import gevent
from gevent.server import StreamServer
from gevent.ssl import SSLSocket

from ..log import Log
from ..net.sockets import listen, listen_tcp
from ..protocol import broker_wire as wire
from .broker import Broker, _Link
from .hub_link import LINK_IDLE

__all__ = ["Hub"]


class Hub(Broker):
    """The scaler hub of ``horizontal_scale_options``.

    Args:
        host: the address to listen on ("" for every interface).
        port: ``master_options["port"]``.
        key: :func:`~clusterws_gevent.scale.hub_link.hub_key` of the shared key.
        log: where to log.
        ssl_context: serve TLS (``wss://`` for the brokers that join).
        local_path: a Unix socket for the brokers of this hub's own server (no TLS), or None.
    """

    role = "hub"
    key_name = "the horizontal key"

    def __init__(self, host: str, port: int, key: bytes, log: Log, ssl_context: Any = None,
                 local_path: Optional[str] = None) -> None:
        super().__init__(port, key, log)
        self.host = host
        self.name = f"{host or '*'}:{port}"
        self.node_id = os.urandom(wire.NODE_ID_SIZE)
        self.ssl_context = ssl_context
        self.local_path = local_path
        self._local: Optional[StreamServer] = None

    def start(self) -> None:
        super().start()
        if self.local_path is not None:
            self._local = StreamServer(listen(self.local_path), self._serve, spawn=gevent.spawn_raw)
            self._local.start()

    def stop(self, wait_for_workers: float = 0.0) -> None:
        if self._local is not None:
            self._local.close()
        super().stop(wait_for_workers)

    def _listen(self) -> Any:
        return listen_tcp(self.host, int(self.address))

    def _accepted(self, sock: Any) -> Any:
        """The socket to speak on: TLS over TCP when the hub has a certificate; the local Unix
        socket as it is. Runs within the handshake's deadline and places (``Broker._greet``)."""
        sock.settimeout(LINK_IDLE)  # a broker pings: silence means a dead or half-open link
        if self.ssl_context is None or sock.family == socket.AF_UNIX:
            return sock
        try:
            tls = SSLSocket(sock=sock, server_side=True, do_handshake_on_connect=False, _context=self.ssl_context)
            tls.do_handshake()
        except OSError as exc:
            self.log.refusal("hub-tls", "hub %s: TLS handshake with %s failed (%s); refused", self.name, _peer(sock),
                             exc)
            sock.close()
            return None
        tls.settimeout(LINK_IDLE)
        return tls

    def _routable(self, target: _Link, source: Optional[_Link]) -> bool:
        return source is None or target.server_id != source.server_id

    def _worker_targets(self, source: _Link) -> List[_Link]:
        """One link of every other server: that broker reaches every worker of its server."""
        chosen: Dict[bytes, _Link] = {}
        for link in self._links:
            if link.server_id != source.server_id:
                current = chosen.get(link.server_id)
                if current is None or link.worker_id < current.worker_id:
                    chosen[link.server_id] = link
        return list(chosen.values())


def _peer(sock: Any) -> str:
    try:
        host, port = sock.getpeername()[:2]
        return f"{host}:{port}"
    except OSError:
        return "a peer that left"
