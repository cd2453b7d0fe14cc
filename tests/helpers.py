"""Helpers shared by the integration tests: connecting, finding workers, subscribing."""
from __future__ import annotations

import json
import os
import re

from wsclient import WSClient


def connect(server, path="/"):
    client = WSClient(server.port, path)
    client.recv_json()
    return client


def whoami(client):
    client.emit("whoami")
    return client.recv_event("whoami")


def on_each_worker(server, count=2, attempts=60):
    """One connected client per worker (connections are spread by the kernel)."""
    found, extra = {}, []
    for _ in range(attempts):
        client = connect(server)
        pid = whoami(client)
        if pid in found:
            extra.append(client)
        else:
            found[pid] = client
        if len(found) == count:
            break
    for client in extra:
        client.close()
    assert len(found) == count, f"connections reached {len(found)} of {count} workers"
    return found


def subscribe(client, *channels):
    client.send_text(json.dumps(["s", "s", list(channels)]))
    return client.recv_json()


def worker_pids(server):
    return [int(pid) for pid in re.findall(r">>> Worker: \d+, PID: (\d+)", server.log())]


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


