"""A broker: the process that carries pub/sub between workers (``Mode.Scale``).

A gevent ``StreamServer`` on a Unix socket in the master's private directory (or a
loopback port). Each worker connects to every broker; both prove they hold the
cluster key without sending it (``protocol/broker_wire.py``): a process without
it is refused, and learns nothing.
Channels are sharded over brokers by a stable hash of their name, so all the
messages of one channel take one broker, in order. A broker routes a publish to
the workers that declared interest in its channel, never back to its sender, and
forwards the frame as it received it.

A channel with history (``channel_options``) is owned by its broker: it numbers the
channel's messages (``pubsub/history.py``), keeps the last ones, and routes them as
NUMBERED frames to every interested worker, the sender included (which delivers
its own publishes only once numbered). It answers HISTORY and PRESENCE requests
for its channels, and keeps who is subscribed to each channel with presence, by
the worker that said so: a worker's link that goes (the worker crashed) takes its
sockets out of presence at once; a worker that reconnects declares them again.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set, Tuple

import gevent
from gevent.event import Event
from gevent.server import StreamServer

from ..constants import LINK_OUTBOX
from ..exceptions import ProtocolError
from ..log import Log
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..net.outbox import Outbox
from ..net.sockets import Address, describe, listen, recv_frames, set_nodelay, shutdown
from ..options import ChannelOptions
from ..protocol import broker_wire as wire
from ..pubsub.connector import EXPIRE_INTERVAL
from ..pubsub.history import HistoryStore
from ..pubsub.presence import PresenceStore
from .broker_client import describe_link

if TYPE_CHECKING:
    from .hub_link import HubRouter

__all__ = ["Broker", "HELLO_TIMEOUT", "MAX_HANDSHAKES", "MAX_HANDSHAKES_PER_SOURCE"]

#: Seconds a connecting process has to complete the handshake (a hub's TLS handshake included).
HELLO_TIMEOUT = 5.0
#: Connections that may be in their handshake at once; more are closed at once...
MAX_HANDSHAKES = 64
#: ... and from one other address: one host that opens connections and says nothing cannot
#: take every place from the brokers that reconnect. This machine's own processes (a Unix
#: socket's peers, a connection from the very address it arrives at: the workers) share
#: MAX_HANDSHAKES only, as many of them may reconnect at once.
MAX_HANDSHAKES_PER_SOURCE = 8

def _local_address(sock: Any) -> str:
    try:
        return str(sock.getsockname()[0])
    except (OSError, IndexError, TypeError):
        return ""


class _Link:
    """One worker's connection to this broker (or, on a hub, one broker's)."""

    __slots__ = ("worker_id", "server_id", "sock", "outbox", "channels", "address")

    def __init__(self, worker_id: int, sock: Any, address: Any, on_overflow: Callable[[_Link, int], None],
                 server_id: bytes = b"") -> None:
        self.worker_id = worker_id
        self.server_id = server_id
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
        hubs: the links to the horizontal hubs (``scale/hub_link.py``), if the server joins any.
        channels: the channels' history and presence options.
    """

    #: How logs name this process, and the peers it refuses.
    role = "broker"
    #: This process's id, sent in CHALLENGE (a hub's; b"" for a broker).
    node_id = b""
    #: The secret a peer must prove it holds, in refusals.
    key_name = "this cluster's key"

    def __init__(self, address: Address, key: bytes, log: Log, hubs: Optional[HubRouter] = None,
                 channels: Optional[ChannelOptions] = None) -> None:
        self.address = address
        self.channels = channels or ChannelOptions()
        #: The histories of the channels this broker owns, and who is in them.
        self.histories = HistoryStore(self.channels.policy, self.channels.max_history_bytes)
        self.presences = PresenceStore()
        self._sweeper: Any = None
        #: How logs name this broker.
        self.name = describe(address)
        self.key = key
        self.log = log
        self.hubs = hubs
        self.server: Optional[StreamServer] = None
        self._handshakes = 0
        self._handshakes_by_source: Dict[str, int] = {}
        self._links: Set[_Link] = set()
        self._no_links = Event()
        self._no_links.set()
        self._interest: Dict[str, Set[_Link]] = {}
        #: Messages dropped because a link was full or closing (``lost()``).
        self.dropped = 0

    def start(self) -> None:
        """Listen (raises OSError if the address is taken)."""
        self.server = StreamServer(self._listen(), self._serve, spawn=gevent.spawn_raw)
        self.server.start()
        if self.hubs is not None:
            self.hubs.start()
        if self.channels.any_history:
            self._sweeper = gevent.spawn(self._sweep)

    def _sweep(self) -> None:
        while True:
            gevent.sleep(EXPIRE_INTERVAL)
            self.histories.expire()

    def _listen(self) -> Any:
        return listen(self.address)

    def _accepted(self, sock: Any) -> Any:
        """The socket to speak on (a hub wraps it in TLS); None to drop the connection."""
        return sock

    def stop(self, wait_for_workers: float = 0.0) -> None:
        """Stop listening and close every link, after waiting at most ``wait_for_workers``
        seconds for the workers to leave (a signal may reach every process at once, as
        systemd sends it: the workers still close their WebSockets through their links)."""
        if self.server is None:
            return
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
        if self.hubs is not None:
            self.hubs.stop()
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
            sock, link = self._greet(sock, address, parser)
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
            self.log.error("%s %s: bad frame from %s: %s; link closed", self.role, self.name,
                           link.worker_id if link else address, exc)
        except OSError:
            pass  # the peer went away (a hub drops a link silent for too long: a timeout is an OSError)
        finally:
            if link is not None:
                self._forget(link)
            sock.close()

    def _greet(self, sock: Any, address: Any, parser: wire.FrameParser) -> Tuple[Any, Optional[_Link]]:
        """The handshake (a hub's TLS handshake first): the socket to speak on, and the link
        once the peer proved it holds the key, or None (refused, logged). What a peer may
        hold before it proved it is bounded: MAX_HANDSHAKES at once, MAX_HANDSHAKES_PER_SOURCE
        from one address, HELLO_TIMEOUT seconds each, frames of HANDSHAKE_MAX_FRAME bytes."""
        source = str(address[0]) if isinstance(address, tuple) and address else ""
        if source and source == _local_address(sock):
            source = ""  # this machine's own process: bounded by MAX_HANDSHAKES alone
        if self._handshakes >= MAX_HANDSHAKES:
            self._refuse(address, "places", f"{MAX_HANDSHAKES} connections are in their handshake already")
            return sock, None
        if source and self._handshakes_by_source.get(source, 0) >= MAX_HANDSHAKES_PER_SOURCE:
            self._refuse(address, "places", f"{MAX_HANDSHAKES_PER_SOURCE} connections from {source} are in their "
                                  "handshake already")
            return sock, None
        self._handshakes += 1
        self._handshakes_by_source[source] = self._handshakes_by_source.get(source, 0) + 1
        try:
            with gevent.Timeout(HELLO_TIMEOUT, False):
                secured = self._accepted(sock)
                if secured is None:
                    return sock, None
                sock = secured
                return sock, self._authenticate(sock, address, parser)
            self._refuse(address, "timeout", f"no handshake within {HELLO_TIMEOUT:.0f}s")
            return sock, None
        except ProtocolError as exc:
            self._refuse(address, "bad-frame", str(exc))
            return sock, None
        finally:
            self._handshakes -= 1
            left = self._handshakes_by_source[source] - 1
            if left:
                self._handshakes_by_source[source] = left
            else:
                del self._handshakes_by_source[source]

    def _authenticate(self, sock: Any, address: Any, parser: wire.FrameParser) -> Optional[_Link]:
        frames = recv_frames(sock, parser)
        if not frames or frames[0][0] != wire.HELLO:
            self._refuse(address, "no-hello", "no HELLO")
            return None
        version, worker_id, worker_nonce, server_id = wire.decode_hello(frames[0][1])
        if version != wire.VERSION:
            self._refuse(address, "version", f"protocol version {version}, this {self.role} speaks {wire.VERSION}")
            return None
        broker_nonce = wire.new_nonce()
        proof = wire.broker_proof(self.key, worker_nonce, broker_nonce, self.node_id)
        sock.sendall(wire.encode_challenge(broker_nonce, proof, self.node_id))
        frames = frames[1:] or recv_frames(sock, parser)
        if not frames or frames[0][0] != wire.PROOF:
            self._refuse(address, "no-proof", "no PROOF")
            return None
        expected = wire.worker_proof(self.key, broker_nonce, worker_nonce, worker_id, server_id)
        if not wire.proofs_match(wire.decode_proof(frames[0][1]), expected):
            self._refuse(address, "wrong-proof", f"a wrong proof: it does not hold {self.key_name}")
            return None
        parser.max_frame = wire.MAX_FRAME
        link = _Link(worker_id, sock, address, self._overflow, server_id)
        link.outbox.write(wire.encode_welcome())
        self._links.add(link)
        self._no_links.clear()
        self.log.debug("%s %s: %d connected", self.role, self.name, worker_id)
        for kind, frame in frames[1:]:
            self._dispatch(link, kind, frame)
        return link

    def _refuse(self, address: Any, rule: str, why: str) -> None:
        """Log a refused connection: at most a line a second per rule, counting the rest."""
        self.log.refusal(f"{self.role} {rule}", "%s %s: refused a connection from %s: %s", self.role, self.name,
                         address or "a local process", why)

    def _dispatch(self, link: _Link, kind: int, frame: bytes) -> None:
        if kind == wire.PUBLISH:
            channel = wire.publish_channel(frame)
            if self.channels.policy(channel).history:
                self._number(channel, frame)
            else:
                self._route(link, channel, frame)
            if self.hubs is not None:
                self.hubs.forward(channel, frame)  # to the hub of the channel, for the other servers
        elif kind == wire.INTEREST:
            request_id, names = wire.decode_interest(frame)
            opened = [name for name in names if self._join(link, name)]
            if self.hubs is not None and opened:
                gevent.spawn(self._confirm_when_live, link, request_id, opened)
            else:
                link.outbox.write(wire.encode_ack(request_id))  # the route is live from here on
        elif kind == wire.UNINTEREST:
            for name in wire.decode_names(frame):
                self._leave(link, name)
        elif kind == wire.WORKERS:
            for target in self._worker_targets(link):
                target.outbox.write(frame)
            if self.hubs is not None:
                self.hubs.forward_to_workers(frame)
        elif kind == wire.PING:
            link.outbox.write(wire.encode_pong())
        elif kind == wire.HISTORY:
            request, channel, since, limit = wire.decode_history(frame)
            read = self.histories.read(channel, since, limit)
            link.outbox.write(wire.encode_history_read(request, read.epoch, read.offset, read.messages))
        elif kind == wire.PRESENCE_JOIN:
            channel, socket_id, info = wire.decode_presence_join(frame)
            self.presences.join(channel, socket_id, info, link)
        elif kind == wire.PRESENCE_LEAVE:
            self.presences.leave(*wire.decode_presence_leave(frame))
        elif kind == wire.PRESENCE:
            request, channel = wire.decode_presence(frame)
            link.outbox.write(wire.encode_presence_read(request, self.presences.get(channel)))
        else:
            raise ProtocolError(f"unknown frame type {kind}")

    def _number(self, channel: str, frame: bytes) -> None:
        """A publish to a channel with history: numbered, kept, and routed to every worker
        interested, its sender included."""
        _, messages = wire.decode_publish(frame)
        epoch, first = self.histories.append(channel, messages)
        self._route(None, channel, wire.encode_numbered(channel, epoch, first, messages))

    def _route(self, source: Optional[_Link], channel: str, frame: bytes) -> None:
        """``frame`` to every link interested in ``channel``, but the sender."""
        for target in self._interest.get(channel, ()):
            if self._routable(target, source) and not target.outbox.write(frame):
                self._drop(target, frame)

    def _drop(self, target: _Link, frame: bytes) -> None:
        """A frame a link's outbox refused (full: the link is being dropped): counted and logged."""
        count = wire.message_count(frame)
        self.dropped += count
        self.log.refusal(f"{self.role} dropped", "%s %s: dropped %d message(s) for %d, whose link is full or "
                         "closing (%d in all)", self.role, self.name, count, target.worker_id, self.dropped)

    def describe_links(self) -> List[Dict[str, Any]]:
        """Its links to the horizontal hubs, for the dashboard (none without hubs)."""
        if self.hubs is None:
            return []
        return [describe_link(link) for link in self.hubs.links]

    def lost(self) -> Dict[str, int]:
        """Messages dropped since the start, by reason (``clusterws_dropped_messages_total``):
        ``link_full`` (a worker's, or another broker's on a hub, that did not read),
        ``hub_link_down`` (no hub link up to carry a publish to the other servers)."""
        lost = {"link_full": self.dropped} if self.dropped else {}
        if self.hubs is not None and self.hubs.dropped:
            lost["hub_link_down"] = self.hubs.dropped
        return lost

    def _routable(self, target: _Link, source: Optional[_Link]) -> bool:
        return target is not source

    def _worker_targets(self, source: _Link) -> List[_Link]:
        """Where a publish_to_workers message from ``source`` goes: every other worker."""
        return [target for target in self._links if target is not source]

    def _join(self, link: _Link, name: str) -> bool:
        """Route ``name`` to ``link``; True if the channel had no subscriber here before."""
        members = self._interest.setdefault(name, set())
        opened = not members
        members.add(link)
        link.channels.add(name)
        return opened

    def _confirm_when_live(self, link: _Link, request_id: int, opened: List[str]) -> None:
        """ACK a worker's interest once the hubs confirmed the channels that just opened here:
        the subscribe reply means the route is live end to end."""
        assert self.hubs is not None
        self.hubs.declare(opened)
        link.outbox.write(wire.encode_ack(request_id))

    def deliver_from_hub(self, kind: int, frame: bytes) -> None:
        """What a hub forwards from another server: to this broker's workers only (numbered
        here, for a channel with history: offsets are per server)."""
        if kind == wire.PUBLISH:
            channel = wire.publish_channel(frame)
            if self.channels.policy(channel).history:
                self._number(channel, frame)
            else:
                self._route(None, channel, frame)
        else:
            for target in tuple(self._links):
                target.outbox.write(frame)

    def _leave(self, link: _Link, name: str) -> None:
        link.channels.discard(name)
        members = self._interest.get(name)
        if members is not None:
            members.discard(link)
            if not members:
                del self._interest[name]
                if self.hubs is not None:
                    self.hubs.drop(name)

    def _forget(self, link: _Link) -> None:
        self._links.discard(link)
        if not self._links:
            self._no_links.set()
        for name in tuple(link.channels):
            self._leave(link, name)
        self.presences.leave_owner(link)  # its worker is gone (or will declare them again)
        link.outbox.discard()
        self.log.debug("%s %s: %d disconnected", self.role, self.name, link.worker_id)

    def _overflow(self, link: _Link, waiting: int) -> None:
        self.log.error("broker %s: worker %d does not read (%d bytes waiting); dropping its link, it will "
                       "reconnect", self.name, link.worker_id, waiting)
        shutdown(link.sock)
