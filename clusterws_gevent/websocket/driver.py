"""Serving a connection after its handshake: one driver for every socket.

A connection is read in *steps* (``Connection.read_step``: read what the socket
has, handle what it completes, say WAIT, MORE or DONE). :func:`drive` runs steps
until the connection waits for bytes or has ended, the same way for every socket;
when it ended, it reports the close (``Connection.end``) and releases the app's
context. How a connection waits between steps is its :class:`ServeMode`, chosen
once per server from its engine (``Connection.serve_mode``):

- ``PARKED`` (the default engine, for every socket: plain, TLS, Flask): no greenlet
  while idle. An event-loop watcher on the file descriptor hands a readable socket
  to a runner greenlet (``net/runners.py``), which drives it until it waits again.
  A listener that blocks keeps its runner, so the socket's messages stay in order
  and no other socket waits.
- ``GREENLET`` (the gevent-websocket engine, which reads with blocking calls): the
  handler's greenlet drives the connection for its whole life.

A Flask socket's steps run inside the ``contextvars.Context`` its upgrade request
context was pushed in (:class:`Scope`), so ``flask.request``, ``session``, ``g``
and ``current_app`` are the same objects for the socket's whole life, with no
greenlet holding them; one runner drives a socket at a time, so the Context is
never entered twice at once. Its teardown hooks run once, after the close event.

Either way, :func:`drive` catches whatever a listener raises past the listener
guards (a ``BaseException`` such as ``gevent.Timeout``): logged, the connection is
reset and ends normally; only the exits of a greenlet or the process
(``GreenletExit``, ``SystemExit``, ``KeyboardInterrupt``) go on up, after that.
"""
from __future__ import annotations

import contextvars
from typing import Any, Callable, Optional

from gevent import get_hub
from greenlet import GreenletExit

from .. import registry
from ..net.fairness import ReadBudget
from ..net.loop_guard import on_loop
from ..net.runners import Runners
from .connection import DONE, WAIT, Connection, ServeMode

__all__ = ["Scope", "Lot", "start", "drive"]

#: What a driver lets go on up after ending the connection: a greenlet or the process exits.
_EXITS = (GreenletExit, SystemExit, KeyboardInterrupt)


class Scope:
    """The app's context a connection's messages are handled in (a Flask request context).

    Args:
        context: the ``contextvars.Context`` the app pushed its context in.
        held: what ``registry.app_support.hold()`` gave, to release when the socket ends.
    """

    __slots__ = ("context", "held")

    def __init__(self, context: contextvars.Context, held: Any) -> None:
        self.context = context
        self.held = held

    def trim(self) -> None:
        """The connection listeners ran: drop the request's caches they may have used."""
        registry.app_support.trim(self.held)

    def release(self) -> None:
        """The socket ended: pop the app's context (its teardown hooks run, once)."""
        held, self.held = self.held, None
        if held is not None:
            registry.app_support.release(held)


class Lot:
    """What every connection of one server shares: the runners, the mode and the
    callback that tells the server a connection finished (its load, for balancing).

    Args:
        mode: how connections wait between steps.
        runners: the runner greenlets of parked connections.
        on_finished: called once per connection, when it finished, in every mode.
    """

    __slots__ = ("mode", "runners", "on_finished")

    def __init__(self, mode: ServeMode, runners: Runners, on_finished: Callable[[], None]) -> None:
        self.mode = mode
        self.runners = runners
        self.on_finished = on_finished


def start(conn: Connection, sink: Any, lot: Lot) -> None:
    """Serve ``conn`` (its connection listeners ran), from its scope's context if it has
    one: in PARKED mode, drive it now, in this greenlet, and return once it waits for
    bytes; in GREENLET mode, return once it ended. The first steps read at once, so bytes
    that came with the request, or that OpenSSL decrypted ahead, are handled before the
    socket waits for its descriptor."""
    conn.sink = sink
    if conn.scope is not None:
        conn.scope.trim()
    if lot.mode is ServeMode.PARKED:
        conn.watcher = get_hub().loop.io(conn.sock.fileno(), 1)  # 1: readable
    _drove(conn, lot, drive(conn))


def _resume(conn: Connection, lot: Lot) -> None:
    """A runner's work: drive ``conn`` in its scope's context until it waits or ended."""
    scope = conn.scope
    _drove(conn, lot, scope.context.run(drive, conn) if scope is not None else drive(conn))


def _drove(conn: Connection, lot: Lot, waiting: bool) -> None:
    """After :func:`drive`: wait for the socket to be readable again, or let it go."""
    if waiting:
        conn.watcher.start(loop_on_readable, conn, lot)
        return
    watcher, conn.watcher = conn.watcher, None
    if watcher is not None:  # parked: the connection owns its socket
        watcher.close()
        conn.sock.close()
    conn.sink = None
    lot.on_finished()


@on_loop
def loop_on_readable(conn: Connection, lot: Lot) -> None:
    """Event-loop callback: bytes (or the end) arrived; a runner greenlet drives the socket."""
    conn.watcher.stop()
    lot.runners.run(_resume, conn, lot)


def drive(conn: Connection) -> bool:
    """Run read steps until ``conn`` waits for bytes (True) or ended (False: its close was
    reported and its scope released). See the module docstring for what it catches."""
    sink = conn.sink
    budget = ReadBudget()
    failure: Optional[BaseException] = None
    try:
        while True:
            result = conn.read_step(sink, budget)  # type: ignore[arg-type]
            if result == WAIT:
                return True
            if result == DONE:
                break
    except BaseException as exc:  # noqa: B036 - a socket's failure ends that socket only (see above)
        failure = exc
        if not isinstance(exc, GreenletExit):
            conn.log.exception("socket %s: handling a message failed; resetting the connection", conn.id)
        conn.abort("handling a message failed")
    try:
        conn.end(sink)  # type: ignore[arg-type]
    finally:
        if conn.scope is not None:
            conn.scope.release()
    if isinstance(failure, _EXITS):
        raise failure
    return False
