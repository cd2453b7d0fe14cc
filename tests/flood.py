"""A hostile client in a process of its own: it opens a WebSocket and sends as fast
as the server takes it, for a given time. Run as ``python flood.py PORT SECONDS [KIND]``
(``WAIT=SECONDS`` in the environment: keep trying to connect that long first).

Kinds: ``event`` floods ``["e","nolistener",1]`` (no listener: the cheapest message
to handle, so the server spends its time reading); ``publish`` subscribes to a
channel and floods 200 KB publishes to it (every message comes back to itself).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time

from wsclient import TEXT, WSClient, frame


def connect(port: int, wait: float) -> WSClient:
    """A WebSocket to ``port``, retried for ``wait`` seconds while nothing listens there."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return WSClient(port, "/")
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def flood(port: int, seconds: float, kind: str = "event", wait: float = 0.0) -> int:
    """Send for ``seconds``; returns the bytes the server took."""
    client = connect(port, wait)
    client.recv_json()  # the configuration message
    if kind == "publish":
        client.send_text(json.dumps(["s", "s", ["flood"]]))
        payload = frame(TEXT, json.dumps(["p", "flood", "x" * 200_000]).encode())
        batch = payload
    else:
        payload = frame(TEXT, b'["e","nolistener",1]')
        batch = payload * 4096  # ~100 KB per sendall
    client.sock.settimeout(0.5)
    # read nothing: a client that never reads is part of the attack (the server's outbox fills)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sent += client.sock.send(batch)
        except socket.timeout:
            continue
        except OSError:
            break  # the server closed us (a slow-consumer close): an acceptable defence
    client.close()
    return sent


if __name__ == "__main__":
    total = flood(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "event",
                  float(os.environ.get("WAIT", "0")))
    print(f"sent {total} bytes", flush=True)
