"""Property tests (Hypothesis) for every parser of untrusted bytes: whatever arrives, in
whatever pieces, gives values or one defined error, never another exception."""
from __future__ import annotations

import json
from typing import Any, List, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st

from clusterws_gevent.exceptions import IncorrectMessage, ProtocolError
from clusterws_gevent.protocol import broker_wire as wire
from clusterws_gevent.protocol.messages import decode_message
from clusterws_gevent.protocol.reader import BINARY, CONT, CORE, ERROR, TEXT, ClientFrameReader
from wsclient import frame

FUZZ = settings(max_examples=300, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20)


def chunked(data: bytes, cuts: List[int]) -> List[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:])]


# -- ClusterWS messages -------------------------------------------------------------------------


def decodes_or_incorrect(message: Any) -> None:
    try:
        kind, _param, _data = decode_message(message)
    except IncorrectMessage:
        return
    assert isinstance(kind, str)


@FUZZ
@given(st.one_of(st.text(), st.binary(), st.text(alphabet="[]{}\",:0123456789eEnNaIfty.-+ \\u", max_size=60)))
def test_any_text_or_bytes_decode_to_a_message_or_incorrect_message(message):
    decodes_or_incorrect(message)


@FUZZ
@given(st.lists(json_values, min_size=0, max_size=4), st.integers(0, 60), st.text(max_size=3))
def test_mutated_json_decodes_to_a_message_or_incorrect_message(values, cut, junk):
    text = json.dumps(values)
    decodes_or_incorrect(text)
    decodes_or_incorrect(text[:cut] + junk + text[cut:])


# -- the client-frame reader --------------------------------------------------------------------


def reader_outcome(chunks: List[bytes], max_size: int = 4096) -> Tuple[List[Tuple[int, bytes]], bytes, Any]:
    """(messages, bytes handed to the core, error type) of a stream fed in ``chunks``."""
    reader = ClientFrameReader(max_size)
    messages: List[Tuple[int, bytes]] = []
    core = bytearray()
    current = None
    error = None
    for chunk in chunks:
        for kind, payload, done in reader.feed(chunk):
            if kind == ERROR:
                assert isinstance(payload, ProtocolError)
                assert error is None, "nothing follows an error but core bytes"
                error = type(payload)
            elif kind == CORE:
                if error is None:  # after an error the connection is failed: what follows is not read
                    core += payload
            else:
                assert error is None
                if kind in (TEXT, BINARY):
                    assert current is None
                    current = [kind, bytearray()]
                else:
                    assert kind == CONT and current is not None
                current[1] += payload
                if done:
                    messages.append((current[0], bytes(current[1])))
                    current = None
    return messages, bytes(core), error


frames = st.builds(
    lambda opcode, payload, fin, mask: frame(opcode, payload, fin=fin, mask=mask),
    st.sampled_from([0, 1, 2, 3, 8, 9, 10, 11]), st.binary(max_size=300), st.booleans(),
    st.booleans() | st.just(True))


@FUZZ
@given(st.lists(frames, max_size=8), st.binary(max_size=20), st.lists(st.integers(0, 10_000), max_size=12))
def test_any_stream_gives_the_same_events_whatever_its_chunking(stream_frames, junk, cuts):
    data = b"".join(stream_frames) + junk
    whole = reader_outcome([data])
    assert reader_outcome(chunked(data, cuts)) == whole
    assert reader_outcome([data[i:i + 1] for i in range(len(data))]) == whole


@FUZZ
@given(st.binary(max_size=2000), st.lists(st.integers(0, 10_000), max_size=8))
def test_random_bytes_never_raise_from_the_reader(data, cuts):
    assert reader_outcome(chunked(data, cuts)) == reader_outcome([data])


# -- the broker wire ----------------------------------------------------------------------------

DECODERS = {
    wire.HELLO: wire.decode_hello, wire.CHALLENGE: wire.decode_challenge, wire.PROOF: wire.decode_proof,
    wire.INTEREST: wire.decode_interest, wire.UNINTEREST: wire.decode_names, wire.ACK: wire.decode_ack,
    wire.PUBLISH: wire.decode_publish, wire.WORKERS: wire.decode_workers,
}


def parser_outcome(chunks: List[bytes], max_frame: int) -> Tuple[List[Tuple[int, bytes]], bool]:
    parser = wire.FrameParser(max_frame)
    got: List[Tuple[int, bytes]] = []
    try:
        for chunk in chunks:
            got += parser.feed(chunk)
    except ProtocolError:
        return got, True
    return got, False


@FUZZ
@given(st.binary(max_size=3000), st.lists(st.integers(0, 10_000), max_size=8), st.sampled_from([64, 1 << 20]))
def test_broker_frames_parse_alike_in_any_chunking_and_decode_or_fail_cleanly(data, cuts, max_frame):
    frames_whole, failed = parser_outcome([data], max_frame)
    frames_chunked, failed_chunked = parser_outcome(chunked(data, cuts), max_frame)
    assert failed_chunked == failed
    if failed:  # the frames of a feed() that ends in an error are not returned: one list is a prefix
        shorter, longer = sorted((frames_whole, frames_chunked), key=len)
        assert longer[:len(shorter)] == shorter
    else:
        assert frames_chunked == frames_whole
    for kind, raw in frames_whole:
        assert len(raw) <= max_frame + 4
        decoder = DECODERS.get(kind)
        if decoder is not None:
            try:
                decoder(raw)
            except ProtocolError:
                pass


@FUZZ
@given(st.text(min_size=1, max_size=40), st.lists(st.binary(max_size=50), max_size=5), st.integers(5, 200))
def test_a_damaged_publish_frame_decodes_or_is_a_protocol_error(channel, messages, cut):
    raw = wire.encode_publish(channel.encode("utf-8", "replace").decode("utf-8"), messages)
    for damaged in (raw[:cut], raw[:cut] + b"\xff" * 3 + raw[cut:], raw[:5] + raw[cut:]):
        try:
            wire.decode_publish(damaged)
        except ProtocolError:
            pass
