"""The pub/sub hub of one process: subscriptions, batching, fan-out.

Messages published within one flush interval (5 ms, as the original) reach
each subscriber as ONE frame ``["p",null,{channel:[...]}]``, in publish order
per channel. Each message is JSON-encoded once, where it is published; at a
flush each channel's part of the frame is encoded once, and subscribers that
share the same active channels share the same frame bytes: there is no
per-subscriber JSON work. Writing to a subscriber never waits (its bounded
outbox takes the frame or closes a client that does not read), so one slow
subscriber delays nobody.

A channel with history (``channel_options``) has its messages numbered by the
channel's owner (this process in ``Mode.Single``, its broker, or Redis: the
connector's ``publish_numbered``), so a publish made here comes back through the
owner, numbered, before it is delivered. Its subscribers that asked for positions
(the recovery extension, ``docs/protocol.md``) get them in positioned frames
``["p","o",{ch:[epoch, first offset, [...]]}]``, built once per channel and shared
like the plain ones, which the other subscribers (the original clients) still get;
one that is recovering has its share kept aside (``Subscriber.position_of``) until
its recovery reply went out. The hub checks that each channel's offsets follow on:
a gap (messages lost between the owner and this process) is counted and logged,
and the positioned subscribers see it in the offsets and recover.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import gevent
from gevent.event import Event

from ..listeners import call_user_code
from ..log import Log
from ..options import ChannelOptions
from ..protocol import json_codec
from ..protocol.deflate import deflate_frame
from ..protocol.frames import OP_TEXT, encode_frame
from ..protocol.messages import (
    encode_channel_entry,
    encode_json,
    encode_positioned_entry,
    encode_positioned_frame,
    encode_presence_event,
    encode_publish_frame,
)
from ..quoting import quote
from .channels import ChannelRegistry
from .connector import Connector, LocalConnector

__all__ = ["PubSubHub", "Subscriber", "FLUSH_INTERVAL", "BURST_GAP", "MAX_BATCH_BYTES", "PLAIN", "LIVE",
           "CONTROL_SUFFIX", "control_channel"]

#: Seconds between flushes of the publish batches (the original's 5 ms).
FLUSH_INTERVAL = 0.005
#: A batch is flushed once no message came for this long (the end of a burst)...
BURST_GAP = 0.0005
#: Bytes of messages waiting for a flush, in all channels, past which they are flushed at once.
MAX_BATCH_BYTES = 1 << 20
#: What ``Subscriber.position_of`` says of a subscriber that gets plain frames (an original client)...
PLAIN = 0
#: ... or positioned ones; a list instead: it is recovering, its share is kept there.
LIVE = 1
#: The channel ``ch + CONTROL_SUFFIX`` carries the join and leave events of ``ch`` (no client
#: can name it: channel names hold no NUL).
CONTROL_SUFFIX = "\x00"


def control_channel(channel: str) -> str:
    """The channel of ``channel``'s join and leave events."""
    return channel + CONTROL_SUFFIX


class Subscriber(Protocol):
    """What the hub needs of a subscriber: a server socket
    (:class:`~clusterws_gevent.websocket.socket.Socket`) keeps its own channel set."""

    id: str

    def presence_info(self) -> bytes:
        """What presence says of it, as JSON."""

    def add_channel(self, channel: str) -> bool:
        """Record a subscription; False if already subscribed."""

    def remove_channel(self, channel: str) -> bool:
        """Forget a subscription; False if there was none."""

    def take_channels(self) -> List[str]:
        """Forget every subscription and return them."""

    @property
    def deflate(self) -> Any:
        """What permessage-deflate agreed for it, or None (``protocol/deflate.py``)."""

    def send_frame(self, frame: bytes) -> bool:
        """Write an already encoded frame (never blocks); False if it was not accepted."""

    def position_of(self, channel: str) -> Any:
        """PLAIN, LIVE, or the list its share of ``channel``'s numbered messages goes to while it
        recovers (``(epoch, first offset, messages)`` each)."""


