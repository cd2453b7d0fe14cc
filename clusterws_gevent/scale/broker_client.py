"""The worker's side of the brokers: one link per broker, and the connector over them.

Each :class:`BrokerLink` keeps a connection to one broker: it reconnects with a
capped, doubling backoff and re-declares its channels after every reconnection.
Publishes made within one event-loop iteration travel as one PUBLISH frame per
channel. While a link is down, what would have gone through it is dropped and
counted, and the count is logged when the link is back: loss only during a fault,
never silent.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import gevent
from gevent.event import AsyncResult, Event

from ..constants import LINK_OUTBOX
from ..exceptions import BrokerAuthError, ProtocolError, Unavailable
from ..log import Log
from ..net.backoff import Backoff
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..net.outbox import Outbox
from ..net.sockets import Address, connect, describe, recv_frames, shutdown
from ..protocol import broker_wire as wire
from ..pubsub.batching import IterationBatches
from ..pubsub.connector import Connector
from ..pubsub.history import HistoryRead

__all__ = ["BrokerLink", "BrokerConnector", "ACK_TIMEOUT"]

#: Seconds a subscription waits for the broker to confirm its route.
ACK_TIMEOUT = 5.0


class BrokerLink:
    """A worker's connection to one broker.

    Args:
        address: the broker's address (a Unix socket path, or a port on loopback).
        key: the cluster key.
        worker_id: this worker's number (for the broker's logs).
        on_publish: called with (channel, messages) a broker forwards, or (channel, messages,
            epoch, first offset) for a channel it numbers.
        on_workers: called with each publish_to_workers message from another worker.
        log: where to log.
    """

    def __init__(self, address: Address, key: bytes, worker_id: int, on_publish: Callable[..., None],
                 on_workers: Callable[[bytes], None], log: Log) -> None:
        self.address = address
        #: How logs name this link (the broker's port or path).
        self.name = describe(address)
        self.key = key
        self.worker_id = worker_id
        self.log = log
        self._on_publish = on_publish
        self._on_workers = on_workers
        #: Why the link last failed ("" while it never did), for the dashboard.
        self.last_error = ""
        #: Channels routed through this broker, and whether the broker confirmed each.
        self.interests: Dict[str, Event] = {}
        self._acks: Dict[int, List[str]] = {}
        self._ids = itertools.count(1)
        self._batches = IterationBatches(self._send_batches)
        self._outbox: Optional[Outbox] = None
        self._sock: Any = None
        self._runner: Any = None
        self._stopped = False
        self.connected = Event()
        #: Messages dropped because the link was down (reset when logged)...
        self.dropped = 0
        #: ... and those already logged.
        self.dropped_logged = 0
        #: Messages received from the broker (counters for tests and monitoring).
        self.received = 0
        #: Sent in HELLO on a hub link: the id of this broker's server (b"" to a broker).
        self.server_id = b""
        #: The peer's id, from its CHALLENGE (a hub's; b"" from a broker).
        self.node_id = b""
        self._refusal = ""  # the last refusal logged as an error
        self._requests: Dict[int, AsyncResult] = {}  # HISTORY and PRESENCE asked, not answered yet
        #: The presence this worker declared through the link: declared again after a reconnection.
        self.presences: Dict[Tuple[str, str], bytes] = {}

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect, and keep reconnecting, in a greenlet of its own."""
        self._runner = gevent.spawn(self._run)

    def stop(self) -> None:
        """Close the link for good."""
        self._stopped = True
        self._close()
        if self._runner is not None:
            self._runner.kill(block=False)

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stopped:
            delay = backoff.delay
            try:
                self._connect()
                backoff.reset()
                self._read()
            except BrokerAuthError as exc:
                self.last_error = str(exc)
                # once per cause: a misconfigured peer would otherwise log at every retry
                level = self.log.error if str(exc) != self._refusal else self.log.debug
                self._refusal = str(exc)
                level("%s link %s: %s; refused, retrying in %.2fs", self.peer, self.name, exc, delay)
            except (OSError, ProtocolError, gevent.Timeout) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.connected.is_set():
                    self.log.warning("%s link %s lost (%s); reconnecting", self.peer, self.name, exc)
                else:
                    self.log.debug("%s link %s: cannot connect (%s); retrying in %.2fs", self.peer, self.name, exc,
                                   delay)
            except Exception as exc:  # a bug must not end the link for good: pub/sub through it would be dead
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.log.exception("%s link %s failed; reconnecting in %.2fs", self.peer, self.name, delay)
            finally:
                self._close()
            if self._stopped:
                return
            backoff.wait()

    #: Seconds a read may wait for the peer before the link counts as dead (None: forever;
    #: a hub link, which pings, sets one).
    read_timeout: Optional[float] = None
    #: Who the peer is, in logs and errors...
    peer = "broker"
    #: ... and the secret it must prove it holds.
    key_name = "the cluster key"

    def _open(self) -> Any:
        """A connected socket to the peer."""
        return connect(self.address, timeout=2.0)

    def _connect(self) -> None:
        sock = self._open()
        try:
            parser, frames = self._authenticate(sock)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.read_timeout)
        self._sock, self._parser = sock, parser
        self._outbox = Outbox(sock, LINK_OUTBOX, self._overflow, lambda exc: self._close())
        if self.interests:
            # re-declare every channel; they count as live again once the broker acknowledges
            for event in self.interests.values():
                event.clear()
            self._declare(list(self.interests))
        for (channel, socket_id), info in self.presences.items():  # a restarted broker knows nobody
            self._outbox.write(wire.encode_presence_join(channel, socket_id, info))
        self.connected.set()
        if self.dropped:
            self.log.warning("%s link %s: back; %d message(s) were dropped while it was down", self.peer,
                             self.name, self.dropped)
            self.dropped_logged += self.dropped
            self.dropped = 0
        else:
            self.log.debug("%s link %s: connected", self.peer, self.name)
        self._on_up()
        for kind, frame in frames:  # what the broker sent right after WELCOME
            self._dispatch(kind, frame)

    def _on_up(self) -> None:
        """The link is up (after the handshake); a subclass may start more work."""

    def _on_down(self) -> None:
        """The link went down."""

    def _authenticate(self, sock: Any) -> Tuple[wire.FrameParser, List[Tuple[int, bytes]]]:
        """The handshake (``protocol/broker_wire.py``): nothing but HELLO is sent before the
        broker proved it holds the key, so a process squatting its address learns nothing.

        Raises:
            BrokerAuthError: the peer is not our broker.
            OSError: the link broke (the broker refused our proof and closed it).
        """
        worker_nonce = wire.new_nonce()
        sock.sendall(wire.encode_hello(self.worker_id, worker_nonce, self.server_id))
        parser = wire.FrameParser(wire.HANDSHAKE_MAX_FRAME)
        frames = recv_frames(sock, parser)
        if not frames:
            raise OSError(f"the {self.peer} closed the link during the handshake")
        if frames[0][0] != wire.CHALLENGE:
            raise BrokerAuthError(f"the peer at {self.name} did not answer the handshake; it is not our {self.peer}")
        broker_nonce, proof, node_id = wire.decode_challenge(frames[0][1])
        if not wire.proofs_match(proof, wire.broker_proof(self.key, worker_nonce, broker_nonce, node_id)):
            raise BrokerAuthError(f"the peer at {self.name} does not hold {self.key_name}; it is not our {self.peer}")
        self.node_id = node_id
        parser.max_frame = wire.MAX_FRAME  # the peer proved itself: its frames may be large
        sock.sendall(wire.encode_proof(wire.worker_proof(self.key, broker_nonce, worker_nonce, self.worker_id,
                                                         self.server_id)))
        frames = frames[1:] or recv_frames(sock, parser)
        if not frames or frames[0][0] != wire.WELCOME:
            raise OSError(f"the {self.peer} refused our proof or closed the link")
        return parser, frames[1:]

    def _read(self) -> None:
        sock, parser = self._sock, self._parser
        spend = ReadBudget().spend
        while True:
            data = sock.recv(65536)
            if not data:
                raise OSError(f"the {self.peer} closed the link")
            spend(len(data))
            for kind, frame in parser.feed(data):
                self._dispatch(kind, frame)
                spend(MESSAGE_COST)

    def _close(self) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected:
            self._on_down()
        if self._outbox is not None:
            self._outbox.discard()
            self._outbox = None
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        for channels in self._acks.values():  # nobody waits for a dead link
            for name in channels:
                event = self.interests.get(name)
                if event is not None:
                    event.set()
        self._acks.clear()
        requests, self._requests = self._requests, {}
        for waiting in requests.values():  # nobody waits for a dead link either
            waiting.set_exception(Unavailable(f"the link to {self.peer} {self.name} went down"))
        if was_connected:
            self.dropped += self._batches.discard()

    def _dispatch(self, kind: int, frame: bytes) -> None:
        if kind == wire.PUBLISH:
            channel, messages = wire.decode_publish(frame)
            self.received += len(messages)
            self._on_publish(channel, messages)
        elif kind == wire.NUMBERED:
            channel, epoch, first, messages = wire.decode_numbered(frame)
            self.received += len(messages)
            self._on_publish(channel, messages, epoch, first)
        elif kind in (wire.HISTORY_READ, wire.PRESENCE_READ):
            waiting = self._requests.pop(wire.request_id(frame), None)
            if waiting is not None:
                waiting.set(frame)
        elif kind == wire.ACK:
            for name in self._acks.pop(wire.decode_ack(frame), ()):
                event = self.interests.get(name)
                if event is not None:
                    event.set()
        elif kind == wire.WORKERS:
            self._on_workers(wire.decode_workers(frame))
        else:
            raise ProtocolError(f"unknown frame type {kind} from broker {self.name}")

    def _overflow(self, waiting: int, refused: int) -> None:
        self.log.error("broker link %s: the broker does not read (%d bytes waiting); reconnecting", self.name,
                       waiting)
        if self._sock is not None:
            shutdown(self._sock)

    # -- interest ---------------------------------------------------------------------------------

    def _declare(self, names: Sequence[str]) -> None:
        request_id = next(self._ids)
        self._acks[request_id] = list(names)
        assert self._outbox is not None
        self._outbox.write(wire.encode_interest(request_id, names))

    def declare(self, channel: str) -> Event:
        """Route ``channel`` here, without waiting; the event is set once the peer confirmed."""
        event = self.interests[channel] = Event()
        if self.connected.is_set() and self._outbox is not None:
            self._declare([channel])
        return event

    def add_interest(self, channel: str, timeout: float = ACK_TIMEOUT) -> bool:
        """Route ``channel`` here; returns once the broker confirmed (or the link is down: the
        channel is declared at the next connection, and until then the route is down, a fault
        counted in ``dropped``). False if a connected broker did not confirm in time."""
        event = self.declare(channel)
        if not self.connected.is_set() or self._outbox is None:
            return True
        if event.wait(timeout):
            return True
        self.log.warning("broker link %s: no confirmation of channel %r within %.1fs; subscription refused",
                         self.name, channel[:64], timeout)
        return False

    def await_interest(self, channel: str, timeout: float = ACK_TIMEOUT) -> bool:
        """Return once the route of ``channel`` is confirmed (at once if it already is)."""
        event = self.interests.get(channel)
        if event is not None and not event.is_set() and self.connected.is_set():
            return bool(event.wait(timeout))
        return True

    def drop_interest(self, channel: str) -> None:
        """Stop routing ``channel`` here."""
        event = self.interests.pop(channel, None)
        if event is not None:
            event.set()  # a subscriber still waiting for the confirmation goes on
        if self._outbox is not None:
            self._outbox.write(wire.encode_uninterest([channel]))

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, channel: str, message: bytes) -> None:
        """Queue ``message``; the queue goes out at the end of this event-loop iteration."""
        if self._outbox is None:
            self.dropped += 1
            return
        self._batches.add(channel, message)

    def _send_batches(self, pending: Dict[str, List[bytes]]) -> None:
        outbox = self._outbox
        for channel, messages in pending.items():
            try:
                sent = outbox is not None and outbox.write(wire.encode_publish(channel, messages))
            except ValueError as exc:  # the hub validates names: a bug, not a reason to lose the others
                self.log.error("broker link %s: cannot send to channel %r: %s", self.name, channel[:64], exc)
                sent = False
            if not sent:
                self.dropped += len(messages)

    def ask(self, encode: Callable[[int], bytes], timeout: float = ACK_TIMEOUT) -> bytes:
        """Send a request (``encode(request id)``) and wait for the broker's answer frame.

        Raises:
            Unavailable: the link is down, went down, or no answer came within ``timeout``.
        """
        if self._outbox is None:
            raise Unavailable(f"the link to {self.peer} {self.name} is down")
        request = next(self._ids)
        waiting = self._requests[request] = AsyncResult()
        self._outbox.write(encode(request))
        try:
            return bytes(waiting.get(timeout=timeout))
        except gevent.Timeout:
            raise Unavailable(f"{self.peer} {self.name} did not answer within {timeout:.0f}s") from None
        finally:
            self._requests.pop(request, None)

    def presence_join(self, channel: str, socket_id: str, info: bytes) -> None:
        """Declare a socket in ``channel``'s presence (again after every reconnection)."""
        self.presences[(channel, socket_id)] = info
        if self._outbox is not None:
            self._outbox.write(wire.encode_presence_join(channel, socket_id, info))

    def presence_leave(self, channel: str, socket_id: str) -> None:
        """Take a socket out of ``channel``'s presence."""
        if self.presences.pop((channel, socket_id), None) is not None and self._outbox is not None:
            self._outbox.write(wire.encode_presence_leave(channel, socket_id))

    def send_to_workers(self, message: bytes) -> bool:
        """Send a publish_to_workers message through this broker; False if the link is down."""
        if self._outbox is None:
            return False
        return self._outbox.write(wire.encode_workers(message))


