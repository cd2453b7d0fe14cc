"""Publishing to ClusterWS channels from any Python process: a Celery task, a cron
script, a Flask view served by another process.

    from clusterws_gevent import Emitter

    with Emitter(redis="redis://127.0.0.1:6379/0") as emitter:
        emitter.publish("news", {"title": "hello"})      # every subscriber, every server
        emitter.publish_to_workers({"reload": "prices"})  # onWorkerMessage of every worker

It writes what a ``Scaler.Redis`` worker writes (``protocol/redis_envelope.py``), under
the same prefix, with a publisher id of its own: every worker of every server on that
Redis delivers it. It needs neither gevent nor monkey-patching (a plain blocking
redis-py client), and is safe to share between threads. On a Redis Cluster
(``redis+cluster://``) it publishes to the channel's shard (SPUBLISH), on its master.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

from .options import ChannelOptions
from .protocol.messages import encode_json
from .protocol.redis_envelope import ID_SIZE, channel_key, encode_envelope, history_keys, workers_key
from .pubsub.channels import channel_name_error
from .scale.redis_client import RedisConfig, default_prefix, pinned_settings, redis_client
from .scale.redis_cluster import ClusterMap, is_cluster, parse_cluster_config
from .scale.redis_scripts import PUBLISH_NUMBERED, PUBLISH_NUMBERED_SHARDED, publish_numbered_args

__all__ = ["Emitter"]


class Emitter:
    """Publishes to the channels of the servers joined by a Redis (``Scaler.Redis``).

    Args:
        redis: the servers' ``scale_options["redis"]``: a URL or redis-py kwargs.
        redis_prefix: their ``scale_options["redis_prefix"]`` (by default, the same default: ``cws``,
            or ``cws.dbN`` for database N).
        max_channel_length: refuse longer channel names, as the servers do.
        channel_options: the servers' ``channel_options``: a channel with history is numbered in
            Redis, as the servers' own publishes are (their recovering subscribers miss nothing).
    """

    def __init__(self, redis: RedisConfig, redis_prefix: Optional[str] = None, max_channel_length: int = 255,
                 channel_options: Union[ChannelOptions, Dict[str, Any], None] = None) -> None:
        self.prefix = redis_prefix or default_prefix(redis)
        self.max_channel_length = max_channel_length
        self.channels = ChannelOptions.coerce("channel_options", channel_options)
        self.publisher_id = os.urandom(ID_SIZE)
        name = f"cws:emitter:{os.getpid()}"
        self._cluster: Optional[ClusterMap] = None
        self._client: Any = None
        if is_cluster(redis):
            self._cluster = ClusterMap(parse_cluster_config(redis), {**pinned_settings(name), "max_connections": 64})
            self._cluster.refresh()
        else:
            self._client = redis_client(redis, name, single_connection=False)
        from redis.commands.core import Script

        source = PUBLISH_NUMBERED_SHARDED if self._cluster is not None else PUBLISH_NUMBERED
        self._publish_numbered = Script(None, source.encode())  # type: ignore[arg-type]  # runs on the client named

    def publish(self, channel: str, data: Any) -> int:
        """Publish ``data`` (any JSON value) to every subscriber of ``channel``.

        Returns:
            how many worker processes have subscribers of ``channel`` (0: nobody listens); on a
            Redis Cluster, those subscribed on the shard's master only (workers subscribe on a
            replica when the shard has one), so not a count of listeners there.

        Raises:
            TypeError, ValueError: a bad channel name, or data that JSON cannot carry.
            redis.exceptions.ConnectionError: Redis is unreachable (nothing was published).
        """
        rule = channel_name_error(channel, self.max_channel_length)
        if rule is not None:
            raise (TypeError if not isinstance(channel, str) else ValueError)(f"channel {channel!r}: {rule}")
        message = encode_json(data)
        policy = self.channels.policy(channel)
        key = channel_key(self.prefix, channel, sharded=self._cluster is not None)
        if policy.history:
            keys = list(history_keys(self.prefix, channel))
            args = publish_numbered_args(policy, key, self.publisher_id, [message])
            return self._run(keys[0], lambda client: self._publish_numbered(keys=keys, args=args, client=client))
        return self._publish(key, encode_envelope(self.publisher_id, [message]))

    def publish_to_workers(self, data: Any) -> int:
        """Send ``data`` to onWorkerMessage of every worker; returns how many got it (on a
        Redis Cluster: see :meth:`publish`)."""
        return self._publish(workers_key(self.prefix), encode_envelope(self.publisher_id, [encode_json(data)]))

    def _publish(self, key: bytes, payload: bytes) -> int:
        command = "PUBLISH" if self._cluster is None else "SPUBLISH"
        return self._run(key, lambda client: client.execute_command(command, key, payload))

    def _run(self, key: bytes, call: Any) -> int:
        """``call(client)`` on the client of ``key``'s node; on a cluster whose slot moved (the
        command did not run), once more after reading the topology again."""
        if self._cluster is None:
            return int(call(self._client))
        return int(self._cluster.call(key, call))

    def close(self) -> None:
        """Close the connections to Redis."""
        if self._cluster is not None:
            self._cluster.close()
        else:
            self._client.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
