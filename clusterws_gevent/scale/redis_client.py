"""Making redis-py clients for ``Scaler.Redis`` and the Emitter: URLs, Sentinel, pinned settings.

With ``scale/redis_cluster.py`` (a Redis Cluster's nodes), the only module that imports
``redis``, when a client is first made: nothing Redis exists before a worker forks;
``scale/redis.py`` and ``emitter.py`` get their clients here or there.

Every setting whose default moved across redis-py versions is pinned here, so
4.5 and 8.x behave alike: connect and read timeouts, TCP keepalive, no health
check PING (it never checks the reply), and no retries (a re-sent PUBLISH would
duplicate or reorder; a failure must surface so that it is counted and the
connection rebuilt).
"""
from __future__ import annotations

import socket
from typing import Any, Dict, List, Mapping, Tuple, Union
from urllib.parse import unquote, urlsplit

__all__ = ["redis_client", "parse_sentinel_url", "parse_address", "pinned_settings", "describe_redis", "redis_db",
           "default_prefix"]

RedisConfig = Union[str, Mapping[str, Any]]

#: Seconds to connect, and to wait for a reply.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 3.0


def pinned_settings(client_name: str) -> Dict[str, Any]:
    """The keyword arguments of every connection we make (see the module docstring)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    keepalive: Dict[int, int] = {}
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            keepalive[getattr(socket, name)] = value
    return {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": READ_TIMEOUT,
        "socket_keepalive": True,
        "socket_keepalive_options": keepalive,
        "health_check_interval": 0,
        "retry": Retry(NoBackoff(), 0),
        "client_name": client_name,
    }


def parse_sentinel_url(url: str) -> Tuple[List[Tuple[str, int]], int, str, Dict[str, Any]]:
    """``redis+sentinel://[user:password@]h1:p1,h2:p2/db/service`` as
    (sentinels, db, service name, connection kwargs).

    Raises:
        ValueError: the URL does not name sentinels and a service.
    """
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = [parse_address(host, url) for host in hosts.split(",")]
    path = [part for part in parts.path.split("/") if part]
    if len(path) == 1:
        db, service = 0, path[0]
    elif len(path) == 2 and path[0].isdigit():
        db, service = int(path[0]), path[1]
    else:
        raise ValueError(f"a sentinel URL ends with /db/service or /service, got {url!r}")
    kwargs: Dict[str, Any] = {}
    if userinfo:
        user, _, password = userinfo.partition(":")
        if user:
            kwargs["username"] = unquote(user)
        if password:
            kwargs["password"] = unquote(password)
    return sentinels, db, service, kwargs


def parse_address(text: str, config: str) -> Tuple[str, int]:
    """``host:port`` (``[::1]:port`` too) of a URL naming several nodes (Sentinel, a cluster).

    Raises:
        ValueError: not host:port.
    """
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"nodes are host:port, got {text!r} in {config!r}")
    return host.strip("[]"), int(port)


def redis_client(config: RedisConfig, client_name: str, single_connection: bool = True) -> Any:
    """A ``redis.Redis`` from a URL or redis-py kwargs; with one connection of its own
    unless ``single_connection`` is False (a client several threads share).

    URLs: ``redis://``, ``rediss://`` (TLS; ``?ssl_ca_certs=...`` etc.), ``unix://``, and
    ``redis+sentinel://h1:p1,h2:p2/db/service`` (the master is found through Sentinel, and
    found again on every reconnection).
    """
    import redis

    settings = pinned_settings(client_name)
    if isinstance(config, str) and config.startswith("redis+sentinel://"):
        from redis.sentinel import Sentinel

        sentinels, db, service, auth = parse_sentinel_url(config)
        sentinel = Sentinel(sentinels, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT,
                            sentinel_kwargs={"socket_connect_timeout": CONNECT_TIMEOUT,
                                             "socket_timeout": READ_TIMEOUT})
        return sentinel.master_for(service, db=db, **auth, **settings)
    if single_connection:
        settings["max_connections"] = 1
    if isinstance(config, str):
        return redis.Redis.from_url(config, **settings)
    return redis.Redis(**{**dict(config), **settings})


def redis_db(config: RedisConfig) -> int:
    """The database number a config names (0 unless it says another)."""
    if not isinstance(config, str):
        return int(config.get("db", 0) or 0)
    if config.startswith("redis+sentinel://"):
        return parse_sentinel_url(config)[1]
    parts = urlsplit(config)
    for pair in parts.query.split("&"):
        name, _, value = pair.partition("=")
        if name == "db" and value.isdigit():
            return int(value)
    path = parts.path.strip("/")
    return int(path) if parts.scheme in ("redis", "rediss") and path.isdigit() else 0


def default_prefix(config: RedisConfig) -> str:
    """The prefix of our Redis channels when ``redis_prefix`` is not given: ``cws``, and
    ``cws.db3`` for database 3. Pub/sub ignores the database number: without it, two apps
    on one Redis, on two databases, would deliver each other's messages."""
    db = redis_db(config)
    return f"cws.db{db}" if db else "cws"


def describe_redis(config: RedisConfig) -> str:
    """The Redis a config names, for logs (never its password)."""
    if isinstance(config, str):
        parts = urlsplit(config)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    if "startup_nodes" in config:
        nodes = (node if isinstance(node, str) else f"{node[0]}:{node[1]}" for node in config["startup_nodes"])
        return "redis+cluster://" + ",".join(nodes)
    host = config.get("unix_socket_path") or f"{config.get('host', 'localhost')}:{config.get('port', 6379)}"
    return f"redis at {host}"
