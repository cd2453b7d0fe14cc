"""Addresses of the processes of one host: a loopback TCP port or a Unix socket path.

Brokers listen on one or the other: a given ``brokers_ports`` entry is a port on
127.0.0.1; by default each broker gets a Unix socket in the master's private
(0700) runtime directory, where no other app can collide with it or squat it.
"""
from __future__ import annotations

import os
import socket as stdlib_socket
from typing import Any, List, Protocol, Tuple, Union

from gevent import socket

__all__ = ["Address", "describe", "listen", "connect", "set_nodelay", "shutdown", "recv_frames", "FrameParser",
           "LOOPBACK"]

#: A TCP port on :data:`LOOPBACK`, or the path of a Unix socket.
Address = Union[int, str]
#: Where TCP addresses listen and connect.
LOOPBACK = "127.0.0.1"


def describe(address: Address) -> str:
    """The address as logs show it: ``9400`` or ``/run/.../broker-1.sock``."""
    return str(address)


def listen(address: Address, backlog: int = 1024) -> Any:
    """A listening gevent socket on ``address``.

    A stale Unix socket file (left by a process that was killed) is replaced.

    Raises:
        OSError: the address is taken or cannot be bound.
    """
    if isinstance(address, str):
        sock = socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
    else:
        sock = socket.socket(stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
        address = (LOOPBACK, address)  # type: ignore[assignment]
    try:
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def connect(address: Address, timeout: float) -> Any:
    """A connected gevent socket to ``address``, small writes sent at once.

    Raises:
        OSError: nobody listens there (or ``timeout`` passed).
    """
    if isinstance(address, str):
        sock = socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
    else:
        sock = socket.create_connection((LOOPBACK, address), timeout=timeout)
    set_nodelay(sock)
    return sock


def set_nodelay(sock: Any) -> None:
    """Send small frames at once: Nagle's algorithm and delayed ACKs cost 40 ms per small
    frame on a TCP link (a no-op on a Unix socket)."""
    if sock.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6):
        sock.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)


class FrameParser(Protocol):
    """A parser of a framed stream (``protocol.broker_wire.FrameParser``)."""

    def feed(self, data: bytes) -> List[Tuple[int, bytes]]:
        """The frames ``data`` completes."""


def recv_frames(sock: Any, parser: FrameParser) -> List[Tuple[int, bytes]]:
    """Read ``sock`` until ``parser`` completes at least one frame; [] at the end of the stream.

    A link's handshake messages (HELLO, or WELCOME in return) are read with it."""
    frames: List[Tuple[int, bytes]] = []
    while not frames:
        data = sock.recv(4096)
        if not data:
            return []
        frames = parser.feed(data)
    return frames


def shutdown(sock: Any, how: int = stdlib_socket.SHUT_RDWR) -> None:
    """``sock.shutdown(how)``, for a connection that may be gone already (the reader then
    sees the end of the stream either way): an OSError is nothing to report."""
    try:
        sock.shutdown(how)
    except OSError:
        pass
