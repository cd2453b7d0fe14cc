"""A Redis Cluster's configuration (issue 19): URLs and keywords, hash tags, option checks, redirect replies."""
from __future__ import annotations

import pytest

from clusterws_gevent import ClusterWS, Mode, Scaler
from clusterws_gevent.exceptions import OptionError
from clusterws_gevent.protocol.redis_envelope import channel_key, channel_of_tag, hash_tag, history_keys, presence_keys
from clusterws_gevent.scale.redis_client import default_prefix, describe_redis
from clusterws_gevent.scale.redis_cluster import is_cluster, key_slot, parse_cluster_config, tag_for_slots


def test_a_cluster_url_names_startup_nodes_credentials_and_options():
    config = parse_cluster_config("redis+cluster://me:p%40ss@10.0.0.1:7000,[::1]:7001/?ssl=true&socket_timeout=2.5")
    assert config.startup == [("10.0.0.1", 7000), ("::1", 7001)]
    assert config.kwargs == {"username": "me", "password": "p@ss", "ssl": True, "socket_timeout": 2.5}
    assert config.describe() == "redis+cluster://10.0.0.1:7000,::1:7001"


def test_the_keywords_form_takes_host_port_texts_or_pairs():
    config = parse_cluster_config({"startup_nodes": ["h1:1", ("h2", 2)], "password": "x"})
    assert config.startup == [("h1", 1), ("h2", 2)] and config.kwargs == {"password": "x"}
    assert is_cluster({"startup_nodes": []}) and not is_cluster({"host": "h"}) and not is_cluster("redis://h:1/0")
    assert describe_redis({"startup_nodes": ["h1:1", ("h2", 2)], "password": "x"}) == "redis+cluster://h1:1,h2:2"
    assert default_prefix("redis+cluster://h:1") == "cws"


@pytest.mark.parametrize("url", ["redis+cluster://h", "redis+cluster://h:1/3", "redis+cluster://:1"])
def test_a_bad_cluster_url_is_refused(url):
    with pytest.raises(ValueError):
        parse_cluster_config(url)


@pytest.mark.parametrize("url", ["redis+cluster://h", "redis+cluster://h:1/3", "redis+cluster://h:1,h2"])
def test_the_option_refuses_a_bad_cluster_url_when_configured(url):
    with pytest.raises(OptionError, match="redis\\+cluster://"):
        ClusterWS(worker=lambda w: None, mode=Mode.Scale, scale_options={"scaler": Scaler.Redis, "redis": url})


@pytest.mark.parametrize("channel", ["news", "}x", "=}x", "=", "}", "a}b", "{a}", "", "chat:{room}"])
def test_every_key_of_a_channel_is_in_one_slot_and_the_tag_reads_back(channel):
    keys = [channel_key("cws", channel, sharded=True), *history_keys("cws", channel), *presence_keys("cws", channel)]
    assert len({key_slot(key) for key in keys}) == 1
    assert channel_of_tag(hash_tag(channel)) == channel
    assert channel_key("cws", channel) == f"cws:c:{channel}".encode()  # one Redis: the names of before


def test_a_probe_tag_lands_in_the_shards_slots():
    for slots in ([(0, 5460)], [(5461, 10922)], [(10923, 16383)], [(42, 42), (100, 100)]):
        slot = key_slot(b"cws:k:00:{" + tag_for_slots(slots).encode() + b"}")
        assert any(first <= slot <= last for first, last in slots)


def test_ask_names_the_importing_node_in_both_forms_of_redis_py():
    from redis.exceptions import ResponseError

    from clusterws_gevent.scale.redis_cluster import ask_target, moved, retry_later

    assert ask_target(ResponseError("ASK 3999 127.0.0.1:6381")) == ("127.0.0.1", 6381)  # redis-py 5
    assert ask_target(type("AskError", (ResponseError,), {})("3999 ::1:6381")) == ("::1", 6381)  # >= 6, stripped
    assert ask_target(ResponseError("MOVED 3999 127.0.0.1:6381")) is None
    assert ask_target(ResponseError("ERR ASK me")) is None
    assert retry_later(ResponseError("TRYAGAIN Multiple keys request during rehashing of slot"))
    assert retry_later(ResponseError("CLUSTERDOWN The cluster is down"))
    assert not retry_later(ResponseError("ASK 3999 127.0.0.1:6381"))
    assert all(moved(ResponseError(text)) for text in ("ASK 1 h:1", "MOVED 1 h:1", "TRYAGAIN x", "CLUSTERDOWN x"))
