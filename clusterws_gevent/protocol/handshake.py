"""The server side of the RFC 6455 opening handshake, on a WSGI environ.

No subprotocol is selected and no extension is negotiated: ClusterWS clients
ask for neither, and without permessage-deflate one encoded frame serves every
subscriber.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
from http import HTTPStatus
from typing import Iterable, Mapping, Optional, Sequence, Set, Tuple, Union
from urllib.parse import urlsplit

from ..exceptions import HandshakeError
from ..quoting import quote

__all__ = ["GUID", "is_upgrade_request", "check_upgrade", "check_origin", "accept_key", "switching_protocols",
           "http_response"]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def is_upgrade_request(environ: Mapping[str, object]) -> bool:
    """Whether the request asks for a WebSocket (``Upgrade: websocket``)."""
    upgrade = environ.get("HTTP_UPGRADE")
    return isinstance(upgrade, str) and upgrade.lower() == "websocket"


def _header_tokens(value: object) -> Set[str]:
    if not isinstance(value, str):
        return set()
    return {token.strip().lower() for token in value.split(",")}


def check_upgrade(environ: Mapping[str, object]) -> str:
    """Validate a WebSocket upgrade request (RFC 6455 §4.2.1).

    Returns:
        the client's ``Sec-WebSocket-Key``.

    Raises:
        HandshakeError: with the HTTP status to answer (400, 405 or 426).
    """
    if environ.get("REQUEST_METHOD") != "GET":
        raise HandshakeError(405, "WebSocket upgrade needs GET", [("Allow", "GET")])
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
        raise HandshakeError(400, "WebSocket upgrade needs HTTP/1.1")
    if "upgrade" not in _header_tokens(environ.get("HTTP_CONNECTION")):
        raise HandshakeError(400, "missing 'Connection: Upgrade' header")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        raise HandshakeError(426, "unsupported Sec-WebSocket-Version; this server speaks 13",
                             [("Sec-WebSocket-Version", "13")])
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY")
    if not isinstance(key, str):
        raise HandshakeError(400, "missing Sec-WebSocket-Key header")
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError(400, "invalid Sec-WebSocket-Key header")
    return key


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _host_port(netloc: str, scheme: str) -> Optional[Tuple[str, int]]:
    """``("example.com", 443)`` from ``example.com`` and ``https``; None if malformed."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def check_origin(environ: Mapping[str, object], allowed: Union[None, str, Sequence[str]]) -> None:
    """Refuse a browser's upgrade from an origin that may not open a WebSocket here.

    A browser sends ``Origin`` with every WebSocket upgrade, and the user's cookies
    with it: without this check, any site the user visits could open a socket as the
    user (cross-site WebSocket hijacking). ``allowed`` is ``"*"`` (any origin), a list
    of ``scheme://host[:port]``, or None: the same origin only (the Origin's host and
    port are the request's ``Host``). A request without ``Origin`` does not come from
    a browser page and is not checked.

    Raises:
        HandshakeError: 403, naming the origin.
    """
    origin = environ.get("HTTP_ORIGIN")
    if not isinstance(origin, str) or allowed == "*":
        return
    normalized = origin.strip().lower().rstrip("/")
    if allowed is not None:
        if normalized in allowed:
            return
        raise HandshakeError(403, f"origin {quote(origin)} is not in websocket_options.allowed_origins")
    scheme, _, netloc = normalized.partition("://")
    host = environ.get("HTTP_HOST")
    # The Host's default port is the one of the page's scheme: both name one server.
    expected = _host_port(host.strip().lower(), scheme) if isinstance(host, str) else None
    if netloc and expected is not None and _host_port(netloc, scheme) == expected:
        return
    raise HandshakeError(403, f"origin {quote(origin)} is not this server's origin (Host {quote(host)}); "
                              "list it in websocket_options.allowed_origins")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering ``key``."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def switching_protocols(key: str, extra_headers: Iterable[Tuple[str, str]] = ()) -> bytes:
    """The complete ``101 Switching Protocols`` response to ``key``."""
    lines = [
        "HTTP/1.1 101 Switching Protocols",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Accept: " + accept_key(key),
    ]
    lines.extend(f"{name}: {value}" for name, value in extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_response(status: int, body: str = "", headers: Iterable[Tuple[str, str]] = ()) -> bytes:
    """A complete small HTTP/1.1 response that closes the connection."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    payload = (body + "\n").encode("utf-8") if body else b""
    lines = [
        f"HTTP/1.1 {status} {phrase}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Connection: close",
    ]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload
