"""What this process serves, for code that has no handle on it (a Flask view, a greenlet),
and what the layers below the face are given of the web framework beside the WebSockets.

``running`` is the :class:`~clusterws_gevent.ClusterWS` whose ``serve()`` runs in this
process (set before the workers fork, so every worker has it); the running Worker is
``process.worker.current_worker()``. ``app_support`` is how the worker and the WSGI
handler treat the app served on the same port: the face (``cluster.py``) installs
Flask's (``flask_ext.FlaskSupport``), so nothing below it imports Flask's module.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Optional, Tuple

__all__ = ["running", "command_line", "AppSupport", "app_support"]

#: The ClusterWS that serves in this process, or None.
running: Optional[Any] = None
#: ``python -m clusterws_gevent`` runs this process: True while it reads its options (the
#: app's module is imported), then the ClusterWS it serves. Another one's ``run()`` is then
#: a no-op (a module that calls it at import, for ``python myapp.py``).
command_line: Any = None


class AppSupport:
    """A plain WSGI app: served as it is, no request context around a WebSocket."""

    #: The environ key of an upgrade request that goes through the app: the server's
    #: callable that serves the WebSocket (an app hook calls it).
    upgrade_environ_key = "clusterws.upgrade"

    def is_app(self, app: Any) -> bool:
        """Whether ``app`` gets this support (upgrades go through it, in its request context)."""
        return False

    def install(self, app: Any) -> None:
        """A worker is about to serve ``app``."""

    def app_context(self, app: Any) -> ContextManager[Any]:
        """The context the worker function and middleware outside any socket run in."""
        return contextlib.nullcontext()

    def current_request_and_session(self) -> Tuple[Optional[Any], Optional[Any]]:
        """The app's request and session of the request being handled, or (None, None)."""
        return None, None

    def hold(self) -> Any:
        """The request being handled (its context is current) becomes a socket's: keep its
        context past the app's return, until :meth:`release`. Returns what to release."""
        return None

    def trim(self, held: Any) -> None:
        """The socket's ``connection`` listeners ran: drop what the held request parsed and
        cached for them (cookies...), which would cost memory for the socket's life."""

    def release(self, held: Any) -> None:
        """The socket ended: end the request's context (teardown hooks run), in the context
        it was held in."""


#: How the app served beside the WebSockets is treated (the face installs Flask's).
app_support: AppSupport = AppSupport()
