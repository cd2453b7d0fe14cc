"""Operations (issue 10): /healthz, Prometheus /metrics aggregated over the workers, the access log."""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
from typing import Dict

import pytest
from helpers import on_each_worker, subscribe

from clusterws_gevent.testing import wait_until
from wsclient import WSClient

pytest.importorskip("prometheus_client")


def get(port: int, path: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type"), response.read().decode()
    finally:
        connection.close()


def scrape(port: int) -> Dict[str, float]:
    status, content_type, body = get(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[re.sub(r',?pid="\d+"', "", name).replace("{}", "")] = samples.get(name, 0.0) + float(value)
    return samples


def test_metrics_are_the_sum_over_every_worker_whichever_answers(serve):
    server = serve("apps.pubsub:worker", "--workers", "2", "--metrics", "--no-auto-ping", mode="scale",
                   ready_count=2)
    clients = list(on_each_worker(server).values())
    try:
        for client in clients:
            assert subscribe(client, "news") == ["s", "s", {"news": True}]
        clients[0].emit("publish", {"channel": "news", "data": 1})
        for client in clients:
            client.recv_json()

        def counted():
            samples = scrape(server.port)
            return (samples.get("clusterws_connections") == 2 and samples.get("clusterws_deliveries_total", 0) >= 2
                    and samples.get("clusterws_messages_received_total", 0) >= 3
                    and samples.get('clusterws_pubsub_links_up{worker="1"}') == 1) and samples

        samples = wait_until(counted, 5, interval=0.2, message="metrics of both workers")
        assert samples["clusterws_subscriptions"] == 2 and samples["clusterws_channels"] == 2
        assert "clusterws_event_loop_lag_seconds" in samples
    finally:
        for client in clients:
            client.close()
    with pytest.raises(ConnectionError, match="403"):
        WSClient(server.port, "/", headers={"Origin": "http://evil.example"})
    wait_until(lambda: scrape(server.port).get('clusterws_refused_total{reason="origin"}') == 1, 5, interval=0.2)


def test_healthz_says_whether_the_worker_and_its_links_are_up(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", workers=1, brokers=1)
    status, content_type, body = get(server.port, "/healthz")
    assert status == 200 and content_type == "application/json"
    assert json.loads(body)["status"] == "ok" and json.loads(body)["links_up"] == 1
    broker = int(re.search(r">>> Broker on: \d+, PID: (\d+)", server.log()).group(1))
    os.kill(broker, signal.SIGKILL)  # restart_on_fail is off: the link stays down
    wait_until(lambda: get(server.port, "/healthz")[0] == 503, 5, message="unhealthy without its broker")
    assert json.loads(get(server.port, "/healthz")[2])["links_up"] == 0


def test_metrics_are_off_by_default_and_health_is_on(serve):
    server = serve("apps.basic:worker", "--app", "apps.flask_site:app")
    assert get(server.port, "/metrics")[0] == 404  # Flask's answer: not ours
    assert get(server.port, "/healthz")[0] == 200


def test_the_access_log_is_off_by_default_and_in_common_log_format_when_on(serve):
    quiet = serve("apps.basic:worker", "--app", "apps.flask_site:app")
    assert get(quiet.port, "/info")[0] == 200
    logged = serve("apps.basic:worker", "--app", "apps.flask_site:app", "--access-log")
    assert get(logged.port, "/info")[0] == 200
    line = logged.wait_for_log('"GET /info HTTP/1.1" 200')
    assert re.search(r'127\.0\.0\.1 - - \[[^\]]+\] "GET /info HTTP/1.1" 200 \d+', line)
    assert '"GET /info' not in quiet.log()


def test_every_dropped_message_is_counted_by_reason_in_one_family(serve_cluster):
    server = serve_cluster("apps.pubsub:worker", "--no-auto-ping", "--metrics", "--max-outbox-size", "262144",
                           "--outbox-overflow", "drop", workers=1, brokers=1)
    with WSClient(server.port, rcvbuf=4096) as stalled:  # a client that does not read
        stalled.recv_json()
        stalled.emit("flood", {"size": 65536, "count": 200})
        server.wait_event("flood-done")
    broker = int(re.search(r">>> Broker on: \d+, PID: (\d+)", server.log()).group(1))
    os.kill(broker, signal.SIGKILL)  # restart_on_fail is off: the worker's link stays down
    wait_until(lambda: get(server.port, "/healthz")[0] == 503, 5, message="the link down")
    with WSClient(server.port, "/") as client:
        client.recv_json()
        client.emit("publish", {"channel": "news", "data": "into the void"})
        client.emit("echo", "handled")
        assert client.recv_event("echo") == "handled"

    def dropped():
        samples = scrape(server.port)
        return {key: value for key, value in samples.items() if key.startswith("clusterws_dropped_messages_total")}

    counts = wait_until(lambda: (lambda found: found if len(found) == 2 else None)(dropped()), 5, interval=0.2,
                        message="both reasons exported")
    assert counts['clusterws_dropped_messages_total{reason="slow_consumer"}'] >= 1
    assert counts['clusterws_dropped_messages_total{reason="broker_link_down"}'] == 1
