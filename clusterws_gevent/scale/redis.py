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
from typing import Any, Deque, Dict, List, Optional, Tuple

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
from .redis_client import RedisConfig, describe_redis, redis_client
from .redis_scripts import (
    PRESENCE_ADD,
    PRESENCE_READ,
    PRESENCE_REMOVE,
    PUBLISH_NUMBERED,
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
        self._probe_key = envelope.probe_key(prefix, self.publisher_id)
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
        self._reads: Any = None  # a pool for history and presence reads, made on first use
        self._read_scripts: Dict[str, Any] = {}
        self._presences: Dict[str, Dict[str, bytes]] = {}  # channel -> {socket id: info}, this worker's
        self._rebuilds = 0  # asked rebuilds so far: each connection owner reconnects when it grows
        self._stopped = False
        self._tasks: List[Any] = []
        self._probe_sent: Optional[float] = None
        self._probe_back = 0.0
        self._invalid_logged = 0.0
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

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, hub: Any) -> None:
        super().start(hub)
        self._tasks = [gevent.spawn(self._run_subscriber), gevent.spawn(self._run_writer),
                       gevent.spawn(self._run_canary)]
        if self.channels.any_presence:
            self._tasks.append(gevent.spawn(self._refresh_presences))

    def links_up(self) -> Tuple[int, int]:
        return int(self.writer_up.is_set()) + int(self.reader_up.is_set()), 2

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
        self._rebuilds += 1
        self._wake()
        self._out.put(None)

    # -- interest -------------------------------------------------------------------------------

    def add_interest(self, channel: str) -> bool:
        """SUBSCRIBE ``channel``; True once Redis confirmed it (False after CONFIRM_TIMEOUT, logged)."""
        event = self.interests[channel] = Event()
        self._command(True, self._channel_prefix + channel.encode("utf-8"))
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
        self._command(False, self._channel_prefix + channel.encode("utf-8"))

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
            self._send(_Op(_PUBLISH, self._channel_prefix + channel.encode("utf-8"),
                           envelope.encode_envelope(self.publisher_id, messages), len(messages)))

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
        reply = self._run_read_script("history", READ_HISTORY, [stream, meta],
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
        reply = self._run_read_script("presence", PRESENCE_READ, list(envelope.presence_keys(self.prefix, channel)), [])
        return {reply[i].decode("utf-8"): bytes(reply[i + 1]) for i in range(0, len(reply), 2)}

    def _run_read_script(self, name: str, script: str, keys: List[bytes], args: List[Any]) -> Any:
        """Run a read script on the read pool, in this greenlet.

        Raises:
            Unavailable: Redis did not answer.
        """
        try:
            if self._reads is None:
                self._reads = redis_client(self.config, self._client_name + ":read", single_connection=False)
            runner = self._read_scripts.get(name)
            if runner is None:
                runner = self._read_scripts[name] = self._reads.register_script(script)
            return runner(keys=keys, args=args)
        except Exception as exc:  # noqa: BLE001 - a connection error, a timeout, a failover: all the same here
            raise Unavailable(f"redis {self.name}: {type(exc).__name__}: {exc}") from None

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
            pubsub = None
            try:
                pubsub = redis_client(self.config, self._client_name + ":sub").pubsub(ignore_subscribe_messages=False)
                self._subscribe_everything(pubsub)
                backoff.reset()
                self._read(pubsub, self._rebuilds)
            except Exception as exc:  # noqa: BLE001 - any failure: close, count, reconnect (redis-py#1581's lesson)
                self._lost("subscriber", exc, backoff, self.reader_up.is_set())
            finally:
                self.reader_up.clear()
                self._forget_confirmations()
                if pubsub is not None:
                    _close_quietly(pubsub)
            if self._stopped:
                return
            backoff.wait()

    def _subscribe_everything(self, pubsub: Any) -> None:
        keys = [self._workers_key, self._probe_key]
        keys += [self._channel_prefix + channel.encode("utf-8") for channel in self.interests]
        self._commands.clear()  # this covers everything asked so far
        for start in range(0, len(keys), SUBSCRIBE_BATCH):
            batch = keys[start : start + SUBSCRIBE_BATCH]
            for key in batch:
                self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
            pubsub.subscribe(*batch)

    def _read(self, pubsub: Any, rebuilds: int) -> None:
        spend = ReadBudget().spend
        while not self._stopped and self._rebuilds == rebuilds:
            self._send_commands(pubsub)
            message = pubsub.get_message(timeout=0)
            if message is None:
                self._wait_readable(pubsub, 1.0)
                continue
            self._on_message(message)
            spend(MESSAGE_COST + len(message.get("data") or b"") if message["type"] == "message" else MESSAGE_COST)

    def _send_commands(self, pubsub: Any) -> None:
        while self._commands:
            subscribe, key = self._commands.popleft()
            self._unconfirmed[key] = self._unconfirmed.get(key, 0) + 1
            if subscribe:
                pubsub.subscribe(key)
            else:
                pubsub.unsubscribe(key)

    def _wait_readable(self, pubsub: Any, timeout: float) -> None:
        """Until Redis sends something, a command is queued, or ``timeout``."""
        fd = pubsub.connection._sock.fileno()  # redis-py's Connection keeps its socket there (4.x to 8.x)
        readable, _, _ = select.select([fd, self._wake_r], [], [], timeout)
        if self._wake_r in readable:
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass

    def _on_message(self, message: Dict[str, Any]) -> None:
        kind, key = message["type"], message["channel"]
        if kind in ("subscribe", "unsubscribe"):
            self._confirmed(key, kind == "subscribe")
        elif kind == "message":
            self._received(key, message["data"])

    def _confirmed(self, key: bytes, subscribed: bool) -> None:
        left = self._unconfirmed.get(key, 1) - 1
        if left > 0:
            self._unconfirmed[key] = left
            return  # a later (un)subscribe of the same key is still on its way
        self._unconfirmed.pop(key, None)
        if not subscribed:
            return
        if key == self._probe_key or key == self._workers_key:
            if self._probe_key not in self._unconfirmed and self._workers_key not in self._unconfirmed:
                self._back("subscriber", self.reader_up)
            return
        event = self.interests.get(key[len(self._channel_prefix):].decode("utf-8", "replace"))
        if event is not None:
            event.set()

    def _forget_confirmations(self) -> None:
        self._unconfirmed.clear()
        for event in self.interests.values():
            event.clear()  # live again once the new connection's SUBSCRIBE is confirmed

    def _received(self, key: bytes, data: Any) -> None:
        if key == self._probe_key:
            self._probe_back = time.monotonic()
            return
        if envelope.is_numbered(data):
            self._received_numbered(key, data)
            return
        if envelope.publisher_of(data) == self.publisher_id:
            return  # our own publish, delivered locally already
        try:
            _, messages = envelope.decode_envelope(data)
            channel = None if key == self._workers_key else key[len(self._channel_prefix):].decode("utf-8")
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
            channel = key[len(self._channel_prefix):].decode("utf-8")
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
            client = None
            try:
                client = redis_client(self.config, self._client_name + ":pub")
                _check_master(client)
                self._back("publisher", self.writer_up)
                backoff.reset()
                self._write(client, self._rebuilds)
            except Exception as exc:  # noqa: BLE001 - any failure: close, count, reconnect
                self._lost("publisher", exc, backoff, self.writer_up.is_set())
            finally:
                self.writer_up.clear()
                self._drop_queued()
                if client is not None:
                    _close_quietly(client)
            if self._stopped:
                return
            backoff.wait()

    def _write(self, client: Any, rebuilds: int) -> None:
        scripts = {_NUMBERED: client.register_script(PUBLISH_NUMBERED),
                   _PRESENCE_ADD: client.register_script(PRESENCE_ADD),
                   _PRESENCE_REMOVE: client.register_script(PRESENCE_REMOVE)}
        for channel, entries in list(self._presences.items()):  # a restarted Redis knows nobody
            self._send(_Op(_PRESENCE_ADD, channel, list(entries.items()), 0))
        while not self._stopped and self._rebuilds == rebuilds:
            batch = self._take_batch()
            if not batch:
                continue
            pipe = client.pipeline(transaction=False)
            for op in batch:
                self._add_to(pipe, op, scripts)
            try:
                results = pipe.execute(raise_on_error=False)
            except Exception:
                self.dropped += sum(op.count for op in batch)
                raise
            for op, result in zip(batch, results):
                if isinstance(result, Exception):
                    raise result
                if op.kind == _PUBLISH and op.target == self._probe_key and result == 0:
                    self._rebuild("a probe reached no subscriber (not the master, or a deaf subscriber)")

    def _add_to(self, pipe: Any, op: _Op, scripts: Dict[int, Any]) -> None:
        if op.kind == _PUBLISH:
            pipe.publish(op.target, op.payload)
        elif op.kind == _NUMBERED:
            channel = op.target
            policy = self.channels.policy(channel)
            scripts[_NUMBERED](keys=list(envelope.history_keys(self.prefix, channel)), client=pipe,
                               args=publish_numbered_args(policy, self._channel_prefix + channel.encode("utf-8"),
                                                          self.publisher_id, op.payload))
        elif op.kind == _PRESENCE_ADD:
            args: List[Any] = [max(1, int(self.channels.presence_ttl))]
            for socket_id, info in op.payload:
                args += [socket_id, info]
            scripts[_PRESENCE_ADD](keys=list(envelope.presence_keys(self.prefix, op.target)), args=args,
                                   client=pipe)
        else:
            scripts[_PRESENCE_REMOVE](keys=list(envelope.presence_keys(self.prefix, op.target)), args=op.payload,
                                      client=pipe)

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
            if sent is not None and self._probe_back < sent:
                self.probe_failures += 1
                self._probe_sent = None
                self._rebuild(f"a liveness probe did not come back within {PROBE_INTERVAL:.0f}s")
                continue
            self._probe_sent = time.monotonic()
            self._send(_Op(_PUBLISH, self._probe_key, b"", 0))

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
        level = self.log.warning if was_up or backoff.first else self.log.debug
        level("redis %s: %s connection %s (%s: %s); reconnecting in %.2fs at most", self.name, what,
              "lost" if was_up else "failed", type(exc).__name__, exc, backoff.delay)

    def stats(self) -> Dict[str, Any]:
        """Counters and state, for health checks, monitoring and tests."""
        return {"redis": self.name, "publisher": self.writer_up.is_set(), "subscriber": self.reader_up.is_set(),
                "channels": sorted(self.interests), "confirmed": sorted(c for c, e in self.interests.items()
                                                                        if e.is_set()),
                "received": self.received, "dropped": self.dropped, "invalid": self.invalid,
                "reconnects": self.reconnects, "probe_failures": self.probe_failures}


_PUBLISH, _NUMBERED, _PRESENCE_ADD, _PRESENCE_REMOVE = range(4)


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


def _check_master(client: Any) -> None:
    """Connect now, and refuse a Redis that is a replica (a demoted master after a failover)."""
    role = client.execute_command("ROLE")
    if role and role[0] not in (b"master", "master"):
        raise ConnectionError(f"connected to a {role[0]!r}, not a master")


def _is_json(message: bytes) -> bool:
    """Whether ``message`` is one JSON value in UTF-8, as the protocol allows (``json_codec``)."""
    try:
        json_codec.decode(message.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError too
        return False
    return True


def _close_quietly(closable: Any) -> None:
    try:
        closable.close()
    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
        pass
