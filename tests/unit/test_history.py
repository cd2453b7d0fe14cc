"""The history of the channels one owner numbers (pubsub/history.py): offsets, epochs, trims,
ttl and the byte cap, with a clock the test moves."""
from clusterws_gevent.options import ChannelOptions
from clusterws_gevent.pubsub.history import ENTRY_COST, HistoryStore


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def store(max_bytes=1 << 20, **options):
    clock = Clock()
    channel_options = ChannelOptions.coerce("channel_options", dict({"history_size": 3, "history_ttl": 10},
                                                                    **options))
    return HistoryStore(channel_options.policy, max_bytes, clock), clock


def test_offsets_grow_by_one_and_the_last_history_size_are_kept():
    history, _ = store()
    epoch, first = history.append("news", [b"1", b"2"])
    assert first == 1
    assert history.append("news", [b"3", b"4"]) == (epoch, 3)
    read = history.read("news")
    assert (read.epoch, read.offset, read.messages) == (epoch, 4, [(2, b"2"), (3, b"3"), (4, b"4")])
    assert history.read("news", since=3).messages == [(4, b"4")]
    assert history.read("news", since=4).messages == []
    assert history.read("news", since=0).messages[0] == (2, b"2")  # trimmed: it does not reach back to 1
    assert history.read("news", limit=1).messages == [(4, b"4")]


def test_a_stream_idle_for_its_ttl_ends_and_the_next_has_a_new_epoch():
    history, clock = store()
    epoch, _ = history.append("news", [b"1"])
    clock.now += 9.9
    assert history.read("news").epoch == epoch
    clock.now += 10
    read = history.read("news")
    assert read.epoch != epoch and (read.offset, read.messages) == (0, [])
    assert history.append("news", [b"x"])[1] == 1


def test_the_byte_cap_ends_the_streams_published_to_least_recently():
    size = 100 + ENTRY_COST
    history, clock = store(max_bytes=3 * size)
    epochs = {name: history.append(name, [b"x" * 100])[0] for name in ("a", "b", "c")}
    history.append("d", [b"x" * 100])  # past the cap: "a" goes
    assert history.evicted == 1 and history.read("b").epoch == epochs["b"]
    assert history.read("a").epoch != epochs["a"]
    assert history.size <= 3 * size


def test_namespaces_have_their_own_history_size():
    history, _ = store(namespaces={"chat": {"history_size": 1}})
    history.append("chat:1", [b"1", b"2", b"3"])
    history.append("news", [b"1", b"2", b"3", b"4"])
    assert history.read("chat:1").messages == [(3, b"3")]
    assert len(history.read("news").messages) == 3
