"""A broker: the process that carries pub/sub between workers (``Mode.Scale``).

A gevent ``StreamServer`` on a Unix socket in the master's private directory (or a
loopback port). Each worker connects to every broker; both prove they hold the
cluster key without sending it (``protocol/broker_wire.py``): a process without
it is refused, and learns nothing.
Channels are sharded over brokers by a stable hash of their name, so all the
messages of one channel take one broker, in order. A broker routes a publish to
the workers that declared interest in its channel, never back to its sender, and
forwards the frame as it received it.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import gevent
from gevent.event import Event
from gevent.server import StreamServer

from ..exceptions import ProtocolError
from ..log import Log
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..net.sockets import Address, describe, listen, set_nodelay
from ..protocol import broker_wire as wire
from ..websocket.outbox import Outbox

__all__ = ["Broker", "recv_frames", "HELLO_TIMEOUT", "LINK_OUTBOX", "MAX_HANDSHAKES"]

#: Seconds a connecting process has to complete the handshake.
HELLO_TIMEOUT = 5.0
#: Connections that may be in their handshake at once; more are closed at once.
MAX_HANDSHAKES = 64
#: Bytes a worker link may have waiting before the broker drops the link (the worker reconnects).
LINK_OUTBOX = 64 << 20


def recv_frames(sock: Any, parser: wire.FrameParser) -> List[Tuple[int, bytes]]:
    """Read ``sock`` until ``parser`` completes at least one frame; [] at the end of the stream.

    The first message of a link (HELLO, or WELCOME in return) is read with it."""
    frames: List[Tuple[int, bytes]] = []
    while not frames:
        data = sock.recv(4096)
        if not data:
            return []
        frames = parser.feed(data)
    return frames


class _Link:
    """One worker's connection to this broker."""

    __slots__ = ("worker_id", "sock", "outbox", "channels", "address")

    def __init__(self, worker_id: int, sock: Any, address: Any, on_overflow: Callable[[_Link, int], None]) -> None:
        self.worker_id = worker_id
        self.sock = sock
        self.outbox = Outbox(sock, LINK_OUTBOX, lambda waiting, refused: on_overflow(self, waiting),
                             lambda exc: None)  # a broken link ends its read loop too
        self.channels: Set[str] = set()
        self.address = address


