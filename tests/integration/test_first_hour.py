"""A Flask developer's first hour (issue 22): the README's quick start as it is written, the
command line's defaults and errors, an app without a worker, --reload in one process, views
that publish with no worker, config files, and the documented nginx settings."""
from __future__ import annotations

import http.client
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import List

import pytest
from helpers import RedisServer

from clusterws_gevent.cli import DEFAULT_HOST, DEFAULT_PORT, build_parser, options_from_args, parse_bind
from clusterws_gevent.exceptions import HandshakeError
from clusterws_gevent.protocol.handshake import check_origin
from clusterws_gevent.testing import free_port, wait_until
from wsclient import WSClient

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def cli(*args: str) -> List[str]:
    return [sys.executable, "-m", "clusterws_gevent", *args]


def request(port: int, method: str, path: str, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        headers = {"Content-Type": "application/x-www-form-urlencoded"} if body is not None else {}
        connection.request(method, path, body=urllib.parse.urlencode(body) if body is not None else None,
                           headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.fixture
def quick_start(tmp_path):
    """The README's quick-start files, written as a user copies them: myapp.py and test_myapp.py."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    (tmp_path / "myapp.py").write_text(blocks[0])
    assert blocks[1].startswith("# test_myapp.py")
    (tmp_path / "test_myapp.py").write_text(blocks[1])
    return tmp_path


def in_directory(path: Path) -> dict:
    return {"PYTHONPATH": str(path)}


# -- the quick start -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["scale", "single"])
def test_the_readme_quick_start_runs_as_written(serve, quick_start, mode):
    commands = re.findall(r"^\.venv/bin/python -m clusterws_gevent (myapp:app.*?)\s+#", README, re.M)
    assert commands == ["myapp:app -w 2"]
    port = free_port()
    flags = commands[0].split()[1:] + (["--mode", "single"] if mode == "single" else [])
    server = serve(port=port, ready_count=1 if mode == "single" else 2, env=in_directory(quick_start),
                   command=cli("myapp:app", *flags, "-b", f"127.0.0.1:{port}"))
    status, page = request(port, "GET", "/")
    assert status == 200 and "/clusterws.js" in page
    with WSClient(port, "/") as page_socket:
        page_socket.recv_json()
        page_socket.send_text('["s","r",{"notifications":null}]')  # what the page's subscribe({recover}) sends
        assert page_socket.recv_json()[:2] == ["s", "r"]
        assert request(port, "POST", "/notify", {"text": "hello"})[0] == 204
        message = page_socket.recv_json()
        assert message[:2] == ["p", "o"] and message[2]["notifications"][2] == [{"text": "hello"}]
    assert "Traceback" not in server.log()


def test_the_readme_quick_start_test_passes(quick_start):
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_myapp.py"],
                            cwd=quick_start, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_a_module_that_runs_itself_at_import_is_served_by_the_command_line(serve, tmp_path):
    (tmp_path / "selfrun.py").write_text(
        "from flask import Flask\nfrom clusterws_gevent import ClusterWS, Mode\napp = Flask(__name__)\n"
        "@app.route('/')\ndef index():\n    return 'self-run'\n"
        "def worker(w):\n    w.wss.on('connection', lambda socket, environ: socket.send('hello', 1))\n"
        "ClusterWS(worker=worker, app=app, host='127.0.0.1', port=1, mode=Mode.Single).run()\n")
    port = free_port()
    server = serve(port=port, ready_count=2, env=in_directory(tmp_path),
                   command=cli("selfrun:app", "-w", "2", "-b", f"127.0.0.1:{port}"))
    assert request(port, "GET", "/") == (200, "self-run")
    with WSClient(port, "/") as client:
        client.recv_json()
        assert client.recv_event("hello") == 1
    log = server.log()
    assert "ClusterWS.run() ignored" in log and "Address already in use" not in log


# -- defaults and errors of the command line ----------------------------------------------------


def test_without_an_address_it_listens_on_this_machine_only_and_says_so(serve):
    args = build_parser().parse_args(["apps.basic:worker"])
    kwargs = options_from_args(args)
    assert (kwargs["host"], kwargs["port"]) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8000)
    port = free_port()
    server = serve(port=port, command=cli("apps.basic:worker", "--mode", "single", "--port", str(port)))
    assert f"listening on 127.0.0.1:{port}, this machine only" in server.log()
    listening = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    local = {fields[1] for fields in listening if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port}
    assert local == {f"0100007F:{port:04X}"}  # 127.0.0.1, not 0.0.0.0


def test_bind_is_read_as_gunicorn_reads_it():
    assert parse_bind("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_bind("[::1]:9000") == ("::1", 9000)
    assert parse_bind("localhost") == ("localhost", 8000)
    assert parse_bind("0.0.0.0:80") == ("0.0.0.0", 80)
    with pytest.raises(SystemExit, match=r"-b 127\.0\.0\.1:8002 \(this machine\) or -b 0\.0\.0\.0:8002"):
        parse_bind("8002")


def run_cli(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, **(env or {})), cwd=str(ROOT / "tests"))


def test_errors_are_short_and_say_where_they_come_from():
    result = run_cli("apps.basic:worker", "--no-such-flag")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 2, result.stderr
    assert "unrecognized arguments: --no-such-flag" in result.stderr
    result = run_cli("apps.basic:worker", env={"CLUSTERWS_CMD_ARGS": "--workerz 2"})
    assert "from $CLUSTERWS_CMD_ARGS: --workerz 2" in result.stderr and len(result.stderr.splitlines()) == 2
    result = run_cli("apps.basic:worker", "--mode", "singel")
    assert result.returncode != 0
    assert "must be single (Mode.Single) or scale (Mode.Scale), got 'singel'" in result.stderr


def test_a_config_file_takes_the_flags_names(serve, tmp_path):
    port = free_port()
    config = tmp_path / "cws.conf.py"
    config.write_text(f"bind = '127.0.0.1:{port}'\nworkers = 2\nauto_ping = False\nping_interval = 4321\n")
    server = serve(port=port, ready_count=2, command=cli("apps.basic:worker", "-c", str(config)))
    assert "2 worker(s)" in server.log()
    with WSClient(port, "/") as client:
        assert client.recv_json() == ["s", "c", {"autoPing": False, "pingInterval": 4321}]
    config.write_text("wrokers = 2\n")
    result = run_cli("apps.basic:worker", "-c", str(config))
    assert result.returncode != 0 and "unknown option(s) wrokers; valid: a flag's name" in result.stderr


# -- an app without a worker; --reload in one process ---------------------------------------------


@pytest.mark.parametrize("mode", ["single", "scale"])
def test_an_app_without_a_worker_is_served_with_a_warning(serve, tmp_path, mode):
    (tmp_path / "plain.py").write_text("from flask import Flask\napp = Flask(__name__)\n"
                                       "@app.route('/')\ndef index():\n    return 'plain'\n")
    port = free_port()
    server = serve(port=port, env=in_directory(tmp_path),
                   command=cli("plain:app", "--mode", mode, "-w", "1", "-b", f"127.0.0.1:{port}"))
    assert request(port, "GET", "/") == (200, "plain")
    log = server.log()
    assert "plain:app registered no ClusterWS worker: serving the app with no WebSocket listeners" in log
    assert "Traceback" not in log and "RecursionError" not in log


def test_reload_restarts_a_single_process_on_a_change(serve, tmp_path):
    source = tmp_path / "reloaded.py"
    source.write_text("from flask import Flask\napp = Flask(__name__)\nVERSION = 1\n"
                      "@app.route('/')\ndef index():\n    return f'v{VERSION}'\n")
    port = free_port()
    server = serve(port=port, env=in_directory(tmp_path),
                   command=cli("reloaded:app", "--mode", "single", "--reload", "-b", f"127.0.0.1:{port}"))
    assert request(port, "GET", "/") == (200, "v1")
    text = source.read_text().replace("VERSION = 1", "VERSION = 2")
    source.write_text(text)
    os.utime(source, (os.stat(source).st_atime, os.stat(source).st_mtime + 2))  # whatever the clock's resolution

    def serves_v2():
        try:
            return request(port, "GET", "/") == (200, "v2")
        except OSError:  # between the two processes
            return False

    wait_until(serves_v2, 15, interval=0.2, message="the new code served")
    assert "changed; restarting (the same command line)" in server.log()


# -- views that publish with no worker in the process -------------------------------------------


def test_a_view_that_publishes_works_in_the_apps_own_view_tests(quick_start):
    code = ("from myapp import app, cws\n"
            "assert app.test_client().post('/notify', data={'text': 'x'}).status_code == 204\n"
            "assert cws.dropped_publishes == 1\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=quick_start, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not any(os.access(os.path.join(p, "redis-server"), os.X_OK)
                            for p in os.environ.get("PATH", "").split(os.pathsep)),
                    reason="redis-server is not installed (.ci/run installs it)")
def test_with_redis_a_publish_from_a_process_without_a_worker_goes_through_redis(serve, tmp_path):
    redis = RedisServer(tmp_path).start()
    try:
        server = serve("apps.pubsub:worker", "--workers", "1", "--scaler", "redis", "--redis-url", redis.url,
                       "--no-auto-ping", mode="scale")
        with WSClient(server.port, "/") as subscriber:
            subscriber.recv_json()
            subscriber.send_text('["s","s",["news"]]')
            assert subscriber.recv_json() == ["s", "s", {"news": True}]
            code = ("from flask import Flask\nfrom clusterws_gevent import ClusterWS\n"
                    f"cws = ClusterWS(worker=lambda w: None, app=Flask('x'), scale_options={{'scaler': 'redis', "
                    f"'redis': {redis.url!r}}})\ncws.publish('news', {{'from': 'a view test'}})\n")
            result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            assert subscriber.recv_json() == ["p", None, {"news": [{"from": "a view test"}]}]
    finally:
        redis.kill()


# -- logging -----------------------------------------------------------------------------------


def test_flask_log_lines_keep_their_level_and_format(serve, tmp_path):
    (tmp_path / "logs.py").write_text(
        "from flask import Flask\napp = Flask(__name__)\n"
        "@app.route('/')\ndef index():\n    app.logger.warning('a warning from a view')\n    return 'logged'\n")
    port = free_port()
    server = serve(port=port, env=in_directory(tmp_path),
                   command=cli("logs:app", "--mode", "single", "-b", f"127.0.0.1:{port}"))
    assert request(port, "GET", "/") == (200, "logged")
    lines = [line for line in server.wait_for_log("a warning from a view").splitlines()
             if "a warning from a view" in line]
    assert len(lines) == 1 and "ERROR" not in lines[0] and "WARNING in logs: a warning from a view" in lines[0]


# -- the documented nginx settings ---------------------------------------------------------------


def test_the_nginx_example_passes_the_origin_rule_on_a_non_default_port():
    deployment = (ROOT / "docs" / "deployment.md").read_text()
    nginx = re.search(r"```nginx\n(.*?)```", deployment, re.S).group(1)
    assert re.search(r"map \$http_upgrade \$connection_upgrade", nginx)
    assert "proxy_set_header Connection $connection_upgrade;" in nginx
    assert "ssl_certificate " in nginx and "ssl_certificate_key " in nginx
    host_variable = re.search(r"proxy_set_header Host (\$\w+);", nginx).group(1)
    for public in ("app.example.com", "app.example.com:8443"):
        # what nginx sends upstream for a browser on https://PUBLIC: $http_host keeps the port, $host drops it
        host_header = {"$http_host": public, "$host": public.split(":")[0]}[host_variable]
        environ = {"HTTP_ORIGIN": f"https://{public}", "HTTP_HOST": host_header}
        try:
            check_origin(environ, None)
        except HandshakeError as exc:
            pytest.fail(f"a page on https://{public} would be refused through this nginx config: {exc}")
    with pytest.raises(HandshakeError):  # and another site is still refused
        check_origin({"HTTP_ORIGIN": "https://evil.example", "HTTP_HOST": "app.example.com:8443"}, None)
