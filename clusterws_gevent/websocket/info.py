"""What verifyConnection learns about an upgrade request."""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

__all__ = ["ConnectionInfo"]


class ConnectionInfo:
    """The ``info`` given to ``verifyConnection(info, next)``.

    Attributes:
        origin: the ``Origin`` header, or None.
        secure: True when the connection is TLS (wss://).
        environ: the WSGI environ of the upgrade request.
        request: the Flask ``request`` of the upgrade, when a Flask app is attached.
        session: the Flask ``session`` (as the views see it), when a Flask app is attached.
        user: who the socket is, for presence (``socket.user``): set it here, from the session,
            a token...; None by default.
    """

    __slots__ = ("origin", "secure", "environ", "request", "session", "user", "_cookies")

    def __init__(self, environ: Mapping[str, Any], request: Any = None, session: Any = None) -> None:
        self.environ = environ
        self.origin: Optional[str] = environ.get("HTTP_ORIGIN")
        self.secure = environ.get("wsgi.url_scheme") == "https"
        self.request = request
        self.session = session
        self.user: Any = None
        self._cookies: Optional[Dict[str, str]] = None

    @property
    def cookies(self) -> Dict[str, str]:
        """The request's cookies."""
        if self._cookies is None:
            from werkzeug.http import parse_cookie

            self._cookies = dict(parse_cookie(self.environ.get("HTTP_COOKIE", "")))
        return self._cookies

    def __repr__(self) -> str:
        return f"<ConnectionInfo origin={self.origin!r} secure={self.secure}>"
