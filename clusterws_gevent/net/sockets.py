"""Addresses of the processes of one host: a loopback TCP port or a Unix socket path.

Brokers listen on one or the other: a given ``brokers_ports`` entry is a port on
127.0.0.1; by default each broker gets a Unix socket in the master's private
(0700) runtime directory, where no other app can collide with it or squat it.
"""
from __future__ import annotations

import fcntl
import os
import socket as stdlib_socket
import struct
import termios
from typing import Any, List, Protocol, Tuple, Union

from gevent import socket

from ..constants import BACKLOG

__all__ = ["Address", "describe", "listen", "listen_tcp", "connect", "set_nodelay", "shutdown", "unsent_bytes",
           "recv_frames", "FrameParser", "LOOPBACK"]

#: A TCP port on :data:`LOOPBACK`, or the path of a Unix socket.
Address = Union[int, str]
#: Where TCP addresses listen and connect.
LOOPBACK = "127.0.0.1"


def describe(address: Address) -> str:
    """The address as logs show it: ``9400`` or ``/run/.../broker-1.sock``."""
    return str(address)


def listen(address: Address) -> Any:
    """A listening gevent socket on ``address`` (a broker's): a Unix socket path, or a port
    on :data:`LOOPBACK`. A stale Unix socket file (left by a process that was killed) is replaced.

    Raises:
        OSError: the address is taken or cannot be bound.
    """
    if not isinstance(address, str):
        return listen_tcp(LOOPBACK, address)
    sock = socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        os.unlink(address)
    except FileNotFoundError:
        pass
    return _bound(sock, address)


def listen_tcp(host: str, port: int, reuseport: bool = False) -> Any:
    """A listening, non-blocking gevent socket on ``host:port`` ("" for every interface), with
    the backlog every listener of ours has (``constants.BACKLOG``): the master's shared port, a
    worker's own (``reuseport``: other workers bind the same port, the kernel spreads), the hub's
    and the brokers'.

    Raises:
        OSError: the address is taken or cannot be bound.
    """
    sock = socket.socket(stdlib_socket.AF_INET6 if ":" in host else stdlib_socket.AF_INET, stdlib_socket.SOCK_STREAM)
    sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEPORT, 1)
    return _bound(sock, (host, port))


def _bound(sock: Any, address: Any) -> Any:
    try:
        sock.bind(address)
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
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


def unsent_bytes(sock: Any) -> int:
    """Bytes written to ``sock`` that its peer has not acknowledged yet (Linux's SIOCOUTQ):
    what a peer that stopped reading leaves in the kernel; 0 if it cannot be told."""
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def shutdown(sock: Any, how: int = stdlib_socket.SHUT_RDWR) -> None:
    """``sock.shutdown(how)``, for a connection that may be gone already (the reader then
    sees the end of the stream either way): an OSError is nothing to report."""
    try:
        sock.shutdown(how)
    except OSError:
        pass
