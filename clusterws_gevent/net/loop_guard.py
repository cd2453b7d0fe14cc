"""Code that runs on the event loop must never block or switch greenlets: a naming rule and a check.

Watcher, timer and ``run_callback`` callbacks run in gevent's hub, the greenlet that
runs the event loop. While one runs nothing else does: it must not wait for I/O, sleep,
take a lock or call the application's code (any of which switches greenlets, or raises
``BlockingSwitchOutError`` in the hub), or it stalls every socket of the worker. So:

- such functions are named ``loop_...`` (``Outbox.loop_on_writable``,
  ``driver.loop_on_readable``, ``Connection.loop_close_timed_out``,
  ``IterationBatches.loop_flush``, ``Master.loop_child_exited``) and decorated with
  :func:`on_loop`;
- the one switch they may make on purpose, handing a readable socket to a runner
  greenlet, goes through :func:`hand_off`.

With ``CLUSTERWS_LOOP_GUARD=1`` in the environment when this module is imported (the
test suite sets it, for its own process and every server it starts), :func:`on_loop`
watches each call: a greenlet switch it makes (seen by ``greenlet.settrace``) other than
through :func:`hand_off`, and an exception escaping it (``BlockingSwitchOutError``, which
gevent raises when code in the hub tries to wait, among them), are recorded in
:data:`violations` and written to stderr as ``LOOP GUARD: ...``; the test suite fails a
test on either. Otherwise :func:`on_loop` returns the function unchanged: it costs
nothing in production.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, List, Optional, TypeVar

import greenlet

__all__ = ["on_loop", "hand_off", "violations", "ENABLED"]

#: Whether callbacks are watched (``CLUSTERWS_LOOP_GUARD=1`` at import).
ENABLED = os.environ.get("CLUSTERWS_LOOP_GUARD", "") not in ("", "0")
#: What the guard saw: one line per switch a loop callback made.
violations: List[str] = []

F = TypeVar("F", bound=Callable[..., Any])
_running: Optional[str] = None  # the loop callback running now (None: none, or a hand-off)
_installed = False
_previous: Any = None


def on_loop(fn: F) -> F:
    """Mark ``fn`` as an event-loop callback (see the module docstring)."""
    if not ENABLED:
        return fn
    name = fn.__qualname__

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        global _running
        _install()
        outer, _running = _running, name
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            _report(f"{name} raised {exc!r} on the event loop")
            raise
        finally:
            _running = outer

    return guarded  # type: ignore[return-value]


def hand_off(target: Any, *args: Any) -> Any:
    """Switch to the greenlet ``target`` on purpose, from a loop callback (a runner taking a socket)."""
    global _running
    saved, _running = _running, None
    try:
        return target.switch(*args)
    finally:
        _running = saved


def _install() -> None:
    global _installed, _previous
    if not _installed:
        _installed = True
        _previous = greenlet.settrace(_trace)


def _trace(event: str, args: Any) -> None:
    if _running is not None and event in ("switch", "throw"):
        origin, target = args
        _report(f"{_running} switched greenlets on the event loop ({origin!r} -> {target!r})")
    if _previous is not None:
        _previous(event, args)


def _report(line: str) -> None:
    violations.append(line)
    sys.stderr.write(f"LOOP GUARD: {line}\n")
