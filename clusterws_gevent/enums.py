"""Enumerations with the seed's member names and Python-style aliases.

``Mode.Single is Mode.SINGLE``: every alias is the same member, so compare
with ``is``.
"""
from __future__ import annotations

import enum
import logging

__all__ = ["Mode", "Scaler", "LogLevel", "Middleware", "ReadyState"]


class Mode(enum.Enum):
    """How many processes ClusterWS runs."""

    Single = "single"
    """One process, no broker; publish stays in the process."""
    Scale = "scale"
    """A master, ``workers`` worker processes and the brokers (the default)."""
    SINGLE = "single"
    SCALE = "scale"


class Scaler(enum.Enum):
    """What carries pub/sub between worker processes in ``Mode.Scale``."""

    Default = "default"
    """The built-in TCP brokers."""
    Redis = "redis"
    """A Redis server (one channel space for many machines)."""
    DEFAULT = "default"
    REDIS = "redis"


class LogLevel(enum.IntEnum):
    """Levels of the built-in logger, as the seed names them (values are :mod:`logging` levels)."""

    ALL = 1
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARN = logging.WARNING
    ERROR = logging.ERROR
    WARNING = logging.WARNING


class Middleware(enum.Enum):
    """The middleware kinds of ``wss.add_middleware``: the seed's six, and ``onPublish``."""

    verifyConnection = "verifyConnection"
    """``fn(info, next)``: accept or refuse an upgrade request."""
    onSubscribe = "onSubscribe"
    """``fn(socket, channel, next)``: accept or decline a subscription."""
    onUnsubscribe = "onUnsubscribe"
    """``fn(socket, channel)``: a socket left a channel."""
    onChannelOpen = "onChannelOpen"
    """``fn(channel)``: the first subscriber of a channel arrived in this process."""
    onChannelClose = "onChannelClose"
    """``fn(channel)``: the last subscriber of a channel left this process."""
    onWorkerMessage = "onWorkerMessage"
    """``fn(message)``: a message from ``publish_to_workers`` of another worker."""
    onPublish = "onPublish"
    """``fn(socket, channel, message, next)``: allow (``next(True)``) or refuse (``next(False)``)
    a client's publish to a channel it is subscribed to; without it, every such publish goes out."""
    VERIFY_CONNECTION = "verifyConnection"
    ON_SUBSCRIBE = "onSubscribe"
    ON_UNSUBSCRIBE = "onUnsubscribe"
    ON_CHANNEL_OPEN = "onChannelOpen"
    ON_CHANNEL_CLOSE = "onChannelClose"
    ON_WORKER_MESSAGE = "onWorkerMessage"
    ON_PUBLISH = "onPublish"
    onMessageFromWorker = "onWorkerMessage"
    """The seed's older name of :attr:`onWorkerMessage`."""


class ReadyState(enum.IntEnum):
    """``socket.ready_state`` values, as the browser's ``WebSocket.readyState``."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3
