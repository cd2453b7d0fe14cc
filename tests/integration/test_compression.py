"""permessage-deflate (issue 21) end to end: negotiated only when on and asked, publishes and
sends compressed, a deflate bomb refused with 1009 at a bounded cost, a flood of small frames
that inflate 800-fold stalls nobody."""
from __future__ import annotations

import json
import os
import struct
import time
import zlib

from helpers import echo_latencies, open_idle, p99, reset_peak, rss_kib, start_flooder, subscribe

from clusterws_gevent.client import Client
from clusterws_gevent.protocol.mask import apply_mask
from wsclient import WSClient

OFFER = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
CHAT = {"name": "ann", "text": "a chat-like message, with words that come back again and again " * 30}


def deflated_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame of ``payload`` compressed (RSV1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    data = data[:-4]
    mask = os.urandom(4)
    if len(data) < 126:
        header = bytes((0xC0 | opcode, 0x80 | len(data)))
    else:
        header = struct.pack("!BBH", 0xC0 | opcode, 0x80 | 126, len(data))
    return header + mask + apply_mask(data, mask)


def close_code(data: bytes):
    """The code of the close frame in what a raw socket read after its 101 (the configuration
    message, text, holds no 0x88 byte), or None yet."""
    at = data.find(b"\x88")
    return struct.unpack("!H", data[at + 2:at + 4])[0] if at >= 0 and len(data) >= at + 4 else None


def inflate(payload: bytes) -> bytes:
    return zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")


def test_negotiated_only_when_on_and_asked_and_broadcasts_go_compressed(serve):
    plain_server = serve("apps.pubsub:worker")
    unasked = WSClient(plain_server.port, "/", headers=OFFER)
    assert "Sec-WebSocket-Extensions" not in unasked.response_head
    unasked.close()
    server = serve("apps.pubsub:worker", "--compression", "--no-auto-ping")
    asking = WSClient(server.port, "/", headers=OFFER)
    not_asking = WSClient(server.port, "/")
    try:
        assert ("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                "client_no_context_takeover") in asking.response_head
        assert "Sec-WebSocket-Extensions" not in not_asking.response_head
        with Client(f"ws://127.0.0.1:{server.port}/", compression=True) as publisher:
            assert "permessage-deflate" in (publisher.extensions or "")
            for client in (asking, not_asking):
                client.recv_json()  # the configuration message
                assert subscribe(client, "room") == ["s", "s", {"room": True}]
            room = publisher.subscribe("room")
            assert room.wait_subscribed()
            room.publish(CHAT)  # sent compressed by the Python client, inflated by the server
            expected = ["p", None, {"room": [CHAT]}]
            opcode, payload, _ = asking.recv_frame()
            assert asking.last_rsv1 and len(payload) < len(json.dumps(CHAT)) / 5
            assert json.loads(inflate(payload)) == expected
            assert not_asking.recv_json() == expected and not not_asking.last_rsv1
    finally:
        asking.close()
        not_asking.close()


def test_a_deflate_bomb_is_refused_with_1009_and_a_thousand_cost_little(serve):
    server = serve("apps.pubsub:worker", "--compression", "--no-auto-ping", "--max-message-size", str(256 << 10))
    bomb = deflated_frame(json.dumps(["e", "x", "0" * (1 << 20)]).encode())
    assert len(bomb) < 2100  # 1 MiB in about 1 KiB
    one = WSClient(server.port, "/", headers=OFFER)
    one.recv_json()
    one.send_raw(bomb)
    assert one.recv_close()[0] == 1009
    one.close()

    pid = server.process.pid
    before = reset_peak(pid)
    sockets = open_idle(server.port, 1000, headers=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    try:
        for sock in sockets:
            sock.sendall(bomb)
        deadline = time.monotonic() + 30
        refused = 0
        for sock in sockets:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = b""
            while close_code(data) is None:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
            refused += close_code(data) == 1009
        assert refused == 1000
        growth = rss_kib(pid, "VmHWM") - before
        print(f"peak RSS growth for 1,000 bombs: {growth} KiB")
        assert growth < 64 << 10, f"peak RSS grew {growth} KiB for 1,000 bombs"
    finally:
        for sock in sockets:
            sock.close()


def test_a_flood_of_frames_that_inflate_800_fold_does_not_stall_the_others(serve):
    """The read budget spends what a compressed frame inflates to, not its size on the wire."""
    from flood import INFLATED

    server = serve("apps.basic:worker", "--compression", "--no-auto-ping")
    flooder = start_flooder(server.port, 5.0, "deflate")
    try:
        latencies = echo_latencies(server.port, 4.5)
    finally:
        output = flooder.communicate(timeout=15)[0]
    assert output.startswith("sent "), output
    sent = int(output.split()[1])
    frames = sent // len(deflated_frame(json.dumps(["e", "nolistener", "0" * (INFLATED - 20)]).encode()))
    print(f"{sent} bytes sent, about {frames} frames, {frames * INFLATED >> 20} MiB inflated; "
          f"echo p99 {p99(latencies) * 1000:.1f} ms")
    assert frames * INFLATED > 256 << 20, f"the flood was too weak to mean anything: {output}"
    assert p99(latencies) < 0.050, f"p99 {p99(latencies) * 1000:.1f} ms"
    assert max(latencies) < 0.250, f"max {max(latencies) * 1000:.1f} ms"


def test_the_gevent_websocket_engine_does_not_negotiate(serve):
    server = serve("apps.pubsub:worker", "--compression", "--engine", "gevent-websocket")
    client = WSClient(server.port, "/", headers=OFFER)
    assert "Sec-WebSocket-Extensions" not in client.response_head
    client.close()


def test_socket_sends_are_compressed_per_socket_and_small_ones_are_not(serve):
    server = serve("apps.basic:worker", "--compression", "--no-auto-ping")
    client = WSClient(server.port, "/", headers=OFFER)
    client.recv_json()
    client.send_raw(deflated_frame(json.dumps(["e", "echo", CHAT]).encode()))
    opcode, payload, _ = client.recv_frame()
    assert client.last_rsv1 and json.loads(inflate(payload)) == ["e", "echo", CHAT]
    client.emit("echo", "short")
    assert client.recv_json() == ["e", "echo", "short"] and not client.last_rsv1  # under compression_threshold
    client.close()
