"""Fixtures: servers in subprocesses on free loopback ports, stopped by the test."""
from __future__ import annotations

import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

# Before clusterws_gevent is imported, here and in every server a test starts: event-loop
# callbacks are watched (net/loop_guard.py), and a test fails when one blocks or switches.
os.environ.setdefault("CLUSTERWS_LOOP_GUARD", "1")

import pytest  # noqa: E402

from clusterws_gevent.net import loop_guard  # noqa: E402
from clusterws_gevent.testing import ServerProcess, free_port, wait_until  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS_DIR))  # tests import wsclient and apps


class Server(ServerProcess):
    """A test server: its port, and the EVENT lines its app reported."""

    port: int

    def events(self, kind: Optional[str] = None, **match: Any) -> List[Dict[str, Any]]:
        found = []
        for line in self.log().splitlines():
            if line.startswith("EVENT "):
                event = json.loads(line[6:])
                if (kind is None or event["kind"] == kind) and all(event.get(k) == v for k, v in match.items()):
                    found.append(event)
        return found

    def wait_event(self, kind: str, timeout: float = 5.0, count: int = 1, **match: Any) -> List[Dict[str, Any]]:
        """Wait until the app reported ``count`` events of ``kind`` matching ``match``; return them."""
        return wait_until(lambda: self.events(kind, **match) if len(self.events(kind, **match)) >= count else None,
                          timeout, message=f"{count} {kind} event(s) {match}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """``serve(worker="apps.basic:worker", *flags, env=None, mode="single")`` starts a server and
    returns it; every server is stopped when the test ends."""
    started: List[Server] = []

    def start(worker: str = "apps.basic:worker", *flags: str, env: Optional[dict] = None, mode: str = "single",
              port: Optional[int] = None, ready_text: str = ">>> Worker", ready_count: int = 1,
              command: Optional[List[str]] = None) -> Server:
        port = port or free_port()
        args = [worker, "--mode", mode, "--host", "127.0.0.1", "--port", str(port), *flags]
        server = Server(args if command is None else [], str(tmp_path / f"server-{len(started)}.log"),
                        cwd=str(TESTS_DIR), port=port, env=env, ready_text=ready_text, ready_count=ready_count,
                        command=command)
        server.port = port
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
    for server in started:
        guarded = [line for line in server.log().splitlines() if line.startswith("LOOP GUARD:")]
        assert not guarded, f"an event-loop callback blocked or switched greenlets: {guarded[:3]}"


@pytest.fixture(autouse=True)
def _event_loop_callbacks_never_switch() -> Iterator[None]:
    """In this process too: a loop callback that switched or raised fails the test."""
    del loop_guard.violations[:]
    yield
    found, loop_guard.violations[:] = list(loop_guard.violations), []
    assert not found, f"an event-loop callback blocked or switched greenlets: {found[:3]}"


@pytest.fixture
def serve_cluster(serve: Callable[..., Server]) -> Callable[..., Server]:
    """``serve_cluster(worker, *flags, workers=2, brokers=2)``: a Mode.Scale cluster on free ports,
    ready when every worker is; ``server.broker_ports`` are its brokers' ports."""

    def start(worker: str = "apps.pubsub:worker", *flags: str, workers: int = 2, brokers: int = 2,
              env: Optional[dict] = None) -> Server:
        ports = [free_port() for _ in range(brokers)]
        server = serve(worker, "--workers", str(workers), "--brokers", str(brokers), "--brokers-ports",
                       ",".join(map(str, ports)), *flags, env=env, mode="scale", ready_count=workers)
        server.broker_ports = ports  # type: ignore[attr-defined]
        return server

    return start


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """(certfile, keyfile, client context) of a test CA's certificate for localhost and 127.0.0.1."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return str(folder / "cert.pem"), str(folder / "key.pem"), client_context


@pytest.fixture(params=["builtin", "gevent-websocket"])
def engine(request: Any) -> str:
    """Each engine in turn: the socket API is the same on both."""
    return str(request.param)


pytest_plugins = ["pytester", "greenlet_timeout"]


#: Integration modules the default lane keeps, end to end through real processes in about
#: 30 s: a socket's life, pub/sub, Flask on the same port, the example app, a Scale cluster.
SMOKE_MODULES = frozenset(("test_parked.py", "test_pubsub.py", "test_server_and_flask.py", "test_example_app.py",
                           "test_scale.py"))


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    """The other tests under tests/integration (real server processes, clusters, redis-server,
    Chromium) form the ``server`` lane (``pytest -m "server and not slow"``, a CI step of its own)."""
    for item in items:
        path = Path(str(item.fspath))
        if "integration" in path.parts and path.name not in SMOKE_MODULES:
            item.add_marker(pytest.mark.server)


def pytest_configure(config: Any) -> None:
    os.environ.setdefault("PYTHONWARNINGS", "error::DeprecationWarning")

