"""The Lua scripts of ``Scaler.Redis``: history and presence kept in Redis, atomically.

With Redis, Redis owns a channel's history: one script per batch of publishes (as
Centrifugo's ``broker_history_add_stream.lua``) reads or begins the channel's epoch,
numbers the messages (``HINCRBY``), appends each to the channel's stream with its
offset as the entry id (``XADD MAXLEN =``: exact trimming), sets both keys' ttl, and
publishes one numbered envelope (``protocol/redis_envelope.py``, version 2) to every
worker, the publisher's included. Nothing can come between the numbering and the
publish, so offsets reach subscribers in order and without holes.

Presence is a hash (socket id -> info) and a sorted set (socket id -> expiry, in Redis's
own clock): each worker adds its sockets and refreshes them well within
``presence_ttl``; a read first sweeps the expired (a crashed worker's or server's).

Keys hold the channel between braces (a hash tag: one slot per channel on a cluster, where
the publish script SPUBLISHes to the channel's shard channel, in that slot too).
"""
from __future__ import annotations

from typing import Any, List, Sequence

from ..options import ChannelPolicy
from ..protocol.redis_envelope import NUMBERED_VERSION
from ..pubsub.history import new_epoch

__all__ = ["PUBLISH_NUMBERED", "PUBLISH_NUMBERED_SHARDED", "READ_HISTORY", "PRESENCE_ADD", "PRESENCE_REMOVE",
           "PRESENCE_READ", "publish_numbered_args"]


def publish_numbered_args(policy: ChannelPolicy, pubsub_channel: bytes, publisher_id: bytes,
                          messages: Sequence[bytes]) -> List[Any]:
    """ARGV of :data:`PUBLISH_NUMBERED` (its KEYS: ``redis_envelope.history_keys``). Redis keeps
    a history for whole seconds: ``history_ttl`` is rounded down, to 1 at least."""
    return [policy.history_size, max(1, int(policy.history_ttl)), new_epoch(), pubsub_channel,
            bytes((NUMBERED_VERSION,)) + publisher_id, *messages]

# KEYS: stream, meta. ARGV: history size, ttl (s), an epoch to begin with, the pub/sub channel,
# the envelope's head (version 2 and the publisher id), then the messages. Returns PUBLISH's
# count (the worker processes subscribed).
PUBLISH_NUMBERED = """
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
end
local count = #ARGV - 5
local top = redis.call('HINCRBY', KEYS[2], 's', count)
local first = top - count + 1
local parts = {ARGV[5], epoch, string.format('%020d', first), struct.pack('>I4', count)}
for i = 1, count do
  local message = ARGV[5 + i]
  redis.call('XADD', KEYS[1], 'MAXLEN', '=', ARGV[1], (first + i - 1) .. '-0', 'd', message)
  parts[#parts + 1] = struct.pack('>I4', #message)
  parts[#parts + 1] = message
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return redis.call('PUBLISH', ARGV[4], table.concat(parts))
"""

# The same on a Redis Cluster: SPUBLISH to the channel's shard channel (in the keys' slot).
PUBLISH_NUMBERED_SHARDED = PUBLISH_NUMBERED.replace("'PUBLISH'", "'SPUBLISH'")

# KEYS: stream, meta. ARGV: since (-1: none), limit (-1: none), an epoch to begin with, ttl (s).
# Returns {epoch, top offset, offset, message, offset, message...}, oldest first.
READ_HISTORY = """
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[3]
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'e', epoch, 's', 0)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local top = redis.call('HGET', KEYS[2], 's')
local since, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local entries
if since >= 0 then
  if limit >= 0 then
    entries = redis.call('XRANGE', KEYS[1], (since + 1) .. '-0', '+', 'COUNT', limit)
  else
    entries = redis.call('XRANGE', KEYS[1], (since + 1) .. '-0', '+')
  end
elseif limit >= 0 then
  local latest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', limit)
  entries = {}
  for i = #latest, 1, -1 do entries[#entries + 1] = latest[i] end
else
  entries = redis.call('XRANGE', KEYS[1], '-', '+')
end
local result = {epoch, top}
for _, entry in ipairs(entries) do
  result[#result + 1] = string.match(entry[1], '^(%d+)')
  result[#result + 1] = entry[2][2]
end
return result
"""

# KEYS: entries, expiries. ARGV: ttl (s), then socket id and info pairs.
PRESENCE_ADD = """
local expiry = tonumber(redis.call('TIME')[1]) + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], expiry, ARGV[i])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""

# KEYS: entries, expiries. ARGV: socket ids.
PRESENCE_REMOVE = """
for i = 1, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
  redis.call('ZREM', KEYS[2], ARGV[i])
end
return 1
"""

# KEYS: entries, expiries. Sweeps what expired, then returns {socket id, info, ...}.
PRESENCE_READ = """
local now = tonumber(redis.call('TIME')[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, id in ipairs(expired) do redis.call('HDEL', KEYS[1], id) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return redis.call('HGETALL', KEYS[1])
"""
