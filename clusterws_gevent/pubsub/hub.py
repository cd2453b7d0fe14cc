"""The pub/sub hub of one process: subscriptions, batching, fan-out.

Messages published within one flush interval (5 ms, as the original) reach
each subscriber as ONE frame ``["p",null,{channel:[...]}]``, in publish order
per channel. Each message is JSON-encoded once, where it is published; at a
flush each channel's part of the frame is encoded once, and subscribers that
share the same active channels share the same frame bytes: there is no
per-subscriber JSON work. Writing to a subscriber never waits (its bounded
outbox takes the frame or closes a client that does not read), so one slow
subscriber delays nobody.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import gevent
from gevent.event import Event

from ..listeners import call_user_code
from ..log import Log
from ..protocol.frames import OP_TEXT, encode_frame
from ..protocol.messages import encode_channel_entry, encode_json, encode_publish_frame
from .channels import ChannelRegistry
from .connector import Connector, LocalConnector

__all__ = ["PubSubHub", "Subscriber", "FLUSH_INTERVAL", "BURST_GAP", "MAX_BATCH_BYTES"]

#: Seconds between flushes of the publish batches (the original's 5 ms).
FLUSH_INTERVAL = 0.005
#: A batch is flushed once no message came for this long (the end of a burst)...
BURST_GAP = 0.0005
#: Bytes of messages waiting for a flush, in all channels, past which they are flushed at once.
MAX_BATCH_BYTES = 1 << 20


class Subscriber(Protocol):
    """What the hub needs of a subscriber: a server socket
    (:class:`~clusterws_gevent.websocket.socket.Socket`) keeps its own channel set."""

    def add_channel(self, channel: str) -> bool:
        """Record a subscription; False if already subscribed."""

    def remove_channel(self, channel: str) -> bool:
        """Forget a subscription; False if there was none."""

    def take_channels(self) -> List[str]:
        """Forget every subscription and return them."""

    def send_frame(self, frame: bytes) -> bool:
        """Write an already encoded frame (never blocks); False if it was not accepted."""


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
    """

    def __init__(self, log: Log, connector: Optional[Connector] = None,
                 on_channel_open: Optional[Callable[[str], None]] = None,
                 on_channel_close: Optional[Callable[[str], None]] = None,
                 on_worker_message: Optional[Callable[[Any], None]] = None,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        self.log = log
        self.connector = connector or LocalConnector()
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
        return True

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
        if self.registry.discard(channel, subscriber):
            self._pending_bytes -= sum(map(len, self._pending.pop(channel, ())))
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
        self.deliver(channel, (message,))
        self.connector.publish(channel, message)

    def deliver(self, channel: str, messages: Sequence[bytes]) -> None:
        """Queue already encoded messages for the local subscribers of ``channel``."""
        if channel not in self.registry:
            return
        self._queued += len(messages)
        pending = self._pending.get(channel)
        if pending is None:
            self._pending[channel] = list(messages)
            self._wake.set()
        else:
            pending.extend(messages)
        self._pending_bytes += sum(map(len, messages))
        if self._pending_bytes > self.max_batch_bytes:
            # Large messages go out now, not at the end of the burst: what waits stays bounded
            # (a flood of 200 KB publishes grew a worker to 1.65 GB before this cap).
            self.flush()

    def publish_to_workers(self, data: Any) -> None:
        """Send ``data`` to onWorkerMessage of every other worker."""
        self.connector.publish_to_workers(encode_json(data))

    def worker_message(self, message: bytes) -> None:
        """A message from another worker's publish_to_workers."""
        try:
            data = json.loads(message)
        except ValueError:
            self.log.error("dropped a worker message that is not JSON (%d bytes)", len(message))
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
        """Send every pending batch now: one frame per subscriber."""
        pending, self._pending = self._pending, {}
        self._queued = 0
        self._pending_bytes = 0
        self.batches += 1
        members = self.registry.members
        if len(pending) == 1:
            # The common case: one active channel, one frame for all its subscribers.
            ((channel, messages),) = pending.items()
            frame = encode_frame(OP_TEXT, encode_publish_frame([encode_channel_entry(channel, messages)]))
            subscribers = tuple(members(channel))
            self.deliveries += len(subscribers)
            for subscriber in subscribers:
                subscriber.send_frame(frame)
            return
        per_subscriber: Dict[Any, List[bytes]] = {}
        for channel, messages in pending.items():
            entry = encode_channel_entry(channel, messages)
            for subscriber in members(channel):
                entries = per_subscriber.get(subscriber)
                if entries is None:
                    per_subscriber[subscriber] = [entry]
                else:
                    entries.append(entry)
        frames: Dict[Tuple[int, ...], bytes] = {}
        self.deliveries += len(per_subscriber)
        for subscriber, entries in per_subscriber.items():
            key = tuple(map(id, entries))  # the entries live until the end of this flush
            shared = frames.get(key)
            if shared is None:
                shared = frames[key] = encode_frame(OP_TEXT, encode_publish_frame(entries))
            subscriber.send_frame(shared)

    def _call(self, hook: Optional[Callable[[Any], None]], arg: Any, name: str) -> None:
        if hook is not None:
            call_user_code(self.log, hook, (arg,), "%s middleware failed for %r", name, arg)
