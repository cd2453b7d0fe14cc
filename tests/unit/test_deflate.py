"""permessage-deflate (RFC 7692), exactly: the negotiation, the codec's bound, the reader's
RSV1, and a broadcast compressed once for every subscriber."""
from __future__ import annotations

import json
import os
import zlib

import pytest

from clusterws_gevent.exceptions import MessageTooBig, ProtocolError
from clusterws_gevent.log import make_log
from clusterws_gevent.protocol.deflate import TAIL, DeflateParams, Inflater, deflate, deflate_frame, negotiate
from clusterws_gevent.protocol.mask import apply_mask
from clusterws_gevent.protocol.reader import CORE, TEXT, ClientFrameReader
from clusterws_gevent.pubsub.hub import PubSubHub

BOTH = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


@pytest.mark.parametrize("offer, response, bits", [
    ("permessage-deflate", BOTH, 15),
    ("permessage-deflate; client_max_window_bits", BOTH, 15),  # a browser's offer
    ("permessage-deflate; client_max_window_bits=10; server_no_context_takeover", BOTH, 15),
    ("permessage-deflate; server_max_window_bits=10", BOTH + "; server_max_window_bits=10", 10),
    ('permessage-deflate; server_max_window_bits="12"', BOTH + "; server_max_window_bits=12", 12),
    ("x-webkit-deflate-frame, permessage-deflate", BOTH, 15),  # an extension we do not know: skipped
    # declined offers fall back to the next one
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate", BOTH, 15),
    ("permessage-deflate; unknown=1, permessage-deflate; client_max_window_bits", BOTH, 15),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover, permessage-deflate", BOTH, 15),
])
def test_negotiation_always_without_context_takeover(offer, response, bits):
    agreed = negotiate(offer, 15, 1, 256)
    assert agreed == (response, DeflateParams(bits, 1, 256))


@pytest.mark.parametrize("offer", [
    "permessage-deflate; server_max_window_bits=8",  # zlib cannot: declined
    "permessage-deflate; server_max_window_bits",  # needs a value
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_no_context_takeover=1",
    "permessage-deflate; nonsense",
    "x-webkit-deflate-frame",
])
def test_offers_we_cannot_honour_are_declined(offer):
    assert negotiate(offer) is None


def test_a_smaller_window_of_ours_is_said():
    assert negotiate("permessage-deflate", 11)[0] == BOTH + "; server_max_window_bits=11"


def test_each_message_is_compressed_alone_and_inflates_alone():
    params = DeflateParams(15, 1, 0)
    chat = json.dumps({"name": "ann", "text": "hello " * 300}).encode()
    first, second = deflate(chat, params), deflate(chat, params)
    assert first == second  # nothing of the first message is referenced by the second
    assert len(first) < len(chat) / 10 and not first.endswith(TAIL)
    assert Inflater(1 << 20).feed(second, True) == chat  # a fresh inflater: no context needed
    frame = deflate_frame(0x1, chat, params)
    assert frame[0] == 0xC1  # FIN, RSV1, text


def test_inflating_stops_at_the_limit_chunk_by_chunk():
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    compressed = bomb.compress(bytes(1 << 20)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert len(compressed) < 2048  # 1 MiB of zeros in about 1 KiB
    with pytest.raises(MessageTooBig, match="inflates over max_message_size"):
        Inflater(256 << 10).feed(compressed, True)
    inflater = Inflater(1 << 20)  # exactly the limit: accepted, chunk by chunk
    out = b"".join(inflater.feed(compressed[i:i + 100], i + 100 >= len(compressed))
                   for i in range(0, len(compressed), 100))
    assert out == bytes(1 << 20) and inflater.left == 0
    with pytest.raises(ProtocolError, match="invalid compressed data"):
        Inflater(1024).feed(b"\xff\xff\xff not deflate", True)


def masked(first: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    return bytes((first, 0x80 | len(payload))) + mask + apply_mask(payload, mask)


def test_the_reader_takes_rsv1_only_where_negotiated_and_only_on_a_message_start():
    compressed = deflate(b'["e","echo","hi"]', DeflateParams(15, 1, 0))
    reader = ClientFrameReader(1 << 20)
    assert reader.feed(masked(0xC1, compressed))[0][0] == CORE and reader.passthrough  # not negotiated
    reader = ClientFrameReader(1 << 20)
    reader.deflate = True
    assert reader.feed(masked(0xC1, compressed)) == [(TEXT, compressed, True)] and reader.compressed
    assert reader.feed(masked(0x81, b"plain")) == [(TEXT, b"plain", True)] and not reader.compressed
    reader.feed(masked(0x41, compressed[:3]))  # a compressed message in fragments: RSV1 on the first only
    assert reader.compressed and not reader.passthrough
    assert reader.feed(masked(0xC0, compressed[3:]))[0][0] == CORE and reader.passthrough  # RSV1 on a continuation


class Subscriber:
    def __init__(self, params=None):
        self.deflate = params
        self.frames = []
        self.channels = set()

    def add_channel(self, channel):
        self.channels.add(channel)
        return True

    def send_frame(self, frame):
        self.frames.append(frame)
        return True


def test_a_broadcast_is_compressed_once_and_shared():
    hub = PubSubHub(make_log())
    hub.deflating = True
    params = DeflateParams(15, 1, 100)
    compressing = [Subscriber(params) for _ in range(50)]
    plain = Subscriber()
    for subscriber in compressing + [plain]:
        hub.subscribe(subscriber, "chat")
    hub.publish("chat", {"text": "hello " * 100})
    hub.flush()
    frames = {id(s.frames[0]) for s in compressing}
    assert len(frames) == 1  # one compressed frame object, written to all fifty
    frame = compressing[0].frames[0]
    assert frame[0] == 0xC1 and len(frame) < len(plain.frames[0]) / 5
    assert plain.frames[0][0] == 0x81
    assert json.loads(Inflater(1 << 20).feed(frame[4:] if frame[1] == 126 else frame[2:], True)) == \
        ["p", None, {"chat": [{"text": "hello " * 100}]}]
    hub.publish("chat", "short")  # under the threshold: the plain frame for everyone
    hub.flush()
    assert compressing[0].frames[1] is plain.frames[1]
