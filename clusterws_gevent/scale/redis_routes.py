"""Where ``Scaler.Redis`` sends each command: one Redis, or the shards of a Redis Cluster.

:class:`SingleRedis` and :class:`ShardedRedis` give ``scale/redis.py`` the same contract,
so the connector has one subscriber greenlet, one writer greenlet and one canary for both:

- ``subscriber_connections()``: a ``PubSub`` per *target* (one for a single Redis; one per
  shard of a cluster, on a replica when it has one: ``scale/redis_cluster.py`` says why),
  and ``target_of(key)`` says which one a channel is subscribed on;
- ``probe_keys()``: the worker's liveness probe channels, one per target;
- ``send(ops)``: a batch of the writer's commands, in order per channel, a pipeline per
  node; a command a cluster node answered MOVED, ASK or TRYAGAIN did not run, so it is
  sent again (after the topology is read again; to the importing node after ``ASKING``;
  after a pause), in order, for ``RETRY_FOR`` seconds at most, then its reply is
  :class:`Redirected`; nothing is sent twice otherwise. On a
  cluster, a node that cannot be reached fails only its own commands (:class:`SendFailed`),
  and is tried again after a backoff of its own, the topology read again first: the
  other shards go on;
- ``read(keys, script, args)``: a history or presence script, on the node of its keys.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

from ..net.backoff import Backoff
from ..protocol import redis_envelope as envelope
from .redis_client import RedisConfig, pinned_settings, redis_client
from .redis_cluster import (
    RETRY_FOR,
    RETRY_PAUSE,
    Address,
    ClusterMap,
    Shard,
    ask_target,
    key_slot,
    moved,
    parse_cluster_config,
    retry_later,
    tag_for_slots,
)

__all__ = ["Routes", "SingleRedis", "ShardedRedis", "routes_for", "Command", "SendFailed", "Redirected"]

#: One writer command: (a key of its channel, for routing; a function adding it to a pipeline).
Command = Tuple[bytes, Callable[[Any], None]]


class SendFailed(Exception):
    """Some commands of a batch could not be sent (the connection broke): ``failed`` holds
    their indexes, ``results`` the replies of the others (None for the failed), ``cause``
    the error."""

    def __init__(self, failed: List[int], cause: BaseException, results: Optional[List[Any]] = None) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.failed = failed
        self.cause = cause
        self.results = results


class Redirected(Exception):
    """The reply of a command a cluster kept redirecting (MOVED, ASK, TRYAGAIN) for
    ``RETRY_FOR`` seconds: it was not sent."""


class Routes:
    """The contract (see the module docstring)."""

    #: Shard channels (SSUBSCRIBE, SPUBLISH) or classic ones.
    sharded = False

    def subscriber_connections(self, client_name: str) -> Dict[Any, Any]:
        raise NotImplementedError

    def target_of(self, key: bytes) -> Any:
        raise NotImplementedError

    def probe_keys(self, prefix: str, publisher: bytes) -> Dict[bytes, Any]:
        raise NotImplementedError

    def probe_failed(self, target: Any) -> None:
        """A probe of ``target`` did not come back: subscribe elsewhere next time, if possible."""

    def subscribe(self, pubsub: Any, keys: Sequence[bytes]) -> None:
        for batch in self._batches(keys):
            (pubsub.ssubscribe if self.sharded else pubsub.subscribe)(*batch)

    def unsubscribe(self, pubsub: Any, keys: Sequence[bytes]) -> None:
        for batch in self._batches(keys):
            (pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe)(*batch)

    def _batches(self, keys: Sequence[bytes]) -> List[List[bytes]]:
        """One command's keys: all of them, or on a cluster those of one slot (SSUBSCRIBE's rule)."""
        if not self.sharded:
            return [list(keys)]
        by_slot: Dict[int, List[bytes]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key), []).append(key)
        return list(by_slot.values())

    @property
    def publish_command(self) -> str:
        return "SPUBLISH" if self.sharded else "PUBLISH"

    def connect_writer(self, client_name: str) -> None:
        raise NotImplementedError

    def send(self, commands: Sequence[Command]) -> List[Any]:
        raise NotImplementedError

    def close_writer(self) -> None:
        raise NotImplementedError

    def read(self, key: bytes, call: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        return {}


class SingleRedis(Routes):
    """One Redis (or the master Sentinel names): one connection per role."""

    def __init__(self, config: RedisConfig, client_name: str) -> None:
        self.config = config
        self.client_name = client_name
        self._writer: Any = None
        self._reads: Any = None

    def subscriber_connections(self, client_name: str) -> Dict[Any, Any]:
        return {None: redis_client(self.config, client_name).pubsub(ignore_subscribe_messages=False)}

    def target_of(self, key: bytes) -> Any:
        return None

    def probe_keys(self, prefix: str, publisher: bytes) -> Dict[bytes, Any]:
        return {envelope.probe_key(prefix, publisher): None}

    def connect_writer(self, client_name: str) -> None:
        self._writer = redis_client(self.config, client_name)
        check_master(self._writer)

    def send(self, commands: Sequence[Command]) -> List[Any]:
        pipe = self._writer.pipeline(transaction=False)
        for _, add in commands:
            add(pipe)
        try:
            return list(pipe.execute(raise_on_error=False))
        except Exception as exc:
            raise SendFailed(list(range(len(commands))), exc) from exc

    def close_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            close_quietly(writer)

    def read(self, key: bytes, call: Callable[[Any], Any]) -> Any:
        if self._reads is None:
            self._reads = redis_client(self.config, self.client_name + ":read", single_connection=False)
        return call(self._reads)


class ShardedRedis(Routes):
    """A Redis Cluster: shard channels, a connection per shard (see the module docstring).
    The subscriber, the writer and the reads each keep their own map of the cluster, read
    again by their own greenlet when it failed them."""

    sharded = True

    def __init__(self, config: RedisConfig, worker_id: int, client_name: str) -> None:
        self.config = parse_cluster_config(config)
        self.worker_id = worker_id
        self.client_name = client_name
        self._subscriber_map: Optional[ClusterMap] = None
        self._writer_map: Optional[ClusterMap] = None
        self._reads_map: Optional[ClusterMap] = None
        self._writers: Dict[Tuple[str, int], Any] = {}
        self._down: Dict[Tuple[str, int], Tuple[float, BaseException]] = {}  # node -> (retry at, why)
        self._backoffs: Dict[Tuple[str, int], Backoff] = {}
        self._refresh_at: Optional[float] = None  # read the topology again before the next send
        self._writer_name = "cws:pub"
        self._choices: Dict[Tuple[str, int], int] = {}  # shard (its master) -> which node to subscribe on

    def _map(self, client_name: str) -> ClusterMap:
        return ClusterMap(self.config, pinned_settings(client_name))

    # -- subscriber

    def subscriber_connections(self, client_name: str) -> Dict[Any, Any]:
        if self._subscriber_map is None:
            self._subscriber_map = self._map(client_name)
        cluster = self._subscriber_map
        cluster.refresh()
        pubsubs = {}
        try:
            for shard in cluster.shards:
                node = self._subscriber_of(shard)
                pubsubs[shard.master] = cluster.new_client(node).pubsub(ignore_subscribe_messages=False)
        except Exception:
            for pubsub in pubsubs.values():
                close_quietly(pubsub)
            raise
        return pubsubs

    def target_of(self, key: bytes) -> Any:
        assert self._subscriber_map is not None
        return self._subscriber_map.shard_of(key).master

    def probe_keys(self, prefix: str, publisher: bytes) -> Dict[bytes, Any]:
        assert self._subscriber_map is not None
        return {envelope.probe_key(prefix, publisher, tag_for_slots(shard.slots)): shard.master
                for shard in self._subscriber_map.shards}

    def _subscriber_of(self, shard: Shard) -> Tuple[str, int]:
        """A replica (the workers spread over them), the next node after each failed probe."""
        nodes = shard.replicas + [shard.master]
        first = self.worker_id % len(shard.replicas) if shard.replicas else 0
        return nodes[(first + self._choices.get(shard.master, 0)) % len(nodes)]

    def probe_failed(self, target: Any) -> None:
        self._choices[target] = self._choices.get(target, 0) + 1

    # -- writer

    def connect_writer(self, client_name: str) -> None:
        self._writer_name = client_name
        if self._writer_map is None:
            self._writer_map = self._map(client_name)
        self._writer_map.refresh()

    def _writer_for(self, address: Tuple[str, int]) -> Any:
        client = self._writers.get(address)
        if client is None:
            assert self._writer_map is not None
            client = self._writer_map.new_client(address)
            try:
                check_master(client)
            except Exception:
                close_quietly(client)
                raise
            self._writers[address] = client
        return client

    def send(self, commands: Sequence[Command]) -> List[Any]:
        assert self._writer_map is not None
        if self._refresh_at is not None and time.monotonic() >= self._refresh_at:
            self._refresh_at = None
            self._writer_map.refresh()  # ConnectionError: no node answers, the writer reconnects
        results: List[Any] = [None] * len(commands)
        failed: List[int] = []
        cause: Optional[BaseException] = None
        pending: List[Tuple[int, Optional[Address]]] = [(index, None) for index in range(len(commands))]
        deadline = time.monotonic() + RETRY_FOR
        pause, refreshed = RETRY_PAUSE, False
        while pending:
            pending, lost, why = self._send_round(commands, pending, results)
            failed += lost
            cause = why or cause
            if not pending or time.monotonic() >= deadline:
                break
            errors = [results[index] for index, target in pending
                      if target is None and isinstance(results[index], Exception)]
            new_owner = any(not retry_later(error) and ask_target(error) is None for error in errors)  # MOVED
            if any(retry_later(error) for error in errors) or (new_owner and refreshed):
                time.sleep(pause)  # a slot half-migrated, a failover under way
                pause = min(pause * 2, 0.25)
            if new_owner:
                self._writer_map.refresh()
                refreshed = True
        for index, _ in pending:  # still redirected after RETRY_FOR: not sent
            results[index] = Redirected(f"not sent: the cluster still redirected it after {RETRY_FOR:.0f}s "
                                        f"({results[index]})")
        if cause is not None:
            raise SendFailed(sorted(failed), cause, results)
        return results

    def _send_round(self, commands: Sequence[Command], pending: List[Tuple[int, Optional[Address]]],
                    results: List[Any]) -> Tuple[List[Tuple[int, Optional[Address]]], List[int],
                                                 Optional[BaseException]]:
        """Send the ``pending`` commands (an index, and the node an ASK named or None), a
        pipeline per node, in order; (those to send again, those lost, why).

        Commands of one channel stay in order: in a round they go to one node, in one
        pipeline (the others wait for the next round). The first of them that did not run
        (MOVED, ASK, TRYAGAIN) goes next round where its ASK says; the later ones of its
        channel did not run either (a slot's state only moves on) and go back to the slot's
        owner, behind it. So a node importing a slot gets one command of a channel at a
        time: one it answered TRYAGAIN is not overtaken by the next, which the keys'
        arrival would let run.
        """
        assert self._writer_map is not None
        groups: Dict[Tuple[Address, bool], List[int]] = {}
        again: List[Tuple[int, Optional[Address]]] = []
        routes: Dict[bytes, Tuple[Address, bool]] = {}  # channel -> where its first command goes this round
        for index, target in pending:
            key = commands[index][0]
            route = (target if target is not None else self._writer_map.shard_of(key).master, target is not None)
            if routes.setdefault(key, route) != route:
                again.append((index, target))  # behind the earlier command of its channel, next round
                continue
            groups.setdefault(route, []).append(index)
        failed: List[int] = []
        cause: Optional[BaseException] = None
        now = time.monotonic()
        for (address, asking), group in groups.items():
            down = self._down.get(address)
            if down is not None and now < down[0]:
                failed += group
                cause = down[1]
                continue
            try:
                pipe = self._writer_for(address).pipeline(transaction=False)
                for index in group:
                    if asking:
                        pipe.execute_command("ASKING")
                    commands[index][1](pipe)
                replies = pipe.execute(raise_on_error=False)
            except Exception as exc:  # noqa: BLE001 - this node's commands are lost; the others go on
                failed += group
                cause = exc
                close_quietly(self._writers.pop(address, None))
                backoff = self._backoffs.setdefault(address, Backoff(jitter=True))
                self._down[address] = (now + backoff.take(), exc)
                self._refresh_at = now  # a failover may have moved its slots
                continue
            self._down.pop(address, None)
            self._backoffs.pop(address, None)
            held: Set[bytes] = set()  # channels with a command that did not run, in this group
            for index, reply in zip(group, replies[1::2] if asking else replies):
                results[index] = reply
                if isinstance(reply, Exception) and moved(reply):
                    key = commands[index][0]
                    again.append((index, None if asking or key in held else ask_target(reply)))
                    held.add(key)
        again.sort()
        return again, failed, cause

    def close_writer(self) -> None:
        self._down.clear()
        self._backoffs.clear()
        writers, self._writers = list(self._writers.values()), {}
        for client in writers:
            close_quietly(client)

    # -- reads

    def read(self, key: bytes, call: Callable[[Any], Any]) -> Any:
        if self._reads_map is None:
            self._reads_map = self._map(self.client_name + ":read")
            self._reads_map.refresh()
        # a read may be sent again: after a moved slot, a lost node, or a timeout
        return self._reads_map.call(key, call, again=lambda exc: moved(exc) or _connection_error(exc))

    def describe(self) -> Dict[str, Any]:
        cluster = self._subscriber_map
        if cluster is None:
            return {"shards": 0}
        return {"shards": len(cluster.shards),
                "subscribed_on": sorted("{}:{}".format(*self._subscriber_of(shard)) for shard in cluster.shards)}


def routes_for(config: RedisConfig, worker_id: int, client_name: str) -> Routes:
    """The routes of a ``scale_options["redis"]``: a Redis Cluster's or a single Redis's;
    ``client_name`` begins every connection's name (``CLIENT LIST``)."""
    from .redis_cluster import is_cluster

    return ShardedRedis(config, worker_id, client_name) if is_cluster(config) else SingleRedis(config, client_name)


def _connection_error(exc: BaseException) -> bool:
    """A lost or unreachable node (redis-py's ConnectionError and TimeoutError are not the builtins)."""
    return isinstance(exc, OSError) or type(exc).__name__ in ("ConnectionError", "TimeoutError")


def check_master(client: Any) -> None:
    """Connect now, and refuse a Redis that is a replica (a demoted master after a failover)."""
    role = client.execute_command("ROLE")
    if role and role[0] not in (b"master", "master"):
        raise ConnectionError(f"connected to a {role[0]!r}, not a master")


def close_quietly(closable: Any) -> None:
    """Close a client or a PubSub, ignoring errors (it is being dropped anyway)."""
    if closable is None:
        return
    try:
        closable.close()
    except Exception:  # noqa: BLE001 - the connection is being dropped anyway
        pass
