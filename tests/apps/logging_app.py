"""A worker and loggers for the logger_options tests."""
import logging
import sys

from apps.basic import worker  # noqa: F401


class SeedStyleLogger:
    """Not a logging.Logger: debug/info/warn/error methods only, as a Node logger."""

    def _write(self, level, message):
        sys.stdout.write(f"SEEDLOG {level} {message}\n")
        sys.stdout.flush()

    def debug(self, message):
        self._write("debug", message)

    def info(self, message):
        self._write("info", message)

    def warn(self, message):
        self._write("warn", message)

    def error(self, message):
        self._write("error", message)


seed_logger = SeedStyleLogger()

std_logger = logging.getLogger("myapp.realtime")
_handler = logging.StreamHandler(sys.stdout)
_handler.setFormatter(logging.Formatter("STDLOG %(levelname)s %(name)s %(message)s"))
std_logger.addHandler(_handler)
std_logger.setLevel(logging.DEBUG)
std_logger.propagate = False
