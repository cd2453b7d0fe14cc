"""The ClusterWS facade: validate the options, then run one process or a cluster."""
from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any, Callable, Dict, List, Optional

from . import registry
from .enums import Mode
from .exceptions import OptionTypeError
from .flask_ext import FlaskSupport, is_flask_app
from .log import make_log
from .options import Options, camel_case
from .typing import Data

__all__ = ["ClusterWS"]

# The layers below serve a Flask app through this (registry.AppSupport): they never import flask_ext.
registry.app_support = FlaskSupport()

_TOP_LEVEL = [f.name for f in dataclasses.fields(Options)]
_SEED_NAMES = {camel_case(name): name for name in _TOP_LEVEL}


def _signature() -> inspect.Signature:
    """``ClusterWS(worker=None, *, port=None, ...)``: one keyword per top-level option of
    ``options.py``, derived, so that adding an option there is the only step."""
    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for name in _TOP_LEVEL:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if name == "worker" else inspect.Parameter.KEYWORD_ONLY
        parameters.append(inspect.Parameter(name, kind, default=None))
    parameters.append(inspect.Parameter("seed_options", inspect.Parameter.VAR_KEYWORD, annotation="Any"))
    return inspect.Signature(parameters)


class ClusterWS:
    """A ClusterWS server: WebSockets with events, channels and middleware, and
    optionally a Flask app, on one port.

    ``ClusterWS(worker=worker, app=flask_app, port=3000, mode=Mode.Single).run()``.
    Its keywords are the top-level options of ``options.py`` (``worker``, ``port``,
    ``host``, ``mode``, ``app``, the groups...), each described in ``docs/options.md``;
    the nested groups (``websocket_options``, ``logger_options``, ``tls_options``,
    ``scale_options``...) take a dict with snake_case or camelCase keys. The seed's
    camelCase keywords (``websocketOptions=...``) work too.

    Raises:
        OptionError: a bad option (the message names it), at construction.
    """

    def __init__(self, worker: Optional[Callable[[Any], Any]] = None, **options: Any) -> None:
        given: Dict[str, Any] = {"worker": worker}
        for key, value in options.items():
            name = key if key in _TOP_LEVEL else _SEED_NAMES.get(key)
            if name is None:
                raise OptionTypeError(key, f"unknown option; valid options: {', '.join(_TOP_LEVEL)}")
            if given.get(name) is not None:
                raise OptionTypeError(name, f"given twice (as {name} and {key})")
            given[name] = value
        self.options = Options(**{name: value for name, value in given.items() if value is not None})
        if hasattr(self.options.app, "extensions") and is_flask_app(self.options.app):
            self.options.app.extensions["clusterws"] = self

    __init__.__signature__ = _signature()  # type: ignore[attr-defined]

    @staticmethod
    def option_names() -> List[str]:
        """The keyword arguments ClusterWS takes (the top-level options)."""
        return list(_TOP_LEVEL)

    def init_app(self, app: Any) -> None:
        """Serve the Flask ``app`` on the same port (the Flask extension pattern).

        ``app.extensions["clusterws"]`` is set to this ClusterWS, so a view can publish with
        ``current_app.extensions["clusterws"].publish(channel, data)``.
        """
        app.extensions["clusterws"] = self
        self.options = dataclasses.replace(self.options, app=app)

    # -- publishing from anywhere in a worker: a Flask view, a greenlet, a listener --------------

    def publish(self, channel: str, data: Data) -> None:
        """Publish ``data`` to every subscriber of ``channel``, on every worker (and every
        server joined by Redis or hubs). Call it in a worker process: from a Flask view, a
        listener or a greenlet. From any other process, use :class:`~clusterws_gevent.Emitter`.

        Raises:
            RuntimeError: no worker serves in this process.
            TypeError, ValueError: a bad channel name, or data JSON cannot carry.
        """
        self._worker().wss.publish(channel, data)

    def publish_to_workers(self, data: Data) -> None:
        """Send ``data`` to onWorkerMessage of every other worker (see :meth:`publish`)."""
        self._worker().wss.publish_to_workers(data)

    def history(self, channel: str, limit: Optional[int] = None) -> Any:
        """The channel's kept messages (``channel_options``), as ``wss.history``: an object with
        ``messages`` (``(offset, data)`` oldest first), ``offset`` and ``epoch``. A page rendered
        with them subscribes from that position (``subscribe(channel, {recover: true, since:
        {epoch, offset}})``) and misses nothing in between. Call it in a worker (see :meth:`publish`).

        Raises:
            RuntimeError: no worker serves in this process.
            Unavailable: the channel's owner (a broker, Redis) did not answer.
        """
        return self._worker().wss.history(channel, limit)

    def presence(self, channel: str) -> Dict[str, Any]:
        """``{socket id: {"user": ...}}`` of ``channel`` over every worker and server (``wss.presence``)."""
        presence: Dict[str, Any] = self._worker().wss.presence(channel)
        return presence

    def presence_stats(self, channel: str) -> Dict[str, int]:
        """``{"clients": n, "users": m}`` of ``channel`` (``wss.presence_stats``)."""
        stats: Dict[str, int] = self._worker().wss.presence_stats(channel)
        return stats

    def test_client(self, flask_test_client: Any = None, path: str = "/", headers: Any = None) -> Any:
        """A :class:`~clusterws_gevent.test_client.TestClient`: this ClusterWS's worker serves in
        the test's process, and the connection carries ``flask_test_client``'s cookies."""
        from .test_client import TestClient

        return TestClient(self, flask_test_client=flask_test_client, path=path, headers=headers)

    @staticmethod
    def _worker() -> Any:
        from .process.worker import current_worker

        worker = current_worker()
        if worker is None:
            raise RuntimeError("no ClusterWS worker serves in this process: publish from a view, a listener or a "
                               "greenlet of a worker, or from another process with clusterws_gevent.Emitter")
        return worker

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (blocks), then exit the process with its status."""
        sys.exit(self.serve())

    def serve(self) -> int:
        """Serve until SIGINT or SIGTERM (blocks); returns the exit status instead of exiting."""
        registry.running = self  # workers forked from here find it (app.extensions, publish)
        log = make_log(self.options.logger_options.logger, self.options.logger_options.log_level)
        if self.options.mode is Mode.Single:
            from .process.single import run_single

            return run_single(self.options, log)
        from .process.master import run_master

        status: int = run_master(self.options, log)
        return status
