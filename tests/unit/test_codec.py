"""ClusterWS messages, frames and the handshake, as pure functions."""
import json

import pytest

from clusterws_gevent.exceptions import HandshakeError, IncorrectMessage
from clusterws_gevent.protocol import json_codec
from clusterws_gevent.protocol.frames import OP_TEXT, encode_close, encode_frame, frame_header
from clusterws_gevent.protocol.handshake import accept_key, check_upgrade, http_response, switching_protocols
from clusterws_gevent.protocol.json_codec import MAX_DEPTH
from clusterws_gevent.protocol.messages import (
    decode_message,
    encode_channel_entry,
    encode_config,
    encode_emit,
    encode_json,
    encode_publish_frame,
    encode_subscribe_reply,
)


@pytest.fixture(autouse=True, params=json_codec.available())
def codec(request):
    """Every test here runs on each JSON codec installed: orjson (the speedups extra) and
    the standard library, which decides every case orjson would treat differently."""
    previous = json_codec.name()
    json_codec.use(request.param)
    yield request.param
    json_codec.use(previous)


def test_messages_are_compact_json_like_javascript():
    assert encode_emit("hello", {"a": [1, 2.5, None, True]}) == b'["e","hello",{"a":[1,2.5,null,true]}]'
    assert encode_config(True, 20000) == b'["s","c",{"autoPing":true,"pingInterval":20000}]'
    assert encode_subscribe_reply({"chat": True, "news": False}) == b'["s","s",{"chat":true,"news":false}]'
    assert encode_json("é") == '"é"'.encode()  # raw UTF-8, not \\u escapes


def test_publish_batch_is_built_from_encoded_parts():
    entries = [encode_channel_entry("chat", [b'"a"', b"1"]), encode_channel_entry("news", [b"{}"])]
    assert encode_publish_frame(entries) == b'["p",null,{"chat":["a",1],"news":[{}]}]'


def test_lone_surrogates_fall_back_to_escapes_and_nan_is_refused():
    assert encode_json("\ud800") == b'"\\ud800"'
    for value in (float("nan"), [1, {"a": float("inf")}], -float("inf")):
        with pytest.raises(ValueError):
            encode_json(value)
    with pytest.raises(TypeError):
        encode_json(object())
    assert encode_json({"a": None, "b": [None]}) == b'{"a":null,"b":[null]}'


def test_both_codecs_agree_on_what_the_standard_library_decides():
    assert encode_json(2 ** 70) == b"1180591620717411303424"  # beyond 64 bits
    assert encode_json({1: "a"}) == b'{"1":"a"}'  # keys that are no strings
    assert decode_message('["e","x","\\ud800"]') == ("e", "x", "\ud800")  # an escaped lone surrogate


def test_the_default_decides_for_types_json_has_none_for():
    import datetime

    json_codec.set_default(lambda value: value.isoformat() if isinstance(value, datetime.date) else str(value))
    try:
        assert encode_json([datetime.date(2026, 11, 29)]) == b'["2026-11-29"]'
        assert encode_json({"set": {1}}) == b'{"set":"{1}"}'
    finally:
        json_codec.set_default(__import__("json").JSONEncoder().default)


@pytest.mark.parametrize("text", ["[NaN]", "[Infinity]", "[1e400]", "[" * 5000 + "]" * 5000, '["a"] ["b"]'])
def test_what_json_cannot_hold_is_refused_as_it_arrives(text):
    with pytest.raises(IncorrectMessage) as info:
        decode_message(text)
    assert "invalid JSON" in info.value.detail


def test_an_unknown_codec_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="available: "):
        json_codec.use("simplejson")


@pytest.mark.parametrize("message", ['["e","x",1]', b'["e","x",1]', ["e", "x", 1]])
def test_decode_accepts_text_bytes_and_lists(message):
    assert decode_message(message) == ("e", "x", 1)


@pytest.mark.parametrize("message, detail", [
    ("hello", "does not start with '['"),
    ("[1,2", "invalid JSON"),
    ('["e","x",1] tail', "extra data"),
    ('["e","x"]', "not an array of three items"),
    ("[1,2,3]", "message type is not a string"),
    (b"\xff[", "not UTF-8"),
])
def test_incorrect_messages_have_the_original_wording(message, detail):
    with pytest.raises(IncorrectMessage) as info:
        decode_message(message)
    assert str(info.value) == "processMessage received incorrect message"
    assert detail in info.value.detail


def test_frames():
    assert frame_header(OP_TEXT, 5) == b"\x81\x05"
    assert frame_header(OP_TEXT, 126) == b"\x81\x7e\x00\x7e"
    assert frame_header(OP_TEXT, 70000)[:2] == b"\x81\x7f"
    assert encode_frame(OP_TEXT, b"hi") == b"\x81\x02hi"
    assert encode_close(4000, "bye") == b"\x88\x05\x0f\xa0bye"
    for code in (999, 1004, 1005, 1006, 1015, 2999, 5000):
        with pytest.raises(ValueError):
            encode_close(code)
    with pytest.raises(ValueError):
        encode_close(1000, "x" * 124)


def _environ(**overrides):
    environ = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_CONNECTION": "keep-alive, Upgrade",
               "HTTP_UPGRADE": "websocket", "HTTP_SEC_WEBSOCKET_VERSION": "13",
               "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ=="}
    environ.update(overrides)
    return {k: v for k, v in environ.items() if v is not None}


def test_handshake_accepts_a_valid_request_with_the_rfc_example_key():
    key = check_upgrade(_environ())
    assert accept_key(key) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in switching_protocols(key)


@pytest.mark.parametrize("overrides, status", [
    ({"REQUEST_METHOD": "POST"}, 405),
    ({"SERVER_PROTOCOL": "HTTP/1.0"}, 400),
    ({"HTTP_CONNECTION": "keep-alive"}, 400),
    ({"HTTP_SEC_WEBSOCKET_VERSION": "8"}, 426),
    ({"HTTP_SEC_WEBSOCKET_KEY": None}, 400),
    ({"HTTP_SEC_WEBSOCKET_KEY": "c2hvcnQ="}, 400),
])
def test_handshake_refusals_carry_the_http_status(overrides, status):
    with pytest.raises(HandshakeError) as info:
        check_upgrade(_environ(**overrides))
    assert info.value.status == status


def test_http_response_is_complete():
    response = http_response(404, "nope")
    assert response.startswith(b"HTTP/1.1 404 Not Found\r\n") and response.endswith(b"\r\n\r\nnope\n")
    assert b"Content-Length: 5\r\n" in response


@pytest.mark.parametrize("depth, accepted", [(MAX_DEPTH, True), (MAX_DEPTH + 1, False), (5000, False),
                                             (100_000, False)])
def test_one_nesting_rule_whichever_codec_decodes(depth, accepted):
    text = '["e","deep",' + "[{\"a\":" * (depth // 2) + "1" + "}]" * (depth // 2) + "]"
    levels = 1 + 2 * (depth // 2)
    assert json_codec.nesting(text) == levels
    if levels <= MAX_DEPTH:
        assert decode_message(text)[1] == "deep"
    else:
        with pytest.raises(IncorrectMessage) as info:
            decode_message(text)
        assert f"nested deeper than {MAX_DEPTH} levels" in info.value.detail


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps(["e", "s", "[" * 10_000 + '\\"{' * 1000])
    assert json_codec.nesting(text) == 1
    assert decode_message(text)[2].startswith("[[[")
