from clusterws_gevent.pubsub.channels import ChannelRegistry


def test_open_and_close_are_reported_once():
    registry = ChannelRegistry()
    assert registry.add("chat", "a") is True
    assert registry.add("chat", "b") is False
    assert list(registry.members("chat")) == ["a", "b"]
    assert registry.discard("chat", "a") is False
    assert registry.discard("chat", "a") is False
    assert registry.discard("chat", "b") is True
    assert "chat" not in registry and list(registry.members("chat")) == []
    assert registry.discard("nothing", "a") is False
