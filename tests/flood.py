"""A hostile client in a process of its own: it opens a WebSocket and sends as fast
as the server takes it, for a given time. Run as ``python flood.py PORT SECONDS [KIND]``
(``WAIT=SECONDS`` in the environment: keep trying to connect that long first).

Kinds: ``event`` floods ``["e","nolistener",1]`` (no listener: the cheapest message
to handle, so the server spends its time reading); ``publish`` subscribes to a
channel and floods 200 KB publishes to it (every message comes back to itself);
``http`` pipelines HTTP requests on one keep-alive connection (``GET /healthz``, the
browser client with its ETag: 304s, and ``GET /`` of the Flask app), and a thread
reads the answers as fast as they come, so the server never waits to write them;
``deflate`` negotiates permessage-deflate and floods ``["e","nolistener","000..."]``
events of :data:`INFLATED` bytes, each compressed to about 120 (the server's work is
the inflated size: a flood that costs the client almost nothing).
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
import zlib
from typing import Optional

from wsclient import TEXT, WSClient, frame

#: How big each event of the ``deflate`` flood is once inflated.
INFLATED = 100_000


def connect(port: int, wait: float, headers: Optional[dict] = None) -> WSClient:
    """A WebSocket to ``port``, retried for ``wait`` seconds while nothing listens there."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return WSClient(port, "/", headers=headers)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def pipeline(port: int, seconds: float) -> int:
    """Pipeline requests on one keep-alive connection for ``seconds``; returns the bytes sent."""
    import threading

    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /clusterws.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(65536)
    etag = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"etag:")]
    requests = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                b"GET /clusterws.js HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: " + etag[0] + b"\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n") * 64
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            try:
                if not sock.recv(1 << 20):
                    return
            except OSError:
                return

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            sock.sendall(requests)
        except OSError:
            break
        sent += len(requests)
    stop.set()
    sock.close()
    return sent


def flood(port: int, seconds: float, kind: str = "event", wait: float = 0.0) -> int:
    """Send for ``seconds``; returns the bytes the server took."""
    if kind == "http":
        return pipeline(port, seconds)
    client = connect(port, wait, {"Sec-WebSocket-Extensions": "permessage-deflate"} if kind == "deflate" else None)
    client.recv_json()  # the configuration message
    if kind == "deflate":
        assert "permessage-deflate" in client.response_head, "the server did not negotiate permessage-deflate"
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        event = json.dumps(["e", "nolistener", "0" * (INFLATED - 20)]).encode()
        data = (compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
        batch = frame(TEXT, data, rsv=4) * 512
    elif kind == "publish":
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
