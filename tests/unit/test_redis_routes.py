"""How ``ShardedRedis.send`` (the writer) and ``ClusterMap.call`` (reads, the Emitter) follow a
Redis Cluster's redirections (issue 19), exactly: two scripted nodes stand for a slot's
migrating and importing masters (what each answers is the rule of Redis's
``getNodeByQuery``; the integration test migrates a real slot)."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import pytest
from redis.exceptions import ResponseError

from clusterws_gevent.scale import redis_routes
from clusterws_gevent.scale.redis_cluster import ClusterMap
from clusterws_gevent.scale.redis_routes import Redirected, ShardedRedis

A, B = ("127.0.0.1", 7000), ("127.0.0.1", 7001)
ASK_B = "ASK 1 127.0.0.1:7001"


class Node:
    """A master that answers each command with ``answer(key, asking)``; ``ran`` lists what it ran."""

    def __init__(self, answer: Callable[[bytes, bool], Optional[str]]) -> None:
        self.answer = answer
        self.ran: List[Tuple[bytes, int]] = []

    def pipeline(self, transaction: bool = False) -> Pipe:
        return Pipe(self)


class Pipe:
    def __init__(self, node: Node) -> None:
        self.node, self.commands = node, []

    def execute_command(self, *args: Any) -> Pipe:
        self.commands.append(args)
        return self

    def execute(self, raise_on_error: bool = True) -> List[Any]:
        replies = self._replies()
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if raise_on_error and errors:
            raise errors[0]
        return replies

    def _replies(self) -> List[Any]:
        replies: List[Any] = []
        asking = False
        for args in self.commands:
            if args[0] == "ASKING":
                replies.append(b"OK")
                asking = True
                continue
            error = self.node.answer(args[1], asking)
            asking = False
            if error is None:
                self.node.ran.append((args[1], args[2]))
            replies.append(ResponseError(error) if error else len(self.node.ran))
        return replies


class Client:
    """A ``redis.Redis`` of a scripted node: a command at once, or a pipeline."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def execute_command(self, *args: Any) -> Any:
        return Pipe(self.node).execute_command(*args).execute()[0]

    def pipeline(self, transaction: bool = False) -> Pipe:
        return Pipe(self.node)


def routes_of(a: Node, b: Node) -> ShardedRedis:
    routes = ShardedRedis("redis+cluster://127.0.0.1:7000", 0, "test")
    routes._writer_map = ClusterMap(routes.config, {})
    routes._writer_map._install([[0, 16383, [b"127.0.0.1", 7000]]])  # every slot on A (no refresh here)
    routes._writers = {A: a, B: b}
    return routes


def commands(*keys: bytes) -> List[Any]:
    return [(key, lambda pipe, key=key, n=n: pipe.execute_command("RUN", key, n)) for n, key in enumerate(keys)]


def test_an_asked_command_goes_to_the_importing_node_after_asking_and_the_others_stay():
    a = Node(lambda key, asking: ASK_B if key == b"{moved}" else None)
    b = Node(lambda key, asking: None if asking else "MOVED 1 127.0.0.1:7000")
    results = routes_of(a, b).send(commands(b"{moved}", b"{here}", b"{moved}", b"{here}"))
    assert a.ran == [(b"{here}", 1), (b"{here}", 3)]
    assert b.ran == [(b"{moved}", 0), (b"{moved}", 2)]
    assert not any(isinstance(result, Exception) for result in results)


def test_one_answered_tryagain_where_the_keys_arrive_is_not_overtaken_by_the_next():
    tries = []

    def importing(key: bytes, asking: bool) -> Optional[str]:
        tries.append(key)
        return "TRYAGAIN Multiple keys request during rehashing of slot" if len(tries) == 1 else None

    a = Node(lambda key, asking: ASK_B)
    b = Node(importing)
    results = routes_of(a, b).send(commands(b"{moved}", b"{moved}", b"{moved}", b"{other}"))
    assert [n for key, n in b.ran if key == b"{moved}"] == [0, 1, 2]  # (without the rule: 1, 2, 0)
    assert (b"{other}", 3) in b.ran
    assert not any(isinstance(result, Exception) for result in results)


def test_tryagain_on_the_owner_is_sent_again_in_order_after_a_pause():
    answers = iter(["TRYAGAIN x", "TRYAGAIN x"])
    a = Node(lambda key, asking: next(answers, None) if key == b"{split}" else None)
    results = routes_of(a, Node(lambda key, asking: "unused")).send(commands(b"{split}", b"{split}", b"{fine}"))
    assert a.ran == [(b"{fine}", 2), (b"{split}", 0), (b"{split}", 1)]
    assert not any(isinstance(result, Exception) for result in results)


def test_a_command_still_redirected_after_retry_for_is_not_sent_and_the_others_are(monkeypatch):
    monkeypatch.setattr(redis_routes, "RETRY_FOR", 0.05)
    a = Node(lambda key, asking: "TRYAGAIN x" if key == b"{stuck}" else None)
    results = routes_of(a, Node(lambda key, asking: "unused")).send(commands(b"{stuck}", b"{fine}"))
    assert isinstance(results[0], Redirected) and "TRYAGAIN" in str(results[0])
    assert a.ran == [(b"{fine}", 1)]


def test_moved_reads_the_topology_again_and_sends_to_the_new_owner():
    a = Node(lambda key, asking: "MOVED 1 127.0.0.1:7001")
    b = Node(lambda key, asking: None)
    routes = routes_of(a, b)
    cluster = routes._writer_map
    cluster.refresh = lambda: cluster._install([[0, 16383, [b"127.0.0.1", B[1]]]])  # what CLUSTER SLOTS says
    routes.send(commands(b"{x}", b"{y}", b"{x}"))
    assert b.ran == [(b"{x}", 0), (b"{y}", 1), (b"{x}", 2)]


def cluster_of(a: Node, b: Node) -> ClusterMap:
    cluster = ClusterMap(ShardedRedis("redis+cluster://127.0.0.1:7000", 0, "test").config, {})
    cluster._install([[0, 16383, [b"127.0.0.1", 7000]]])
    cluster.client = {A: Client(a), B: Client(b)}.__getitem__  # type: ignore[method-assign]
    return cluster


def test_a_read_follows_ask_to_the_importing_node_and_waits_out_tryagain():
    answers = iter(["TRYAGAIN x"])
    a = Node(lambda key, asking: ASK_B)
    b = Node(lambda key, asking: (next(answers, None) if asking else "MOVED 1 127.0.0.1:7000"))
    cluster = cluster_of(a, b)
    assert cluster.call(b"{k}", lambda client: client.execute_command("RUN", b"{k}", 7)) == 1
    assert b.ran == [(b"{k}", 7)] and a.ran == []


def test_a_read_that_fails_otherwise_raises_at_once():
    a = Node(lambda key, asking: "ERR wrong number of arguments")
    cluster = cluster_of(a, Node(lambda key, asking: None))
    with pytest.raises(ResponseError, match="wrong number"):
        cluster.call(b"{k}", lambda client: client.execute_command("RUN", b"{k}", 0))
    assert a.ran == []
