"""The worker <-> broker framing, as bytes."""
import random

import pytest

from clusterws_gevent.exceptions import ProtocolError
from clusterws_gevent.protocol import broker_wire as wire


def test_frames_round_trip_through_any_chunking():
    nonce = wire.new_nonce()
    frames = [wire.encode_hello(7, nonce), wire.encode_interest(42, ["chat", "néws"]),
              wire.encode_uninterest(["chat"]), wire.encode_ack(42),
              wire.encode_publish("chat", [b'"a"', b"{}", b"1" * 70000]), wire.encode_workers(b'{"x":1}')]
    stream = b"".join(frames)
    rng = random.Random(1)
    parser = wire.FrameParser()
    got = []
    pos = 0
    while pos < len(stream):
        step = rng.choice([1, 3, 5, 100, 65536])
        got += parser.feed(stream[pos:pos + step])
        pos += step
    assert [frame for _, frame in got] == frames
    kinds = [kind for kind, _ in got]
    assert kinds == [wire.HELLO, wire.INTEREST, wire.UNINTEREST, wire.ACK, wire.PUBLISH, wire.WORKERS]
    assert wire.decode_hello(got[0][1]) == (wire.VERSION, 7, nonce, b"")
    assert wire.decode_interest(got[1][1]) == (42, ["chat", "néws"])
    assert wire.decode_names(got[2][1]) == ["chat"]
    assert wire.decode_ack(got[3][1]) == 42
    assert wire.decode_publish(got[4][1]) == ("chat", [b'"a"', b"{}", b"1" * 70000])
    assert wire.decode_workers(got[5][1]) == b'{"x":1}'


def test_oversize_or_empty_frames_are_refused():
    with pytest.raises(ProtocolError):
        wire.FrameParser(max_frame=1000).feed(b"\x00\x00\x10\x00\x06")
    with pytest.raises(ProtocolError):
        wire.FrameParser().feed(b"\x00\x00\x00\x00\x06")


def test_malformed_publish_is_refused():
    frame = wire.encode_publish("c", [b"abc"])
    with pytest.raises(ProtocolError):
        wire.decode_publish(frame[:-1] + b"xy")


def test_shard_is_stable_and_spreads():
    assert wire.shard("chat", 4) == wire.shard("chat", 4)
    assert wire.shard("chat", 1) == 0
    # pinned values: the same in every process and every run (crc32)
    assert [wire.shard(f"ch-{i}", 3) for i in range(6)] == [1, 1, 0, 0, 0, 1]
    counts = [0, 0, 0]
    for i in range(3000):
        counts[wire.shard(f"channel-{i}", 3)] += 1
    assert min(counts) > 800


def test_the_handshake_proves_the_key_both_ways_without_sending_it():
    key, other = b"k" * 32, b"o" * 32
    worker_nonce, broker_nonce = wire.new_nonce(), wire.new_nonce()
    hello = wire.encode_hello(3, worker_nonce)
    challenge = wire.encode_challenge(broker_nonce, wire.broker_proof(key, worker_nonce, broker_nonce))
    proof = wire.encode_proof(wire.worker_proof(key, broker_nonce, worker_nonce, 3))
    for frame in (hello, challenge, proof):
        assert key not in frame and len(frame) <= 4 + wire.HANDSHAKE_MAX_FRAME
    got_nonce, got_proof, _ = wire.decode_challenge(challenge)
    assert wire.proofs_match(got_proof, wire.broker_proof(key, worker_nonce, got_nonce))
    assert not wire.proofs_match(got_proof, wire.broker_proof(other, worker_nonce, got_nonce))
    assert wire.proofs_match(wire.decode_proof(proof), wire.worker_proof(key, broker_nonce, worker_nonce, 3))
    # a reflected proof does not pass: the two sides' proofs carry different labels
    assert wire.broker_proof(key, worker_nonce, broker_nonce) != wire.worker_proof(key, worker_nonce, broker_nonce, 3)
    # nor does a proof for another worker id, or for other nonces
    proof = wire.worker_proof(key, broker_nonce, worker_nonce, 3)
    assert wire.worker_proof(key, broker_nonce, worker_nonce, 4) != proof
    assert wire.worker_proof(key, wire.new_nonce(), worker_nonce, 3) != wire.worker_proof(
        key, broker_nonce, worker_nonce, 3)


@pytest.mark.parametrize("frame", [b"\x00\x00\x00\x02\x01\x01", b"\x00\x00\x00\x05\x08abcd", b"\x00\x00\x00\x01\x09"])
def test_malformed_handshake_frames_are_protocol_errors(frame):
    decoder = {wire.HELLO: wire.decode_hello, wire.CHALLENGE: wire.decode_challenge, wire.PROOF: wire.decode_proof}
    with pytest.raises(ProtocolError):
        decoder[frame[4]](frame)
