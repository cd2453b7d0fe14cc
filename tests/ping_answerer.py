"""Many idle WebSocket clients in one process, answering the server's keep-alive pings: for
the tests that need thousands of sockets. Run as ``python ping_answerer.py PORT COUNT``; prints
``READY COUNT`` once every connection is upgraded, and holds them until stdin closes."""
from __future__ import annotations

import resource
import selectors
import socket
import sys
import threading

from wsclient import BINARY, frame

UPGRADE = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
PING = b"\x82\x019"  # the server's app-level ping: a binary frame holding "9"
PONG = frame(BINARY, b"A")


def main(port: int, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    selector = selectors.DefaultSelector()
    upgraded = 0
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(UPGRADE)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101"), head[:80]
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
        upgraded += 1
    print(f"READY {upgraded}", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.is_set():
        for key, _ in selector.select(0.5):
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                selector.unregister(key.fileobj)
                continue
            for _ in range(data.count(PING)):
                key.fileobj.send(PONG)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
