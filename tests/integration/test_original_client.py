"""The original ClusterWS v4 JavaScript client (4.0.0-alpha.2) against our server with history,
presence and join/leave on (issue 18): in Node and in Debian's Chromium it sees no change.

The client is not in this tree: ``JSCLIENT_DIR`` names a directory made by the shared bench's
``cws-node/rebuild-local.sh`` from a copy of github.com/ClusterWS/ClusterWS-Client-JS
(``docs/protocol.md``, "Extensions"); without it these checks are skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parent.parent / "interop" / "original_client.js"
BROWSER_DIR = Path(__file__).resolve().parent.parent / "browser"
JSCLIENT_DIR = os.environ.get("JSCLIENT_DIR", os.path.expanduser("~/.cache/clusterws-jsclient"))
CHANNELS = json.dumps({"presence": True, "join_leave": True, "history_size": 100,
                       "namespaces": {"chat": {"history_size": 50, "presence": True, "join_leave": True}}})

pytestmark = pytest.mark.skipif(
    not (shutil.which("node") and os.path.isfile(os.path.join(JSCLIENT_DIR, "cwsclient.js"))),
    reason="the original v4 client is not here (JSCLIENT_DIR: ../shared/bench/cws-node/README.md)")


def run(where: str, target: str) -> dict:
    result = subprocess.run(["node", str(INTEROP), where, target], capture_output=True, text=True, timeout=60,
                            env=dict(os.environ, JSCLIENT_DIR=JSCLIENT_DIR))
    checks = {line["check"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert result.returncode == 0, (result.stderr, [c for c in checks.values() if not c["ok"]])
    return checks


@pytest.mark.parametrize("mode", ["single", "scale"])
def test_the_original_client_in_node_sees_no_change_with_history_and_presence_on(serve, serve_cluster, mode):
    flags = ("--no-auto-ping", "--channel-options", CHANNELS)
    server = serve("apps.pubsub:worker", *flags) if mode == "single" else serve_cluster("apps.pubsub:worker", *flags)
    checks = run("node", f"ws://127.0.0.1:{server.port}/")
    assert set(checks) == {"open", "emit", "subscribe", "canceled", "publish", "history on", "presence on",
                           "after a reconnection", "no extension frames"}


@pytest.mark.skipif(not (os.access("/usr/bin/chromium", os.X_OK) and (BROWSER_DIR / "node_modules").is_dir()),
                    reason="needs Debian's chromium and `npm ci --prefix tests/browser`")
def test_the_original_client_in_chromium_sees_no_change_with_history_and_presence_on(serve):
    server = serve("apps.pubsub:worker", "--app", "apps.flask_site:app", "--channel-options", CHANNELS)
    checks = run("chromium", f"http://127.0.0.1:{server.port}/info")
    assert all(check["ok"] for check in checks.values()) and len(checks) == 9
