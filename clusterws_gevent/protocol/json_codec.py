"""JSON as ClusterWS messages carry it: the standard library's C codec, or orjson.

Compact, UTF-8, and strict both ways: NaN and infinities are refused (JavaScript's
``JSON.parse`` cannot read them), and ``default`` (the Flask app's JSON provider's,
in a worker serving one) decides for every type JSON has none for.

orjson, when installed (the ``speedups`` extra), does the common case: measured on
an echo round trip, a decode 0.42 µs instead of 1.0 and an encode 0.17 µs instead of
0.57 (``benchmarks/README.md``). Whatever it refuses or would write differently goes
to the standard library, so the two agree (``tests/unit/test_codec.py`` runs on
both), except where orjson is more lenient: it writes ``UUID`` and ``Enum`` values
itself, and reads an integer beyond 64 bits as a float (as JavaScript does; the
standard library keeps it exact). ``CLUSTERWS_JSON=stdlib`` turns orjson off.

Nesting has one rule, ours, whichever codec decodes and on every Python: a text nested
deeper than :data:`MAX_DEPTH` levels is refused before any decoder sees it (orjson stops
at 1,024 levels, the standard library where the interpreter's recursion limit stops it:
about 1,000 on 3.11, tens of thousands on 3.13). Only a text long enough, and holding
enough opening brackets, to go that deep is scanned.
"""
from __future__ import annotations

import json
import json.encoder
import json.scanner
import os
import re
from itertools import accumulate
from typing import Any, Callable, Tuple

__all__ = ["encode", "decode", "set_default", "use", "available", "name", "nesting", "MAX_DEPTH"]

#: The deepest nesting of arrays and objects a decoded text may have (deeper: ValueError).
MAX_DEPTH = 256

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting(text: str) -> int:
    """How deeply ``text`` nests arrays and objects (brackets inside strings do not count; an
    unterminated string's do, which only overstates an invalid text)."""
    brackets = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def _check_nesting(text: str) -> None:
    # Deeper than MAX_DEPTH needs more than MAX_DEPTH opening brackets, hence more than
    # 2 * MAX_DEPTH characters: a short text (every echo, every event) costs a length check.
    if len(text) > 2 * MAX_DEPTH and text.count("[") + text.count("{") > MAX_DEPTH and nesting(text) > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")

try:
    import orjson
except ImportError:  # pragma: no cover - the speedups extra is not installed
    orjson = None  # type: ignore[assignment]

_INF = float("inf")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):
        raise ValueError(f"number out of range: {text[:20]}")
    return value


# Refused as they arrive, rather than failing later, far from the cause.
_scan = json.scanner.make_scanner(  # the C scanner: no regex passes
    json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float))  # type: ignore[arg-type]


def _stdlib_decode(text: str) -> Any:
    """The value of a JSON text, by the standard library's C scanner. Raises ValueError."""
    _check_nesting(text)
    return _stdlib_scan(text)


def _stdlib_scan(text: str) -> Any:
    try:
        value, end = _scan(text, 0)
    except StopIteration as exc:
        raise ValueError(f"invalid JSON at character {exc.value}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if end != len(text) and text[end:].strip():
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def _stdlib_encoder(ensure_ascii: bool, default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """A compact encoder (like JavaScript's JSON.stringify) built once.

    ``JSONEncoder.encode`` builds a new C encoder on every call (0.8 µs of a
    1.3 µs encode); the C encoder made once and reused does the same work.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=ensure_ascii, allow_nan=False,
                                default=default).encode
    quote = json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    encoder = make(None, default, quote, None, ":", ",", False, False, False)
    return lambda value: "".join(encoder(value, 0))


_default: Callable[[Any], Any] = json.JSONEncoder().default
_encode_utf8 = _stdlib_encoder(False, _default)  # raw UTF-8, shorter than \u escapes
_encode_ascii = _stdlib_encoder(True, _default)


def _stdlib_encode(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, by the standard library. Raises TypeError or ValueError."""
    try:
        return _encode_utf8(value).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON decoding can make one) is no UTF-8: escape it
        return _encode_ascii(value).encode("ascii")


if orjson is not None:
    # Types the standard library leaves to ``default`` go to ``default`` here too.
    _ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | \
        orjson.OPT_PASSTHROUGH_SUBCLASS


def _orjson_encode(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON, by orjson where it agrees with the standard library."""
    try:
        out: bytes = orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS)
    except TypeError:  # integers over 64 bits, lone surrogates, keys that are no strings, refusals
        return _stdlib_encode(value)
    if b"null" in out:  # orjson writes NaN and infinities as null, which the standard library refuses
        return _stdlib_encode(value)
    return out


#: Longer texts are decoded by the standard library: orjson builds a whole document before
#: the Python values (measured: three 1 MiB requests of 90,000 channel names raised a
#: worker's RSS by 38 MiB, 28 with the standard library); per-message speed matters below.
ORJSON_MAX_TEXT = 64 << 10


def _orjson_decode(text: str) -> Any:
    """The value of a JSON text, by orjson where it agrees with the standard library."""
    _check_nesting(text)
    if len(text) > ORJSON_MAX_TEXT:
        return _stdlib_scan(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # the standard library's wording, and escaped lone surrogates it reads
        return _stdlib_scan(text)


#: ``value`` as compact JSON in UTF-8. Raises TypeError (not serializable) or ValueError (NaN, infinities).
encode: Callable[[Any], bytes] = _stdlib_encode
#: The value of a JSON text. Raises ValueError (its message says where and why).
decode: Callable[[str], Any] = _stdlib_decode


def available() -> Tuple[str, ...]:
    """The codecs this process can use."""
    return ("orjson", "stdlib") if orjson is not None else ("stdlib",)


def name() -> str:
    """The codec in use."""
    return "orjson" if encode is _orjson_encode else "stdlib"


def use(codec: str) -> None:
    """Encode and decode with ``codec`` ("orjson" or "stdlib"), process-wide.

    Raises:
        ValueError: ``codec`` is unknown or not installed.
    """
    global encode, decode
    if codec not in available():
        raise ValueError(f"JSON codec {codec!r} is not available here; available: {', '.join(available())}")
    encode, decode = (_orjson_encode, _orjson_decode) if codec == "orjson" else (_stdlib_encode, _stdlib_decode)


def set_default(default: Callable[[Any], Any]) -> None:
    """Encode what JSON has no type for with ``default`` (it returns what JSON has, or raises TypeError)."""
    global _default, _encode_utf8, _encode_ascii
    _default = default
    _encode_utf8 = _stdlib_encoder(False, default)
    _encode_ascii = _stdlib_encoder(True, default)


use(os.environ.get("CLUSTERWS_JSON") or available()[0])
