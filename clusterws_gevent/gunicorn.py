"""gunicorn: ``gunicorn -k clusterws_gevent.gunicorn.Worker -w 4 myapp:app``.

:class:`Worker` is a gunicorn worker class (gunicorn's own gevent worker, whose
``run()`` serves with ours): each worker serves the Flask app ``myapp:app`` and the
WebSockets of the ``ClusterWS(app=app, worker=...)`` registered on it
(``app.extensions["clusterws"]``) on gunicorn's listening sockets, with gunicorn's
signals and logging:

- SIGTERM (and a reload's retirement of old workers, SIGHUP): stop accepting, let the
  requests in progress finish, close every WebSocket with 1001 within
  ``graceful_timeout``; SIGINT/SIGQUIT: gunicorn's quick shutdown.
- ``max_requests``: once served (WebSocket upgrades count as requests), the worker stops
  as on SIGTERM: each socket gets its close frame between two messages, never inside one.
- ``timeout``: the worker tells the arbiter it lives once a second from its event loop,
  so a listener that blocks the loop gets it killed (our ``worker_timeout``).
- Our log lines go to gunicorn's error log, access lines (``--access-logfile``) to its access log.

Workers are joined by the Redis scaler (``scale_options``: ``scaler``/``redis``), or by
brokers started from a server hook in the gunicorn configuration file::

    # gunicorn.conf.py
    from clusterws_gevent.gunicorn import start_brokers, stop_brokers
    on_starting = start_brokers
    on_exit = stop_brokers

``start_brokers`` forks, before any worker, a process that imports the app (for its
``scale_options.default.brokers`` and ``channel_options``) and runs our master with the
brokers alone (and the hub of ``horizontal_scale_options``): restarted when they die,
stopped when gunicorn stops. The cluster key that brokers and workers prove to each
other (mutual HMAC, as under our own master) is made in gunicorn's arbiter and inherited
by every worker it forks; the brokers' Unix sockets are in a directory only this user can
enter. Without either, each worker serves alone (and says so when there are several).
``docs/deployment.md`` lists which of our options gunicorn's settings replace.
"""
from __future__ import annotations

import dataclasses
import os
import secrets
import select
import shutil
import signal
import tempfile
import time
from typing import Any, Dict, List

import gevent
from gunicorn.sock import ssl_context
from gunicorn.workers.ggevent import GeventWorker

from .cluster import ClusterWS
from .enums import Mode, Scaler
from .log import make_log
from .net.sockets import Address
from .process.child import LINK_TIMEOUT, make_connector
from .process.master import Master
from .process.worker import Worker as ClusterWSWorker

__all__ = ["Worker", "start_brokers", "stop_brokers", "find_clusterws", "BROKERS_READY_TIMEOUT", "BROKERS_STOP_TIMEOUT"]

#: Seconds ``start_brokers`` waits for the brokers to serve.
BROKERS_READY_TIMEOUT = 30.0
#: Seconds ``stop_brokers`` waits for them to stop before killing them.
BROKERS_STOP_TIMEOUT = 15.0
# Set in gunicorn's arbiter by start_brokers; every worker it forks inherits it.
_brokers: Dict[str, Any] = {}


def find_clusterws(app: Any) -> ClusterWS:
    """The ClusterWS registered on the WSGI app gunicorn loaded (a Flask app's
    ``extensions["clusterws"]``, set by ``ClusterWS(app=app)``).

    Raises:
        RuntimeError: there is none.
    """
    cws = getattr(app, "extensions", {}).get("clusterws")
    if not isinstance(cws, ClusterWS):
        raise RuntimeError("clusterws_gevent.gunicorn.Worker serves a Flask app with a ClusterWS: "
                           "ClusterWS(app=app, worker=...) in the module gunicorn loads (myapp:app)")
    return cws


def _broker_addresses(directory: str, count: int) -> List[Address]:
    return [os.path.join(directory, f"broker-{index}.sock") for index in range(1, count + 1)]