class Broker:
    """Routes publishes between the workers connected to it.

    Args:
        address: where to listen: a Unix socket path, or a port on loopback.
        key: the cluster key every worker must prove it holds.
        log: where to log.
    """

    def __init__(self, address: Address, key: bytes, log: Log) -> None:
        self.address = address
        #: How logs name this broker.
        self.name = describe(address)
        self.key = key
        self.log = log
        self.server: Optional[StreamServer] = None
        self._handshakes = 0
        self._links: Set[_Link] = set()
        self._no_links = Event()
        self._no_links.set()
        self._interest: Dict[str, Set[_Link]] = {}
        #: Messages (not frames) dropped because a worker link was full or broken.
        self.dropped = 0

    def start(self) -> None:
        """Listen (raises OSError if the address is taken)."""
        self.server = StreamServer(listen(self.address), self._serve, spawn=gevent.spawn_raw)
        self.server.start()

    def stop(self, wait_for_workers: float = 0.0) -> None:
        """Stop listening and close every link, after waiting at most ``wait_for_workers``
        seconds for the workers to leave (a signal may reach every process at once, as
        systemd sends it: the workers still close their WebSockets through their links)."""
        if self.server is None:
            return
        self.server.close()
        if self._links and not self._no_links.wait(wait_for_workers):
            self.log.warning("broker %s: %d worker link(s) still open after %.0fs; closing them", self.name,
                             len(self._links), wait_for_workers)
        self.server.stop(timeout=1)
        if isinstance(self.address, str):
            try:
                os.unlink(self.address)
            except OSError:
                pass  # already gone: the master removes its runtime directory too
        for link in tuple(self._links):
            link.outbox.discard()
            try:
                link.sock.close()
            except OSError:
                pass

    def _serve(self, sock: Any, address: Any) -> None:
        set_nodelay(sock)  # small frames (ACK, one publish) must not wait
        parser = wire.FrameParser(wire.HANDSHAKE_MAX_FRAME)
        link: Optional[_Link] = None
        try:
            link = self._greet(sock, address, parser)
            if link is None:
                return
            spend = ReadBudget().spend
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                spend(len(data))
                for kind, frame in parser.feed(data):
                    self._dispatch(link, kind, frame)
                    spend(MESSAGE_COST)
        except ProtocolError as exc:
            self.log.error("broker %s: bad frame from worker %s: %s; link closed", self.name,
                           link.worker_id if link else address, exc)
        except OSError:
            pass
        finally:
            if link is not None:
                self._forget(link)
            sock.close()

    def _greet(self, sock: Any, address: Any, parser: wire.FrameParser) -> Optional[_Link]:
        """The handshake: the link once the worker proved it holds the key, or None (refused, logged)."""
        if self._handshakes >= MAX_HANDSHAKES:
            self._refuse(address, f"{MAX_HANDSHAKES} connections are in their handshake already")
            return None
        self._handshakes += 1
        try:
            with gevent.Timeout(HELLO_TIMEOUT, False):
                return self._authenticate(sock, address, parser)
            self._refuse(address, f"no handshake within {HELLO_TIMEOUT:.0f}s")
            return None
        except ProtocolError as exc:
            self._refuse(address, str(exc))
            return None
        finally:
            self._handshakes -= 1

    def _authenticate(self, sock: Any, address: Any, parser: wire.FrameParser) -> Optional[_Link]:
        frames = recv_frames(sock, parser)
        if not frames or frames[0][0] != wire.HELLO:
            self._refuse(address, "no HELLO")
            return None
        version, worker_id, worker_nonce = wire.decode_hello(frames[0][1])
        if version != wire.VERSION:
            self._refuse(address, f"protocol version {version}, this broker speaks {wire.VERSION}")
            return None
        broker_nonce = wire.new_nonce()
        sock.sendall(wire.encode_challenge(broker_nonce, wire.broker_proof(self.key, worker_nonce, broker_nonce)))
        frames = frames[1:] or recv_frames(sock, parser)
        if not frames or frames[0][0] != wire.PROOF:
            self._refuse(address, "no PROOF")
            return None
        expected = wire.worker_proof(self.key, broker_nonce, worker_nonce, worker_id)
        if not wire.proofs_match(wire.decode_proof(frames[0][1]), expected):
            self._refuse(address, "a wrong proof: it does not hold this cluster's key")
            return None
        parser.max_frame = wire.MAX_FRAME
        link = _Link(worker_id, sock, address, self._overflow)
        link.outbox.write(wire.encode_welcome())
        self._links.add(link)
        self._no_links.clear()
        self.log.debug("broker %s: worker %d connected", self.name, worker_id)
        for kind, frame in frames[1:]:
            self._dispatch(link, kind, frame)
        return link

    def _refuse(self, address: Any, why: str) -> None:
        self.log.warning("broker %s: refused a connection from %s: %s", self.name, address or "a local process", why)

    def _dispatch(self, link: _Link, kind: int, frame: bytes) -> None:
        if kind == wire.PUBLISH:
            channel = wire.publish_channel(frame)
            for target in self._interest.get(channel, ()):
                if target is not link and not target.outbox.write(frame):
                    self.dropped += 1
        elif kind == wire.INTEREST:
            request_id, names = wire.decode_interest(frame)
            for name in names:
                self._interest.setdefault(name, set()).add(link)
                link.channels.add(name)
            link.outbox.write(wire.encode_ack(request_id))  # the route is live from here on
        elif kind == wire.UNINTEREST:
            for name in wire.decode_names(frame):
                self._leave(link, name)
        elif kind == wire.WORKERS:
            for target in tuple(self._links):
                if target is not link:
                    target.outbox.write(frame)
        else:
            raise ProtocolError(f"unknown frame type {kind}")

    def _leave(self, link: _Link, name: str) -> None:
        link.channels.discard(name)
        members = self._interest.get(name)
        if members is not None:
            members.discard(link)
            if not members:
                del self._interest[name]

    def _forget(self, link: _Link) -> None:
        self._links.discard(link)
        if not self._links:
            self._no_links.set()
        for name in tuple(link.channels):
            self._leave(link, name)
        link.outbox.discard()
        self.log.debug("broker %s: worker %d disconnected", self.name, link.worker_id)

    def _overflow(self, link: _Link, waiting: int) -> None:
        self.log.error("broker %s: worker %d does not read (%d bytes waiting); dropping its link, it will "
                       "reconnect", self.name, link.worker_id, waiting)
        self.dropped += 1
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
