"""Every use of gevent.pywsgi's private parts, in one place.

pywsgi has no public hook for what the WebSocket handler needs: refusing a
request before its body with our own status (a slow client, headers too large),
recording a response the handler wrote itself (a 101, a refusal) for the access
log, and freeing the request's objects for a socket's lifetime. These are the
four private names it touches; ``tests/unit/test_pywsgi_adapter.py`` checks
them on the installed gevent, and tox runs it on the oldest gevent we support
(``gevent-oldest``) as well as the newest, below the upper pin of ``setup.cfg``.
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

from gevent import pywsgi

__all__ = ["HandlerAdapter", "PRIVATE_NAMES"]

#: The private pywsgi names used below (checked by the tests on each gevent).
PRIVATE_NAMES = ("_handle_client_error", "_orig_status")


class HandlerAdapter(pywsgi.WSGIHandler):  # type: ignore[misc]
    """pywsgi's handler with named hooks instead of its private ones."""

    def refuse_client_error(self, error: Exception) -> Optional[Tuple[str, bytes]]:
        """A request failed before the app (a timeout, bad headers): ``(status, response)``
        to send instead of pywsgi's own answer, or None for pywsgi's."""
        return None

    def _handle_client_error(self, ex: Exception) -> Any:  # pywsgi's private hook
        refusal = self.refuse_client_error(ex)
        return refusal if refusal is not None else super()._handle_client_error(ex)

    def record_response(self, code: int, phrase: str, length: int) -> None:
        """The handler wrote a response itself: what the access log says of it."""
        self.code = code
        self._orig_status = f"{code} {phrase}"  # what pywsgi's log line prints
        self.status = self._orig_status.encode("latin-1")
        self.response_length = length

    def release(self, name: str) -> Any:
        """Drop the attribute ``name`` of this handler (the request's headers, its environ)
        and return it, or None: what a socket does not need is freed for its lifetime."""
        return self.__dict__.pop(name, None)
