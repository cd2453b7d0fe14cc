"""Protocol errors -> close frames (protocol/closing.py), the one place both engines use."""
from clusterws_gevent.exceptions import InvalidData, MessageTooBig, ProtocolError
from clusterws_gevent.protocol.closing import MAX_REASON_BYTES, as_protocol_error, close_for
from clusterws_gevent.protocol.frames import encode_close


def test_each_error_closes_with_its_code_and_its_words():
    assert close_for(ProtocolError("unexpected continuation frame")) == (1002, "unexpected continuation frame")
    assert close_for(InvalidData("invalid UTF-8"))[0] == 1007
    assert close_for(MessageTooBig("message over max_message_size"))[0] == 1009


def test_a_long_reason_is_cut_to_123_bytes_of_utf8_not_123_characters():
    code, reason = close_for(ProtocolError("é" * 100))  # 200 bytes
    assert len(reason.encode("utf-8")) <= MAX_REASON_BYTES
    assert reason == "é" * 61  # never half a character
    encode_close(code, reason)  # a frame the encoder accepts


def test_engine_failures_become_our_errors():
    ours = MessageTooBig("too big")
    assert as_protocol_error(ours) is ours
    utf8 = as_protocol_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"))
    assert isinstance(utf8, InvalidData) and str(utf8) == "invalid UTF-8 in a text message: invalid start byte"
    assert str(as_protocol_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"), "a close reason")).startswith(
        "invalid UTF-8 in a close reason")
    other = as_protocol_error(ValueError("reserved bits must be 0"))  # a parser's own error class
    assert type(other) is ProtocolError and other.close_code == 1002 and str(other) == "reserved bits must be 0"
    assert as_protocol_error(EOFError()) is None  # the end of the stream: 1006, no close frame
