"""clusterws_gevent: the ClusterWS realtime server for Flask on gevent.

WebSockets with events, channels (pub/sub) and middleware, wire-compatible with
the ClusterWS v4 clients, served with a Flask app on one port::

    from clusterws_gevent import ClusterWS, Mode

    def worker(w):
        @w.wss.on("connection")
        def connected(socket, environ):
            socket.on("hello", lambda data: socket.send("hello", data))

    ClusterWS(worker=worker, app=flask_app, port=3000, mode=Mode.Single).run()

This module imports neither ssl nor Flask, so that ``python -m clusterws_gevent``
can monkey-patch the standard library after importing it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .cluster import ClusterWS
from .enums import LogLevel, Middleware, Mode, ReadyState, Scaler
from .exceptions import (
    ClusterWSError,
    ConnectionClosedError,
    HandshakeError,
    IncorrectMessage,
    InvalidData,
    MessageTooBig,
    OptionError,
    OptionTypeError,
    OverCapacity,
    ProtocolError,
    Unavailable,
)
from .options import ChannelOptions, LoggerOptions, ScaleOptions, TLSOptions, WebSocketOptions

if TYPE_CHECKING:
    from .emitter import Emitter
    from .process.worker import Worker
    from .websocket.server import WebSocketServer
    from .websocket.socket import Socket

__version__ = "0.1.0"

__all__ = [
    "ClusterWS",
    "Emitter",
    "Worker",
    "Socket",
    "WebSocketServer",
    "Mode",
    "Scaler",
    "Middleware",
    "LogLevel",
    "ReadyState",
    "WebSocketOptions",
    "LoggerOptions",
    "TLSOptions",
    "ScaleOptions",
    "ChannelOptions",
    "ClusterWSError",
    "ConnectionClosedError",
    "HandshakeError",
    "IncorrectMessage",
    "InvalidData",
    "MessageTooBig",
    "OverCapacity",
    "OptionError",
    "OptionTypeError",
    "ProtocolError",
    "Unavailable",
]


_LAZY = {
    "Emitter": "clusterws_gevent.emitter",
    "Worker": "clusterws_gevent.process.worker",
    "Socket": "clusterws_gevent.websocket.socket",
    "WebSocketServer": "clusterws_gevent.websocket.server",
}


def __getattr__(name: str) -> object:
    # These import gevent (and Worker imports ssl): loaded on first use, so that the
    # sans-I/O modules stay free of gevent and monkey-patching can come after this import.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
