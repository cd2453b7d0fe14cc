"""Scaler.Redis on a Redis Cluster (issue 19): shard channels, a connection per shard,
failover, against a real 3-master + 3-replica cluster the tests start."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List

import pytest
from helpers import RedisCluster, metric, on_each_worker, steady_traffic_between, subscribe

from clusterws_gevent.client import Client
from clusterws_gevent.testing import check_delivery_order, wait_until

TESTS_DIR = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not any(os.access(os.path.join(p, "redis-cli"), os.X_OK)
                                        for p in os.environ.get("PATH", "").split(os.pathsep)),
                                reason="redis-server and redis-cli are not installed (.ci/run installs them)")


@pytest.fixture
def cluster(tmp_path):
    nodes = RedisCluster(tmp_path / "cluster").start()
    yield nodes
    nodes.stop()


@pytest.fixture
def cluster_servers(serve, cluster):
    """``start(count=2, workers=2, *flags)``: ClusterWS servers joined through the cluster."""

    def start(count: int = 2, workers: int = 2, *flags: str) -> List[Any]:
        return [serve("apps.pubsub:worker", "--workers", str(workers), "--scaler", "redis", "--redis-url",
                      cluster.url, "--no-auto-ping", "--metrics", *flags, mode="scale", ready_count=workers)
                for _ in range(count)]

    return start


def urls(servers):
    return [f"ws://127.0.0.1:{server.port}/" for server in servers]


@pytest.mark.parametrize("messages", [20_000, pytest.param(100_000, marks=pytest.mark.slow, id="100000")])
def test_messages_across_servers_in_order_without_loss(cluster_servers, messages):
    servers = cluster_servers()
    report = check_delivery_order(urls(servers), messages=messages)
    assert report.ok, str(report)


def test_a_subscribe_reply_means_the_route_is_live_across_servers(cluster_servers):
    a_server, b_server = cluster_servers(workers=1)
    with Client(urls([a_server])[0]) as a, Client(urls([b_server])[0]) as b:
        for i in range(100):
            name = f"live-{i}"  # channels in every shard
            got: List[Any] = []
            channel = a.subscribe(name)
            channel.watch(got.append)
            assert channel.wait_subscribed(5)
            b.subscribe(name).publish(i)
            wait_until(lambda got=got: got, 5, message=f"message {i}")
            assert got == [i]
            channel.unsubscribe()


def test_shard_channels_only_on_the_channels_shard(cluster_servers, cluster):
    servers = cluster_servers()
    clients = [client for server in servers for client in on_each_worker(server).values()]
    try:
        for client in clients:
            assert subscribe(client, "news") == ["s", "s", {"news": True}]
        key = "cws:c:{news}"
        owner = cluster.node_of(key)
        shard = [owner, cluster.replica_of(owner)]
        # each worker subscribes on one node of the channel's shard (its replica) and nowhere else
        assert sum(node.shard_numsub(key) for node in shard) == 4
        others = [node for node in cluster.running() if node not in shard]
        assert all(node.shard_numsub(key) == 0 for node in others)
        assert all(node.client().execute_command("PUBSUB", "NUMSUB", key)[1] == 0 for node in cluster.running())
        for client in clients:
            client.send_text('["s","u","news"]')
        wait_until(lambda: sum(node.shard_numsub(key) for node in shard) == 0, 5, message="no worker subscribed")
    finally:
        for client in clients:
            client.close()


def test_the_emitter_reaches_subscribers_on_both_servers(cluster_servers, cluster):
    servers = cluster_servers(workers=1)
    clients = [Client(url) for url in urls(servers)]
    try:
        got: List[List[Any]] = [[], []]
        for client, box in zip(clients, got):
            channel = client.subscribe("from-a-script")
            channel.watch(box.append)
            assert channel.wait_subscribed(5)
        script = ("import sys; from clusterws_gevent import Emitter\n"
                  "with Emitter(redis=sys.argv[1]) as e:\n"
                  "    for i in range(50): e.publish('from-a-script', {'n': i})\n")
        subprocess.run([sys.executable, "-c", script, cluster.url], check=True, timeout=30, cwd=str(TESTS_DIR))
        wait_until(lambda: all(len(box) == 50 for box in got), 10, message="50 messages on each server")
        assert all(box == [{"n": i} for i in range(50)] for box in got)
    finally:
        for client in clients:
            client.close()


# -- faults: the channel's master dies, a planned failover, a slot moved ----------------------------


@pytest.fixture
def steady(cluster_servers):
    servers = cluster_servers()
    with steady_traffic_between(*servers) as traffic:
        yield traffic, servers


def test_the_channels_master_killed_its_replica_promoted(steady, cluster):
    traffic, servers = steady
    master = cluster.node_of("cws:c:{steady}")
    replica = cluster.replica_of(master)
    started = time.monotonic()
    master.kill()
    wait_until(lambda: replica.client().execute_command("ROLE")[0] == b"master", 10, message="the replica promoted")
    traffic.flowing(10.0)
    took = time.monotonic() - started
    assert took < 10.0, f"delivery back after {took:.1f}s"
    servers[0].wait_for_log("a node is unreachable", timeout=5)  # the publishers' server counted and logged
    assert metric(servers[0], 'clusterws_dropped_messages_total{reason="redis_down"}') > 0


def test_a_planned_failover_loses_nothing(steady, cluster):
    traffic, servers = steady
    master = cluster.node_of("cws:c:{steady}")
    replica = cluster.replica_of(master)
    replica.client().execute_command("CLUSTER", "FAILOVER")
    wait_until(lambda: replica.client().execute_command("ROLE")[0] == b"master", 10, message="the failover")
    traffic.flowing(5.0)
    traffic.stop_publishing()
    wait_until(traffic.complete, 10, message=f"every message delivered ({traffic.describe()})")
    assert metric(servers[0], 'clusterws_dropped_messages_total{reason="redis_down"}') == 0


def test_a_slot_moved_to_another_master_goes_on_delivering(steady, cluster):
    traffic, servers = steady
    key = "cws:c:{steady}"
    source = cluster.node_of(key)
    target = next(node for node in cluster.running() if node is not source
                  and node.client().execute_command("ROLE")[0] == b"master")
    def subscribed(master):
        return sum(node.shard_numsub(key) for node in cluster.running()
                   if node is master or cluster.is_replica_of(node, master))

    workers = subscribed(source)
    assert workers >= 2
    slot = int(source.client().execute_command("CLUSTER", "KEYSLOT", key))
    ids = {node.port: node.client().execute_command("CLUSTER", "MYID").decode() for node in (source, target)}
    target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
    source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])
    for node in cluster.running():  # no keys live in the slot (no history here): ownership moves at once
        if node.client().execute_command("ROLE")[0] == b"master":
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
    wait_until(lambda: cluster.node_of(key) is target, 10, message="the slot moved")
    took = traffic.flowing(10.0)
    assert took < 10.0
    wait_until(lambda: subscribed(target) == workers and subscribed(source) == 0, 10,
               message="the subscriptions moved to the slot's new shard")

