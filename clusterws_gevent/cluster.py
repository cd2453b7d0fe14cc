"""The ClusterWS facade: validate the options, then run one process or a cluster."""
from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
from typing import Any, Callable, Dict, List, Optional

from . import registry
from .enums import Mode, Scaler
from .exceptions import OptionTypeError
from .flask_ext import FlaskSupport, is_flask_app
from .log import make_log
from .options import Options, camel_case
from .protocol.messages import encode_json
from .pubsub.channels import channel_name_error
from .typing import Data

__all__ = ["ClusterWS"]

# The layers below serve a Flask app through this (registry.AppSupport): they never import flask_ext.
registry.app_support = FlaskSupport()

_LOG = logging.getLogger("clusterws_gevent")
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
        #: The keywords given (the command line serves a module's ClusterWS with them, under its flags).
        self.given_options = {name: value for name, value in given.items() if value is not None}
        #: Publishes dropped because no worker served in this process and no Redis joins the workers.
        self.dropped_publishes = 0
        self._emitter: Any = None  # publishes through Redis from a process where no worker serves
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
        server joined by Redis or hubs): from a Flask view, a listener or a greenlet of a worker.

        In a process where no worker serves (a view under the app's own tests, a script that
        imports the app), it still does what a user expects: with ``Scaler.Redis``, the
        message goes through Redis (as :class:`~clusterws_gevent.Emitter` does); otherwise
        there is nobody to deliver it to: it is dropped, with a debug log line, and counted in
        :attr:`dropped_publishes`. A ``cws.test_client()`` serves the worker in the test's
        process (docs/from-flask-socketio.md, "Testing views that publish").

        Raises:
            TypeError, ValueError: a bad channel name, or data JSON cannot carry.
        """
        worker = self._current_worker()
        if worker is not None:
            worker.wss.publish(channel, data)
            return
        scale = self.options.scale_options
        if scale.scaler is Scaler.Redis and scale.redis is not None:
            if self._emitter is None:
                from .emitter import Emitter

                self._emitter = Emitter(scale.redis, scale.redis_prefix,
                                        self.options.websocket_options.max_channel_length, self.options.channel_options)
            self._emitter.publish(channel, data)
            return
        rule = channel_name_error(channel, self.options.websocket_options.max_channel_length)
        if rule is not None:
            raise (TypeError if not isinstance(channel, str) else ValueError)(f"channel {channel!r}: {rule}")
        encode_json(data)  # what a worker would refuse, refused here too
        self.dropped_publishes += 1
        _LOG.debug("publish to %r dropped: no worker serves in this process and no Redis joins the workers "
                   "(%d so far)", channel, self.dropped_publishes)

    def _shadowed(self) -> bool:
        """Whether the command line serves this process, not this ClusterWS (warned)."""
        if registry.command_line is None or registry.command_line is self:
            return False
        _LOG.warning("ClusterWS.run() ignored: `python -m clusterws_gevent` serves this app, with its own address "
                     "and workers; call run() under `if __name__ == \"__main__\":` to keep `python myapp.py` working")
        return True

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
    def _current_worker() -> Any:
        from .process.worker import current_worker

        return current_worker()

    @classmethod
    def _worker(cls) -> Any:
        worker = cls._current_worker()
        if worker is None:
            raise RuntimeError("no ClusterWS worker serves in this process: publish from a view, a listener or a "
                               "greenlet of a worker, or from another process with clusterws_gevent.Emitter")
        return worker

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM (blocks), then exit the process with its status.

        Under ``python -m clusterws_gevent`` (which imports the module that calls it) it does
        nothing but log a warning: the command line serves, with its own address and workers."""
        if self._shadowed():
            return
        sys.exit(self.serve())

    def serve(self) -> int:
        """Serve until SIGINT or SIGTERM (blocks); returns the exit status instead of exiting
        (0 at once under the command line, as :meth:`run`)."""
        if self._shadowed():
            return 0
        registry.running = self  # workers forked from here find it (app.extensions, publish)
        log = make_log(self.options.logger_options.logger, self.options.logger_options.log_level)
        if self.options.mode is Mode.Single:
            from .process.single import run_single

            return run_single(self.options, log)
        from .process.master import run_master

        status: int = run_master(self.options, log)
        return status
