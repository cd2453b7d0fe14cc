"""Every option of ClusterWS, declared once.

Each option is a dataclass field whose metadata holds its seed (camelCase)
name, its command-line flag, its validator and its description. The
constructor's validation (:meth:`OptionGroup.coerce`), the command line
(``cli.py``) and ``docs/options.md`` (``python scripts/gen_options_doc.py``)
all read these declarations.

The nesting is the seed's: ``websocket_options``, ``logger_options``,
``tls_options`` and ``scale_options`` (with ``default`` and its
``horizontal_scale_options``). Keys of a nested dict may be written snake_case
or camelCase (``ws_path`` or ``wsPath``). A bad option fails at construction
with one :class:`~clusterws_gevent.exceptions.OptionError` naming it.
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Dict, Iterator, Mapping, Optional, Tuple, Type, TypeVar, Union

from .engine_names import DEFAULT_ENGINE, ENGINE_ALIASES, ENGINES, canonical_engine
from .enums import LogLevel, Mode, Scaler
from .exceptions import OptionError, OptionTypeError
from .tls import server_context

__all__ = [
    "OptionGroup",
    "WebSocketOptions",
    "LoggerOptions",
    "TLSOptions",
    "MasterTLSOptions",
    "MasterOptions",
    "HorizontalScaleOptions",
    "DefaultScalerOptions",
    "ScaleOptions",
    "MetricsOptions",
    "AdminOptions",
    "ChannelOptions",
    "NamespaceOptions",
    "ChannelPolicy",
    "Options",
    "camel_case",
    "iter_settings",
]

Validator = Callable[[str, Any], Any]
G = TypeVar("G", bound="OptionGroup")


def camel_case(name: str) -> str:
    """``ws_path`` -> ``wsPath``."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def option(default: Any = dataclasses.MISSING, *, validator: Optional[Validator] = None, help: str,
           cli: Optional[str] = "", camel: Optional[str] = None, metavar: Optional[str] = None,
           default_factory: Any = dataclasses.MISSING, show_default: Optional[str] = None,
           inner: Optional[Type[OptionGroup]] = None, cli_prefix: str = "", kind: Optional[str] = None,
           short: Optional[str] = None) -> Any:
    """Declare one option: a dataclass field with its metadata.

    Args:
        validator: ``fn(dotted_name, value) -> value``; raises OptionError.
        help: one sentence for the docs and ``--help``.
        cli: the flag; "" derives ``--the-name``, None means no flag.
        camel: the seed's name when ``camel_case(name)`` is not it.
        show_default: how the docs show the default, when ``repr`` does not say it well.
        inner: the group a dict value is read as (its options get flags too).
        cli_prefix: prefix of the inner group's flags (``master-`` -> ``--master-certfile``).
        kind: how its flag reads a value (``KINDS``); by default its validator's kind, else "str".
        short: a short flag too (``-w``), as gunicorn's.
    """
    kind = kind or KIND_OF_VALIDATOR.get(validator, "str")  # type: ignore[arg-type]
    assert kind in KINDS, kind
    choices = getattr(validator, "choices", None)
    metavar = metavar or ("|".join(choices) if choices else None)
    metadata = {"validator": validator, "help": help, "cli": cli, "camel": camel, "metavar": metavar,
                "show_default": show_default, "inner": inner, "cli_prefix": cli_prefix, "kind": kind,
                "short": short}
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def group(cls: Type[OptionGroup], *, help: str, camel: Optional[str] = None) -> Any:
    """Declare a nested group of options."""
    return field(default=None, metadata={"group": cls, "help": help, "camel": camel, "cli": None, "cli_prefix": ""})


# ---- validators: pure functions of (dotted name, value) -------------------------------------


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionTypeError(name, f"must be an integer, got {value!r}")
    if value <= 0:
        raise OptionError(name, f"must be positive, got {value}")
    return value


def _positive_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionTypeError(name, f"must be a number, got {value!r}")
    if value <= 0:
        raise OptionError(name, f"must be positive, got {value}")
    return float(value)


