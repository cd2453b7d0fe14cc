"""The connector: what carries pub/sub between processes.

The hub calls a connector to send; the connector calls the hub back with what
arrives from other processes (:meth:`PubSubHub.deliver`,
:meth:`PubSubHub.worker_message`). ``Mode.Single`` uses :class:`LocalConnector`,
which sends nothing; the brokers and Redis connectors live in ``scale/``.
Messages cross processes already JSON-encoded, as bytes: they are encoded once,
by the process where they were published.
"""
from __future__ import annotations

from typing import Any, Dict, Protocol, Sequence, Tuple

__all__ = ["Connector", "LocalConnector", "Delivery"]


class Delivery(Protocol):
    """What a connector hands arrivals to: the hub (:class:`~clusterws_gevent.pubsub.hub.PubSubHub`)."""

    def deliver(self, channel: str, messages: Sequence[bytes]) -> None:
        """Queue already encoded messages of ``channel`` for its local subscribers."""

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

    @property
    def dropped_total(self) -> int:
        """Messages dropped because a link was down, since the start."""
        return 0

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the links to the other processes are up; False if not after ``timeout`` seconds."""
        return True

    def publish(self, channel: str, message: bytes) -> None:
        """Send a message published in this process to the other processes."""
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
    """One process: there is nobody to tell."""

    def publish(self, channel: str, message: bytes) -> None:
        pass

    def add_interest(self, channel: str) -> bool:
        return True

    def drop_interest(self, channel: str) -> None:
        pass

    def publish_to_workers(self, message: bytes) -> None:
        pass