class PubSubHub:
    """Channels of one process and the batches waiting to be flushed to them.

    Messages published within one ``flush_interval`` reach a subscriber as one
    frame; frames go out at most once per interval, and a batch goes out once its
    burst ended (no message for ``burst_gap``), within one interval.

    Args:
        log: where to log.
        connector: carries messages to and from other processes.
        on_channel_open: called with a channel that got its first local subscriber.
        on_channel_close: called with a channel whose last local subscriber left.
        on_worker_message: called with a message another worker sent with publish_to_workers.
        flush_interval: seconds between flushes.
        channels: the channels' options (history, presence), ``channel_options``.
    """

    def __init__(self, log: Log, connector: Optional[Connector] = None,
                 on_channel_open: Optional[Callable[[str], None]] = None,
                 on_channel_close: Optional[Callable[[str], None]] = None,
                 on_worker_message: Optional[Callable[[Any], None]] = None,
                 flush_interval: float = FLUSH_INTERVAL, channels: Optional[ChannelOptions] = None) -> None:
        self.log = log
        self.channels = channels or ChannelOptions()
        self.connector = connector or LocalConnector(self.channels)
        self.registry: ChannelRegistry[Any] = ChannelRegistry()
        #: Seconds between flushes, at least (the original's 5 ms).
        self.flush_interval = flush_interval
        #: Seconds without a new message that end a burst (see ``_run_flusher``).
        self.burst_gap = min(BURST_GAP, flush_interval)
        self._on_channel_open = on_channel_open
        self._on_channel_close = on_channel_close
        self._on_worker_message = on_worker_message
        self._pending: Dict[str, List[bytes]] = {}
        self._pending_bytes = 0  # of the messages in _pending
        #: Bytes of messages that may wait for a flush; past it, the batches go out at once.
        self.max_batch_bytes = MAX_BATCH_BYTES
        self._queued = 0  # messages queued since the last flush (the flusher watches it grow)
        self._wake = Event()
        self._flusher: Any = None
        #: Counters for monitoring: frames written to subscribers, and flushes.
        self.deliveries = 0
        self.batches = 0
        #: Some subscribers may have agreed permessage-deflate (``websocket_options.compression``):
        #: a batch is then compressed once for all of them.
        self.deflating = False
        #: Messages delivered here per channel since the dashboard last took them (None: not
        #: counted, the dashboard is off).
        self.channel_messages: Optional[Dict[str, int]] = None
        #: Messages lost before they reached this process, by reason ("gap": numbered ones that
        #: never came from their owner).
        self.lost: Dict[str, int] = {}
        self._first: Dict[str, Tuple[str, int]] = {}  # numbered channels' pending batch: (epoch, first offset)
        self._positions: Dict[str, Tuple[str, int]] = {}  # numbered channels: (epoch, last offset queued)

    def start(self) -> None:
        """Start the flusher and the connector."""
        if self._flusher is None:
            self._flusher = gevent.spawn(self._run_flusher)
        self.connector.start(self)

    def stop(self) -> None:
        """Flush what waits, then stop the flusher and the connector."""
        if self._pending:
            self.flush()
        if self._flusher is not None:
            self._flusher.kill(block=False)
            self._flusher = None
        self.connector.stop()

    # -- subscriptions ----------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber, channel: str) -> bool:
        """Subscribe ``subscriber`` (a Socket) to ``channel``; False if it already was, or if
        the channel's route from other processes could not be confirmed in time.

        Returns after the channel's route from other processes is live.
        """
        if not subscriber.add_channel(channel):
            return False
        if self.registry.add(channel, subscriber):
            live = self.connector.add_interest(channel)
            self._call(self._on_channel_open, channel, "onChannelOpen")
        else:
            live = self.connector.await_interest(channel)
        if not live:  # the route from other processes could not be confirmed: refused (logged by the connector)
            self.unsubscribe(subscriber, channel)
            return False
        self._presence(subscriber, channel, True)
        return True

    def _presence(self, subscriber: Subscriber, channel: str, joined: bool) -> None:
        """Tell the channel's owner that ``subscriber`` joined or left it (a channel with presence),
        and its subscribers that asked for join and leave events."""
        policy = self.channels.policy(channel)
        if not policy.presence or channel.endswith(CONTROL_SUFFIX):
            return
        info = subscriber.presence_info()
        if joined:
            self.connector.presence_join(channel, subscriber.id, info)
        else:
            self.connector.presence_leave(channel, subscriber.id)
        if policy.join_leave:
            control = control_channel(channel)
            event = b"[" + (b"1" if joined else b"0") + b"," + encode_json(subscriber.id) + b"," + info + b"]"
            self.deliver(control, (event,))
            self.connector.publish(control, event)

    def unsubscribe(self, subscriber: Subscriber, channel: str) -> bool:
        """Unsubscribe ``subscriber`` from ``channel``; False if it was not subscribed."""
        if not subscriber.remove_channel(channel):
            return False
        self._leave(subscriber, channel)
        return True

    def unsubscribe_all(self, subscriber: Subscriber) -> List[str]:
        """Drop every subscription of ``subscriber``; returns the channels it had.

        Always completes: a failure on one channel is logged, and the others are
        still left (a closed socket must not stay registered anywhere)."""
        channels: List[str] = subscriber.take_channels()
        for channel in channels:
            try:
                self._leave(subscriber, channel)
            except Exception:
                self.log.exception("leaving channel %r failed; going on with the others", channel[:64])
        return channels

    def _leave(self, subscriber: Subscriber, channel: str) -> None:
        self._presence(subscriber, channel, False)
        if self.registry.discard(channel, subscriber):
            self._pending_bytes -= sum(map(len, self._pending.pop(channel, ())))
            self._first.pop(channel, None)
            self._positions.pop(channel, None)  # what is published while nobody here listens is not a gap
            try:
                self.connector.drop_interest(channel)
            finally:
                self._call(self._on_channel_close, channel, "onChannelClose")

    # -- publishing -------------------------------------------------------------------------------

    def publish(self, channel: str, data: Any) -> None:
        """Publish ``data`` to every subscriber of ``channel``, here and in other processes.

        Raises:
            TypeError: ``data`` is not JSON serializable.
        """
        message = encode_json(data)
        if self.channels.policy(channel).history:
            self.connector.publish_numbered(channel, message)  # delivered here once numbered
            return
        self.deliver(channel, (message,))
        self.connector.publish(channel, message)

    def deliver(self, channel: str, messages: Sequence[bytes], epoch: Optional[str] = None,
                first: int = 0) -> None:
        """Queue already encoded messages for the local subscribers of ``channel`` (numbered
        ``first``, ``first + 1``... of ``epoch``, when the channel has history).

        However many come at once (a broker's or Redis's batch of another worker's burst),
        no frame carries more than ``max_batch_bytes`` of messages: past it, what waits is
        flushed first, as for messages published here one by one."""
        if channel not in self.registry:
            return
        if channel.endswith(CONTROL_SUFFIX):
            self._send_presence_events(channel, messages)
            return
        if epoch is not None:
            messages, first = self._follow(channel, messages, epoch, first)
            if not messages:
                return
        size = sum(map(len, messages))
        if self._pending_bytes + size <= self.max_batch_bytes:
            self._queue(channel, messages, size, epoch, first)
            return
        for index, message in enumerate(messages):
            if self._pending_bytes and self._pending_bytes + len(message) > self.max_batch_bytes:
                # Large batches go out now, not at the end of the burst: what waits stays bounded
                # (a flood of 200 KB publishes grew a worker to 1.65 GB before this cap), and so
                # does every frame (a subscriber's outbox takes 4 MiB).
                self.flush()
            if channel in self.registry:  # a flush may have closed its last subscriber
                self._queue(channel, (message,), len(message), epoch, first + index)

    def _follow(self, channel: str, messages: Sequence[bytes], epoch: str, first: int) -> Tuple[Sequence[bytes], int]:
        """Check that a numbered batch follows what came before: drop what came already (an
        owner resends after a reconnection), count a gap (logged) and start a new batch, so
        that a pending batch's offsets always follow on."""
        known = self._positions.get(channel)
        if known is not None:
            known_epoch, last = known
            if known_epoch == epoch and first <= last:
                skip = last + 1 - first
                messages, first = messages[skip:], first + skip
            elif known_epoch == epoch and first > last + 1:
                missing = first - last - 1
                self.lost["gap"] = self.lost.get("gap", 0) + missing
                self.log.refusal("gap", "channel %s: %d message(s) never came from its owner (offsets %d to %d); "
                                 "its positioned subscribers recover them", quote(channel, 64), missing, last + 1,
                                 first - 1)
            if (known_epoch != epoch or first != last + 1) and channel in self._pending:
                self.flush()  # what waits goes out first: one batch, one run of offsets
        if messages:
            self._positions[channel] = (epoch, first + len(messages) - 1)
        return messages, first

    def _queue(self, channel: str, messages: Sequence[bytes], size: int, epoch: Optional[str] = None,
               first: int = 0) -> None:
        self._queued += len(messages)
        pending = self._pending.get(channel)
        if pending is None:
            self._pending[channel] = list(messages)
            if epoch is not None:
                self._first[channel] = (epoch, first)
            self._wake.set()
        else:
            pending.extend(messages)
        self._pending_bytes += size

    def _send_presence_events(self, control: str, messages: Sequence[bytes]) -> None:
        """Join and leave events of a channel (``[joined, socket id, info]`` each) to the subscribers
        that asked for them, at once: they are rare, and come in order with the subscriptions."""
        channel = control[:-len(CONTROL_SUFFIX)]
        for message in messages:
            try:
                joined, socket_id, info = json_codec.decode(message.decode("utf-8"))
                frame = encode_frame(OP_TEXT, encode_presence_event(bool(joined), channel, str(socket_id),
                                                                    encode_json(info)))
            except (ValueError, TypeError):
                continue
            for subscriber in tuple(self.registry.members(control)):
                subscriber.send_frame(frame)

    def publish_to_workers(self, data: Any) -> None:
        """Send ``data`` to onWorkerMessage of every other worker."""
        self.connector.publish_to_workers(encode_json(data))

    def worker_message(self, message: bytes) -> None:
        """A message from another worker's publish_to_workers (JSON in UTF-8, ours: nested at most
        ``json_codec.MAX_DEPTH`` levels); anything else is dropped and logged."""
        try:
            data = json_codec.decode(message.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError too
            self.log.error("dropped a worker message that is not JSON (%d bytes): %s", len(message), exc)
            return
        self._call(self._on_worker_message, data, "onWorkerMessage")

    # -- flushing ---------------------------------------------------------------------------------

    def _run_flusher(self) -> None:
        # At most one flush per flush_interval (the original's 5 ms timer). A batch waits
        # for its burst to end - no new message for burst_gap - but never longer than an
        # interval: a burst that arrives over several TCP reads becomes one frame, and a
        # lone message waits burst_gap instead of 2.5 ms on average behind a fixed timer.
        # Measured with benchmarks/run.sh fanout (README, Performance).
        wake = self._wake
        interval = self.flush_interval
        last_flush = -interval
        while True:
            wake.wait()
            wake.clear()
            while True:
                started = time.monotonic()
                while True:
                    seen = self._queued
                    gevent.sleep(self.burst_gap)
                    if self._queued == seen or time.monotonic() - started >= interval:
                        break
                gevent.sleep(max(0.0, last_flush + interval - time.monotonic()))
                if not self._pending:
                    break
                last_flush = time.monotonic()
                try:
                    self.flush()
                except Exception:
                    self.log.exception("publish flush failed; its messages are lost")

    def flush(self) -> None:
        """Send every pending batch now: one frame per subscriber (two for a subscriber with
        plain and positioned channels in the batch)."""
        pending, self._pending = self._pending, {}
        firsts, self._first = self._first, {}
        self._queued = 0
        self._pending_bytes = 0
        self.batches += 1
        counts = self.channel_messages
        if counts is not None:
            for channel, messages in pending.items():
                counts[channel] = counts.get(channel, 0) + len(messages)
        members = self.registry.members
        if len(pending) == 1 and not firsts:
            # The common case: one active channel, one frame for all its subscribers.
            ((channel, messages),) = pending.items()
            payload = encode_publish_frame([encode_channel_entry(channel, messages)])
            frame = encode_frame(OP_TEXT, payload)
            subscribers = tuple(members(channel))
            self.deliveries += len(subscribers)
            if self.deflating:
                self._send_deflating(subscribers, payload, frame)
                return
            for subscriber in subscribers:
                subscriber.send_frame(frame)
            return
        plain: Dict[Any, List[bytes]] = {}
        positioned: Dict[Any, List[bytes]] = {}
        for channel, messages in pending.items():
            entry = encode_channel_entry(channel, messages)
            numbered = firsts.get(channel)
            located = None
            for subscriber in members(channel):
                if numbered is None:
                    plain.setdefault(subscriber, []).append(entry)
                    continue
                where = subscriber.position_of(channel)
                if where == PLAIN:
                    plain.setdefault(subscriber, []).append(entry)
                elif where == LIVE:
                    if located is None:
                        located = encode_positioned_entry(channel, numbered[0], numbered[1], messages)
                    positioned.setdefault(subscriber, []).append(located)
                else:  # recovering: kept until its recovery reply went out
                    where.append((numbered[0], numbered[1], messages))
        self.deliveries += len(plain) + len(positioned)
        self._send_frames(plain, encode_publish_frame)
        self._send_frames(positioned, encode_positioned_frame)

    def _send_frames(self, per_subscriber: Dict[Any, List[bytes]], encode: Callable[[List[bytes]], bytes]) -> None:
        built: Dict[Tuple[int, ...], Tuple[bytes, bytes]] = {}  # entries' ids -> (payload, frame)
        deflated: Dict[Any, bytes] = {}
        for subscriber, entries in per_subscriber.items():
            key = tuple(map(id, entries))  # the entries live until the end of this flush
            shared = built.get(key)
            if shared is None:
                payload = encode(entries)
                shared = built[key] = (payload, encode_frame(OP_TEXT, payload))
            if self.deflating:
                subscriber.send_frame(self._frame_for(subscriber, shared[0], shared[1], deflated, key))
            else:
                subscriber.send_frame(shared[1])

    def _send_deflating(self, subscribers: Sequence[Any], payload: bytes, frame: bytes) -> None:
        """One batch to subscribers some of which agreed permessage-deflate."""
        deflated: Dict[Any, bytes] = {}
        for subscriber in subscribers:
            subscriber.send_frame(self._frame_for(subscriber, payload, frame, deflated, None))

    @staticmethod
    def _frame_for(subscriber: Any, payload: bytes, frame: bytes, deflated: Dict[Any, bytes], key: Any) -> bytes:
        """``frame``, or ``payload`` compressed with what ``subscriber`` agreed: once per batch
        (``key``) and set of parameters (in practice once), the same bytes for each of them."""
        params = subscriber.deflate
        if params is None or len(payload) < params.threshold:
            return frame
        compressed = deflated.get((key, params))
        if compressed is None:
            compressed = deflated[(key, params)] = deflate_frame(OP_TEXT, payload, params)
        return compressed

    def _call(self, hook: Optional[Callable[[Any], None]], arg: Any, name: str) -> None:
        if hook is not None:
            call_user_code(self.log, hook, (arg,), "%s middleware failed for %r", name, arg)
