"""The Worker: what the user's worker function gets (the seed's ``this``)."""
from __future__ import annotations

import os
import resource
import time
from typing import Any, Callable, Dict, List, Optional

from .. import registry
from ..exceptions import HaltServer
from ..loading import ImportFailed, resolve
from ..log import Log
from ..net.sockets import listen_tcp
from ..options import Options
from ..pubsub.connector import Connector
from ..websocket.server import WebSocketServer
from ..websocket.wsgi import ClusterWSServer
from .admin import install_admin
from .exits import APP_LOAD_ERROR, WORKER_BOOT_ERROR
from .metrics import install_operations

__all__ = ["Worker", "raise_open_files_limit", "current_worker", "server_info"]


_current: Optional[Worker] = None


def current_worker() -> Optional[Worker]:
    """The Worker serving in this process, or None (the master, another process)."""
    return _current


class Worker:
    """One worker process's servers.

    Attributes:
        id: the worker's number (1 in ``Mode.Single``).
        pid: the process id.
        wss: the WebSocket server (:class:`~clusterws_gevent.websocket.server.WebSocketServer`).
        server: the gevent WSGI server serving HTTP and WebSockets on the port.
        app: the Flask (WSGI) app served on the same port, or None.
        options: the validated options.

    Raises:
        HaltServer: the app cannot be imported (exit code APP_LOAD_ERROR).
    """

    def __init__(self, options: Options, log: Log, connector: Optional[Connector] = None,
                 listener: Any = None, worker_id: int = 1) -> None:
        self.id = worker_id
        self.pid = os.getpid()
        self.options = options
        self.log = log
        try:
            self.app = resolve(options.app)
        except ImportFailed as exc:
            raise HaltServer(str(exc), APP_LOAD_ERROR) from None
        self.wss = WebSocketServer(options.websocket_options, log, connector, options.channel_options)
        #: Called once the worker stopped (what the dashboard runs in this process).
        self.on_stop: List[Callable[[], None]] = []
        if registry.app_support.is_app(self.app):
            registry.app_support.install(self.app)
        if listener is None:
            listener = listen_tcp(options.host or "", int(options.port or 0))
        self.server = ClusterWSServer(listener, self.app, self.wss, options.websocket_options, log,
                                      ssl_context=options.tls_options, access_log=options.logger_options.access_log)
        install_operations(self, options.metrics_options)
        install_admin(self, options.admin_options, server_info(options))

    @property
    def url(self) -> str:
        """``http://host:port`` (https with TLS) where this worker listens."""
        host, port = self.server.address[:2]
        scheme = "https" if self.options.tls_options is not None else "http"
        return f"{scheme}://{host or '0.0.0.0'}:{port}"

    def start(self) -> None:
        """Run the worker function, then start serving.

        Raises:
            HaltServer: the worker function raised (exit code WORKER_BOOT_ERROR) or could not
                be imported (APP_LOAD_ERROR).
        """
        try:
            with registry.app_support.app_context(self.app):
                self.options.worker(self)
        except ImportFailed as exc:
            raise HaltServer(str(exc), APP_LOAD_ERROR) from None
        except Exception as exc:
            self.log.exception("worker function %r failed", self.options.worker)
            raise HaltServer(f"worker function failed: {exc!r}", WORKER_BOOT_ERROR) from exc
        global _current
        _current = self
        self.wss.start()
        self.server.start()

    def stop(self, timeout: float) -> None:
        """Stop accepting, let requests and handshakes in progress finish, close every
        WebSocket with 1001, stop: all within ``timeout`` seconds (graceful_timeout)."""
        deadline = time.monotonic() + timeout
        self.server.close()  # stop accepting; running connections go on
        if not self.server.wait_requests(timeout):
            self.log.warning("requests still in progress after %.1fs; stopping anyway", timeout)
        left = self.wss.close_all(1001, "server shutting down", max(0.0, deadline - time.monotonic()))
        if left:
            self.log.warning("%d socket(s) did not finish the close handshake within the graceful timeout "
                             "(%.1fs); dropped", left, timeout)
        self.server.stop(timeout=1)
        for cleanup in self.on_stop:
            cleanup()


def server_info(options: Options) -> Dict[str, Any]:
    """What the dashboard says of the server: its mode and what joins its workers."""
    scale = options.scale_options
    return {"mode": options.mode.name, "scaler": scale.scaler.name if options.mode.name == "Scale" else "none"}


def raise_open_files_limit(log: Log) -> None:
    """Raise the soft limit of open files to the hard limit: a server holds one per connection."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)
