"""The dashboard's aggregation and its HTTP side, exactly: reports in a directory, requests as environs."""
from __future__ import annotations

import io
import json
import os
import time
from typing import Any, Dict

import pytest

from clusterws_gevent.exceptions import OptionError
from clusterws_gevent.log import make_log
from clusterws_gevent.options import AdminOptions, Options
from clusterws_gevent.process.admin import COOKIE, AdminEndpoint
from clusterws_gevent.process.dashboard import CLUSTER_FILE, HISTORY_POINTS, Aggregator, child_row, short_name

TOKEN = "0123456789abcdef-token"


def worker_report(pid: int, worker_id: int, at: float, **numbers: Any) -> Dict[str, Any]:
    body = {"kind": "worker", "id": str(worker_id), "pid": pid, "started": at - 60, "rss": 30 << 20, "time": at,
            "messages_in": 0, "messages_out": 0, "deliveries": 0, "batches": 0, "slow_consumer_closes": 0,
            "refused": {}, "drops": {}, "connections": 0, "channels": 0, "subscriptions": 0, "outbox_bytes": 0,
            "links_up": 1, "links": 1, "link_list": [], "top_subscribers": [], "top_messages": []}
    body.update(numbers)
    return body


def put(directory, body: Dict[str, Any]) -> None:
    (directory / f"{body['kind']}-{body['pid']}.json").write_text(json.dumps(body))


def test_rates_totals_channels_links_and_history_over_two_workers(tmp_path):
    table = [child_row("master", "", 1, 0.0, 0, "serving"), child_row("worker", 1, 11, 0.0, 2, "ready"),
             child_row("worker", 2, 12, 0.0, 0, "ready")]
    aggregator = Aggregator(str(tmp_path), lambda: table, {"mode": "Scale", "scaler": "Default"})
    now = time.time()
    put(tmp_path, worker_report(11, 1, now - 2, messages_in=100, deliveries=1000, connections=3))
    put(tmp_path, worker_report(12, 2, now - 2, messages_in=0, connections=4))
    aggregator.tick(now - 1.5)
    put(tmp_path, worker_report(11, 1, now - 1, messages_in=150, deliveries=1500, connections=5, subscriptions=5,
                                drops={"slow_consumer": 4}, top_subscribers=[["room", 5], ["a", 1]],
                                top_messages=[["room", 40.0]],
                                link_list=[{"name": "broker b-1.sock", "up": True, "error": ""}]))
    put(tmp_path, worker_report(12, 2, now - 1, messages_in=10, connections=4, subscriptions=2,
                                top_subscribers=[["room", 2]], top_messages=[["room", 38.0], ["b", 1.0]],
                                link_list=[{"name": "broker b-1.sock", "up": False,
                                            "error": "ConnectionRefusedError"}]))
    (tmp_path / "broker-13.json").write_text(json.dumps({"kind": "broker", "id": "b-1.sock", "pid": 13, "started": 0,
                                                         "rss": 1, "time": now, "drops": {"gap": 1}}))
    (tmp_path / "worker-99.json").write_text(json.dumps(worker_report(99, 3, now - 60, connections=1000)))  # stale
    view = aggregator.tick(now)

    workers = {row["id"]: row for row in view["workers"]}
    assert set(workers) == {"1", "2"}  # the stale report of a dead worker does not count
    assert workers["1"]["messages_in_rate"] == 50.0 and workers["1"]["deliveries_rate"] == 500.0
    assert workers["1"]["drops_rate"] == 4.0 and workers["2"]["messages_in_rate"] == 10.0
    totals = view["totals"]
    assert totals["connections"] == 9 and totals["subscriptions"] == 7 and totals["messages_in_rate"] == 60.0
    assert totals["drops"] == {"slow_consumer": 4, "gap": 1}  # the broker's drops count too
    assert view["channels"]["by_subscribers"][0] == ["room", 7]
    assert view["channels"]["by_messages"][0] == ["room", 40.0]  # each worker saw each message: the busiest's rate
    assert [link["up"] for link in view["links"]] == [True, False]
    assert view["links"][1] == {"process": "worker 2", "name": "broker b-1.sock", "up": False,
                                "error": "ConnectionRefusedError"}
    rows = {row["pid"]: row for row in view["processes"]}
    assert rows[11]["restarts"] == 2 and rows[11]["rss"] == 30 << 20 and rows[1]["kind"] == "master"
    assert view["history"]["columns"][1] == "connections"
    assert [point[1] for point in view["history"]["points"]] == [7, 9]
    aggregator.write(view)
    assert json.loads((tmp_path / CLUSTER_FILE).read_text())["totals"]["connections"] == 9


def test_history_keeps_fifteen_minutes(tmp_path):
    aggregator = Aggregator(str(tmp_path), None, {})
    for second in range(HISTORY_POINTS + 10):
        aggregator.tick(float(second))
    assert len(aggregator.history) == HISTORY_POINTS == 900
    assert aggregator.history[0][0] == 10.0


def test_without_a_master_the_table_is_made_of_the_reports(tmp_path):
    now = time.time()
    put(tmp_path, worker_report(21, 1, now, connections=2))
    view = Aggregator(str(tmp_path), None, {}).tick(now)
    assert [(row["kind"], row["id"], row["pid"]) for row in view["processes"]] == [("worker", "1", 21)]


