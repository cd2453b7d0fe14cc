"""``Scaler.Redis``: workers joined through Redis pub/sub, no broker processes.

Each worker, after fork, has its own two connections, each owned by one greenlet
(redis-py connections must not be shared between greenlets):

- the **subscriber** greenlet owns a ``PubSub``: it sends SUBSCRIBE/UNSUBSCRIBE
  as channels get their first or lose their last local subscriber, reads what
  Redis delivers and hands it to the hub. A subscribe reply waits until Redis
  confirmed the SUBSCRIBE, so a client told ``true`` gets every message published
  after (the brokers' property); if Redis does not confirm within
  :data:`CONFIRM_TIMEOUT`, the reply is ``false`` (logged).
- the **writer** greenlet owns the publisher connection: the publishes of one
  event-loop iteration become one envelope per channel (``protocol/redis_envelope.py``),
  sent as one pipeline, in order, never retried (a re-sent PUBLISH duplicates).

Anything that fails closes the connection and opens a new one after a capped,
jittered backoff (``net/backoff.py``: 50 ms to 1 s); the subscriber then subscribes to everything
again. While Redis is down, publishes are dropped and counted, and the count is
logged once it is back (at most once, as Redis pub/sub itself). A **canary**
publishes a probe to this worker's own key every :data:`PROBE_INTERVAL`: a probe
that does not come back, or a PUBLISH that reaches nobody, rebuilds both
connections, which catches a deaf subscriber (a dead reader, a half-open socket,
a node that is no longer the master) that nothing else would report.

Channels live under a prefix (``protocol/redis_envelope.py``); anything on them
that is not a valid envelope is dropped, counted and logged (rate-limited).

A channel with history is owned by Redis: its publishes go to the writer as one
script call per channel batch (``scale/redis_scripts.py``), which numbers them, keeps
them in the channel's stream and publishes them numbered to every worker, this one
included. Presence entries go through the writer too; each worker refreshes its
own within ``presence_ttl``. History and presence reads use a pool of their own,
in the greenlet that asks.
"""
from __future__ import annotations

import os
import time
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Set, Tuple

import gevent
from gevent import select
from gevent.event import Event
from gevent.queue import Empty, Queue

from ..exceptions import ProtocolError, Unavailable
from ..log import Log
from ..net.backoff import Backoff
from ..net.fairness import MESSAGE_COST, ReadBudget
from ..options import ChannelOptions
from ..protocol import json_codec
from ..protocol import redis_envelope as envelope
from ..pubsub.batching import IterationBatches
from ..pubsub.connector import Connector
from ..pubsub.history import HistoryRead, new_epoch
from .redis_client import RedisConfig, describe_redis
from .redis_routes import Command, Redirected, SendFailed, close_quietly, routes_for
from .redis_scripts import (
    PRESENCE_ADD,
    PRESENCE_READ,
    PRESENCE_REMOVE,
    PUBLISH_NUMBERED,
    PUBLISH_NUMBERED_SHARDED,
    READ_HISTORY,
    publish_numbered_args,
)

__all__ = ["RedisConnector", "CONFIRM_TIMEOUT", "PROBE_INTERVAL"]

#: Seconds a subscription waits for Redis to confirm its SUBSCRIBE; then the reply is false.
CONFIRM_TIMEOUT = 5.0
#: Seconds between two liveness probes; a probe not back by the next one rebuilds the connections.
PROBE_INTERVAL = 2.0
#: Channels per SUBSCRIBE when subscribing to everything again.
SUBSCRIBE_BATCH = 500
#: Bytes of envelopes that may wait for the writer; past it, publishes are dropped (counted).
MAX_QUEUED = 64 << 20
#: Seconds between two log lines about invalid messages on our channels.
INVALID_LOG_INTERVAL = 10.0