def _port(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionTypeError(name, f"must be an integer port, got {value!r}")
    if not 0 <= value <= 65535:
        raise OptionError(name, f"must be a port number 0-65535, got {value}")
    return value


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionTypeError(name, f"must be an integer, got {value!r}")
    if value < 0:
        raise OptionError(name, f"must be 0 or more, got {value}")
    return value


def _int_between(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise OptionTypeError(name, f"must be an integer, got {value!r}")
    if not low <= value <= high:
        raise OptionError(name, f"must be {low}-{high}, got {value}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise OptionTypeError(name, f"must be True or False, got {value!r}")
    return value


def _optional_str(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise OptionTypeError(name, f"must be a string, got {value!r}")
    return value


def _ws_path(name: str, value: Any) -> Optional[str]:
    path = _optional_str(name, value)
    if path is not None and not path.startswith("/"):
        raise OptionError(name, f"must start with '/', got {path!r}")
    return path


def _origins(name: str, value: Any) -> Union[None, str, Tuple[str, ...]]:
    if value is None or value == "*":
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, bytes) or not hasattr(value, "__iter__"):
        raise OptionTypeError(name, f"must be '*' or a list of origins, got {value!r}")
    origins = tuple(value)
    if origins == ("*",):  # the command line gives a list
        return "*"
    for origin in origins:
        if not isinstance(origin, str) or not re.match(r"^https?://[^/]+$", origin):
            raise OptionError(name, f"origins are 'scheme://host[:port]' (no path), got {origin!r}")
    return tuple(origin.lower() for origin in origins)


def _prefix(name: str, value: Any) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str) or not re.match(r"^[A-Za-z0-9_.-]{1,64}$", value):
        raise OptionError(name, f"must be 1-64 letters, digits, '_', '.' or '-', got {value!r}")
    return value


def _callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise OptionTypeError(name, f"must be callable, got {value!r}")
    return value


def _engine(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise OptionTypeError(name, f"must be an engine name, got {value!r}")
    try:
        return canonical_engine(value)
    except KeyError:
        valid = ", ".join(sorted(ENGINES)) + " (seed names: " + ", ".join(sorted(ENGINE_ALIASES)) + ")"
        raise OptionError(name, f"unknown engine {value!r}; available: {valid}") from None


def _choice(*choices: str) -> Validator:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise OptionError(name, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
        return str(value)
    check.choices = choices  # type: ignore[attr-defined]  # the flag's metavar
    return check


def _enum(enum_cls: Any) -> Validator:
    def check(name: str, value: Any) -> Any:
        if isinstance(value, enum_cls):
            return value
        if isinstance(value, str):
            prefix = enum_cls.__name__ + "."
            if value.lower().startswith(prefix.lower()):  # "Mode.Single", as the Python code spells it
                value = value[len(prefix):]
            for member_name, member in enum_cls.__members__.items():
                if member_name.lower() == value.lower() or str(member.value).lower() == value.lower():
                    return member
        members = dict.fromkeys(enum_cls.__members__.values())
        valid = " or ".join(f"{m.name.lower()} ({enum_cls.__name__}.{m.name})" for m in members)
        raise OptionError(name, f"must be {valid}, got {value!r}")
    # the flag's metavar and spelling: each member once, by its seed name (single|scale)
    check.choices = tuple(m.name.lower() for m in dict.fromkeys(enum_cls.__members__.values()))  # type: ignore
    return check


def _log_level(name: str, value: Any) -> LogLevel:
    if isinstance(value, int) and not isinstance(value, bool) and not isinstance(value, LogLevel):
        for level in LogLevel:
            if level.value == value:
                return level
        raise OptionError(name, f"unknown log level {value}")
    result: LogLevel = _enum(LogLevel)(name, value)
    return result


def _logger(name: str, value: Any) -> Any:
    if value is None:
        return None
    missing = [m for m in ("debug", "info", "error") if not callable(getattr(value, m, None))]
    if not callable(getattr(value, "warning", None)) and not callable(getattr(value, "warn", None)):
        missing.append("warning")
    if missing:
        raise OptionTypeError(name, f"a logger needs debug/info/warning (or warn)/error methods; "
                                    f"{value!r} lacks {', '.join(missing)}")
    return value


def _ports(name: str, value: Any) -> Optional[Tuple[int, ...]]:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise OptionTypeError(name, f"must be a list of ports, got {value!r}")
    ports = tuple(value)
    for index, port in enumerate(ports):
        _port(f"{name}[{index}]", port)
    return ports


def _urls(name: str, value: Any) -> Tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise OptionTypeError(name, f"must be a list of ws:// or wss:// URLs, got {value!r}")
    urls = tuple(value)
    for url in urls:
        if not isinstance(url, str) or not re.match(r"^wss?://[^/:]+(:\d+)?/?$", url):
            raise OptionError(name, f"must hold ws://host:port or wss://host:port URLs, got {url!r}")
    return urls


def _redis(name: str, value: Any) -> Union[None, str, Dict[str, Any]]:
    if value is None:
        return None
    if isinstance(value, str):
        if value.startswith("redis+cluster://"):
            if not re.match(r"^redis\+cluster://([^@/]*@)?[^/,@]+:\d+(,[^/,@]+:\d+)*/?(\?.*)?$", value):
                raise OptionError(name, f"a cluster URL is redis+cluster://[user:password@]h1:p1,h2:p2[/?options], "
                                        f"got {value!r}")
            _needs_sharded_pubsub(name)
            return value
        if not re.match(r"^(redis|rediss|unix|redis\+sentinel)://", value):
            raise OptionError(name, f"must be a redis://, rediss://, unix://, redis+sentinel:// or redis+cluster:// "
                                    f"URL, got {value!r}")
        return value
    if isinstance(value, Mapping):
        if "startup_nodes" in value:
            _needs_sharded_pubsub(name)
        return dict(value)
    raise OptionTypeError(name, f"must be a redis URL or redis-py connection kwargs, got {value!r}")


def _needs_sharded_pubsub(name: str) -> None:
    """A Redis Cluster is used through shard channels: redis-py 5.0 has them (SSUBSCRIBE)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("redis").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return  # not installed (it fails later, saying so) or a development version
    if major < 5:
        raise OptionError(name, f"a Redis Cluster needs redis-py >= 5.0 (sharded pub/sub), found {version('redis')}")


def _existing_file(name: str, value: Any) -> Optional[str]:
    path = _optional_str(name, value)
    if path is not None and not os.path.isfile(path):
        raise OptionError(name, f"no such file: {path!r}")
    return path


def _pem_or_path(name: str, value: Any) -> Optional[str]:
    """The seed passes PEM contents (Node's ``key``/``cert``); a path works too."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii")
    if not isinstance(value, str):
        raise OptionTypeError(name, f"must be PEM text or a file path, got {type(value).__name__}")
    if "-----BEGIN" in value:
        return str(value)
    return _existing_file(name, value)


#: How a flag reads its value: "bool" is a --flag/--no-flag pair; "ints" and "strs" are
#: comma-separated lists; "object" is ``module:object``, imported at start; "app" is
#: ``module:app``, imported where it is served (each worker, after fork, unless preloaded);
#: the rest take one value of that type ("str" goes to the validator as it is).
KINDS = ("bool", "int", "float", "ints", "strs", "str", "object", "app")

#: The kind of the options a validator checks (an option may say its own).
KIND_OF_VALIDATOR: Dict[Validator, str] = {
    _bool: "bool", _positive_int: "int", _port: "int", _positive_number: "float", _ports: "ints",
    _urls: "strs", _origins: "strs", _non_negative_int: "int",
}


# ---- groups ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionGroup:
    """Base of the option groups: validates every field at construction."""

    #: The dotted prefix of this group's options (``websocket_options.``), set from where
    #: the group sits in :class:`Options` (``_set_paths``), for error messages.
    _path: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            name = self._path + f.name
            nested = f.metadata.get("group")
            if nested is not None:
                value = nested.coerce(name, value)
            elif f.metadata.get("validator") is not None:
                value = f.metadata["validator"](name, value)
            object.__setattr__(self, f.name, value)
        self._check()

    def _check(self) -> None:
        """Checks across fields; raise OptionError."""

    @classmethod
    def coerce(cls: Type[G], name: str, value: Any) -> G:
        """``value`` (None, a dict with snake_case or camelCase keys, or an instance) as ``cls``."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls(**cls.normalize_keys(name, value))
        raise OptionTypeError(name, f"must be a dict or {cls.__name__}, got {type(value).__name__}")

    @classmethod
    def normalize_keys(cls, name: str, mapping: Mapping[str, Any]) -> Dict[str, Any]:
        """``mapping`` with the seed's camelCase keys turned into field names."""
        by_key: Dict[str, str] = {}
        for f in fields(cls):
            by_key[f.name] = f.name
            by_key[f.metadata.get("camel") or camel_case(f.name)] = f.name
        result: Dict[str, Any] = {}
        for key, value in mapping.items():
            field_name = by_key.get(key)
            if field_name is None:
                valid = ", ".join(f.name for f in fields(cls))
                raise OptionError(f"{name}.{key}", f"unknown option; valid options of {name}: {valid}")
            if field_name in result:
                raise OptionError(f"{name}.{field_name}", "given twice (snake_case and camelCase)")
            result[field_name] = value
        return result


@dataclass(frozen=True)
class WebSocketOptions(OptionGroup):
    """``websocket_options``: the WebSocket engine and its limits."""


    engine: str = option(DEFAULT_ENGINE, validator=_engine, help=(
        "WebSocket engine: 'builtin' (websockets' sans-I/O core on greenlets) or 'gevent-websocket' "
        "(the compatibility engine); the seed's '@clusterws/ws' and 'ws' mean 'builtin'."))
    ws_path: Optional[str] = option(None, validator=_ws_path, help=(
        "Accept WebSocket upgrades only on this path (others get HTTP 404); None accepts any path."))
    auto_ping: bool = option(True, validator=_bool, help=(
        "Send the app-level ping (binary 0x39) every ping_interval and drop sockets that do not answer."))
    ping_interval: int = option(20000, validator=_positive_int, metavar="MS", help=(
        "Milliseconds between app-level pings (as in the seed)."))
    send_configuration_message: bool = option(True, validator=_bool, help=(
        "Send [\"s\",\"c\",{autoPing, pingInterval}] to each client right after it connects."))
    max_message_size: int = option(1 << 20, validator=_positive_int, metavar="BYTES", help=(
        "Largest incoming message; a larger one closes the connection with 1009."))
    max_outbox_size: int = option(4 << 20, validator=_positive_int, metavar="BYTES", help=(
        "Bytes a socket may have waiting to be written beyond what the kernel holds; "
        "past it, outbox_overflow applies."))
    outbox_overflow: str = option("close", validator=_choice("close", "drop"), help=(
        "What a full outbox does: 'close' the slow socket (logged) or 'drop' the new message (logged)."))
    handshake_timeout: float = option(60.0, validator=_positive_number, metavar="SECONDS", help=(
        "Seconds a client has to finish its TLS handshake and send its HTTP request headers (and the idle time "
        "of a keep-alive connection): 60 s, as Node's headersTimeout and nginx's client_header_timeout. Not "
        "less: in a reconnect storm the kernel's listen queue overflows and clients resend their requests after "
        "1, 2, 4, 8, 16, 32 s (10 s dropped thousands of 19,900 clients at once, 30 s some)."))
    close_timeout: float = option(5.0, validator=_positive_number, metavar="SECONDS", help=(
        "Seconds to wait for the client to finish the close handshake before dropping the connection."))
    middleware_timeout: float = option(10.0, validator=_positive_number, metavar="SECONDS", help=(
        "Seconds verifyConnection and onSubscribe have to call next(); silence refuses (logged)."))
    allowed_origins: Union[None, str, Tuple[str, ...]] = option(None, validator=_origins, metavar="ORIGIN,ORIGIN",
                                                               show_default="same origin", help=(
        "Browser origins allowed to open a WebSocket (cross-site WebSocket hijacking): a list of "
        "'scheme://host[:port]', or '*' for any; by default only the page's own origin (Origin must match Host). "
        "Requests without an Origin header (non-browser clients) are accepted; a refused one gets 403."))
    client_path: Optional[str] = option("/clusterws.js", validator=_ws_path, metavar="PATH", help=(
        "Where the server serves its browser client (the same path ending in .mjs: the ES module, .d.ts: the "
        "TypeScript declarations); None does not serve it."))
    max_header_bytes: int = option(64 << 10, validator=_positive_int, metavar="BYTES", help=(
        "Largest total size of an HTTP request's header lines; a larger request gets 431."))
    max_channel_length: int = option(255, validator=_positive_int, metavar="BYTES", help=(
        "Longest channel name, in UTF-8 bytes; a longer one is refused (false in the subscribe reply)."))
    max_channels_per_socket: int = option(1000, validator=_positive_int, metavar="COUNT", help=(
        "Channels one socket may be subscribed to; past it, subscriptions are refused (false). A subscribe "
        "request naming more is refused whole, before it is decoded (the socket's error listener decides)."))
    max_message_memory: int = option(64 << 20, validator=_positive_int, metavar="BYTES", help=(
        "Bytes the incoming messages of all sockets of a worker may hold at once, being assembled, decoded "
        "and handled (a message's decoded size is estimated from its text); a message that does not fit "
        "closes its socket with 1013 (try again later)."))
    max_connections: int = option(10000, validator=_positive_int, metavar="COUNT", help=(
        "Connections (HTTP and WebSocket) a worker holds at once; past it, a new connection gets 503 with "
        "Retry-After. 10,000 idle sockets take 22 MiB, and a busy one up to its max_outbox_size: with the "
        "kernel's socket buffers, about what a 2 GiB worker holds safely; run more workers for more."))
    compression: bool = option(False, validator=_bool, help=(
        "Negotiate permessage-deflate (RFC 7692) with clients that offer it (every browser does), with no "
        "context takeover either way: each message is compressed alone, a broadcast once for all its "
        "subscribers, and a connection holds no zlib state between messages. The builtin engine only."))
    compression_level: int = option(1, validator=lambda n, v: _int_between(n, v, 1, 9), metavar="1-9", kind="int",
                                    help=(
        "zlib's level: 1 is fastest (chat-like JSON shrinks 3-10x at it already), 9 smallest."))
    compression_window_bits: int = option(15, validator=lambda n, v: _int_between(n, v, 9, 15), metavar="9-15",
                                          kind="int", help=(
        "Our compressor's window: 2**bits bytes back (a client may ask for less: server_max_window_bits)."))
    compression_threshold: int = option(256, validator=_non_negative_int, metavar="BYTES", help=(
        "Messages shorter than this go out uncompressed (the frame's header and deflate's own cost "
        "outweigh the saving)."))


@dataclass(frozen=True)
class LoggerOptions(OptionGroup):
    """``logger_options``: where logs go."""


    logger: Any = option(None, validator=_logger, metavar="MODULE:OBJECT", show_default="built-in", kind="object",
                         help=(
        "A logging.Logger or any object with debug/info/warning (or warn)/error; "
        "default: the 'clusterws_gevent' logger."))
    log_level: LogLevel = option(LogLevel.INFO, validator=_log_level, help=(
        "Level of the built-in logger: ALL, DEBUG, INFO, WARN or ERROR (ignored for a given logger)."))
    access_log: bool = option(False, validator=_bool, help=(
        "Log one line per HTTP request and WebSocket upgrade, in the common log format (pywsgi's), at info level."))


@dataclass(frozen=True)
class MetricsOptions(OptionGroup):
    """``metrics_options``: Prometheus metrics and the health check."""


    enabled: bool = option(False, validator=_bool, cli="--metrics", help=(
        "Serve Prometheus metrics at path, aggregated over every worker whichever answers the scrape "
        "(needs the metrics extra: pip install 'clusterws-gevent[metrics]')."))
    path: str = option("/metrics", validator=_ws_path, cli="--metrics-path", metavar="PATH",
                       help="Where the metrics are served.")
    health_path: Optional[str] = option("/healthz", validator=_ws_path, cli="--health-path", metavar="PATH", help=(
        "A health check: 200 while the worker serves and its pub/sub links are up, 503 otherwise; "
        "served even when metrics are off; None does not serve it."))


@dataclass(frozen=True)
class AdminOptions(OptionGroup):
    """``admin_options``: the live dashboard (``docs/deployment.md``, The dashboard)."""

    enabled: bool = option(False, validator=_bool, cli="--admin", help=(
        "Serve a live dashboard of every process at path: sockets, messages, deliveries, drops, links, "
        "top channels, and plots of the last 15 minutes. Needs a token, or an app whose before_request "
        "hooks protect it (they run for the dashboard's requests), or both."))
    path: str = option("/clusterws/admin", validator=_ws_path, cli="--admin-path", metavar="PATH",
                       help="Where the dashboard is served (its data and login under it).")
    token: Optional[str] = option(None, validator=_optional_str, cli="--admin-token", metavar="TOKEN", help=(
        "The dashboard's secret: sent as 'Authorization: Bearer TOKEN', or typed once into its login form "
        "(which sets a cookie). On the command line it shows in the process list: prefer -c FILE or "
        "$CLUSTERWS_CMD_ARGS."))

    def _check(self) -> None:
        if self.token is not None and len(self.token) < 16:
            raise OptionError(self._path + "token", "must be at least 16 characters (secrets.token_urlsafe())")


def _json_object(name: str, value: Any) -> Any:
    """A group given on the command line as JSON (``--channel-options '{...}'``)."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError as exc:
            raise OptionError(name, f"must be a JSON object: {exc}") from None
    return value


class ChannelPolicy:
    """What one channel has: the ``channel_options`` of its namespace over the defaults.

    Attributes:
        history_size: messages kept (0: no history).
        history_ttl: seconds they are kept after the channel's last publish.
        presence: who is subscribed is kept (``wss.presence``).
        join_leave: subscribers that asked for the extension are told who comes and goes.
    """

    __slots__ = ("history_size", "history_ttl", "presence", "join_leave")

    def __init__(self, history_size: int, history_ttl: float, presence: bool, join_leave: bool) -> None:
        self.history_size = history_size
        self.history_ttl = history_ttl
        self.presence = presence
        self.join_leave = join_leave and presence

    @property
    def history(self) -> bool:
        """Whether the channel keeps a history (its publishes get offsets)."""
        return self.history_size > 0 and self.history_ttl > 0

    def __repr__(self) -> str:
        return (f"<ChannelPolicy history {self.history_size} for {self.history_ttl:g}s, presence {self.presence}, "
                f"join_leave {self.join_leave}>")


@dataclass(frozen=True)
class NamespaceOptions(OptionGroup):
    """One namespace of ``channel_options["namespaces"]``: what it says overrides the defaults."""

    history_size: Optional[int] = option(None, validator=lambda n, v: None if v is None else _non_negative_int(n, v),
                                         cli=None, help="Messages kept per channel of the namespace.")
    history_ttl: Optional[float] = option(None, validator=lambda n, v: None if v is None else _positive_number(n, v),
                                          cli=None, help="Seconds a channel's history is kept after its last publish.")
    presence: Optional[bool] = option(None, validator=lambda n, v: None if v is None else _bool(n, v), cli=None,
                                      help="Keep who is subscribed to the namespace's channels.")
    join_leave: Optional[bool] = option(None, validator=lambda n, v: None if v is None else _bool(n, v), cli=None,
                                        help="Tell subscribers who comes and goes (needs presence).")


def _namespaces(name: str, value: Any) -> Dict[str, NamespaceOptions]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise OptionTypeError(name, f"must be a dict of namespace name to options, got {value!r}")
    result = {}
    for namespace, options in value.items():
        if not isinstance(namespace, str) or not namespace or ":" in namespace:
            raise OptionError(name, f"a namespace is a non-empty name without ':', got {namespace!r}")
        result[namespace] = NamespaceOptions.coerce(f"{name}.{namespace}", options)
    return result


@dataclass(frozen=True)
class ChannelOptions(OptionGroup):
    """``channel_options``: history, recovery and presence, per channel namespace.

    The top level is every channel's default; a channel named ``NS:rest`` takes
    ``namespaces[NS]`` over it.
    """

    history_size: int = option(0, validator=_non_negative_int, metavar="COUNT", help=(
        "Messages kept per channel for recovery and wss.history(); 0 keeps none (no offsets: the seed's "
        "behaviour and cost)."))
    history_ttl: float = option(300.0, validator=_positive_number, metavar="SECONDS", help=(
        "Seconds a channel's history is kept after its last publish; then it is dropped, with its epoch."))
    presence: bool = option(False, validator=_bool, help=(
        "Keep who is subscribed to each channel, over every worker and server (wss.presence())."))
    join_leave: bool = option(False, validator=_bool, help=(
        "Send join and leave events to the subscribers that asked for them (needs presence)."))
    namespaces: Dict[str, NamespaceOptions] = option(default_factory=dict, validator=_namespaces, cli=None, help=(
        "Options per namespace: a channel named NS:rest takes namespaces[NS] over the defaults."))
    max_history_bytes: int = option(64 << 20, validator=_positive_int, metavar="BYTES", help=(
        "Bytes the histories of one owner (the process, or a broker) may hold in all; past it, the channels "
        "published to least recently lose theirs (and their epoch)."))
    presence_ttl: float = option(60.0, validator=_positive_number, metavar="SECONDS", help=(
        "With Scaler.Redis: seconds a crashed worker's or server's sockets stay in presence (each worker "
        "refreshes its own well within it)."))

    def policy(self, channel: str) -> ChannelPolicy:
        """What ``channel`` has (its namespace's options over the defaults)."""
        namespace = channel.partition(":")[0] if ":" in channel else None
        cache: Dict[Optional[str], ChannelPolicy] = self.__dict__.setdefault("_policies", {})
        policy = cache.get(namespace)
        if policy is None:
            found = self.namespaces.get(namespace) if namespace is not None else None
            values = [getattr(found, name) if found is not None and getattr(found, name) is not None
                      else getattr(self, name) for name in ("history_size", "history_ttl", "presence", "join_leave")]
            policy = cache[namespace] = ChannelPolicy(*values)
        return policy

    @property
    def any_history(self) -> bool:
        """Whether some channel may keep a history."""
        return self.history_size > 0 or any(ns.history_size for ns in self.namespaces.values())

    @property
    def any_presence(self) -> bool:
        """Whether some channel may keep presence."""
        return self.presence or any(ns.presence for ns in self.namespaces.values())


@dataclass(frozen=True)
class TLSOptions(OptionGroup):
    """``tls_options`` as a dict: serves https:// and wss:// on the same port."""


    certfile: Optional[str] = option(None, validator=_existing_file, help="PEM certificate chain file.")
    keyfile: Optional[str] = option(None, validator=_existing_file, help="PEM private key file (default: in certfile).")
    password: Optional[str] = option(None, validator=_optional_str, cli="--tls-password",
                                     help="Password of the private key.")
    ca_certs: Optional[str] = option(None, validator=_existing_file, help="CA file to verify client certificates with.")
    cert: Optional[str] = option(None, validator=_pem_or_path, cli=None, help=(
        "The seed's 'cert': the certificate as PEM text (or a path)."))
    key: Optional[str] = option(None, validator=_pem_or_path, cli=None, help=(
        "The seed's 'key': the private key as PEM text (or a path)."))

    def _check(self) -> None:
        if not (self.certfile or self.cert):
            raise OptionError(self._path.rstrip("."), "needs certfile (or the seed's cert)")

    def ssl_context(self) -> Any:
        """A server ``ssl.SSLContext`` built from these options (``tls.server_context``).

        Raises:
            OptionError: the files or PEM texts do not load.
        """
        cert = self.certfile or self.cert
        assert cert is not None  # _check requires certfile or cert
        return server_context(cert, self.keyfile or self.key, self.password, self.ca_certs, self._path.rstrip("."))


def _tls_validator(group: Type[TLSOptions]) -> Validator:
    """A validator of TLS options: None, an ``ssl.SSLContext``, or ``group`` / a dict; gives an SSLContext."""
    def check(name: str, value: Any) -> Any:
        if value is None:
            return None
        ssl = sys.modules.get("ssl")  # not imported here: a given SSLContext means ssl is loaded
        if ssl is not None and isinstance(value, ssl.SSLContext):
            return value
        return group.coerce(name, value).ssl_context()
    return check


@dataclass(frozen=True)
class MasterTLSOptions(TLSOptions):
    """TLS of the scaler hub (``master_options.tls_options``)."""



@dataclass(frozen=True)
class MasterOptions(OptionGroup):
    """``master_options``: this server also runs the scaler hub."""


    port: Optional[int] = option(None, validator=_port, cli="--master-port",
                                 help="Port of the scaler hub this server runs (the brokers of every server join it).")
    tls_options: Any = option(None, validator=_tls_validator(MasterTLSOptions), cli=None, inner=MasterTLSOptions,
                              cli_prefix="master-",
                              help="TLS of the scaler hub: an ssl.SSLContext or a dict like tls_options.")

    def _check(self) -> None:
        if self.port is None:
            raise OptionError(self._path + "port", "is required when master_options is given")


@dataclass(frozen=True)
class HorizontalScaleOptions(OptionGroup):
    """``horizontal_scale_options``: joining servers on several machines through scaler hubs."""


    key: Optional[str] = option(None, validator=_optional_str, cli="--horizontal-key", help=(
        "Shared secret of the scaler hubs and every server that joins them."))
    scalers_urls: Tuple[str, ...] = option(default_factory=tuple, validator=_urls, cli="--scalers-urls",
                                           metavar="URL,URL", help=(
        "Scaler hubs to join: ws://host:port, or wss://host:port with TLS (our TCP protocol, not WebSocket)."))
    master_options: Optional[MasterOptions] = option(None, cli=None, inner=MasterOptions, validator=lambda n, v: (
        None if v is None else MasterOptions.coerce(n, v)), help="{port, tls_options}: run a scaler hub here too.")
    ca_certs: Optional[str] = option(None, validator=_existing_file, cli="--scalers-ca-certs", help=(
        "CA file to verify the hubs' certificates with (wss:// entries); default: the system's trust store."))

    def _check(self) -> None:
        if not self.key:
            raise OptionError(self._path + "key", "is required (a non-empty shared secret) when "
                                                  "horizontal_scale_options are given")
        if not self.scalers_urls and self.master_options is None:
            raise OptionError(self._path.rstrip("."), "needs scalers_urls, master_options or both")


@dataclass(frozen=True)
class DefaultScalerOptions(OptionGroup):
    """``scale_options["default"]``: the built-in brokers."""


    brokers: int = option(1, validator=_positive_int, help="Number of broker processes.")
    brokers_ports: Optional[Tuple[int, ...]] = option(None, validator=_ports, metavar="PORT,PORT",
                                                      show_default="private Unix sockets", help=(
        "Loopback ports of the brokers, one per broker; by default each broker listens on a Unix socket in "
        "a directory only this user can enter (no two apps collide, no other user can reach or squat it)."))
    horizontal_scale_options: Optional[HorizontalScaleOptions] = option(None, cli=None, inner=HorizontalScaleOptions,
                                                                        validator=lambda n, v: (
        None if v is None else HorizontalScaleOptions.coerce(n, v)), help="Scaling across machines.")

    def _check(self) -> None:
        if self.brokers_ports is not None and len(self.brokers_ports) != self.brokers:
            raise OptionError(self._path + "brokers_ports",
                              f"Number of broker ports is not the same as number of brokers "
                              f"({len(self.brokers_ports)} ports for {self.brokers} brokers)")


@dataclass(frozen=True)
class ScaleOptions(OptionGroup):
    """``scale_options``: processes of ``Mode.Scale``."""


    scaler: Scaler = option(Scaler.Default, validator=_enum(Scaler), help=(
        "What joins the workers: Scaler.Default (TCP brokers) or Scaler.Redis."))
    workers: int = option(1, validator=_positive_int, short="-w", help="Number of worker processes.")
    restart_on_fail: bool = option(False, validator=_bool, help="Restart a worker or broker that dies.")
    worker_timeout: float = option(30.0, validator=lambda n, v: 0.0 if v == 0 else _positive_number(n, v),
                                   kind="float", metavar="SECONDS", help=(
        "Kill a worker whose event loop gave no sign of life for this long (a listener stuck in "
        "CPU-bound code); 0 disables it. As gunicorn's timeout."))
    graceful_timeout: float = option(30.0, validator=_positive_number, metavar="SECONDS", help=(
        "Seconds a stopping worker has, in all, to finish requests in progress and close its WebSockets "
        "with 1001 (close_timeout is the wait for one client's close frame); then it is killed. As gunicorn's."))
    preload: bool = option(False, validator=_bool, help=(
        "Import the app and the worker function once, in the master, before forking (faster start, shared "
        "memory); by default each worker imports them after fork, so SIGHUP serves the code on disk. "
        "ClusterWS(...).run() from a script is preload by nature."))
    reload: bool = option(False, validator=_bool, help=(
        "Development: replace the workers (as on SIGHUP) when a source file they imported changes; in "
        "Mode.Single, the process restarts with the same command line."))
    balance: str = option("least-connections", validator=_choice("least-connections", "shared-socket",
                                                                  "reuseport"), help=(
        "How connections are spread over the workers: 'least-connections' (a worker accepts only while it "
        "holds no more than the least loaded one, plus one), 'shared-socket' (whichever worker accepts first), "
        "'reuseport' (a socket per worker, SO_REUSEPORT: the kernel hashes; connections queued on a stopping "
        "worker are lost)."))
    redis: Union[None, str, Dict[str, Any]] = option(None, validator=_redis, cli="--redis-url", metavar="URL", help=(
        "Redis of Scaler.Redis: redis://, rediss:// (TLS), unix://, redis+sentinel://h1:p1,h2:p2/db/service, "
        "redis+cluster://h1:p1,h2:p2 (a Redis Cluster: shard channels, Redis >= 7), or redis-py connection "
        "kwargs ({'startup_nodes': ['h1:p1', ...], ...} for a cluster)."))
    redis_prefix: Optional[str] = option(None, validator=_prefix, show_default="cws, or cws.dbN for database N", help=(
        "Namespace of our Redis channels: app channel X is <prefix>:c:X (<prefix>:c:{X} on a Redis Cluster), "
        "publish_to_workers <prefix>:w. Pub/sub "
        "ignores the database number, so the default holds it: two apps on two databases of one Redis never "
        "meet; give each app its own prefix on one database."))
    default: DefaultScalerOptions = group(DefaultScalerOptions, help="Options of the built-in brokers.")

    def _check(self) -> None:
        if self.scaler is Scaler.Redis:
            if self.redis is None:
                raise OptionError(self._path + "redis", "is required with Scaler.Redis")
            default = self.default
            if default.brokers != 1 or default.brokers_ports is not None or default.horizontal_scale_options:
                raise OptionError(self._path + "scaler", "Scaler.Redis joins workers without brokers: "
                                                         "scale_options.default (brokers, brokers_ports, "
                                                         "horizontal_scale_options) cannot be given with it")


@dataclass(frozen=True)
class Options(OptionGroup):
    """Every option of :class:`~clusterws_gevent.ClusterWS`, validated."""

    worker: Any = option(None, cli=None, help="The worker function, called with the Worker in every worker process.")
    port: Optional[int] = option(None, validator=_port, show_default="80, or 443 with TLS",
                                 help="Port of the HTTP and WebSocket server.")
    host: Optional[str] = option(None, validator=_optional_str, show_default="all interfaces",
                                 help="Address to listen on.")
    mode: Mode = option(Mode.Scale, validator=_enum(Mode), help="Mode.Single (one process) or Mode.Scale.")
    app: Any = option(None, validator=_callable, metavar="MODULE:APP", kind="app", help=(
        "A Flask (or any WSGI) app served on the same port as the WebSockets."))
    websocket_options: WebSocketOptions = group(WebSocketOptions, help="The WebSocket engine and its limits.")
    logger_options: LoggerOptions = group(LoggerOptions, help="Logging.")
    tls_options: Any = option(None, validator=_tls_validator(TLSOptions), cli=None, inner=TLSOptions, help=(
        "Serve https:// and wss://: an ssl.SSLContext, or a dict of tls_options."))
    scale_options: ScaleOptions = group(ScaleOptions, help="Processes of Mode.Scale.")
    metrics_options: MetricsOptions = group(MetricsOptions, help="Prometheus metrics and the health check.")
    admin_options: AdminOptions = group(AdminOptions, help="The live dashboard.")
    channel_options: ChannelOptions = option(None, validator=lambda n, v: ChannelOptions.coerce(n, _json_object(n, v)),
                                             inner=ChannelOptions, metavar="JSON", kind="str", help=(
        "History, recovery and presence: {history_size, history_ttl, presence, join_leave, namespaces: {NS: {...}}, "
        "...}, as a dict (snake_case or camelCase keys) or, on the command line, JSON."))

    def _check(self) -> None:
        if not callable(self.worker):
            raise OptionTypeError("worker", f"Worker is not provided or is not a function (got {self.worker!r})")
        if self.port is None:
            object.__setattr__(self, "port", 443 if self.tls_options is not None else 80)
        admin = self.admin_options
        if admin.enabled and admin.token is None and self.app is None:
            raise OptionError("admin_options.token", "the dashboard needs a token when no app (whose "
                                                     "before_request hooks would protect it) is served")


def _set_paths(cls: Type[OptionGroup], prefix: str = "") -> None:
    """Give each group its dotted prefix, from where it sits in ``cls`` (one place per class:
    ``MasterTLSOptions`` is ``TLSOptions`` at a second place)."""
    for f in fields(cls):
        group_cls = f.metadata.get("group") or f.metadata.get("inner")
        if group_cls is not None:
            path = prefix + f.name + "."
            assert group_cls.__dict__.get("_path", path) == path, f"{group_cls.__name__} at two places"
            group_cls._path = path
            _set_paths(group_cls, path)


_set_paths(Options)


def iter_settings(cls: Type[OptionGroup] = Options, prefix: str = "", cli_prefix: str = ""
                  ) -> Iterator[Tuple[str, dataclasses.Field[Any], str]]:
    """Every option as ``(dotted name, field, flag prefix)``, nested groups flattened, in declaration order.

    A field read as an inner group (``tls_options``, ``master_options``) comes
    first, then that group's options."""
    for f in fields(cls):
        nested = f.metadata.get("group")
        if nested is not None:
            yield from iter_settings(nested, prefix + f.name + ".", cli_prefix)
            continue
        yield prefix + f.name, f, cli_prefix
        inner = f.metadata.get("inner")
        if inner is not None:
            yield from iter_settings(inner, prefix + f.name + ".", cli_prefix + f.metadata["cli_prefix"])


def flag_of(name: str, f: dataclasses.Field[Any], cli_prefix: str = "") -> Optional[str]:
    """The command-line flag of the option ``name``, or None."""
    cli = f.metadata.get("cli")
    if cli is None:
        return None
    flag = cli or "--" + name.rsplit(".", 1)[-1].replace("_", "-")
    return "--" + cli_prefix + flag[2:]
