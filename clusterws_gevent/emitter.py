"""Publishing to ClusterWS channels from any Python process: a Celery task, a cron
script, a Flask view served by another process.

    from clusterws_gevent import Emitter

    with Emitter(redis="redis://127.0.0.1:6379/0") as emitter:
        emitter.publish("news", {"title": "hello"})      # every subscriber, every server
        emitter.publish_to_workers({"reload": "prices"})  # onWorkerMessage of every worker

It writes what a ``Scaler.Redis`` worker writes (``protocol/redis_envelope.py``), under
the same prefix, with a publisher id of its own: every worker of every server on that
Redis delivers it. It needs neither gevent nor monkey-patching (a plain blocking
redis-py client), and is safe to share between threads.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Optional, Union

from .options import ChannelOptions
from .protocol.messages import encode_json
from .protocol.redis_envelope import ID_SIZE, channel_key, encode_envelope, history_keys, workers_key
from .pubsub.channels import channel_name_error
from .scale.redis_client import RedisConfig, default_prefix, redis_client
from .scale.redis_scripts import PUBLISH_NUMBERED, publish_numbered_args

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
        self._client = redis_client(redis, f"cws:emitter:{os.getpid()}", single_connection=False)
        self._publish_numbered = self._client.register_script(PUBLISH_NUMBERED)

    def publish(self, channel: str, data: Any) -> int:
        """Publish ``data`` (any JSON value) to every subscriber of ``channel``.

        Returns:
            how many worker processes have subscribers of ``channel`` (0: nobody listens).

        Raises:
            TypeError, ValueError: a bad channel name, or data that JSON cannot carry.
            redis.exceptions.ConnectionError: Redis is unreachable (nothing was published).
        """
        rule = channel_name_error(channel, self.max_channel_length)
        if rule is not None:
            raise (TypeError if not isinstance(channel, str) else ValueError)(f"channel {channel!r}: {rule}")
        message = encode_json(data)
        policy = self.channels.policy(channel)
        if policy.history:
            return int(self._publish_numbered(keys=list(history_keys(self.prefix, channel)), args=publish_numbered_args(
                policy, channel_key(self.prefix, channel), self.publisher_id, [message])))
        return int(self._client.publish(channel_key(self.prefix, channel), encode_envelope(self.publisher_id,
                                                                                           [message])))

    def publish_to_workers(self, data: Any) -> int:
        """Send ``data`` to onWorkerMessage of every worker; returns how many got it."""
        return int(self._client.publish(workers_key(self.prefix), encode_envelope(self.publisher_id,
                                                                                  [encode_json(data)])))

    def close(self) -> None:
        """Close the connection to Redis."""
        self._client.close()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
