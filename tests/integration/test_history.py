"""Channel history, recovery and presence (issue 18), against real servers, brokers and Redis.

Each scaler numbers a channel's messages where the channel has one owner (the process, its
broker, Redis); a recovering client that loses its connection gets what it missed, exactly
once and in order, or is told it cannot (``recovered`` False).
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import gevent
import pytest
from helpers import RedisCluster, RedisServer, connect, metric, on_each_worker, worker_pids

from clusterws_gevent.client import Client
from clusterws_gevent.testing import DeliveryLog, wait_until

TESTS_DIR = Path(__file__).resolve().parent.parent
HISTORY = json.dumps({"history_size": 5, "history_ttl": 1.5})
RECOVERY = json.dumps({"namespaces": {"feed": {"history_size": 2000, "history_ttl": 60, "presence": True,
                                               "join_leave": True}}})
HAS_REDIS = all(any(os.access(os.path.join(p, command), os.X_OK) for p in os.environ.get("PATH", "").split(os.pathsep))
                for command in ("redis-server", "redis-cli"))
needs_redis = pytest.mark.skipif(not HAS_REDIS, reason="redis-server is not installed (.ci/run installs it)")


@pytest.fixture
def redis(tmp_path):
    if not HAS_REDIS:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def start(serve, serve_cluster, tmp_path) -> Callable[..., List[Any]]:
    """``start(scaler, channel_options, count=1)``: servers of one scaler ("single", "scale":
    2 workers and 2 brokers, "redis": ``count`` servers of 2 workers joined by a real Redis,
    "redis-cluster": the same through a Redis Cluster of 3 masters and 3 replicas)."""
    redis_servers: List[Any] = []

    def begin(scaler: str, channel_options: str, count: int = 1, *flags: str) -> List[Any]:
        common = ("--no-auto-ping", "--channel-options", channel_options, *flags)
        if scaler == "single":
            return [serve("apps.pubsub:worker", *common)]
        if scaler == "scale":
            return [serve_cluster("apps.pubsub:worker", *common, "--restart-on-fail")]
        redis = RedisServer(tmp_path).start() if scaler == "redis" else RedisCluster(tmp_path / "cluster").start()
        redis_servers.append(redis)
        servers = [serve("apps.pubsub:worker", "--workers", "2", "--scaler", "redis", "--redis-url", redis.url,
                         "--restart-on-fail", *common, mode="scale", ready_count=2) for _ in range(count)]
        for server in servers:
            server.redis_url, server.redis = redis.url, redis
        return servers

    yield begin
    for redis in redis_servers:
        redis.stop() if isinstance(redis, RedisCluster) else redis.kill()


def url(server, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.port}/{query}"


def ask(client, event: str, **data: Any) -> Any:
    client.emit(event, data)
    return client.recv_event(event)


SCALERS = ["single", "scale", pytest.param("redis", marks=needs_redis),
           pytest.param("redis-cluster", marks=needs_redis)]


# -- history ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scaler", SCALERS)
def test_history_keeps_the_last_messages_with_consecutive_offsets_and_expires(start, scaler):
    (server,) = start(scaler, HISTORY)
    with connect(server) as client:
        for i in range(8):
            client.emit("publish", {"channel": "news", "data": {"n": i}})
        history = wait_until(lambda: (lambda h: h if h["offset"] == 8 else None)(
            ask(client, "history", channel="news")), 5, message="8 messages numbered")
        assert history["messages"] == [[offset, {"n": offset - 1}] for offset in range(4, 9)]
        assert ask(client, "history", channel="news", limit=2)["messages"] == [[7, {"n": 6}], [8, {"n": 7}]]
        epoch = history["epoch"]
        assert isinstance(epoch, str) and epoch
        # history_ttl (1.5 s) after its last publish the history is gone, and so is its epoch
        expired = wait_until(lambda: (lambda h: h if h["epoch"] != epoch else None)(
            ask(client, "history", channel="news")), 6, interval=0.2, message="the history expired")
        assert expired["messages"] == [] and expired["offset"] == 0
        client.emit("publish", {"channel": "news", "data": "again"})
        again = wait_until(lambda: (lambda h: h if h["offset"] == 1 else None)(ask(client, "history", channel="news")),
                           5, message="a new stream")
        assert again["messages"] == [[1, "again"]] and again["epoch"] == expired["epoch"]


def test_a_channel_without_history_has_none_and_its_subscribers_get_plain_frames(serve):
    server = serve("apps.pubsub:worker", "--no-auto-ping", "--channel-options",
                   json.dumps({"namespaces": {"kept": {"history_size": 10}}}))
    with connect(server) as original:
        original.send_text('["s","s",["kept:a","plain"]]')
        assert original.recv_json() == ["s", "s", {"kept:a": True, "plain": True}]
        original.emit("publish", {"channel": "kept:a", "data": 1})
        assert original.recv_json() == ["p", None, {"kept:a": [1]}]  # an original client sees no change
        assert ask(original, "history", channel="plain")["messages"] == []
        assert ask(original, "history", channel="kept:a")["messages"] == [[1, 1]]


# -- recovery -----------------------------------------------------------------------------------


class Publisher:
    """Publishes ``{"p": 0, "i": n}`` to a channel at ``rate`` messages a second from a client
    of its own, in a greenlet, from ``start()``; ``stop()`` returns how many it published."""

    def __init__(self, server_url: str, channel: str, rate: int = 500) -> None:
        self.client = Client(server_url)
        self.pid = pid_of(self.client)
        self.channel, self.rate, self.count = channel, rate, 0
        self._running = False
        self._greenlet: Any = None

    def start(self) -> Publisher:
        self._running = True
        self._greenlet = gevent.spawn(self._run)
        return self

    def _run(self) -> None:
        tick = 1.0 / self.rate
        while self._running:
            self.client.send("publish", {"channel": self.channel, "data": {"p": 0, "i": self.count}})
            self.count += 1
            gevent.sleep(tick)  # pacing, not synchronisation

    def stop(self) -> int:
        self._running = False
        if self._greenlet is not None:
            self._greenlet.join(5)
        self.client.close()
        return self.count


def recovering_subscriber(server_url: str, channel: str, avoid_pid: Optional[int] = None,
                          ) -> Tuple[Client, Any, DeliveryLog, List[bool]]:
    """A client subscribed with ``recover=True`` whose messages go through the order/loss
    checker (on a worker other than ``avoid_pid``'s)."""
    log = DeliveryLog({channel})
    recoveries: List[bool] = []
    for _ in range(40):
        client = Client(server_url, auto_reconnect=True, reconnect_min_interval=0.05, reconnect_max_interval=0.2)
        if avoid_pid is None or pid_of(client) != avoid_pid:
            break
        client.close()
    else:
        raise AssertionError(f"every connection reached worker {avoid_pid}")
    subscription = client.subscribe(channel, recover=True)
    subscription.watch(lambda message: log.record(message["p"], channel, message["i"]))
    subscription.on("recovered", recoveries.append)
    assert subscription.wait_subscribed(5)
    return client, subscription, log, recoveries


def reset(client: Client) -> None:
    """Cut the client's TCP connection with a reset (SO_LINGER 0), as a network change does."""
    client._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client._sock.close()


def pid_of(client: Client) -> int:
    got: List[int] = []
    client.on("whoami", got.append)
    client.send("whoami", None)
    return wait_until(lambda: got and got[-1], 5, message="whoami")


def finish(publisher: Publisher, log: DeliveryLog) -> int:
    published = publisher.stop()
    try:
        wait_until(lambda: log.received >= published, 10)
    except TimeoutError:
        raise AssertionError(f"{log.received} of {published} messages came: {log.gaps} missing, "
                             f"{log.duplicates} twice, {log.reorders} late; {log.examples}") from None
    return published


@pytest.mark.parametrize("fault", ["reset", "sigkill"])
@pytest.mark.parametrize("scaler", SCALERS)
def test_a_recovering_client_gets_every_message_once_in_order_across_a_cut(start, scaler, fault):
    if fault == "sigkill" and scaler == "single":
        pytest.skip("Single mode has no master to restart the process (its history dies with it): see 'reset'")
    servers = start(scaler, RECOVERY, 2 if scaler.startswith("redis") else 1)
    publisher = Publisher(url(servers[-1]), "feed:live")  # on another worker than the subscriber's
    client, channel, log, recoveries = recovering_subscriber(url(servers[0]), "feed:live",
                                                             publisher.pid if fault == "sigkill" else None)
    publisher.start()
    try:
        wait_until(lambda: log.received >= 200, 5, message="live messages")
        if scaler.startswith("redis"):  # it reconnects to the other server
            client.on("close", lambda *_: setattr(client, "url", url(servers[1])))
        pid = pid_of(client)
        if fault == "sigkill":
            os.kill(pid, signal.SIGKILL)
        else:
            reset(client)
        wait_until(lambda: recoveries, 15, message="a recovery")
        before = log.received
        wait_until(lambda: log.received >= before + 200, 5, message="live messages after the recovery")
        published = finish(publisher, log)
    finally:
        client.close()
        publisher.stop()
    assert recoveries == [True]
    assert channel.recovered is True
    assert (log.gaps, log.duplicates, log.reorders) == (0, 0, 0), log.examples
    assert log.received == published


def can_destroy_sockets() -> bool:
    """Whether ``ss -K`` can reset this machine's TCP connections (root, INET_DIAG_DESTROY)."""
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client, listener.accept()[0]:
        kill_connections(client.getsockname()[1], listener.getsockname()[1])
        client.settimeout(2)
        try:
            return client.recv(1) == b""
        except OSError:
            return True


def kill_connections(local_port: int, remote_port: int) -> None:
    subprocess.run(["ss", "-K", "src", f"127.0.0.1:{local_port}", "dst", f"127.0.0.1:{remote_port}"],
                   capture_output=True, timeout=10, check=False)


def local_ports_of(pid: int, remote_port: int) -> List[int]:
    """The local ports of ``pid``'s TCP connections to 127.0.0.1:``remote_port`` (/proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if inode in inodes and int(remote.split(":")[1], 16) == remote_port:
                ports.append(int(local.split(":")[1], 16))
    return ports


def broker_pids(server) -> List[int]:
    return [int(pid) for pid in re.findall(r">>> Broker[^\n]*PID: (\d+)", server.log())]


def test_a_gap_between_the_broker_and_the_worker_is_seen_and_recovered(serve_cluster):
    """The subscriber's worker loses its link to the broker (reset, from outside) while a
    publisher on the other worker goes on: what the broker sent meanwhile never reaches the
    worker; the offsets show the gap; it is counted, and the subscriber recovers it."""
    if not can_destroy_sockets():
        pytest.skip("ss -K cannot reset connections here (needs root and INET_DIAG_DESTROY)")
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", "--channel-options", RECOVERY, brokers=1)
    publisher = Publisher(url(server), "feed:gap")
    client, channel, log, recoveries = recovering_subscriber(url(server), "feed:gap", publisher.pid)
    publisher.start()
    try:
        wait_until(lambda: log.received >= 100, 5, message="live messages")
        links = local_ports_of(pid_of(client), server.broker_ports[0])
        assert links, "the worker's link to the broker"
        for port in links:
            kill_connections(port, server.broker_ports[0])
        wait_until(lambda: recoveries, 10, message="the gap recovered")
        published = finish(publisher, log)
    finally:
        client.close()
        publisher.stop()
    assert recoveries == [True]
    assert (log.gaps, log.duplicates, log.reorders) == (0, 0, 0), log.examples
    assert log.received == published
    assert "never came from its owner" in server.log()


@pytest.mark.parametrize("scaler", ["single", "scale"])
def test_recovery_is_refused_when_the_history_no_longer_reaches_back(start, scaler):
    options = json.dumps({"namespaces": {"feed": {"history_size": 10, "history_ttl": 60}}})
    (server,) = start(scaler, options)
    with Client(url(server)) as publisher:
        client, channel, log, recoveries = recovering_subscriber(url(server), "feed:short")
        try:
            for i in range(3):
                publisher.send("publish", {"channel": "feed:short", "data": {"p": 0, "i": i}})
            wait_until(lambda: log.received == 3, 5, message="3 messages")
            offset = channel.offset
            closed = []
            client.on("close", lambda *_: closed.append(1))
            client.auto_reconnect = False
            reset(client)
            wait_until(lambda: closed, 5, message="the cut")
            for i in range(3, 30):  # 27 more: the history (10) no longer reaches offset 4
                publisher.send("publish", {"channel": "feed:short", "data": {"p": 0, "i": i}})
            wait_until(lambda: (lambda h: h["offset"] == 30)(_history(publisher, "feed:short")), 5,
                       message="30 published")
            client.connect()
            wait_until(lambda: recoveries, 5, message="the answer")
            assert recoveries == [False] and channel.recovered is False
            assert channel.offset == 30 and offset == 3
            publisher.send("publish", {"channel": "feed:short", "data": {"p": 0, "i": 30}})
            wait_until(lambda: log.received == 4, 5, message="live messages flow")
            assert log.next[(0, "feed:short")] == 31  # 30 came after 2: a gap the app was told of
        finally:
            client.close()


def _history(client: Client, channel: str) -> Dict[str, Any]:
    got: List[Any] = []
    client.on("history", got.append)
    client.send("history", {"channel": channel})
    return wait_until(lambda: got and got[-1], 5, message="history")


def test_a_restarted_broker_means_a_new_epoch_and_recovered_false(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", "--channel-options", RECOVERY,
                           "--restart-on-fail", brokers=1)
    with Client(url(server)) as publisher:
        client, channel, log, recoveries = recovering_subscriber(url(server), "feed:epoch")
        try:
            publisher.send("publish", {"channel": "feed:epoch", "data": {"p": 0, "i": 0}})
            wait_until(lambda: log.received == 1, 5, message="a message")
            epoch = channel.epoch
            os.kill(broker_pids(server)[0], signal.SIGKILL)
            server.wait_for_log("(restarted)", timeout=15)  # the master starts it again

            def publish_until_told() -> bool:  # the next message shows the new epoch
                publisher.send("publish", {"channel": "feed:epoch", "data": {"p": 1, "i": 0}})
                return bool(recoveries)

            wait_until(publish_until_told, 20, interval=0.05, message="the subscriber told")
            assert recoveries == [False] and channel.recovered is False and channel.epoch != epoch
            publisher.send("publish", {"channel": "feed:epoch", "data": {"p": 2, "i": 0}})
            wait_until(lambda: log.next.get((2, "feed:epoch")) == 1, 5, message="live messages flow again")
        finally:
            client.close()


# -- presence -----------------------------------------------------------------------------------


PRESENCE = json.dumps({"presence": True, "join_leave": True, "presence_ttl": 3})


def test_presence_across_two_workers_with_join_and_leave_events(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", "--channel-options", PRESENCE)
    (pid_a, a), (pid_b, b) = on_each_worker(server).items()
    with a, b:
        watcher = Client(url(server, "?user=watcher"))
        events: List[Tuple[str, str, Any]] = []
        room = watcher.subscribe("room", recover=True)
        room.on("join", lambda sid, info: events.append(("join", sid, info)))
        room.on("leave", lambda sid, info: events.append(("leave", sid, info)))
        assert room.wait_subscribed(5)
        members = [Client(url(server, f"?user=u{i}")) for i in range(4)]
        try:
            for member in members:
                assert member.subscribe("room").wait_subscribed(5)
            present = wait_until(lambda: (lambda p: p if len(p) == 5 else None)(ask(a, "presence", channel="room")),
                                 1, message="presence within 1 s")
            assert sorted(info["user"] for info in present.values()) == ["u0", "u1", "u2", "u3", "watcher"]
            assert ask(b, "presence", channel="room") == present
            assert ask(b, "presence-stats", channel="room") == {"clients": 5, "users": 5}
            wait_until(lambda: len([e for e in events if e[0] == "join"]) == 4, 2, message="4 join events")
            members[0].close()
            members[1].get_channel_by_name("room").unsubscribe()
            wait_until(lambda: len(ask(a, "presence", channel="room")) == 3, 1, message="leaves within 1 s")
            wait_until(lambda: len([e for e in events if e[0] == "leave"]) == 2, 2, message="2 leave events")
            assert {e[2]["user"] for e in events if e[0] == "leave"} == {"u0", "u1"}
        finally:
            for member in members:
                member.close()
            watcher.close()


@needs_redis
@pytest.mark.parametrize("scaler", ["redis", "redis-cluster"])
def test_presence_across_two_servers_on_redis_and_a_crashed_server_leaves_within_the_ttl(start, scaler):
    a_server, b_server = start(scaler, PRESENCE, 2)
    clients = [Client(url(server, f"?user={name}")) for server, name in
               ((a_server, "ann"), (a_server, "ann"), (b_server, "bob"))]
    try:
        for client in clients:
            assert client.subscribe("room").wait_subscribed(5)
        with connect(a_server) as a, connect(b_server) as b:
            present = wait_until(lambda: (lambda p: p if len(p) == 3 else None)(ask(b, "presence", channel="room")),
                                 1, message="presence across servers within 1 s")
            assert sorted(info["user"] for info in present.values()) == ["ann", "ann", "bob"]
            assert ask(a, "presence-stats", channel="room") == {"clients": 3, "users": 2}
            clients[2].close()
            wait_until(lambda: len(ask(a, "presence", channel="room")) == 2, 1, message="a leave within 1 s")
        # a server that dies without a word: its sockets leave presence within presence_ttl (3 s)
        pids = worker_pids(a_server)
        a_server.process.send_signal(signal.SIGKILL)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with connect(b_server) as b:
            wait_until(lambda: ask(b, "presence", channel="room") == {}, 6, interval=0.2,
                       message="the crashed server's sockets gone within the ttl")
    finally:
        for client in clients:
            client.close()


# -- a Redis Cluster slot migrated with its keys -------------------------------------------------


@needs_redis
def test_a_slot_migrated_with_its_history_loses_nothing_for_a_recovering_subscriber(start):
    """``MIGRATE`` of a history channel's keys, one at a time, while 500 messages/s flow from
    one server to the other (and an Emitter publishes, once the keys moved): publishes go on through TRYAGAIN
    (keys split between the two nodes) and ASK (keys moved, slot not yet), then through the
    new owner; the recovering subscriber ends with every message once and in order, and no
    publish is dropped."""
    from clusterws_gevent import Emitter
    from clusterws_gevent.protocol.redis_envelope import history_keys, presence_keys

    servers = start("redis-cluster", RECOVERY, 2, "--metrics")
    cluster = servers[0].redis
    emitter = Emitter(servers[0].redis_url, channel_options=json.loads(RECOVERY))
    emitted: List[int] = []
    stream, meta = history_keys("cws", "feed:live")
    publisher = Publisher(url(servers[1]), "feed:live")
    client, channel, log, recoveries = recovering_subscriber(url(servers[0]), "feed:live")
    publisher.start()
    try:
        wait_until(lambda: log.received >= 200, 5, message="live messages")
        source = cluster.node_of(stream.decode())
        target = next(node for node in cluster.running() if node is not source
                      and node.client().execute_command("ROLE")[0] == b"master")
        slot = int(source.client().execute_command("CLUSTER", "KEYSLOT", stream))
        ids = {node.port: node.client().execute_command("CLUSTER", "MYID").decode() for node in (source, target)}
        target.client().execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", ids[source.port])
        source.client().execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", ids[target.port])

        def publishes_go_on() -> None:
            mark = publisher.count
            wait_until(lambda: publisher.count >= mark + 100, 5, message="publishing")

        def top_on_target() -> int:  # the channel's top offset, read on the node importing its slot
            pipe = target.client().pipeline(transaction=False)
            pipe.execute_command("ASKING")
            pipe.hget(meta, "s")
            return int(pipe.execute()[1] or 0)

        for key in (stream, meta, *presence_keys("cws", "feed:live")):  # the script's two keys split: TRYAGAIN
            source.client().execute_command("MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
            publishes_go_on()
        assert int(source.client().execute_command("CLUSTER", "COUNTKEYSINSLOT", slot)) == 0
        top = top_on_target()
        wait_until(lambda: top_on_target() >= top + 100, 5, message="publishes numbered on the importing node (ASK)")
        for _ in range(20):  # an Emitter's too (publisher 1; not while the keys are split: this test holds them so)
            emitted.append(emitter.publish("feed:live", {"p": 1, "i": len(emitted)}))
        for node in [target, *(n for n in cluster.running() if n is not target)]:
            if node.client().execute_command("ROLE")[0] == b"master":
                node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", ids[target.port])
        wait_until(lambda: cluster.node_of(stream.decode()) is target, 10, message="the slot moved")
        before = log.received
        wait_until(lambda: log.received >= before + 500, 10, message="live messages from the slot's new owner")
        published = finish(publisher, log) + len(emitted)
        wait_until(lambda: log.received >= published, 10, message=f"{published} messages ({log.received})")
    finally:
        client.close()
        publisher.stop()
        emitter.close()
    assert (log.gaps, log.duplicates, log.reorders) == (0, 0, 0), log.examples
    assert log.received == published
    assert recoveries and False not in recoveries  # what the new owner published unheard came back
    for server in servers:
        assert metric(server, 'clusterws_dropped_messages_total{reason="redis_down"}') == 0, server.log()[-3000:]


# -- zero-loss deploys --------------------------------------------------------------------------


@needs_redis
@pytest.mark.slow
def test_a_rolling_reload_loses_nothing_for_200_recovering_subscribers(start):
    """SIGHUP: both workers replaced one by one (their sockets closed with 1001) while an
    Emitter publishes 500 messages/s for 20 s: every subscriber ends with every message once."""
    from clusterws_gevent import Emitter

    (server,) = start("redis", RECOVERY, 1, "--graceful-timeout", "5")
    redis_url = server.redis_url
    runners = [subprocess.Popen([sys.executable, str(TESTS_DIR / "recovering_subscribers.py"), url(server),
                                 "feed:deploy", "100"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                cwd=TESTS_DIR) for _ in range(2)]
    try:
        for runner in runners:
            assert runner.stdout.readline().strip() == "ready"
        sent = 0
        with Emitter(redis_url, channel_options=json.loads(RECOVERY)) as emitter:
            started = time.monotonic()
            reloaded = False
            while time.monotonic() - started < 20:
                emitter.publish("feed:deploy", {"p": 0, "i": sent})
                sent += 1
                if not reloaded and time.monotonic() - started > 5:
                    server.signal(signal.SIGHUP)
                    reloaded = True
                time.sleep(max(0.0, started + sent / 500 - time.monotonic()))  # pacing: 500 a second
        server.wait_for_log("(replaced PID", count=2, timeout=30)  # both workers replaced
        reports = []
        for runner in runners:
            runner.stdin.write(f"report {sent}\n")
            runner.stdin.flush()
        for runner in runners:
            reports += [json.loads(line) for line in runner.stdout]
            assert runner.wait(30) == 0
    finally:
        for runner in runners:
            if runner.poll() is None:
                runner.kill()
                runner.wait()
            runner.stdin.close()
            runner.stdout.close()
    assert len(reports) == 200
    reconnected = [r for r in reports if r["reconnections"]]
    assert len(reconnected) == 200, "every socket was closed by the reload"
    bad = [r for r in reports if (r["received"], r["gaps"], r["duplicates"], r["reorders"], r["next"]) != (
        sent, 0, 0, 0, sent) or False in r["recovered"]]
    assert not bad, f"{len(bad)} of 200: {bad[:3]}"
