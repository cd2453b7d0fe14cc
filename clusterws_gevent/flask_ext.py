"""Flask integration: the only module that imports flask.

- ``ClusterWS(app=flask_app)`` or ``cws.init_app(app)`` serves the app and the
  WebSockets on one port (``app.extensions["clusterws"]`` is the ClusterWS).
- Each WebSocket runs inside the Flask request context of its upgrade
  request, pushed for the socket's lifetime in the socket's own greenlet: in
  verifyConnection and in every listener of the socket, ``flask.session``,
  ``flask.request``, ``flask.g`` and ``current_app`` work as in a view, so an
  existing login protects the realtime part too. ``g`` lives as long as the socket.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Mapping, Optional, Tuple

__all__ = ["is_flask_app", "socket_context", "current_request_and_session", "app_context"]


def is_flask_app(app: Any) -> bool:
    """Whether ``app`` is a Flask application (not just any WSGI callable)."""
    try:
        from flask import Flask
    except ImportError:  # pragma: no cover - Flask is a dependency
        return False
    return isinstance(app, Flask)


def socket_context(app: Any, environ: Mapping[str, Any]) -> ContextManager[Any]:
    """The Flask request context of ``environ`` for a Flask ``app``; else a no-op."""
    if not is_flask_app(app):
        return contextlib.nullcontext()
    context: ContextManager[Any] = app.request_context(environ)
    return context


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
