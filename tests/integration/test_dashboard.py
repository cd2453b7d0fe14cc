"""The live dashboard (issue 20, admin_options), in Debian's headless Chromium driven by npm
playwright-core (tests/browser/dashboard.js): behind its token, behind a Flask login, counting
the sockets of two workers, plotting, at a desktop's and a phone's size. Screenshots are
saved under reports/dashboard/ (or $CLUSTERWS_TEST_ARTIFACTS)."""
from __future__ import annotations

import http.client
import json
import os
import selectors
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from clusterws_gevent.client import Client

BROWSER_DIR = Path(__file__).resolve().parent.parent / "browser"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("CLUSTERWS_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "reports"))
TOKEN = "a-dashboard-token-for-the-tests"

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and os.access(CHROMIUM, os.X_OK) and (BROWSER_DIR / "node_modules").is_dir()),
    reason="needs node, Debian's chromium and `npm ci --prefix tests/browser` (.ci/run installs them)")


class Page:
    """The dashboard in Chromium: one command, one JSON answer (tests/browser/dashboard.js)."""

    def __init__(self, url: str) -> None:
        out = ARTIFACTS / "dashboard"
        out.mkdir(parents=True, exist_ok=True)
        self.driver = subprocess.Popen(["node", str(BROWSER_DIR / "dashboard.js"), url, str(out)],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, cwd=str(BROWSER_DIR))
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.driver.stdout, selectors.EVENT_READ)

    def ask(self, command: str, timeout: float = 30.0) -> Dict[str, Any]:
        assert self.driver.stdin is not None and self.driver.stdout is not None
        self.driver.stdin.write(command + "\n")
        self.driver.stdin.flush()
        if not self._selector.select(timeout):
            raise AssertionError(f"no answer to {command!r} within {timeout}s")
        line = self.driver.stdout.readline()
        if not line:
            raise AssertionError(f"the driver ended on {command!r}: {self.driver.stderr.read()}")  # type: ignore[union-attr]
        answer: Dict[str, Any] = json.loads(line)
        return answer

    def __enter__(self) -> Page:
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.driver.communicate("quit\n", timeout=15)
        except subprocess.TimeoutExpired:
            self.driver.kill()
            self.driver.communicate()
        self._selector.close()


def get(port: int, path: str, token: Optional[str] = None) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


def test_behind_its_token_it_counts_the_sockets_of_two_workers_and_plots_them(serve):
    server = serve("apps.basic:worker", "--workers", "2", "--admin", "--admin-token", TOKEN, mode="scale",
                   ready_count=2)
    port = server.port
    refused = get(port, "/clusterws/admin/data")
    assert refused.status == 401 and json.loads(refused.body) == {"error": "unauthorized"}  # type: ignore[attr-defined]
    assert get(port, "/clusterws/admin/data", "not-the-token-at-all-no").status == 401
    assert get(port, "/clusterws/admin/data", TOKEN).status == 200
    assert "refused a dashboard request" in server.log()

    clients = []
    with Page(f"http://127.0.0.1:{port}/clusterws/admin") as page:
        assert page.ask("open") == {"status": 401, "login": True}
        wrong = page.ask("login not-the-token-at-all-no")
        assert wrong["status"] == 401 and "not the token" in wrong["error"] and not wrong["dashboard"]
        right = page.ask(f"login {TOKEN}")
        assert right["status"] == 200 and right["dashboard"]
        assert page.ask("count 0") == {"sockets": 0}
        try:
            clients = [Client(f"ws://127.0.0.1:{port}/") for _ in range(10)]  # each connects
            assert page.ask("count 10") == {"sockets": 10}
            workers = json.loads(get(port, "/clusterws/admin/data", TOKEN).body)["workers"]  # type: ignore[attr-defined]
            assert len(workers) == 2 and sum(w["connections"] for w in workers) == 10
            assert all(w["connections"] > 0 for w in workers), workers  # least-connections spread them
            for client in clients[:4]:
                client.close()
            assert page.ask("count 6") == {"sockets": 6}
            for client in clients[4:]:
                client.close()
            assert page.ask("count 0") == {"sockets": 0}
        finally:
            for client in clients:
                client.close()
        plotted = page.ask("points 5")
        assert plotted["points"] >= 5 and plotted["rows"] >= 5
        for name, width, height in (("desktop", 1280, 800), ("phone", 390, 844)):
            shot = page.ask(f"shot {name} {width} {height}")
            assert Path(shot["path"]).stat().st_size > 10_000
            assert shot["overflow"] is False, f"the page is wider than a {width}px window"


def test_behind_a_flask_login_without_a_token(serve):
    server = serve("apps.flask_admin:app")
    url = f"http://127.0.0.1:{server.port}"
    assert get(server.port, "/clusterws/admin/data").status == 302  # the app's hook: to its login
    with Page(f"{url}/clusterws/admin") as page:
        stranger = page.ask(f"goto {url}/clusterws/admin")
        assert stranger["url"].endswith("/signin")
        assert page.ask(f"goto {url}/login/alice")["status"] == 200
        assert page.ask(f"goto {url}/clusterws/admin")["status"] == 200
        assert page.ask("count 0") == {"sockets": 0}
