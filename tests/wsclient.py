"""A small blocking WebSocket client that sends exactly the bytes a test asks for.

For wire-level checks (close frames, unmasked frames, invalid UTF-8, split
writes), where a full client would refuse or repair what the test needs.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import struct
from typing import Any, List, Optional, Tuple

from clusterws_gevent.protocol.mask import apply_mask

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0, 1, 2, 8, 9, 10


def frame(opcode: int, payload: bytes = b"", fin: bool = True, mask: bool = True, rsv: int = 0) -> bytes:
    """One client frame (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, (0x80 if mask else 0) | size)
    elif size < 65536:
        header = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, size)
    else:
        header = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, size)
    if not mask:
        return header + payload
    key = os.urandom(4)
    return header + key + apply_mask(payload, key)


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack("!H", code) + reason.encode()


class WSClient:
    """A connected WebSocket (RFC 6455 client side), blocking, with a timeout on every read."""

    def __init__(self, port: int, path: str = "/", host: str = "127.0.0.1", headers: Optional[dict] = None,
                 timeout: float = 5.0, tls: Optional[ssl.SSLContext] = None, rcvbuf: Optional[int] = None,
                 expect_status: int = 101) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        raw.settimeout(timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as browsers and Node's ws
        raw.connect((host, port))
        self.sock: socket.socket = tls.wrap_socket(raw, server_hostname="localhost") if tls else raw
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.buffer = b""
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = self._read_until(b"\r\n\r\n")
            self.response_head = head.decode("latin-1")
            self.status = int(self.response_head.split(" ", 2)[1])
            if self.status != expect_status:
                raise ConnectionError(f"expected {expect_status}, got: {self.response_head}")
        except BaseException:
            self.sock.close()
            raise

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed during the handshake")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(max(65536, size - len(self.buffer)))
            if not chunk:
                raise EOFError("connection closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    # -- sending ----------------------------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        self.sock.sendall(frame(TEXT, text.encode()))

    def send_binary(self, data: bytes) -> None:
        self.sock.sendall(frame(BINARY, data))

    def emit(self, event: str, data: Any = None) -> None:
        """The ClusterWS ``send(event, data)`` of the JS client."""
        self.send_text(json.dumps(["e", event, data], separators=(",", ":")))

    def send_close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        self.sock.sendall(frame(CLOSE, close_payload(code, reason) if code is not None else b""))

    # -- receiving --------------------------------------------------------------------------------

    def recv_frame(self) -> Tuple[int, bytes, bool]:
        """(opcode, payload, fin) of the next frame; asserts server frames are unmasked."""
        first, second = self._read_exact(2)
        assert not second & 0x80, "a server frame must not be masked"
        self.last_rsv1 = bool(first & 0x40)  # a compressed message (permessage-deflate)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._read_exact(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._read_exact(8))[0]
        return first & 0x0F, self._read_exact(size), bool(first & 0x80)

    def recv(self, skip_pings: bool = True) -> Tuple[int, bytes]:
        """The next data message (opcode, payload); app-level pings (0x39) are answered
        with 0x41 and skipped, as a real client does, unless asked for."""
        while True:
            opcode, payload, fin = self.recv_frame()
            assert fin, "the server sends unfragmented messages"
            if skip_pings and opcode == BINARY and payload == b"9":
                self.send_binary(b"A")
                continue
            return opcode, payload

    def recv_json(self) -> Any:
        """The next text message, decoded."""
        opcode, payload = self.recv()
        assert opcode == TEXT, f"expected text, got opcode {opcode}: {payload[:100]!r}"
        return json.loads(payload)

    def recv_event(self, name: Optional[str] = None) -> Any:
        """The data of the next ``["e", name, data]`` (other messages skipped)."""
        while True:
            message = self.recv_json()
            if message[0] == "e" and (name is None or message[1] == name):
                return message[2]

    def recv_close(self) -> Tuple[Optional[int], str]:
        """Read until the server's close frame; (code, reason), code None for an empty close."""
        while True:
            opcode, payload, _ = self.recv_frame()
            if opcode == CLOSE:
                if not payload:
                    return None, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def at_eof(self) -> bool:
        """Read until the server closes the TCP connection (True) or reset it (True)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True

    def frames_until_eof(self) -> List[Tuple[int, bytes]]:
        result = []
        try:
            while True:
                opcode, payload, _ = self.recv_frame()
                result.append((opcode, payload))
        except (EOFError, ConnectionResetError):
            return result

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> WSClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
