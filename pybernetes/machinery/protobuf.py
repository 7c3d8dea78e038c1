"""Decode Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

kubectl 1.32+ and client-go typed clients send built-in objects as protobuf and do not
retry with JSON. We only decode: `decode(raw)` turns the envelope into the object's JSON
form (plain dicts), so the rest of the server sees exactly what a JSON client sends.

Envelope: the magic `k8s\\x00`, then a `runtime.Unknown` {typeMeta=1 {apiVersion=1,
kind=2}, raw=2 (the object message), contentEncoding=3, contentType=4}.

The field tables come from protobuf_schema.json (tools/gen_protobuf_schema.py). To give
the same dict as Go's encoding/json would for the struct the client encoded, every
field is emitted the way Go does: gogo-protobuf always writes non-pointer fields, and
JSON then drops zero values only of `omitempty` fields, never structs, and writes nil
pointers/slices/maps of non-omitempty fields as null.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from pybernetes.machinery import errors

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
_SCHEMA_FILE = Path(__file__).with_name("protobuf_schema.json")
_META = "k8s.io.apimachinery.pkg.apis.meta.v1"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"
_ZERO_TIME_SECONDS = -62135596800  # Go's time.Time{} as Unix seconds
_VARINT_TYPES = {"int32", "int64", "uint32", "uint64", "bool", "sint32", "sint64"}


class Malformed(Exception):
    """Raised inside the reader; decode() turns it into a 400."""


def decode(raw: bytes) -> dict:
    """The protobuf envelope -> the object in its JSON form."""
    if not raw.startswith(MAGIC):
        raise errors.bad_request("protobuf body does not start with the Kubernetes magic prefix")
    try:
        envelope = _unknown(raw[len(MAGIC):])
        api_version, kind = envelope["apiVersion"], envelope["kind"]
        if envelope["contentEncoding"]:
            encoding = envelope["contentEncoding"]
            raise errors.bad_request(f"unsupported protobuf content encoding {encoding!r}")
        name = message_for(api_version, kind)
        if name is None:
            raise errors.unsupported_media_type(MEDIA_TYPE)
        body = _message(name, envelope["raw"])
    except Malformed as e:
        raise errors.bad_request(f"unable to decode protobuf body: {e}") from None
    except RecursionError:  # RawExtensions nested without end
        raise errors.bad_request("unable to decode protobuf body: nested too deeply") from None
    if not isinstance(body, dict):
        raise errors.bad_request(f"protobuf body for {kind} is not an object")
    return {"kind": kind, "apiVersion": api_version, **body}


def message_for(api_version: str, kind: str) -> str | None:
    """The protobuf message name of (apiVersion, kind), or None if we have no schema."""
    schema = _schema()
    package = schema["groups"].get(api_version)
    if package and kind and f"{package}.{kind}" in schema["messages"]:
        return f"{package}.{kind}"
    # the meta/v1 option types (DeleteOptions, ...) are registered in every group version
    if kind and kind.endswith("Options") and f"{_META}.{kind}" in schema["messages"]:
        return f"{_META}.{kind}"
    return None


@lru_cache(maxsize=1)
def _schema() -> dict:
    schema = json.loads(_SCHEMA_FILE.read_text())
    schema["lists"] = set(schema["lists"])
    # number keys as ints, once, so the hot path does no string work
    schema["messages"] = {name: {int(n): tuple(f) for n, f in fields.items()}
                          for name, fields in schema["messages"].items()}
    return schema


def _unknown(buf: bytes) -> dict:
    out = {"apiVersion": "", "kind": "", "raw": b"", "contentEncoding": ""}
    for number, wire, value in iter_fields(buf):
        if number == 1 and wire == 2:
            for n, w, v in iter_fields(value):
                if n in (1, 2) and w == 2:
                    out["apiVersion" if n == 1 else "kind"] = _text(v)
        elif number == 2 and wire == 2:
            out["raw"] = value
        elif number == 3 and wire == 2:
            out["contentEncoding"] = _text(value)
    return out


# ---- wire format (also what the gRPC probe and the OpenAPI v2 encoder use) ----------------

def encode_varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1  # negative int64s travel as 10-byte two's complement
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_bytes_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes, embedded message)."""
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise Malformed("truncated or overlong varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field; length-delimited values as bytes."""
    i, end = 0, len(buf)
    while i < end:
        key, i = read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise Malformed("field number 0")
        if wire == 0:
            value, i = read_varint(buf, i)
        elif wire == 2:
            size, i = read_varint(buf, i)
            if i + size > end:
                raise Malformed("length-delimited field runs past the end")
            value, i = buf[i:i + size], i + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if i + width > end:
                raise Malformed("truncated fixed-width field")
            value, i = buf[i:i + width], i + width
        else:
            raise Malformed(f"unsupported wire type {wire}")
        yield number, wire, value


def _text(value: bytes) -> str:
    # gogo does not check UTF-8 and Go's JSON writes bad bytes as U+FFFD: do the same
    return bytes(value).decode("utf-8", errors="replace")


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(kind: str, wire: int, value: Any) -> Any:
    """One scalar value of protobuf type `kind` in its JSON form."""
    if kind == "string":
        _expect(wire, 2, kind)
        return _text(value)
    if kind == "bytes":
        _expect(wire, 2, kind)
        return base64.b64encode(value).decode("ascii")
    if kind in _VARINT_TYPES:
        _expect(wire, 0, kind)
        if kind == "bool":
            return value != 0
        if kind in ("int32", "int64"):
            return _signed(value, 32 if kind == "int32" else 64)
        if kind.startswith("sint"):
            return (value >> 1) ^ -(value & 1)
        return value & ((1 << (32 if kind == "uint32" else 64)) - 1)
    if kind in ("double", "fixed64", "sfixed64"):
        _expect(wire, 1, kind)
        return struct.unpack("<" + {"double": "d", "fixed64": "Q", "sfixed64": "q"}[kind], value)[0]
    if kind in ("float", "fixed32", "sfixed32"):
        _expect(wire, 5, kind)
        return struct.unpack("<" + {"float": "f", "fixed32": "I", "sfixed32": "i"}[kind], value)[0]
    raise Malformed(f"unknown scalar type {kind}")


def _expect(wire: int, want: int, kind: str) -> None:
    if wire != want:
        raise Malformed(f"wire type {wire} for a {kind} field")


def _packed(kind: str, value: bytes) -> list:
    """A packed repeated numeric field (proto3 style; accepted for robustness)."""
    out, i = [], 0
    if kind in _VARINT_TYPES:
        while i < len(value):
            v, i = read_varint(value, i)
            out.append(_scalar(kind, 0, v))
        return out
    width = 8 if kind in ("double", "fixed64", "sfixed64") else 4
    if len(value) % width:
        raise Malformed(f"packed {kind} field has a partial element")
    wire = 1 if width == 8 else 5
    return [_scalar(kind, wire, value[j:j + width]) for j in range(0, len(value), width)]


def _zero(kind: str) -> Any:
    if kind == "string":
        return ""
    if kind == "bool":
        return False
    if kind == "bytes":
        return None
    return 0


# ---- messages -> Go-JSON dicts ----------------------------------------------------------

def _is_message(kind: str) -> bool:
    return kind in _SPECIAL or kind in _schema()["messages"]


def _value(kind: str, wire: int, value: Any) -> Any:
    if _is_message(kind):
        _expect(wire, 2, kind)
        return _message(kind, value)
    return _scalar(kind, wire, value)


def _message(name: str, buf: bytes) -> Any:
    special = _SPECIAL.get(name)
    if special is not None:
        return special(buf)
    schema = _schema()
    table = schema["messages"].get(name)
    if table is None:
        raise Malformed(f"no schema for message {name}")
    values: dict[int, Any] = {}
    for number, wire, value in iter_fields(buf):
        field = table.get(number)
        if field is not None:  # unknown fields are skipped, as gogo does
            _collect(values, number, field, wire, value)
    if name in schema["lists"]:
        return values.get(1) or None  # a named Go slice: JSON is the bare array
    out: dict[str, Any] = {}
    for number, (json_name, kind, flags) in table.items():
        if "s" not in flags:
            _emit(out, json_name, kind, flags, number in values, values.get(number))
    return out


def _collect(values: dict[int, Any], number: int, field: tuple, wire: int, value: Any) -> None:
    _, kind, flags = field
    if "m" in flags:
        _expect(wire, 2, "map entry")
        key, val = _map_entry(kind, value)
        values.setdefault(number, {})[key] = val
    elif "r" in flags:
        items = values.setdefault(number, [])
        if wire == 2 and kind not in ("string", "bytes") and not _is_message(kind):
            items.extend(_packed(kind, value))
        else:
            items.append(_value(kind, wire, value))
    else:
        values[number] = _value(kind, wire, value)


def _map_entry(kind: str, buf: bytes) -> tuple[str, Any]:
    key, val, seen = "", None, False
    for number, wire, value in iter_fields(buf):
        if number == 1:
            _expect(wire, 2, "map key")
            key = _text(value)
        elif number == 2:
            val, seen = _value(kind, wire, value), True
    if not seen:  # an absent value is the zero value of its type (gogo: []byte{} for bytes)
        val = _message(kind, b"") if _is_message(kind) else "" if kind == "bytes" else _zero(kind)
    return key, val


def _emit(out: dict, name: str, kind: str, flags: str, present: bool, value: Any) -> None:
    """Add one field to `out` as Go's encoding/json would write it."""
    is_message = _is_message(kind)
    if "r" in flags or "m" in flags or kind in _schema()["lists"] or kind == "bytes":
        # slices, maps, []byte: omitempty drops nil and empty ones; otherwise nil is null
        if present and value not in (None, [], {}, ""):
            out[name] = value
        elif "o" not in flags:
            out[name] = value if present and value is not None else None
        return
    if "p" in flags:
        if present:
            out[name] = value
        elif "o" not in flags:
            out[name] = None
        return
    if not present:
        value = _message(kind, b"") if is_message else _zero(kind)
    if "i" in flags and isinstance(value, dict):
        out.update(value)  # embedded struct: its fields sit in the parent
    elif is_message or "o" not in flags or value not in ("", 0, False):
        # Go never omits a struct; scalars are dropped only when zero and omitempty
        out[name] = value


# ---- special messages with their own JSON form ------------------------------------------

def _numbers(buf: bytes, texts: tuple[int, ...] = ()) -> dict[int, Any]:
    """Fields of a small special message: `texts` are length-delimited, the rest varints."""
    out = {}
    for number, wire, value in iter_fields(buf):
        _expect(wire, 2 if number in texts else 0, "special message")
        out[number] = value
    return out


def _time(buf: bytes, micro: bool) -> str | None:
    if not buf:
        return None  # Go writes nothing for the zero time; its JSON is null
    f = _numbers(buf)
    seconds, nanos = _signed(f.get(1, 0), 64), _signed(f.get(2, 0), 32)
    if seconds == _ZERO_TIME_SECONDS and nanos == 0:
        return None
    try:
        t = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(seconds=seconds)
    except OverflowError:
        raise Malformed("time out of range") from None
    text = f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    return f"{text}.{nanos // 1000:06d}Z" if micro else f"{text}Z"


def go_duration(ns: int) -> str:
    """time.Duration.String(): 1h0m0s, 1.5s, 300ms, 0s."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    return f"{sign}{minutes}m{text}" if minutes else sign + text


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def _duration(buf: bytes) -> str:
    return go_duration(_signed(_numbers(buf).get(1, 0), 64))


def _quantity(buf: bytes) -> str:
    value = _numbers(buf, (1,)).get(1)
    return _text(value) if value else "0"


def _int_or_string(buf: bytes) -> int | str:
    f = _numbers(buf, (3,))
    if f.get(1, 0) == 1:
        return _text(f.get(3, b""))
    return _signed(f.get(2, 0), 32)


def _embedded_json(buf: bytes) -> Any:
    raw = _numbers(buf, (1,)).get(1)
    if not raw:
        return None
    if bytes(raw).startswith(MAGIC):
        return decode(bytes(raw))
    try:
        return json.loads(raw)
    except ValueError:
        raise Malformed("embedded object is not valid JSON") from None


_SPECIAL: dict[str, Callable[[bytes], Any]] = {
    f"{_META}.Time": lambda b: _time(b, micro=False),
    f"{_META}.MicroTime": lambda b: _time(b, micro=True),
    f"{_META}.Duration": _duration,
    f"{_META}.FieldsV1": _embedded_json,
    "k8s.io.apimachinery.pkg.runtime.RawExtension": _embedded_json,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": _quantity,
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
}