def describe_link(link: BrokerLink) -> Dict[str, Any]:
    """A link to a broker or a hub, for the dashboard: its peer, up or down, its last failure."""
    return {"name": f"{link.peer} {link.name}", "up": link.connected.is_set(), "error": link.last_error}


class BrokerConnector(Connector):
    """Connects a worker to every broker; channels are sharded over them by name.

    Args:
        addresses: the brokers' addresses, in broker order (the shard of a channel is an index).
        key: the cluster key.
        worker_id: this worker's number.
        log: where to log.
    """

    def __init__(self, addresses: Sequence[Address], key: bytes, worker_id: int, log: Log) -> None:
        self.log = log
        self.links = [BrokerLink(address, key, worker_id, self._delivered, self._from_workers, log)
                      for address in addresses]
        #: publish_to_workers messages dropped: no broker link was up.
        self.workers_dropped = 0

    def start(self, hub: Any) -> None:
        super().start(hub)
        for link in self.links:
            link.start()

    def links_up(self) -> Tuple[int, int]:
        return sum(link.connected.is_set() for link in self.links), len(self.links)

    def describe_links(self) -> List[Dict[str, Any]]:
        return [describe_link(link) for link in self.links]

    def wait_connected(self, timeout: float) -> bool:
        """Wait until every link is up; False if some are not after ``timeout`` seconds."""
        return all(link.connected.wait(timeout) for link in self.links)

    def stop(self) -> None:
        for link in self.links:
            link.stop()

    def _link(self, channel: str) -> BrokerLink:
        return self.links[wire.shard(channel, len(self.links))]

    def publish(self, channel: str, message: bytes) -> None:
        self._link(channel).publish(channel, message)

    def publish_numbered(self, channel: str, message: bytes) -> None:
        self._link(channel).publish(channel, message)  # the channel's broker numbers it, and sends it back

    def history(self, channel: str, since: Optional[int] = None, limit: Optional[int] = None) -> HistoryRead:
        frame = self._link(channel).ask(lambda request: wire.encode_history(request, channel, since, limit))
        _, epoch, offset, messages = wire.decode_history_read(frame)
        return HistoryRead(epoch, offset, messages)

    def presence_join(self, channel: str, socket_id: str, info: bytes) -> None:
        self._link(channel).presence_join(channel, socket_id, info)

    def presence_leave(self, channel: str, socket_id: str) -> None:
        self._link(channel).presence_leave(channel, socket_id)

    def presence(self, channel: str) -> Dict[str, bytes]:
        frame = self._link(channel).ask(lambda request: wire.encode_presence(request, channel))
        return wire.decode_presence_read(frame)[1]

    def lost(self) -> Dict[str, int]:
        dropped = sum(link.dropped + link.dropped_logged for link in self.links) + self.workers_dropped
        return {"broker_link_down": dropped} if dropped else {}

    def add_interest(self, channel: str) -> bool:
        return self._link(channel).add_interest(channel)

    def await_interest(self, channel: str) -> bool:
        return self._link(channel).await_interest(channel)

    def drop_interest(self, channel: str) -> None:
        self._link(channel).drop_interest(channel)

    def publish_to_workers(self, message: bytes) -> None:
        for link in self.links:  # any one broker reaches every worker
            if link.send_to_workers(message):
                return
        self.workers_dropped += 1
        self.log.refusal("broker_link_down", "publish_to_workers: no broker link is up; message dropped (%d so far)",
                         self.workers_dropped)

    def stats(self) -> Dict[str, Any]:
        """Per link: address, connected, messages received and dropped (since last logged)."""
        return {"links": [{"address": link.address, "connected": link.connected.is_set(), "received": link.received,
                           "dropped": link.dropped, "channels": sorted(link.interests)} for link in self.links]}

    def _delivered(self, channel: str, messages: List[bytes], epoch: Optional[str] = None, first: int = 0) -> None:
        self.hub.deliver(channel, messages, epoch, first)

    def _from_workers(self, message: bytes) -> None:
        self.hub.worker_message(message)