def test_a_broker_path_is_named_by_its_end():
    assert short_name("/tmp/clusterws-x/broker-1.sock") == "broker-1.sock" and short_name(9400) == "9400"


# -- the HTTP side --------------------------------------------------------------------------------


def endpoint(tmp_path, token=TOKEN, secure=False) -> AdminEndpoint:
    (tmp_path / CLUSTER_FILE).write_text('{"totals": {"connections": 3}}')
    return AdminEndpoint(AdminOptions(enabled=True, token=token), str(tmp_path), make_log(), secure)


def request(path: str, method: str = "GET", body: bytes = b"", **headers: str) -> Dict[str, Any]:
    environ = {"PATH_INFO": path, "REQUEST_METHOD": method, "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1"}
    environ.update({"HTTP_" + name.upper(): value for name, value in headers.items()})
    return environ


def test_the_token_as_a_bearer_or_through_the_login_form_cookie(tmp_path):
    admin = endpoint(tmp_path)
    status, headers, body = admin.respond(request("/clusterws/admin/data"))
    assert status == 401 and body == b'{"error":"unauthorized"}'
    status, _, body = admin.respond(request("/clusterws/admin"))
    assert status == 401 and b'name="token"' in body  # the login form
    assert admin.respond(request("/clusterws/admin/data", authorization="Bearer nope"))[0] == 401
    status, _, body = admin.respond(request("/clusterws/admin/data", authorization=f"Bearer {TOKEN}"))
    assert status == 200 and json.loads(body)["totals"]["connections"] == 3

    status, _, body = admin.respond(request("/clusterws/admin/login", "POST", b"token=wrong"))
    assert status == 401 and b"not the token" in body
    status, headers, _ = admin.respond(request("/clusterws/admin/login", "POST", f"token={TOKEN}".encode()))
    assert status == 303 and dict(headers)["Location"] == "/clusterws/admin"
    cookie = dict(headers)["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/clusterws/admin" in cookie
    assert TOKEN not in cookie  # an HMAC of it, not the token
    value = cookie.split(";")[0]
    assert admin.respond(request("/clusterws/admin/data", cookie=f"other=1; {value}"))[0] == 200
    assert admin.respond(request("/clusterws/admin/data", cookie=f"{COOKIE}=forged"))[0] == 401
    status, headers, _ = admin.respond(request("/clusterws/admin/logout"))
    assert status == 303 and "Max-Age=0" in dict(headers)["Set-Cookie"]


def test_the_page_its_code_and_its_headers(tmp_path):
    admin = endpoint(tmp_path, secure=True)
    status, headers, body = admin.respond(request("/clusterws/admin", authorization=f"Bearer {TOKEN}"))
    assert status == 200 and b'data-base="/clusterws/admin"' in body and b"<script>" not in body
    csp = dict(headers)["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    status, headers, body = admin.respond(request("/clusterws/admin/admin.js"))  # public: no secret in it
    assert status == 200 and dict(headers)["Content-Type"].startswith("text/javascript") and b"textContent" in body
    assert b"innerHTML" not in body  # channel names come from clients: written as text only
    assert admin.respond(request("/clusterws/admin/login", "POST", b"x" * 5000))[0] == 413
    login = admin.respond(request("/clusterws/admin/login", "POST", f"token={TOKEN}".encode()))
    assert "Secure" in dict(login[1])["Set-Cookie"]
    assert admin.respond(request("/clusterws/admin/nothing", authorization=f"Bearer {TOKEN}"))[0] == 404
    assert admin.handles("/clusterws/admin") and admin.handles("/clusterws/admin/data")
    assert not admin.handles("/clusterws/administrator")


def test_without_a_token_the_app_hooks_decide(tmp_path):
    admin = endpoint(tmp_path, token=None)
    assert admin.respond(request("/clusterws/admin/data"))[0] == 200


def test_options_need_a_token_or_an_app():
    with pytest.raises(OptionError, match="admin_options.token"):
        Options(worker=lambda w: None, admin_options={"enabled": True})
    with pytest.raises(OptionError, match="at least 16"):
        Options(worker=lambda w: None, admin_options={"enabled": True, "token": "short"})
    Options(worker=lambda w: None, app=lambda environ, start: [], admin_options={"enabled": True})
    assert Options(worker=lambda w: None).admin_options.enabled is False


def _worker(**options: Any):
    from clusterws_gevent.process.worker import Worker

    return Worker(Options(worker=lambda w: None, host="127.0.0.1", port=0, **options), make_log())


def test_off_it_costs_nothing_on_it_serves_and_reports():
    off = _worker()
    assert off.server.admin is None and off.wss.hub.channel_messages is None and not off.on_stop
    off.server.close()
    on = _worker(admin_options={"enabled": True, "token": TOKEN})
    try:
        assert on.server.admin is not None and on.wss.hub.channel_messages == {}
        assert len(on.on_stop) == 3  # its own directory, its aggregator, its report
    finally:
        on.start()
        on.stop(1.0)
    assert not os.path.exists(on.server.admin.directory)
