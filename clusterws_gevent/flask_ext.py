"""Flask integration: the only module that imports flask.

- ``ClusterWS(app=flask_app)`` or ``cws.init_app(app)`` serves the app and the
  WebSockets on one port (``app.extensions["clusterws"]`` is the ClusterWS).
- Each WebSocket runs inside the Flask request context of its upgrade
  request, kept for the socket's lifetime in a ``contextvars.Context`` of its own
  (``websocket/driver.py``, ``Scope``), without a greenlet: in verifyConnection and
  in every listener of the socket, ``flask.session``, ``flask.request``, ``flask.g``
  and ``current_app`` work as in a view, so an existing login protects the realtime
  part too. ``g`` and ``session`` live as long as the socket (a change one listener
  makes is seen by the next); the teardown hooks run once, when the socket ends.
  The context is kept as Flask's own ``stream_with_context`` keeps it: pushed once
  more, so that the app's return (``wsgi_app`` pops once) does not end it.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Optional, Tuple

from . import registry
from .protocol import json_codec

__all__ = ["is_flask_app", "current_request_and_session", "app_context", "install_flask_app",
           "FlaskSupport", "EXTENSION_KEY", "UPGRADE_ENVIRON_KEY"]

#: Where a Flask app keeps its ClusterWS (``current_app.extensions["clusterws"]``).
EXTENSION_KEY = "clusterws"
#: The environ key of an upgrade request: the server's callable that serves the WebSocket.
UPGRADE_ENVIRON_KEY = registry.AppSupport.upgrade_environ_key
_HOOKED = "clusterws.upgrade_hook"


def _serve_upgrade() -> Any:
    """The app's last ``before_request`` hook: an upgrade request becomes a WebSocket here,
    inside its request context, after the app's own hooks (which may refuse it)."""
    from flask import request

    serve = request.environ.get(UPGRADE_ENVIRON_KEY)
    return serve() if serve is not None else None


def is_flask_app(app: Any) -> bool:
    """Whether ``app`` is a Flask application (not just any WSGI callable)."""
    try:
        from flask import Flask
    except ImportError:  # pragma: no cover - Flask is a dependency
        return False
    return isinstance(app, Flask)


def app_context(app: Any) -> ContextManager[Any]:
    """The Flask app context of ``app`` (for middleware run outside any socket); else a no-op."""
    if not is_flask_app(app):
        return contextlib.nullcontext()
    context: ContextManager[Any] = app.app_context()
    return context


def current_request_and_session() -> Tuple[Optional[Any], Optional[Any]]:
    """Flask's ``request`` and ``session`` of the pushed request context, or (None, None)."""
    from flask import has_request_context, request, session

    if not has_request_context():
        return None, None
    # the objects behind the proxies: they stay valid in the greenlets the middleware uses
    return request._get_current_object(), session._get_current_object()  # type: ignore[attr-defined]


def install_flask_app(app: Any) -> None:
    """A worker serves ``app``: upgrade requests are served by a ``before_request`` hook
    registered after the app's own (so they go through ``app.wsgi_app``'s middleware and the
    app's hooks first), payloads are encoded with the app's JSON provider (its ``default``:
    ``datetime``, ``UUID``, dataclasses...), and ``app.extensions["clusterws"]`` names the
    ClusterWS this process serves (when the app did not set it itself)."""
    if not app.extensions.get(_HOOKED):
        app.extensions[_HOOKED] = True
        # appended to the public table rather than through app.before_request(): a worker may
        # start after the app served requests (a test client), and Flask forbids setup then
        app.before_request_funcs.setdefault(None, []).append(_serve_upgrade)

    default = getattr(getattr(app, "json", None), "default", None)
    if callable(default):
        json_codec.set_default(default)
    if registry.running is not None:
        app.extensions.setdefault(EXTENSION_KEY, registry.running)


class FlaskSupport(registry.AppSupport):
    """Flask's ``registry.AppSupport``: what the worker and the WSGI handler are given of
    Flask (installed by the face, so that nothing below it imports this module)."""

    def is_app(self, app: Any) -> bool:
        return is_flask_app(app)

    def install(self, app: Any) -> None:
        install_flask_app(app)

    def app_context(self, app: Any) -> ContextManager[Any]:
        return app_context(app)

    def current_request_and_session(self) -> Tuple[Optional[Any], Optional[Any]]:
        return current_request_and_session()

    def hold(self) -> Any:
        from flask.globals import request_ctx

        context = request_ctx._get_current_object()  # type: ignore[attr-defined]
        context.push()  # wsgi_app pops once on return; the last pop (release) tears it down
        return context

    def trim(self, held: Any) -> None:
        request = held.request
        # werkzeug caches parsed values in the request's __dict__ (cached_property): the
        # parsed Cookie header alone cost 1.9 MiB per socket with a 60 KB header
        for name in ("cookies", "headers", "args", "url", "base_url", "host_url", "root_url", "full_path"):
            request.__dict__.pop(name, None)
        # An upgrade is never dispatched to a view: the NotFound of a path with no route (with
        # its traceback, which holds the frames of the upgrade and the pywsgi handler: 15 KiB)
        # means nothing for a socket.
        request.routing_exception = None

    def release(self, held: Any) -> None:
        held.pop()
