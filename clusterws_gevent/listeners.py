"""Listeners: adding them, and calling the application's code, the same way for a server
socket, the server, the pub/sub hub and the Python client."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

from .typing import Listener

__all__ = ["add_listener", "call_user_code"]


def add_listener(listeners: List[Listener], listener: Optional[Listener], what: str) -> Any:
    """Append ``listener`` to ``listeners`` and return it; without one, a decorator that does.

    Raises:
        TypeError: ``listener`` is not callable.
    """
    if listener is None:
        return lambda fn: add_listener(listeners, fn, what)
    if not callable(listener):
        raise TypeError(f"{what} must be callable, got {listener!r}")
    listeners.append(listener)
    return listener


def call_user_code(log: Any, fn: Callable[..., Any], args: Tuple[Any, ...], failed: str,
                   *failed_args: Any) -> Optional[Exception]:
    """Call ``fn(*args)``, the application's code (a listener, a middleware): an exception is
    logged with its traceback as ``failed % failed_args`` and stops there (the socket, the
    flush, the worker go on).

    Returns:
        the exception it raised, or None.
    """
    try:
        fn(*args)
    except Exception as exc:
        log.exception(failed, *failed_args)
        return exc
    return None
