"""The dashboard's HTTP side (``admin_options``): its page, its data, its login.

A worker answers every request under ``admin_options.path``. With a Flask app, the
request first goes through the app (its WSGI middleware and ``before_request`` hooks,
as an upgrade does: an app's login protects the dashboard); then, when a token is set,
it must also carry it: ``Authorization: Bearer TOKEN``, or the cookie the login form
sets (an HMAC of the token: it never holds the token itself, and changing the token
logs every browser out). The page's script and style are files of the package, served
here under a Content-Security-Policy that allows nothing else: no CDN, no inline code,
nothing fetched from elsewhere; every value the page shows (channel names come from
clients) is written as text, never as markup.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import json
import os
import shutil
import tempfile
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs

import gevent

from ..log import Log
from ..options import AdminOptions
from .dashboard import CLUSTER_FILE, Aggregator, aggregated_elsewhere, dashboard_directory, report_worker

__all__ = ["AdminEndpoint", "install_admin", "COOKIE", "Response"]

#: The login form's cookie.
COOKIE = "clusterws_admin"
#: Bytes of a login form read at most.
MAX_FORM = 4096
_STATIC = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static")
_ASSETS = {"/admin.js": ("admin.js", "text/javascript; charset=utf-8"),
           "/admin.css": ("admin.css", "text/css; charset=utf-8")}
_SECURITY = [
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
]

#: (status, headers, body)
Response = Tuple[int, List[Tuple[str, str]], bytes]


def _asset(name: str) -> bytes:
    with open(os.path.join(_STATIC, name), "rb") as source:
        return source.read()


class AdminEndpoint:
    """Serves the dashboard under ``options.path``.

    Args:
        options: the dashboard's options (enabled).
        directory: where the aggregate is written...
        filename: ... under this name.
        log: where refusals are logged (rate-limited).
        secure: the server speaks https (the cookie is ``Secure``).
        on_refused: counts a refusal by its rule (the server's stats).
    """

    def __init__(self, options: AdminOptions, directory: str, log: Log, secure: bool = False,
                 on_refused: Any = None, filename: str = CLUSTER_FILE) -> None:
        self.base = options.path.rstrip("/") or "/"
        self.directory = directory
        self.filename = filename
        self.log = log
        self.secure = secure
        self._on_refused = on_refused
        self._token = options.token.encode() if options.token is not None else None
        self._cookie = (hmac.new(self._token, b"clusterws-admin-cookie", hashlib.sha256).hexdigest()
                        if self._token is not None else None)
        base = html.escape(self.base, quote=True)
        self._page = _asset("admin.html").replace(b"{{BASE}}", base.encode())
        self._login = _asset("admin-login.html").replace(b"{{BASE}}", base.encode())
        self._assets = {path: (kind, _asset(name)) for path, (name, kind) in _ASSETS.items()}

    def handles(self, path: str) -> bool:
        """Whether ``path`` is the dashboard's."""
        return path == self.base or path.startswith(self.base + "/")

    def app_response(self, environ: Dict[str, Any]) -> Tuple[bytes, int, List[Tuple[str, str]]]:
        """:meth:`respond` as a Flask view's return value (from the app's last hook)."""
        status, headers, body = self.respond(environ)
        return body, status, headers

    def respond(self, environ: Dict[str, Any]) -> Response:
        """The answer to one request under the dashboard's path."""
        sub = environ.get("PATH_INFO", "")[len(self.base):]
        method = environ.get("REQUEST_METHOD", "GET")
        asset = self._assets.get(sub)
        if asset is not None:  # the code of the page: no secret in it
            return 200, [("Content-Type", asset[0]), *_SECURITY[1:]], asset[1]
        if sub == "/login":
            return self._log_in(environ) if method == "POST" else self._login_page(200)
        if sub == "/logout":
            return 303, [("Location", self.base), ("Set-Cookie", self._set_cookie("", 0)), *_SECURITY], b""
        if method not in ("GET", "HEAD"):
            return 405, [("Allow", "GET"), ("Content-Type", "text/plain"), *_SECURITY], b"method not allowed"
        if not self._authorized(environ):
            self._refused(environ, "no valid token")
            if sub == "/data":
                return 401, [("Content-Type", "application/json"), *_SECURITY], b'{"error":"unauthorized"}'
            return self._login_page(401)
        if sub in ("", "/"):
            return 200, [("Content-Type", "text/html; charset=utf-8"), *_SECURITY], self._page
        if sub == "/data":
            return self._data()
        return 404, [("Content-Type", "text/plain"), *_SECURITY], b"not found"

    # -- pieces ---------------------------------------------------------------------------------

    def _authorized(self, environ: Dict[str, Any]) -> bool:
        if self._token is None:
            return True  # the app's hooks ran and let the request through (the options require one)
        bearer = environ.get("HTTP_AUTHORIZATION", "")
        if bearer[:7].lower() == "bearer " and hmac.compare_digest(bearer[7:].strip().encode(), self._token):
            return True
        cookie = _cookie_value(environ.get("HTTP_COOKIE", ""), COOKIE)
        return cookie is not None and self._cookie is not None and hmac.compare_digest(cookie, self._cookie)

    def _log_in(self, environ: Dict[str, Any]) -> Response:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM:
            return 413, [("Content-Type", "text/plain"), *_SECURITY], b"form too large"
        form = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace")) if length else {}
        token = (form.get("token") or [""])[0].encode()
        if self._token is None or not hmac.compare_digest(token, self._token):
            self._refused(environ, "wrong token in the login form")
            return self._login_page(401, "That is not the token.")
        return 303, [("Location", self.base), ("Set-Cookie", self._set_cookie(self._cookie or "", None)),
                     *_SECURITY], b""

    def _login_page(self, status: int, error: str = "") -> Response:
        body = self._login.replace(b"{{ERROR}}", html.escape(error).encode())
        return status, [("Content-Type", "text/html; charset=utf-8"), *_SECURITY], body

    def _set_cookie(self, value: str, max_age: Optional[int]) -> str:
        cookie = f"{COOKIE}={value}; Path={self.base}; HttpOnly; SameSite=Strict"
        if max_age is not None:
            cookie += f"; Max-Age={max_age}"
        return cookie + ("; Secure" if self.secure else "")

    def _data(self) -> Response:
        try:
            with open(os.path.join(self.directory, self.filename), "rb") as source:
                body = source.read()
        except FileNotFoundError:
            body = json.dumps({"starting": True}).encode()
        return 200, [("Content-Type", "application/json"), *_SECURITY], body

    def _refused(self, environ: Dict[str, Any], why: str) -> None:
        if self._on_refused is not None:
            self._on_refused("admin")
        self.log.refusal("admin", "refused a dashboard request from %s to %s: %d, %s",
                         environ.get("REMOTE_ADDR", "?"), environ.get("PATH_INFO", ""), 401, why)


def _cookie_value(header: str, name: str) -> Optional[str]:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def install_admin(worker: Any, options: AdminOptions, server_info: Dict[str, Any]) -> None:
    """Serve the dashboard on ``worker``'s server, and report ``worker``'s numbers for it.

    Where no master of ours aggregates the reports (gunicorn's workers, a worker in a test),
    the worker aggregates them itself: those in the directory gunicorn's hook made (every
    worker's), or its own alone."""
    if not options.enabled:
        return
    directory = dashboard_directory()
    filename = CLUSTER_FILE
    if directory is None:
        directory = tempfile.mkdtemp(prefix="clusterws-admin-")
        worker.on_stop.append(lambda: shutil.rmtree(directory, ignore_errors=True))
    if directory != dashboard_directory() or not aggregated_elsewhere():
        filename = f"cluster-{os.getpid()}.json"
        aggregator = gevent.spawn(Aggregator(directory, None, server_info, filename).run)
        worker.on_stop.append(lambda: aggregator.kill(block=False))
    reporter = report_worker(worker, directory)
    worker.on_stop.append(lambda: reporter.kill(block=False))
    worker.server.admin = AdminEndpoint(options, directory, worker.log, worker.options.tls_options is not None,
                                        worker.wss.stats.refuse, filename)
    hooks = getattr(worker.app, "before_request_funcs", None)
    if options.token is None and isinstance(hooks, dict) and sum(map(len, hooks.values())) <= 1:
        worker.log.warning("the dashboard at %s has no token and the app has no before_request hook of its "
                           "own: anyone who reaches it sees it", options.path)
