"""A broker: the process that carries pub/sub between workers (``Mode.Scale``).

A gevent ``StreamServer`` on a loopback port. Each worker connects to every
broker and proves it holds the cluster key (a process without it is refused).
Channels are sharded over brokers by a stable hash of their name, so all the
messages of one channel take one broker, in order. A broker routes a publish to
the workers that declared interest in its channel, never back to its sender, and
forwards the frame as it received it.
"""
from __future__ import annotations

import socket
from typing import Any, Callable, Dict, List, Optional, Set, Tuple

import gevent
from gevent.event import Event
from gevent.server import StreamServer

from ..exceptions import ProtocolError
from ..log import Log
from ..protocol import broker_wire as wire
from ..websocket.outbox import Outbox

__all__ = ["Broker", "recv_frames", "HELLO_TIMEOUT", "LINK_OUTBOX"]

#: Seconds a connecting process has to send HELLO with the key.
HELLO_TIMEOUT = 5.0
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
        port: the port to listen on (``host`` is loopback unless given).
        key: the cluster key every worker must present.
        log: where to log.
    """

    def __init__(self, port: int, key: bytes, log: Log, host: str = "127.0.0.1") -> None:
        self.port = port
        self.key = key
        self.log = log
        self.server = StreamServer((host, port), self._serve, spawn=gevent.spawn_raw)
        self._links: Set[_Link] = set()
        self._no_links = Event()
        self._no_links.set()
        self._interest: Dict[str, Set[_Link]] = {}
        #: Messages (not frames) dropped because a worker link was full or broken.
        self.dropped = 0

    def start(self) -> None:
        """Listen (raises OSError if the port is taken)."""
        self.server.start()

    def stop(self, wait_for_workers: float = 0.0) -> None:
        """Stop listening and close every link, after waiting at most ``wait_for_workers``
        seconds for the workers to leave (a signal may reach every process at once, as
        systemd sends it: the workers still close their WebSockets through their links)."""
        self.server.close()
        if self._links and not self._no_links.wait(wait_for_workers):
            self.log.warning("broker %d: %d worker link(s) still open after %.0fs; closing them", self.port,
                             len(self._links), wait_for_workers)
        self.server.stop(timeout=1)
        for link in tuple(self._links):
            link.outbox.discard()
            try:
                link.sock.close()
            except OSError:
                pass

    def _serve(self, sock: Any, address: Any) -> None:
        # small frames (ACK, one publish) must not wait for Nagle and delayed ACKs (40 ms each)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        parser = wire.FrameParser()
        link: Optional[_Link] = None
        try:
            link = self._greet(sock, address, parser)
            if link is None:
                return
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                for kind, frame in parser.feed(data):
                    self._dispatch(link, kind, frame)
        except ProtocolError as exc:
            self.log.error("broker %d: bad frame from worker %s: %s; link closed", self.port,
                           link.worker_id if link else address, exc)
        except OSError:
            pass
        finally:
            if link is not None:
                self._forget(link)
            sock.close()

    def _greet(self, sock: Any, address: Any, parser: wire.FrameParser) -> Optional[_Link]:
        """Read HELLO, check the key; the link, or None (refused, logged)."""
        frames: List[Tuple[int, bytes]] = []
        with gevent.Timeout(HELLO_TIMEOUT, False):
            frames = recv_frames(sock, parser)
        if not frames or frames[0][0] != wire.HELLO:
            self.log.warning("broker %d: %s sent no HELLO; refused", self.port, address)
            return None
        worker_id, key = wire.decode_hello(frames[0][1])
        if not wire.keys_match(key, self.key):
            self.log.warning("broker %d: %s presented a wrong cluster key; refused", self.port, address)
            return None
        link = _Link(worker_id, sock, address, self._overflow)
        link.outbox.write(wire.encode_welcome())
        self._links.add(link)
        self._no_links.clear()
        self.log.debug("broker %d: worker %d connected", self.port, worker_id)
        for kind, frame in frames[1:]:
            self._dispatch(link, kind, frame)
        return link

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
        self.log.debug("broker %d: worker %d disconnected", self.port, link.worker_id)

    def _overflow(self, link: _Link, waiting: int) -> None:
        self.log.error("broker %d: worker %d does not read (%d bytes waiting); dropping its link, it will "
                       "reconnect", self.port, link.worker_id, waiting)
        self.dropped += 1
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