class Worker(GeventWorker):
    """A gunicorn worker that serves a Flask app and its ClusterWS WebSockets (module docstring)."""

    alive: bool  # gunicorn's: False once told to stop

    def run(self) -> None:
        cws = find_clusterws(self.wsgi)
        log = make_log(cws.options.logger_options.logger or self.log.error_log,
                       cws.options.logger_options.log_level)
        options = dataclasses.replace(cws.options, mode=Mode.Scale,
                                      tls_options=ssl_context(self.cfg) if self.cfg.is_ssl else None)
        addresses: List[Address] = []
        if _brokers:
            addresses = _broker_addresses(_brokers["directory"], options.scale_options.default.brokers)
        elif options.scale_options.scaler is not Scaler.Redis and self.cfg.workers > 1:
            log.warning("worker %d: no Redis scaler and no brokers (gunicorn.conf.py: on_starting = start_brokers): "
                        "a publish reaches the sockets of the worker it was made in only", self.age)
        connector = (make_connector(options, _brokers.get("key", b""), log, self.age, addresses)
                     if addresses or options.scale_options.scaler is Scaler.Redis else None)
        for sock in self.sockets:
            sock.setblocking(True)
        worker = ClusterWSWorker(options, log, connector, listener=self.sockets[0], worker_id=self.age)
        worker.server.access_log = bool(self.cfg.accesslog)  # --access-logfile
        worker.server.access_logger = make_log(self.log.access_log)
        if self.cfg.workers > 1:
            worker.server.max_accept = 1  # spread connections over the workers, as gunicorn's own workers do
        extra = [self._serve_also(worker, sock, options) for sock in self.sockets[1:]]
        worker.start()
        if connector is not None and not connector.wait_connected(LINK_TIMEOUT):
            log.warning("worker %d: not every pub/sub link is up after %.0fs; serving anyway (links keep retrying)",
                        self.age, LINK_TIMEOUT)
        while self.alive:
            self.notify()
            if worker.server.requests_served >= self.max_requests:
                self.log.info("Autorestarting worker after current request.")
                self.alive = False
                break
            gevent.sleep(1.0)
        for server in extra:
            server.close()
        worker.stop(self.cfg.graceful_timeout)
        if connector is not None:
            connector.stop()

    @staticmethod
    def _serve_also(worker: ClusterWSWorker, sock: Any, options: Any) -> Any:
        """Another of gunicorn's listening sockets (``-b`` given twice): the same app and WebSockets."""
        from .websocket.wsgi import ClusterWSServer

        server = ClusterWSServer(sock, worker.app, worker.wss, options.websocket_options, worker.log,
                                 ssl_context=options.tls_options, access_log=worker.server.access_log)
        server.admin = worker.server.admin
        server.operations = worker.server.operations
        server.start()
        return server


def start_brokers(server: Any) -> None:
    """gunicorn's ``on_starting`` hook: fork the brokers' process (module docstring) and wait
    until its brokers serve.

    Raises:
        RuntimeError: they did not start within :data:`BROKERS_READY_TIMEOUT` seconds.
    """
    key = secrets.token_bytes(32)
    directory = tempfile.mkdtemp(prefix="clusterws-gunicorn-")  # 0700
    ready_r, ready_w = os.pipe()
    arbiter = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            code = _run_brokers(server, key, directory, ready_w, arbiter)
        except BaseException:  # noqa: B036 - a forked child never returns into gunicorn's code
            server.log.exception("clusterws brokers failed")
        finally:
            os._exit(code)
    os.close(ready_w)
    _brokers.update(key=key, directory=directory, pid=pid)
    try:
        readable, _, _ = select.select([ready_r], [], [], BROKERS_READY_TIMEOUT)
        if not readable or not os.read(ready_r, 1):
            stop_brokers(server)
            raise RuntimeError(f"the clusterws brokers did not start within {BROKERS_READY_TIMEOUT:.0f}s "
                               "(their log lines above say why)")
    finally:
        os.close(ready_r)


def _run_brokers(server: Any, key: bytes, directory: str, ready_w: int, arbiter: int) -> int:
    """In the forked process: gunicorn's arbiter state off, the app's options read, our
    master run with the brokers alone."""
    for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGQUIT, signal.SIGINT, signal.SIGTERM, signal.SIGTTIN,
                signal.SIGTTOU, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(sig, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    for listener in getattr(server, "LISTENERS", ()):
        listener.close()
    gevent.reinit()
    cws = find_clusterws(server.app.wsgi())
    log = make_log(cws.options.logger_options.logger or server.log.error_log, cws.options.logger_options.log_level)
    options = dataclasses.replace(cws.options, mode=Mode.Scale,
                                  scale_options=dataclasses.replace(cws.options.scale_options, scaler=Scaler.Default))
    master = Master(options, log, services_only=True, key=key, parent_pid=arbiter)
    master.broker_addresses = list(_broker_addresses(directory, options.scale_options.default.brokers))

    def serving() -> None:
        os.write(ready_w, b"R")
        os.close(ready_w)

    master.on_serving = serving
    return master.run()


def stop_brokers(server: Any) -> None:
    """gunicorn's ``on_exit`` hook: stop the brokers (gunicorn's workers are gone by then)."""
    pid = _brokers.pop("pid", None)
    directory = _brokers.pop("directory", None)
    _brokers.clear()
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + BROKERS_STOP_TIMEOUT
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                break
            time.sleep(0.05)
        else:
            server.log.error("the clusterws brokers (PID %d) did not stop in time; killing them", pid)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # reaped by gunicorn's arbiter already
    except ProcessLookupError:
        pass
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)

