"""Loggers: the built-in one, and an adapter for any object with
debug/info/warning (or warn)/error methods.

Code in this package logs with ``%``-style arguments, as :mod:`logging` does.
A :class:`logging.Logger` gets them as they are; any other logger (structlog,
loguru, a seed-style object) gets the formatted message.
"""
from __future__ import annotations

import logging
import sys
import time
import traceback
from typing import Any, Dict, Optional, Tuple

from .enums import LogLevel
from .quoting import quote

__all__ = ["LOGGER_NAME", "Log", "make_log", "quote", "REFUSAL_INTERVAL"]

LOGGER_NAME = "clusterws_gevent"
#: Seconds between two log lines of the same kind of refusal (the others are counted).
REFUSAL_INTERVAL = 1.0


class Log:
    """The logger this package writes to, whatever the user gave.

    Args:
        target: a ``logging.Logger`` or any object with debug/info/warning
            (or warn)/error methods.
    """

    __slots__ = ("target", "_std", "debug_enabled", "_refused_at", "_held")

    def __init__(self, target: Any) -> None:
        self.target = target
        self._std = isinstance(target, (logging.Logger, logging.LoggerAdapter))
        #: Cached, so that hot paths skip building debug messages (websockets' ``self.debug``).
        self.debug_enabled = target.isEnabledFor(logging.DEBUG) if self._std else True
        self._refused_at: Dict[str, float] = {}  # by kind of refusal: when it was last logged
        self._held: Dict[str, int] = {}  # by kind: refusals not logged since

    def _emit(self, method: str, msg: str, args: Tuple[Any, ...], exc_info: bool = False) -> None:
        if self._std:
            getattr(self.target, method)(msg, *args, exc_info=exc_info)
            return
        text = msg % args if args else msg
        if exc_info:
            text += "\n" + traceback.format_exc().rstrip()
        fn = getattr(self.target, method, None)
        if fn is None and method == "warning":
            fn = self.target.warn
        assert fn is not None  # checked by the logger_options validator
        fn(text)

    def debug(self, msg: str, *args: Any) -> None:
        """Log at debug level."""
        if self.debug_enabled:
            self._emit("debug", msg, args)

    def info(self, msg: str, *args: Any) -> None:
        """Log at info level."""
        self._emit("info", msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        """Log at warning level."""
        self._emit("warning", msg, args)

    def error(self, msg: str, *args: Any) -> None:
        """Log at error level."""
        self._emit("error", msg, args)

    def exception(self, msg: str, *args: Any) -> None:
        """Log at error level with the traceback of the exception being handled."""
        self._emit("error", msg, args, exc_info=True)

    def refusal(self, kind: str, msg: str, *args: Any) -> None:
        """Log a refusal (a warning) of ``kind`` (its rule) at most once per
        :data:`REFUSAL_INTERVAL`; the line says how many more came meanwhile. A flood of
        refusals costs a line a second, not a line each."""
        now = time.monotonic()
        last = self._refused_at.get(kind)
        if last is not None and now - last < REFUSAL_INTERVAL:
            self._held[kind] = self._held.get(kind, 0) + 1
            return
        self._refused_at[kind] = now
        held = self._held.pop(kind, 0)
        if held:
            msg += " (and %d more %s refusal(s) in the last %.1fs)"
            args += (held, kind, now - (last or now))
        self._emit("warning", msg, args)


def make_log(logger: Any = None, level: LogLevel = LogLevel.INFO) -> Log:
    """The :class:`Log` for ``logger_options``: the given logger as it is, or the
    built-in ``clusterws_gevent`` logger at ``level``, with a stderr handler
    unless the application configured one (as Flask's ``create_logger``)."""
    if logger is not None:
        return Log(logger)
    builtin = logging.getLogger(LOGGER_NAME)
    builtin.setLevel(int(level))
    if not _has_handler(builtin):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
        builtin.addHandler(handler)
    return Log(builtin)


def _has_handler(logger: Optional[logging.Logger]) -> bool:
    while logger is not None:
        if logger.handlers:
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False
