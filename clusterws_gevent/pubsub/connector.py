"""The connector: what carries pub/sub between processes.

The hub calls a connector to send; the connector calls the hub back with what
arrives from other processes (:meth:`PubSubHub.deliver`,
:meth:`PubSubHub.worker_message`). ``Mode.Single`` uses :class:`LocalConnector`,
which sends nothing and owns every channel's history and presence itself; the
brokers and Redis connectors live in ``scale/``. Messages cross processes already
JSON-encoded, as bytes: they are encoded once, by the process where they were
published.

A channel with history has one owner that numbers its messages (this process, its
broker, Redis): ``publish_numbered`` sends a message there, and every process with
subscribers, this one included, gets it back numbered. History and presence are
read from the owner (``history``, ``presence``), which may be another process: those
calls wait for its answer, and raise :class:`~clusterws_gevent.exceptions.Unavailable`
when it does not come.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

import gevent

from ..options import ChannelOptions
from .history import HistoryRead, HistoryStore
from .presence import PresenceStore

__all__ = ["Connector", "LocalConnector", "Delivery", "EXPIRE_INTERVAL"]

#: Seconds between two sweeps of the histories idle past their ttl (their memory goes back).
EXPIRE_INTERVAL = 10.0


class Delivery(Protocol):
    """What a connector hands arrivals to: the hub (:class:`~clusterws_gevent.pubsub.hub.PubSubHub`)."""

    def deliver(self, channel: str, messages: Sequence[bytes], epoch: Optional[str] = None, first: int = 0) -> None:
        """Queue already encoded messages of ``channel`` for its local subscribers (numbered
        ``first``... of ``epoch`` when it has history)."""

    def worker_message(self, message: bytes) -> None:
        """A message for onWorkerMessage, from another worker."""


class Connector:
    """Base of the connectors (template: the hub never knows which one it has)."""

    hub: Delivery

    def start(self, hub: Delivery) -> None:
        """Begin carrying messages for ``hub``."""
        self.hub = hub

    def links_up(self) -> Tuple[int, int]:
        """(links up, links) to the other processes; (0, 0) when there are none to have."""
        return 0, 0

    def describe_links(self) -> List[Dict[str, Any]]:
        """Each link for the dashboard: ``{"name", "up", "error"}`` (its last failure, or "")."""
        return []

    def lost(self) -> Dict[str, int]:
        """Messages dropped since the start, by reason (``broker_link_down``, ``redis_down``...)."""
        return {}

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the links to the other processes are up; False if not after ``timeout`` seconds."""
        return True

    def publish(self, channel: str, message: bytes) -> None:
        """Send a message published in this process to the other processes."""
        raise NotImplementedError

    def publish_numbered(self, channel: str, message: bytes) -> None:
        """Send a message of a channel with history to its owner, which numbers it: every
        process with subscribers of the channel, this one included, delivers it then."""
        raise NotImplementedError

    def history(self, channel: str, since: Optional[int] = None, limit: Optional[int] = None) -> HistoryRead:
        """The channel's history, from its owner (see ``HistoryStore.read``).

        Raises:
            Unavailable: the owner did not answer.
        """
        raise NotImplementedError

    def presence_join(self, channel: str, socket_id: str, info: bytes) -> None:
        """``socket_id`` is subscribed to ``channel`` (which has presence); ``info`` is JSON."""

    def presence_leave(self, channel: str, socket_id: str) -> None:
        """``socket_id`` left ``channel``."""

    def presence(self, channel: str) -> Dict[str, bytes]:
        """``{socket id: info}`` of ``channel`` over every process.

        Raises:
            Unavailable: the owner did not answer.
        """
        raise NotImplementedError

    def add_interest(self, channel: str) -> bool:
        """This process has subscribers of ``channel`` now: route its messages here.

        Returns once the route is live, so that a subscriber told ``true`` gets
        every message published after that (protocol.md): True; False if the route
        could not be confirmed in time (the subscription is then refused).
        """
        raise NotImplementedError

    def await_interest(self, channel: str) -> bool:
        """Return once the route of ``channel`` is live (another subscriber of this
        process may have declared it a moment ago and be waiting for the confirmation);
        False if it could not be confirmed in time."""
        return True

    def drop_interest(self, channel: str) -> None:
        """This process has no subscriber of ``channel`` left."""
        raise NotImplementedError

    def stats(self) -> Dict[str, Any]:
        """Counters for monitoring and tests."""
        return {}

    def publish_to_workers(self, message: bytes) -> None:
        """Send ``message`` to onWorkerMessage of every other worker."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop carrying messages and release connections."""


class LocalConnector(Connector):
    """One process: there is nobody to tell, and this process owns every channel.

    Args:
        channels: the channels' options (history sizes and ttls).
    """

    def __init__(self, channels: Optional[ChannelOptions] = None) -> None:
        channels = channels or ChannelOptions()
        self.histories = HistoryStore(channels.policy, channels.max_history_bytes)
        self.presences = PresenceStore()
        self._sweeper: Any = None

    def start(self, hub: Delivery) -> None:
        super().start(hub)
        if self._sweeper is None:
            self._sweeper = gevent.spawn(self._sweep)

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
            self._sweeper = None

    def _sweep(self) -> None:
        while True:
            gevent.sleep(EXPIRE_INTERVAL)
            self.histories.expire()

    def publish(self, channel: str, message: bytes) -> None:
        pass

    def publish_numbered(self, channel: str, message: bytes) -> None:
        epoch, first = self.histories.append(channel, (message,))
        self.hub.deliver(channel, (message,), epoch, first)

    def history(self, channel: str, since: Optional[int] = None, limit: Optional[int] = None) -> HistoryRead:
        return self.histories.read(channel, since, limit)

    def presence_join(self, channel: str, socket_id: str, info: bytes) -> None:
        self.presences.join(channel, socket_id, info)

    def presence_leave(self, channel: str, socket_id: str) -> None:
        self.presences.leave(channel, socket_id)

    def presence(self, channel: str) -> Dict[str, bytes]:
        return self.presences.get(channel)

    def add_interest(self, channel: str) -> bool:
        return True

    def drop_interest(self, channel: str) -> None:
        pass

    def publish_to_workers(self, message: bytes) -> None:
        pass
