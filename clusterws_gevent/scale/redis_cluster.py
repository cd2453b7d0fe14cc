"""A Redis Cluster's shards, as ``Scaler.Redis`` and the Emitter use them.

``scale_options["redis"] = "redis+cluster://h1:p1,h2:p2"`` names startup nodes; the
topology (which shard serves each of the 16384 slots, its master and its replicas) is
read with ``CLUSTER SLOTS`` from the first node that answers, and read again whenever
something says it changed (a MOVED reply, a lost connection, a shard channel Redis
unsubscribed us from, a probe that did not come back).

App channels are Redis 7 shard channels (SSUBSCRIBE/SPUBLISH): a message goes to the
nodes of its channel's shard only, not to every node as classic pub/sub would. Every
key of one channel (its shard channel, history and presence) holds the channel's name
as a hash tag (``protocol/redis_envelope.py``), so they share a slot and one script per
publish reaches them all.

Where a worker subscribes: on a **replica** of the shard when it has one (else the
master). Measured on Redis 7.0 (``CLUSTER FAILOVER``): a master that is demoted sends
SUNSUBSCRIBE to its shard-channel subscribers, so a subscriber on the master misses what
is published until it subscribes again on the new one; a subscriber on the replica that
is promoted keeps its subscriptions and misses nothing, and SPUBLISH reaches every node
of the shard. A probe that does not come back moves that shard's subscriber to its next
node (another replica, then the master).

A slot being **migrated** with its keys (``redis-cli --cluster reshard``, ``MIGRATE``)
answers a command whose keys have moved already with ASK: the command did not run, and is
sent to the importing node after ``ASKING`` (:func:`ask_target`, :func:`call_asking`),
once; the topology stays as it is until the slot's owner changes (then MOVED). A script of
two keys split between the two nodes, or of keys that exist on neither yet, is answered
TRYAGAIN until the migration ends: sent again after a short pause, for
:data:`RETRY_FOR` at most.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, unquote, urlsplit

from .redis_client import parse_address

__all__ = ["ClusterConfig", "Shard", "ClusterMap", "is_cluster", "parse_cluster_config", "SLOTS", "key_slot",
           "tag_for_slots", "moved", "ask_target", "retry_later", "call_asking", "RETRY_FOR", "RETRY_PAUSE"]

#: Slots of a Redis Cluster.
SLOTS = 16384

Address = Tuple[str, int]

#: Seconds a command the cluster keeps redirecting (a slot being migrated, a failover under
#: way) is sent again for; a migration of one slot's few keys takes milliseconds.
RETRY_FOR = 2.0
#: The first pause before sending a command answered TRYAGAIN or CLUSTERDOWN again
#: (doubled each time, up to a quarter of a second).
RETRY_PAUSE = 0.01


class ClusterConfig:
    """Startup nodes and the connection keywords of every node (password, TLS...).

    Args:
        startup: nodes to learn the topology from.
        kwargs: redis-py ``Redis`` keywords for every node (not host or port).
    """

    __slots__ = ("startup", "kwargs")

    def __init__(self, startup: Sequence[Address], kwargs: Mapping[str, Any]) -> None:
        if not startup:
            raise ValueError("a Redis Cluster needs at least one startup node")
        self.startup = [(str(host), int(port)) for host, port in startup]
        self.kwargs = dict(kwargs)

    def describe(self) -> str:
        """For logs (never a password)."""
        return "redis+cluster://" + ",".join(f"{host}:{port}" for host, port in self.startup)


def is_cluster(config: Any) -> bool:
    """Whether a ``scale_options["redis"]`` names a Redis Cluster: a ``redis+cluster://`` URL,
    or keywords with ``startup_nodes``."""
    if isinstance(config, str):
        return config.startswith("redis+cluster://")
    return isinstance(config, Mapping) and "startup_nodes" in config


def parse_cluster_config(config: Any) -> ClusterConfig:
    """``redis+cluster://[user:password@]h1:p1,h2:p2[/?option=value...]`` (options: redis-py
    keywords with scalar values, e.g. ``ssl=true``), or ``{"startup_nodes": ["h1:p1", ("h2", p2)],
    **redis-py keywords}``.

    Raises:
        ValueError: not a cluster, or a node that is not host:port.
    """
    if isinstance(config, str):
        parts = urlsplit(config)
        if parts.scheme != "redis+cluster":
            raise ValueError(f"not a redis+cluster:// URL: {config!r}")
        userinfo, _, hosts = parts.netloc.rpartition("@")
        startup = [parse_address(host, config) for host in hosts.split(",")]
        if parts.path.strip("/"):
            raise ValueError(f"a cluster has one database, 0: drop {parts.path!r} from {config!r}")
        kwargs: Dict[str, Any] = {name: _scalar(value) for name, value in parse_qsl(parts.query)}
        if userinfo:
            user, _, password = userinfo.partition(":")
            if user:
                kwargs["username"] = unquote(user)
            if password:
                kwargs["password"] = unquote(password)
        return ClusterConfig(startup, kwargs)
    if not is_cluster(config):
        raise ValueError("not a Redis Cluster configuration (startup_nodes is missing)")
    kwargs = {name: value for name, value in config.items() if name != "startup_nodes"}
    nodes = [node if isinstance(node, (tuple, list)) else parse_address(str(node), str(config))
             for node in config["startup_nodes"]]
    return ClusterConfig([(str(host), int(port)) for host, port in nodes], kwargs)


def _scalar(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def key_slot(key: bytes) -> int:
    """The slot of ``key`` (CRC16 of its hash tag, as Redis computes it)."""
    from redis.crc import key_slot as redis_key_slot

    return int(redis_key_slot(key))


def tag_for_slots(slots: Sequence[Tuple[int, int]]) -> str:
    """A short hash tag whose slot is in one of ``slots`` ((first, last) ranges)."""
    for number in range(1_000_000):  # a shard of s slots is hit once in 16384/s tries on average
        tag = format(number, "x")
        slot = key_slot(b"{" + tag.encode() + b"}")
        if any(first <= slot <= last for first, last in slots):
            return tag
    raise LookupError("no hash tag reaches these slots")


class Shard:
    """One master and its replicas, and the slots they serve."""

    __slots__ = ("master", "replicas", "slots")

    def __init__(self, master: Address, replicas: List[Address]) -> None:
        self.master = master
        self.replicas = replicas
        self.slots: List[Tuple[int, int]] = []

    def __repr__(self) -> str:
        return f"Shard(master={self.master}, replicas={self.replicas}, slots={self.slots})"


class ClusterMap:
    """Which shard serves each slot, and a pooled client per node (thread- and greenlet-safe).

    Args:
        config: the startup nodes and connection keywords.
        settings: keywords of every connection (``redis_client.pinned_settings``).
    """

    def __init__(self, config: ClusterConfig, settings: Mapping[str, Any]) -> None:
        self.config = config
        self.settings = dict(settings)
        self.shards: List[Shard] = []
        self._slot_shard: List[Optional[Shard]] = [None] * SLOTS
        self._known: List[Address] = list(config.startup)
        self._clients: Dict[Address, Any] = {}
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read the topology from the first node that answers (the startup nodes, then every
        node seen so far).

        Raises:
            ConnectionError: no node answered.
        """
        errors = []
        for address in list(dict.fromkeys(self.config.startup + self._known)):
            try:
                slots = self.client(address).execute_command("CLUSTER", "SLOTS")
            except Exception as exc:  # noqa: BLE001 - try the next node
                errors.append(f"{address[0]}:{address[1]}: {type(exc).__name__}: {exc}")
                continue
            self._install(slots)
            return
        raise ConnectionError("no cluster node answered CLUSTER SLOTS (" + "; ".join(errors) + ")")

    def _install(self, reply: Any) -> None:
        shards: Dict[Address, Shard] = {}
        slot_shard: List[Optional[Shard]] = [None] * SLOTS
        for first, last, master, *replicas in reply:
            address = (_text(master[0]), int(master[1]))
            shard = shards.get(address)
            if shard is None:
                shard = shards[address] = Shard(address, sorted((_text(r[0]), int(r[1])) for r in replicas))
            shard.slots.append((int(first), int(last)))
            for slot in range(int(first), int(last) + 1):
                slot_shard[slot] = shard
        with self._lock:
            self.shards = list(shards.values())
            self._slot_shard = slot_shard
            for shard in self.shards:
                for address in [shard.master, *shard.replicas]:
                    if address not in self._known:
                        self._known.append(address)

    def shard_of(self, key: bytes) -> Shard:
        """The shard serving ``key``.

        Raises:
            ConnectionError: no shard serves its slot (a cluster that is not whole).
        """
        shard = self._slot_shard[key_slot(key)]
        if shard is None:
            raise ConnectionError(f"no cluster node serves the slot of {key[:64]!r}")
        return shard

    def call(self, key: bytes, call: Callable[[Any], Any],
             again: Optional[Callable[[BaseException], bool]] = None) -> Any:
        """``call(client)`` on the pooled client of ``key``'s master, where it runs: followed
        to the importing node on ASK (after ``ASKING``, :func:`call_asking`); when it fails
        with an error ``again`` accepts (by default :func:`moved`: the command did not run),
        sent again after the topology is read again, or after a pause for TRYAGAIN and
        CLUSTERDOWN, for :data:`RETRY_FOR` seconds at most.
        """
        accept = again if again is not None else moved
        deadline = time.monotonic() + RETRY_FOR
        pause = RETRY_PAUSE
        address, asked, retries = self.shard_of(key).master, False, 0
        while True:
            try:
                client = self.client(address)
                return call_asking(client, call) if asked else call(client)
            except Exception as exc:
                target = None if asked else ask_target(exc)
                if target is not None:
                    address, asked = target, True
                    continue
                if not accept(exc) or time.monotonic() >= deadline:
                    raise
                retries += 1
                if retries > 1 or asked or retry_later(exc):  # the first MOVED goes again at once
                    time.sleep(pause)
                    pause = min(pause * 2, 0.25)
                if not retry_later(exc):
                    self.refresh()
            address, asked = self.shard_of(key).master, False

    def client(self, address: Address) -> Any:
        """A pooled ``redis.Redis`` of the node at ``address`` (shared: each call takes a
        connection of the pool)."""
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                client = self._clients[address] = self.new_client(address, pooled=True)
            return client

    def new_client(self, address: Address, pooled: bool = False) -> Any:
        """A new ``redis.Redis`` of the node at ``address``: with one connection unless ``pooled``."""
        import redis

        settings = {**self.settings, **self.config.kwargs}
        if not pooled:
            settings["max_connections"] = 1
        return redis.Redis(host=address[0], port=address[1], **settings)

    def close(self) -> None:
        """Close every pooled client."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing anyway
                pass


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def moved(exc: BaseException) -> bool:
    """Whether a reply error says the slot is served elsewhere (MOVED, ASK) or the cluster is
    changing (TRYAGAIN, CLUSTERDOWN): the command did not run, it may be sent again."""
    text = str(exc)
    return text.startswith(("MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN")) or type(exc).__name__ in (
        "MovedError", "AskError", "TryAgainError", "ClusterDownError")


def ask_target(exc: BaseException) -> Optional[Address]:
    """The node an ASK reply sends its command to (the key has moved to the node importing
    its slot; the command did not run), or None for any other error."""
    words = str(exc).split()
    if type(exc).__name__ == "AskError":  # redis-py >= 6 parses it (and strips the "ASK")
        words = ["ASK", *words]
    if len(words) != 3 or words[0] != "ASK":
        return None
    host, _, port = words[2].rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def retry_later(exc: BaseException) -> bool:
    """TRYAGAIN (a script whose keys are split between the two nodes of a slot being
    migrated, or exist on neither yet) or CLUSTERDOWN (a failover under way): the command
    did not run and may be sent again, after a pause."""
    return str(exc).startswith(("TRYAGAIN", "CLUSTERDOWN")) or type(exc).__name__ in (
        "TryAgainError", "ClusterDownError")


def call_asking(client: Any, call: Callable[[Any], Any]) -> Any:
    """``call`` (one command, or one script) on ``client``'s node, after ``ASKING`` on the
    same connection: a pipeline of the two. Returns its reply; raises its error."""
    pipe = client.pipeline(transaction=False)
    pipe.execute_command("ASKING")
    call(pipe)
    return pipe.execute()[1]
