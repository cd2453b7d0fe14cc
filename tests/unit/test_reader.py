"""The data-frame reader of the default engine, fed bytes: no sockets."""
import os
import random

import pytest

from clusterws_gevent.exceptions import MessageTooBig, ProtocolError
from clusterws_gevent.protocol.mask import apply_mask, apply_mask_python, rotate_mask
from clusterws_gevent.protocol.reader import BINARY, CONT, CORE, ERROR, TEXT, ClientFrameReader
from wsclient import frame


def assemble(events):
    """Messages (opcode, payload) out of reader events; control frames as (CORE, bytes)."""
    messages, current = [], None
    for kind, payload, done in events:
        if kind in (TEXT, BINARY):
            current = [kind, bytearray(payload)]
        elif kind == CONT:
            current[1] += payload
        else:
            messages.append((kind, payload))
            continue
        if done:
            messages.append((current[0], bytes(current[1])))
            current = None
    return messages


def test_one_small_frame_is_one_event():
    reader = ClientFrameReader(1 << 20)
    assert reader.feed(frame(1, b"hello")) == [(TEXT, b"hello", True)]


def test_fragments_and_control_frames_in_stream_order():
    reader = ClientFrameReader(1 << 20)
    data = frame(1, b"he", fin=False) + frame(9, b"ping") + frame(0, b"llo") + frame(2, b"\x00\x01")
    events = reader.feed(data)
    assert events[0] == (TEXT, b"he", False)
    assert events[1][0] == CORE and events[1][1][:1] == b"\x89"  # the whole ping frame, for the core
    assert events[2] == (CONT, b"llo", True)
    assert events[3] == (BINARY, b"\x00\x01", True)


@pytest.mark.parametrize("seed", range(20))
def test_any_chunking_gives_the_same_messages(seed):
    rng = random.Random(seed)
    payloads = [os.urandom(rng.choice([0, 1, 5, 125, 126, 127, 300, 70000])) for _ in range(8)]
    data = b""
    for payload in payloads:
        cut = rng.randrange(0, len(payload) + 1)
        data += frame(2, payload[:cut], fin=False) + frame(10, b"p") + frame(0, payload[cut:])
    reader = ClientFrameReader(1 << 20)
    events = []
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, 3, 7, 13, 100, 4096, 65536])
        events += reader.feed(data[pos:pos + step])
        pos += step
    messages = [payload for kind, payload in assemble(events) if kind == BINARY]
    assert messages == payloads
    assert sum(1 for kind, _ in assemble(events) if kind == CORE) == len(payloads)


def test_size_limit_is_checked_from_the_header():
    reader = ClientFrameReader(100)
    # only the header of a 1 MiB frame: refused before any payload arrives
    events = reader.feed(frame(2, b"x" * (1 << 20))[:14])
    assert events[-1][0] == ERROR and isinstance(events[-1][1], MessageTooBig)
    assert reader.passthrough


def test_size_limit_counts_every_fragment():
    reader = ClientFrameReader(100)
    events = reader.feed(frame(1, b"x" * 60, fin=False) + frame(0, b"y" * 60))
    assert events[0] == (TEXT, b"x" * 60, False)
    assert isinstance(events[-1][1], MessageTooBig)


@pytest.mark.parametrize("data, message", [
    (frame(0, b"x"), "unexpected continuation frame"),
    (frame(1, b"a", fin=False) + frame(1, b"b"), "expected a continuation frame"),
])
def test_fragment_order_errors(data, message):
    events = ClientFrameReader(1000).feed(data)
    assert events[-1][0] == ERROR
    assert isinstance(events[-1][1], ProtocolError) and str(events[-1][1]) == message


@pytest.mark.parametrize("data", [
    frame(1, b"x", rsv=4),  # reserved bit
    frame(3, b"x"),  # reserved opcode
    frame(1, b"x", mask=False),  # unmasked client frame
    frame(9, b"x", fin=False),  # fragmented control frame
    frame(9, b"x" * 126),  # control frame over 125 bytes
])
def test_frames_not_read_here_go_to_the_core_with_the_rest(data):
    reader = ClientFrameReader(1000)
    events = reader.feed(frame(1, b"ok") + data + b"more")
    assert events[0] == (TEXT, b"ok", True)
    assert events[1] == (CORE, data + b"more", False)
    assert reader.feed(b"later") == [(CORE, b"later", False)]
    # alone and short (an unmasked frame has no mask bytes to wait for)
    assert ClientFrameReader(1000).feed(data) == [(CORE, data, False)]


def test_masking_fallback_matches_c_and_rotation():
    key = os.urandom(4)
    data = os.urandom(1001)
    assert apply_mask_python(data, key) == apply_mask(data, key)
    for offset in range(8):
        assert apply_mask(data[offset:], rotate_mask(key, offset)) == apply_mask(data, key)[offset:]