class RedisConnector(Connector):
    """Connects one worker to Redis (see the module docstring).

    Args:
        config: a ``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://`` URL,
            or redis-py connection kwargs.
        prefix: the namespace of our Redis channels (``scale_options["redis_prefix"]``).
        worker_id: this worker's number (for client names in ``CLIENT LIST``).
        log: where to log.
        channels: the channels' history and presence options.
    """

    def __init__(self, config: RedisConfig, prefix: str, worker_id: int, log: Log,
                 channels: Optional[ChannelOptions] = None) -> None:
        self.config = config
        self.prefix = prefix
        self.channels = channels or ChannelOptions()
        self.log = log
        self.name = describe_redis(config)
        self.publisher_id = os.urandom(envelope.ID_SIZE)  # drawn after fork: one per worker
        self._client_name = f"cws:{os.getpid()}:{worker_id}"
        self._channel_prefix = envelope.channel_key(prefix, "")
        self._workers_key = envelope.workers_key(prefix)
        self.routes = routes_for(config, worker_id, self._client_name)
        #: This worker's probe channels (one per shard on a cluster) and where each is subscribed.
        self._probes: Dict[bytes, Any] = {}
        self._probes_back: Dict[bytes, float] = {}
        self._probes_out: Set[bytes] = set()  # probes the writer sent since the canary last looked
        self._script_objects: Optional[Dict[int, Any]] = None
        #: Channels with local subscribers, and whether Redis confirmed each SUBSCRIBE.
        self.interests: Dict[str, Event] = {}
        self._unconfirmed: Dict[bytes, int] = {}  # (un)subscribes sent and not answered yet, per key
        self._commands: Deque[Tuple[bool, bytes]] = deque()  # (subscribe?, key) for the subscriber
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._out: Queue[Optional[_Op]] = Queue()  # for the writer
        self._queued = 0
        self._batches = IterationBatches(self._send_batches)
        self._numbered = IterationBatches(self._send_numbered)
        self._presences: Dict[str, Dict[str, bytes]] = {}  # channel -> {socket id: info}, this worker's
        self._rebuilds = 0  # asked rebuilds so far: each connection owner reconnects when it grows
        self._stopped = False
        self._tasks: List[Any] = []
        self._probe_sent: Optional[float] = None
        self._invalid_logged = 0.0
        self._node_failure_logged = 0.0
        #: The publisher connection is up / the subscriber has its basic subscriptions.
        self.writer_up = Event()
        self.reader_up = Event()
        #: Counters (tests, monitoring): messages dropped while down (reset when logged), received,
        #: invalid messages on our channels, reconnections, failed probes.
        self.dropped = 0
        self.dropped_logged = 0
        self.received = 0
        self.invalid = 0
        self.reconnects = 0
        self.probe_failures = 0
        #: Why a connection last failed ("" while none did), for the dashboard.
        self.last_error = ""

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, hub: Any) -> None:
        super().start(hub)
        self._tasks = [gevent.spawn(self._run_subscriber), gevent.spawn(self._run_writer),
                       gevent.spawn(self._run_canary)]
        if self.channels.any_presence:
            self._tasks.append(gevent.spawn(self._refresh_presences))

    def links_up(self) -> Tuple[int, int]:
        return int(self.writer_up.is_set()) + int(self.reader_up.is_set()), 2

    def describe_links(self) -> List[Dict[str, Any]]:
        where = self.routes.describe().get("subscribed_on")
        subscriber = f"redis {self.name} subscriber" + (f" on {', '.join(where)}" if where else "")
        return [{"name": f"redis {self.name} publisher (master)", "up": self.writer_up.is_set(),
                 "error": self.last_error},
                {"name": subscriber, "up": self.reader_up.is_set(), "error": self.last_error}]

    def lost(self) -> Dict[str, int]:
        lost = {}
        if self.dropped + self.dropped_logged:
            lost["redis_down"] = self.dropped + self.dropped_logged
        if self.invalid:
            lost["invalid"] = self.invalid
        return lost

    def wait_connected(self, timeout: float) -> bool:
        """Wait until both connections are up; False if not after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        return bool(self.writer_up.wait(timeout) and self.reader_up.wait(max(0.0, deadline - time.monotonic())))

    def stop(self) -> None:
        """Close both connections (each by its owner greenlet; never killed inside redis-py)."""
        if self._stopped:
            return
        self._stopped = True
        self._wake()
        self._out.put(None)
        gevent.joinall(self._tasks, timeout=READ_TIMEOUT_BOUND)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"w")
        except (BlockingIOError, OSError):
            pass  # already awake (the pipe is full) or stopped

    def _rebuild(self, why: str) -> None:
        """Ask both owners to close their connection and open a new one."""
        self.log.warning("redis %s: %s; reconnecting", self.name, why)
        self.last_error = why
        self._rebuilds += 1
        self._wake()
        self._out.put(None)

    # -- interest -------------------------------------------------------------------------------

    def add_interest(self, channel: str) -> bool:
        """SUBSCRIBE ``channel``; True once Redis confirmed it (False after CONFIRM_TIMEOUT, logged)."""
        event = self.interests[channel] = Event()
        self._command(True, self._key_of(channel))
        return self._await(channel, event)

    def await_interest(self, channel: str) -> bool:
        event = self.interests.get(channel)
        return True if event is None else self._await(channel, event)

    def _await(self, channel: str, event: Event) -> bool:
        if event.wait(CONFIRM_TIMEOUT):
            return True
        self.log.warning("redis %s: no confirmation of channel %r within %.0fs; subscription refused", self.name,
                         channel[:64], CONFIRM_TIMEOUT)
        return False

    def drop_interest(self, channel: str) -> None:
        event = self.interests.pop(channel, None)
        if event is not None:
            event.set()  # a subscriber still waiting goes on (it is leaving anyway)
        self._command(False, self._key_of(channel))

    def _command(self, subscribe: bool, key: bytes) -> None:
        self._commands.append((subscribe, key))
        self._wake()

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, channel: str, message: bytes) -> None:
        """Queue ``message``; the queue goes out at the end of this event-loop iteration."""
        if not self.writer_up.is_set():
            self.dropped += 1
            return
        self._batches.add(channel, message)

    def publish_numbered(self, channel: str, message: bytes) -> None:
        """Queue ``message`` of a channel with history; Redis numbers it (the publish script)."""
        if not self.writer_up.is_set():
            self.dropped += 1
            return
        self._numbered.add(channel, message)

    def publish_to_workers(self, message: bytes) -> None:
        self._send(_Op(_PUBLISH, self._workers_key, envelope.encode_envelope(self.publisher_id, [message]), 1))

    def _send_batches(self, pending: Dict[str, List[bytes]]) -> None:
        for channel, messages in pending.items():
            envelope_bytes = envelope.encode_envelope(self.publisher_id, messages)
            self._send(_Op(_PUBLISH, self._key_of(channel), envelope_bytes, len(messages)))

    def _send_numbered(self, pending: Dict[str, List[bytes]]) -> None:
        for channel, messages in pending.items():
            self._send(_Op(_NUMBERED, channel, messages, len(messages)))

    def _send(self, op: _Op) -> None:
        if not self.writer_up.is_set() or self._queued + op.size > MAX_QUEUED:
            self.dropped += op.count
            return
        self._queued += op.size
        self._out.put(op)

    # -- history and presence ---------------------------------------------------------------------

    def history(self, channel: str, since: Optional[int] = None, limit: Optional[int] = None) -> HistoryRead:
        policy = self.channels.policy(channel)
        stream, meta = envelope.history_keys(self.prefix, channel)
        reply = self._run_read_script(_READ_HISTORY, [stream, meta],
                           [-1 if since is None else since, -1 if limit is None else limit, new_epoch(),
                            max(1, int(policy.history_ttl))])
        epoch, top = reply[0].decode("ascii"), int(reply[1] or 0)
        messages = [(int(reply[i]), bytes(reply[i + 1])) for i in range(2, len(reply), 2)]
        return HistoryRead(epoch, top, messages)

    def presence_join(self, channel: str, socket_id: str, info: bytes) -> None:
        self._presences.setdefault(channel, {})[socket_id] = info
        self._send(_Op(_PRESENCE_ADD, channel, [(socket_id, info)], 0))

    def presence_leave(self, channel: str, socket_id: str) -> None:
        entries = self._presences.get(channel)
        if entries is not None and entries.pop(socket_id, None) is not None:
            if not entries:
                del self._presences[channel]
            self._send(_Op(_PRESENCE_REMOVE, channel, [socket_id], 0))

    def presence(self, channel: str) -> Dict[str, bytes]:
        reply = self._run_read_script(_PRESENCE_READ, list(envelope.presence_keys(self.prefix, channel)), [])
        return {reply[i].decode("utf-8"): bytes(reply[i + 1]) for i in range(0, len(reply), 2)}

    def _run_read_script(self, kind: int, keys: List[bytes], args: List[Any]) -> Any:
        """Run a read script on the read pool, in this greenlet.

        Raises:
            Unavailable: Redis did not answer.
        """
        script = self._scripts[kind]
        try:
            return self.routes.read(keys[0], lambda client: script(keys=keys, args=args, client=client))
        except Exception as exc:  # noqa: BLE001 - a connection error, a timeout, a failover: all the same here
            raise Unavailable(f"redis {self.name}: {type(exc).__name__}: {exc}") from None

    @property
    def _scripts(self) -> Dict[int, Any]:
        """Our Lua scripts (redis-py ``Script``s, run on any client or pipeline; loaded on first use)."""
        if self._script_objects is None:
            from redis.commands.core import Script

            sources = {_NUMBERED: PUBLISH_NUMBERED_SHARDED if self.routes.sharded else PUBLISH_NUMBERED,
                       _PRESENCE_ADD: PRESENCE_ADD, _PRESENCE_REMOVE: PRESENCE_REMOVE,
                       _READ_HISTORY: READ_HISTORY, _PRESENCE_READ: PRESENCE_READ}
            # no registered client: each call names the client or pipeline it runs on
            self._script_objects = {kind: Script(None, source.encode())  # type: ignore[arg-type]
                                    for kind, source in sources.items()}
        return self._script_objects

    def _refresh_presences(self) -> None:
        """Every third of ``presence_ttl``, this worker's presence entries again (their expiry, and
        all of them after Redis restarted)."""
        while not self._stopped:
            gevent.sleep(self.channels.presence_ttl / 3)
            for channel, entries in list(self._presences.items()):
                self._send(_Op(_PRESENCE_ADD, channel, list(entries.items()), 0))

    # -- the subscriber greenlet ------------------------------------------------------------------

    def _run_subscriber(self) -> None:
        backoff = Backoff(jitter=True)
        while not self._stopped:
            pubsubs: Dict[Any, Any] = {}
            try:
                pubsubs = self.routes.subscriber_connections(self._client_name + ":sub")
                self._probes = self.routes.probe_keys(self.prefix, self.publisher_id)
                self._subscribe_everything(pubsubs)
                backoff.reset()
                self._read(pubsubs, self._rebuilds)
            except Exception as exc:  # noqa: BLE001 - any failure: close, count, reconnect (redis-py#1581's lesson)
                self._lost("subscriber", exc, backoff, self.reader_up.is_set())
            finally:
                self.reader_up.clear()
                self._forget_confirmations()
                for pubsub in pubsubs.values():
                    close_quietly(pubsub)
            if self._stopped:
                return
            backoff.wait()

    def _subscribe_everything(self, pubsubs: Dict[Any, Any]) -> None:
        keys = [self._workers_key, *self._probes]
        keys += [self._key_of(channel) for channel in self.interests]
        self._commands.clear()  # this covers everything asked so far
        by_target: Dict[Any, List[bytes]] = {}
        for key in keys:
            self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
            by_target.setdefault(self.routes.target_of(key), []).append(key)
        for target, batch in by_target.items():
            for start in range(0, len(batch), SUBSCRIBE_BATCH):
                self.routes.subscribe(pubsubs[target], batch[start : start + SUBSCRIBE_BATCH])

    def _read(self, pubsubs: Dict[Any, Any], rebuilds: int) -> None:
        spend = ReadBudget().spend
        connections = list(pubsubs.values())
        while not self._stopped and self._rebuilds == rebuilds:
            self._send_commands(pubsubs)
            got = False
            for pubsub in connections:
                message = pubsub.get_message(timeout=0)
                if message is not None:
                    got = True
                    self._on_message(message)
                    spend(MESSAGE_COST + len(message.get("data") or b"") if message["type"] in _MESSAGES
                          else MESSAGE_COST)
            if not got:
                self._wait_readable(connections, 1.0)

    def _send_commands(self, pubsubs: Dict[Any, Any]) -> None:
        while self._commands:
            subscribe, key = self._commands.popleft()
            self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
            pubsub = pubsubs[self.routes.target_of(key)]
            if subscribe:
                self.routes.subscribe(pubsub, [key])
            else:
                self.routes.unsubscribe(pubsub, [key])

    def _wait_readable(self, connections: List[Any], timeout: float) -> None:
        """Until Redis sends something, a command is queued, or ``timeout``."""
        # redis-py's Connection keeps its socket in _sock (4.x to 8.x)
        fds = [pubsub.connection._sock.fileno() for pubsub in connections]
        readable, _, _ = select.select([*fds, self._wake_r], [], [], timeout)
        if self._wake_r in readable:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass

    def _on_message(self, message: Dict[str, Any]) -> None:
        kind, key = message["type"], message["channel"]
        if kind in _MESSAGES:
            self._received(key, message["data"])
        elif kind in _SUBSCRIBED:
            self._confirmed(key, True)
        elif kind in _UNSUBSCRIBED:
            if key not in self._unconfirmed:
                # Redis unsubscribed us itself: the shard lost this slot (a failover, a slot moved).
                raise ConnectionError(f"the cluster moved {key[:80]!r} away from this node")
            self._confirmed(key, False)

    def _confirmed(self, key: bytes, subscribed: bool) -> None:
        left = self._unconfirmed.get(key, 1) - 1
        if left > 0:
            self._unconfirmed[key] = left
            return  # a later (un)subscribe of the same key is still on its way
        self._unconfirmed.pop(key, None)
        if not subscribed:
            return
        if key in self._probes or key == self._workers_key:
            if self._workers_key not in self._unconfirmed and not any(k in self._unconfirmed for k in self._probes):
                self._back("subscriber", self.reader_up)
            return
        event = self.interests.get(self._channel_of(key))
        if event is not None:
            event.set()

    def _forget_confirmations(self) -> None:
        self._unconfirmed.clear()
        for event in self.interests.values():
            event.clear()  # live again once the new connection's SUBSCRIBE is confirmed

    def _key_of(self, channel: str) -> bytes:
        """The Redis channel of app channel ``channel``."""
        return envelope.channel_key(self.prefix, channel, self.routes.sharded)

    def _channel_of(self, key: bytes) -> str:
        """The app channel of Redis channel ``key`` (UnicodeDecodeError: not one of ours)."""
        name = key[len(self._channel_prefix):].decode("utf-8")
        return envelope.channel_of_tag(name) if self.routes.sharded else name

    def _received(self, key: bytes, data: Any) -> None:
        if key in self._probes:
            self._probes_back[key] = time.monotonic()
            return
        if envelope.is_numbered(data):
            self._received_numbered(key, data)
            return
        if envelope.publisher_of(data) == self.publisher_id:
            return  # our own publish, delivered locally already
        try:
            _, messages = envelope.decode_envelope(data)
            channel = None if key == self._workers_key else self._channel_of(key)
        except (ProtocolError, UnicodeDecodeError) as exc:
            self._invalid(key, exc)
            return
        self.received += len(messages)
        if channel is None:
            for message in messages:
                self.hub.worker_message(message)  # decoded there: what is not JSON is dropped and logged
            return
        # Anyone who can PUBLISH on this Redis can reach our channels: a message goes into
        # browsers' frames as it is, so each one must be JSON in UTF-8, nested no deeper than
        # ours (json_codec.MAX_DEPTH); one that is not is dropped, counted and logged, and the
        # connection goes on.
        valid = [message for message in messages if _is_json(message)]
        if len(valid) < len(messages):
            self._invalid(key, ProtocolError(f"{len(messages) - len(valid)} message(s) not JSON in UTF-8"),
                          len(messages) - len(valid))
        if valid:
            self.hub.deliver(channel, valid)

    def _received_numbered(self, key: bytes, data: bytes) -> None:
        """Messages Redis numbered (ours too: they are delivered here only now). A batch with a
        message that is not JSON is dropped whole (the offsets then skip it: a gap, which the
        hub counts and subscribers recover from the history)."""
        try:
            epoch, first, messages = envelope.decode_numbered_envelope(data)
            channel = self._channel_of(key)
        except (ProtocolError, UnicodeDecodeError) as exc:
            self._invalid(key, exc)
            return
        if not all(map(_is_json, messages)):
            self._invalid(key, ProtocolError("a numbered batch holds a message that is not JSON"), len(messages))
            return
        self.received += len(messages)
        self.hub.deliver(channel, messages, epoch, first)

    def _invalid(self, key: bytes, exc: Exception, count: int = 1) -> None:
        self.invalid += count
        now = time.monotonic()
        if now - self._invalid_logged >= INVALID_LOG_INTERVAL:
            self._invalid_logged = now
            self.log.warning("redis %s: dropped a message on %r that is not ours (%s); %d so far", self.name,
                             key[:80], exc, self.invalid)

    # -- the writer greenlet --------------------------------------------------------------------

    def _run_writer(self) -> None:
        backoff = Backoff(jitter=True)
        while not self._stopped:
            try:
                self.routes.connect_writer(self._client_name + ":pub")
                self._back("publisher", self.writer_up)
                backoff.reset()
                self._write(self._rebuilds)
            except Exception as exc:  # noqa: BLE001 - any failure: close, count, reconnect
                self._lost("publisher", exc, backoff, self.writer_up.is_set())
            finally:
                self.writer_up.clear()
                self._drop_queued()
                self.routes.close_writer()
            if self._stopped:
                return
            backoff.wait()

    def _write(self, rebuilds: int) -> None:
        for channel, entries in list(self._presences.items()):  # a restarted Redis knows nobody
            self._send(_Op(_PRESENCE_ADD, channel, list(entries.items()), 0))
        while not self._stopped and self._rebuilds == rebuilds:
            batch = self._take_batch()
            if not batch:
                continue
            try:
                results = self.routes.send([self._command_of(op) for op in batch])
            except SendFailed as failed:
                self.dropped += sum(batch[index].count for index in failed.failed)
                if failed.results is None:
                    raise failed.cause from None
                # a cluster node: its shard's commands are lost, the others went
                self._shard_failed(f"a node is unreachable ({type(failed.cause).__name__}: {failed.cause}); its "
                                   "shard's publishes are dropped until it or its replica answers")
                results = failed.results
            for op, result in zip(batch, results):
                if result is None and self.routes.sharded:
                    continue  # failed above
                if isinstance(result, Redirected):  # a slot that kept moving: this one is lost, the writer goes on
                    self.dropped += op.count
                    self._shard_failed(f"a publish was dropped: {result}")
                    continue
                if isinstance(result, Exception):  # a script's error
                    self.dropped += op.count
                    raise result
                if op.kind == _PUBLISH and op.target in self._probes:
                    self._probes_out.add(op.target)  # (one that did not go out says nothing of the subscriber)
                if op.kind == _PUBLISH and op.target in self._probes and result == 0 and not self.routes.sharded:
                    # (on a cluster the count is the node's own subscribers: ours are on a replica)
                    self._rebuild("a probe reached no subscriber (not the master, or a deaf subscriber)")

    def _shard_failed(self, why: str) -> None:
        """Log (rate-limited) that a cluster shard's commands were dropped, and ``why``."""
        now = time.monotonic()
        self.last_error = why
        if now - self._node_failure_logged >= INVALID_LOG_INTERVAL:
            self._node_failure_logged = now
            self.log.warning("redis %s: %s; %d dropped so far", self.name, why, self.dropped + self.dropped_logged)

    def _command_of(self, op: _Op) -> Command:
        """The writer command of ``op``: a key of its channel (routing) and how to add it."""
        scripts = self._scripts
        if op.kind == _PUBLISH:
            return op.target, lambda pipe: pipe.execute_command(self.routes.publish_command, op.target, op.payload)
        channel = op.target
        if op.kind == _NUMBERED:
            policy = self.channels.policy(channel)
            keys = list(envelope.history_keys(self.prefix, channel))
            args = publish_numbered_args(policy, self._key_of(channel), self.publisher_id, op.payload)
            return keys[0], lambda pipe: scripts[_NUMBERED](keys=keys, args=args, client=pipe)
        keys = list(envelope.presence_keys(self.prefix, channel))
        if op.kind == _PRESENCE_ADD:
            args = [max(1, int(self.channels.presence_ttl))]
            for socket_id, info in op.payload:
                args += [socket_id, info]
            return keys[0], lambda pipe: scripts[_PRESENCE_ADD](keys=keys, args=args, client=pipe)
        return keys[0], lambda pipe: scripts[_PRESENCE_REMOVE](keys=keys, args=op.payload, client=pipe)

    def _take_batch(self) -> List[_Op]:
        """What waits for the writer (after waiting up to a second for something)."""
        try:
            first = self._out.get(timeout=1.0)
        except Empty:
            return []
        batch = [first] if first is not None else []
        while not self._out.empty():
            item = self._out.get_nowait()
            if item is not None:
                batch.append(item)
        self._queued -= sum(op.size for op in batch)
        return batch

    def _drop_queued(self) -> None:
        while not self._out.empty():
            item = self._out.get_nowait()
            if item is not None:
                self.dropped += item.count
                self._queued -= item.size

    # -- the canary -------------------------------------------------------------------------------

    def _run_canary(self) -> None:
        while not self._stopped:
            gevent.sleep(PROBE_INTERVAL)
            if not (self.writer_up.is_set() and self.reader_up.is_set()):
                self._probe_sent = None
                continue
            sent = self._probe_sent
            late = [key for key in self._probes_out if self._probes_back.get(key, 0.0) < sent] if sent else []
            self._probes_out = set()
            if late:
                self.probe_failures += 1
                self._probe_sent = None
                for key in late:
                    self.routes.probe_failed(self._probes[key])
                self._rebuild(f"a liveness probe did not come back within {PROBE_INTERVAL:.0f}s")
                continue
            self._probe_sent = time.monotonic()
            for key in list(self._probes):
                self._send(_Op(_PUBLISH, key, b"", 0))

    # -- shared -----------------------------------------------------------------------------------

    def _back(self, what: str, up: Event) -> None:
        up.set()
        if self.dropped and self.writer_up.is_set() and self.reader_up.is_set():
            self.log.warning("redis %s: back; %d message(s) were dropped while it was unreachable", self.name,
                             self.dropped)
            self.dropped_logged += self.dropped
            self.dropped = 0
        else:
            self.log.debug("redis %s: %s connected", self.name, what)

    def _lost(self, what: str, exc: Exception, backoff: Backoff, was_up: bool) -> None:
        """Log a failure: a warning when a working connection broke or the first attempt failed,
        debug while it keeps failing (the backoff's attempts would flood the log)."""
        if self._stopped:
            return
        self.reconnects += 1
        self.last_error = f"{what} connection: {type(exc).__name__}: {exc}"
        level = self.log.warning if was_up or backoff.first else self.log.debug
        level("redis %s: %s connection %s (%s: %s); reconnecting in %.2fs at most", self.name, what,
              "lost" if was_up else "failed", type(exc).__name__, exc, backoff.delay)

    def stats(self) -> Dict[str, Any]:
        """Counters and state, for health checks, monitoring and tests."""
        return {"redis": self.name, "publisher": self.writer_up.is_set(), "subscriber": self.reader_up.is_set(),
                "channels": sorted(self.interests), "confirmed": sorted(c for c, e in self.interests.items()
                                                                        if e.is_set()),
                "received": self.received, "dropped": self.dropped, "invalid": self.invalid,
                "reconnects": self.reconnects, "probe_failures": self.probe_failures, **self.routes.describe()}


