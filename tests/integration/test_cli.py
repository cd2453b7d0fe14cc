"""The command line as gunicorn users expect it (issue 10)."""
from __future__ import annotations

import http.client
import subprocess
import sys

from clusterws_gevent import __version__
from clusterws_gevent.testing import free_port
from conftest import TESTS_DIR
from wsclient import WSClient


def run_cli(*args: str, env=None):
    return subprocess.run([sys.executable, "-m", "clusterws_gevent", *args], cwd=TESTS_DIR, capture_output=True,
                          text=True, timeout=30, env=env)


def get(port: int, path: str):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def test_version_and_a_help_with_clean_metavars_and_defaults():
    assert run_cli("--version").stdout.strip() == f"clusterws-gevent {__version__}"
    help_text = " ".join(run_cli("--help").stdout.split())  # argparse wraps lines
    assert "SCALE_OPTIONS" not in help_text and "WEBSOCKET_OPTIONS" not in help_text
    assert "--mode single|scale" in help_text and "-w N, --workers N" in help_text
    assert "-b HOST:PORT, --bind HOST:PORT" in help_text and "-c FILE, --config FILE" in help_text
    assert "(default: 20000)" in help_text and "(default: scale)" in help_text


def test_mode_is_case_insensitive_and_takes_the_python_spelling(serve):
    for spelling in ("SINGLE", "Mode.Single"):
        server = serve("apps.basic:worker", command=None, mode=spelling)
        with WSClient(server.port, "/") as client:
            client.recv_json()


def test_bind_and_workers_flags(serve):
    port = free_port()
    server = serve(port=port, ready_count=2, command=[sys.executable, "-m", "clusterws_gevent", "apps.basic:worker",
                                                      "-b", f"127.0.0.1:{port}", "-w", "2"])
    assert f">>> Master on: {port}" in server.log() and "2 worker(s)" in server.log()


def test_a_config_file_and_the_environment_give_options_that_flags_override(serve, tmp_path):
    port = free_port()
    config = tmp_path / "cws.conf.py"
    config.write_text(f"port = {free_port()}\nhost = '127.0.0.1'\nscale_options = {{'workers': 2}}\n"
                      "websocket_options = {'ping_interval': 1234}\n")
    server = serve("apps.basic:worker", "-c", str(config), "--port", str(port), mode="scale", ready_count=2,
                   port=port, env={"CLUSTERWS_CMD_ARGS": "--no-auto-ping"})
    with WSClient(port, "/") as client:
        assert client.recv_json() == ["s", "c", {"autoPing": False, "pingInterval": 1234}]
    assert "2 worker(s)" in server.log()
    bad = tmp_path / "bad.py"
    bad.write_text("prot = 8000\n")
    result = run_cli("apps.basic:worker", "-c", str(bad))
    assert result.returncode != 0 and "unknown option(s) prot" in result.stderr


def test_an_app_factory_given_positionally_brings_its_registered_worker(serve):
    for mode, count in (("single", 1), ("scale", 2)):
        server = serve("apps.factory:create_app()", "--workers", str(count), mode=mode, ready_count=count)
        assert get(server.port, "/") == (200, "made by the factory")
        server.wait_event("worker", from_factory=True)
        with WSClient(server.port, "/") as client:
            client.recv_json()
            client.emit("echo", "factory")
            assert client.recv_event("echo") == "factory"


def test_a_failed_bind_says_which_flag_to_change():
    taken = free_port()
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", taken))
        holder.listen(1)
        for mode in ("single", "scale"):
            result = run_cli("apps.basic:worker", "--mode", mode, "--host", "127.0.0.1", "--port", str(taken))
            assert result.returncode != 0
            assert "choose another with --port, -b HOST:PORT" in result.stdout + result.stderr