_PUBLISH, _NUMBERED, _PRESENCE_ADD, _PRESENCE_REMOVE, _READ_HISTORY, _PRESENCE_READ = range(6)
_MESSAGES = ("message", "smessage")
_SUBSCRIBED = ("subscribe", "ssubscribe")
_UNSUBSCRIBED = ("unsubscribe", "sunsubscribe")


class _Op:
    """One thing for the writer: a PUBLISH (``target`` a Redis channel, ``payload`` an envelope),
    a numbered batch (``target`` a channel, ``payload`` its messages), presence added
    (``payload`` (socket id, info) pairs) or removed (``payload`` socket ids)."""

    __slots__ = ("kind", "target", "payload", "count", "size")

    def __init__(self, kind: int, target: Any, payload: Any, count: int) -> None:
        self.kind = kind
        self.target = target
        self.payload = payload
        self.count = count  # messages it carries (counted as dropped if it cannot go)
        self.size = len(payload) if kind == _PUBLISH else sum(map(len, payload)) if kind == _NUMBERED else 0


#: Seconds stop() waits for the owners to close their connections.
READ_TIMEOUT_BOUND = 5.0


def _is_json(message: bytes) -> bool:
    """Whether ``message`` is one JSON value in UTF-8, as the protocol allows (``json_codec``)."""
    try:
        json_codec.decode(message.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError too
        return False
    return True
